package externalscaler

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A rules test file (top level tests, no ruleSets) beside rule files in a
// directory is passed over, so that a ConfigMap made from a directory of
// rule sets and their tests loads; named on its own, it is read as rules
// and refused.
func TestRuleFilesSkipTestFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	rulesFile := write("queue.yaml", `
ruleSets:
  - name: queue
    queries: {depth: 'sum(queue_depth{namespace="$namespace"})'}
    replicas: depth / 4
    max: 8
`)
	testFile := write("queue-test.yaml", `
rule_files: [queue.yaml]
tests:
  - name: idle
    input_series: [{series: 'queue_depth{namespace="ml"}', values: '0x5'}]
    rule_set_tests: [{eval_time: 1m, rule_set: queue, exp_replicas: 0}]
`)
	// Neither a test file (it has ruleSets) nor valid rules: it must be
	// read, and refused, so that a broken rule file is never skipped.
	cases := map[string]struct {
		paths   []string
		extra   string // written into the directory first
		want    []string
		wantErr string
	}{
		"directory with a test file": {paths: []string{dir}, want: []string{rulesFile}},
		"test file named explicitly": {paths: []string{testFile}, wantErr: `unknown field: the top level holds only ruleSets`},
		"a rule file that also has tests is read as rules": {
			paths:   []string{dir},
			extra:   "ruleSets: []\ntests: []\n",
			wantErr: `ruleSets: the list is empty`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if tc.extra != "" {
				path := write("mixed.yaml", tc.extra)
				defer os.Remove(path)
			}
			c, err := LoadCatalog(tc.paths)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("LoadCatalog(%v) = %v, want an error containing %q", tc.paths, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(c.Files, ",") != strings.Join(tc.want, ",") {
				t.Errorf("files %v, want %v", c.Files, tc.want)
			}
			if _, ok := c.RuleSet("queue"); !ok {
				t.Errorf("rule set queue not loaded: %v", c.Names())
			}
		})
	}
}
