package rulestest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// runInline loads body as a test file beside testdata/semantics.rules.yaml
// and runs every test in it, returning all failures in order.
func runInline(t *testing.T, body string) []*Failure {
	t.Helper()
	f, err := Parse("testdata/inline-test.yaml", []byte("rule_files: [semantics.rules.yaml]\n"+body))
	if err != nil {
		t.Fatalf("loading:\n%v", err)
	}
	var out []*Failure
	for _, r := range f.Run(t.Context(), nil) {
		out = append(out, r.Failures...)
	}
	return out
}

// checkFailures compares failures with want, one substring of each
// failure's text per failure, in order.
func checkFailures(t *testing.T, got []*Failure, want []string) {
	t.Helper()
	var texts []string
	for _, f := range got {
		texts = append(texts, f.String())
	}
	if len(got) != len(want) {
		t.Fatalf("%d failures, want %d:\n%s", len(got), len(want), strings.Join(texts, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(texts[i], w) {
			t.Errorf("failure %d:\n%s\nwant it to contain %q", i, texts[i], w)
		}
	}
}

// The issue's example passes as written.
func TestIssueExample(t *testing.T) {
	f, err := Load("testdata/queue-test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	results := f.Run(t.Context(), nil)
	if len(results) != 1 {
		t.Fatalf("%d results, want 1", len(results))
	}
	for _, fl := range results[0].Failures {
		t.Error(fl)
	}
}

// Every expectation of the issue's example is checked: changing one makes
// exactly that one fail, with expected against got.
func TestIssueExampleMutations(t *testing.T) {
	data, err := os.ReadFile("testdata/queue-test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		old, new string
		want     string
	}{
		"replicas at 1m": {
			old:  "{eval_time: 1m, rule_set: queue, exp_replicas: 5, exp_active: true}",
			new:  "{eval_time: 1m, rule_set: queue, exp_replicas: 4, exp_active: true}",
			want: "eval_time 1m, rule set queue:\n    expected: replicas 4, active true, holding false\n    got:      replicas 5, active true, holding false (expression 5)",
		},
		"the queued override at 15s": {
			old:  "exp_replicas: 0, exp_active: true}",
			new:  "exp_replicas: 0, exp_active: false}",
			want: "expected: replicas 0, active false, holding false\n    got:      replicas 0, active true, holding false",
		},
		"no queued, no override": {
			old:  "queued: '0 3 0x10'",
			new:  "queued: '0 0 0x10'",
			want: "eval_time 15s, rule set queue:\n    expected: replicas 0, active true, holding false\n    got:      replicas 0, active false, holding false",
		},
		"holding at 2m30s": {
			old:  "exp_replicas: 5, exp_holding: true}",
			new:  "exp_replicas: 5}",
			want: "expected: replicas 5, holding false\n    got:      replicas 5, active true, holding true (the last good decision, of 1m)",
		},
		"the reason at 3m30s": {
			old:  "exp_error: no_data}",
			new:  "exp_error: series}",
			want: "expected: error series\n    got:      error no_data: query \"depth\" returned no series",
		},
		"an error where a decision is expected": {
			old:  "{eval_time: 3m30s, rule_set: queue, exp_error: no_data}",
			new:  "{eval_time: 3m30s, rule_set: queue, exp_replicas: 5, exp_holding: true}",
			want: "(the last good decision is older than staleAfter 2m0s)",
		},
		"a decision where an error is expected": {
			old:  "{eval_time: 2m30s, rule_set: queue, exp_replicas: 5, exp_holding: true}",
			new:  "{eval_time: 2m30s, rule_set: queue, exp_error: no_data}",
			want: "expected: error no_data\n    got:      replicas 5, active true, holding true",
		},
		"promql_expr_test value": {
			old:  "value: 20}",
			new:  "value: 12}",
			want: "eval_time 1m30s, expr \"max_over_time(queue_depth{namespace=\\\"ml\\\"}[1m])\":\n    expected: {model=\"llama\", namespace=\"ml\"} 1.2E+01\n    got:      {model=\"llama\", namespace=\"ml\"} 2E+01",
		},
		"promql_expr_test labels": {
			old:  `labels: '{model="llama", namespace="ml"}'`,
			new:  `labels: 'queue_depth{model="llama", namespace="ml"}'`,
			want: "got:      {model=\"llama\", namespace=\"ml\"} 2E+01",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(string(data), tc.old) {
				t.Fatalf("%q is not in the example", tc.old)
			}
			mutated := strings.Replace(string(data), tc.old, tc.new, 1)
			f, err := Parse("testdata/queue-test.yaml", []byte(mutated))
			if err != nil {
				t.Fatal(err)
			}
			checkFailures(t, f.Run(t.Context(), nil)[0].Failures, []string{tc.want})
		})
	}
}

// The decision path's semantics, one behaviour per case: an empty want is
// a test that must pass.
func TestRunSemantics(t *testing.T) {
	cases := map[string]struct {
		body string
		want []string
	}{
		"lookback: a time between samples reads the latest before it": {body: `
tests:
  - scaled_object: {name: a}
    input_series: [{series: 'x{job="a"}', values: '1 _ _ 7 _x10'}]
    rule_set_tests:
      - {eval_time: 2m59s, rule_set: fail, exp_replicas: 1}
      - {eval_time: 3m, rule_set: fail, exp_replicas: 7}
      - {eval_time: 7m59s, rule_set: fail, exp_replicas: 7}
      # The lookback is left-open, as in Prometheus 3: 5m after the sample
      # it is gone.
      - {eval_time: 8m, rule_set: fail, exp_error: no_data}
`},
		"each rule set keeps its own last good decision": {body: `
tests:
  - scaled_object: {name: a}
    input_series: [{series: 'x{job="a"}', values: '4 stale'}]
    rule_set_tests:
      - {eval_time: 0s, rule_set: hold, exp_replicas: 4}
      - {eval_time: 1m, rule_set: hold, exp_replicas: 4, exp_holding: true}
      - {eval_time: 1m, rule_set: hold2, exp_error: no_data}
`},
		"every test starts afresh": {body: `
tests:
  - name: first
    scaled_object: {name: a}
    input_series: [{series: 'x{job="a"}', values: '4 stale'}]
    rule_set_tests: [{eval_time: 0s, rule_set: hold, exp_replicas: 4}]
  - name: second
    scaled_object: {name: a}
    input_series: [{series: 'x{job="a"}', values: '_ stale'}]
    rule_set_tests: [{eval_time: 1m, rule_set: hold, exp_replicas: 4, exp_holding: true}]
`, want: []string{`test "second": eval_time 1m, rule set hold:
    expected: replicas 4, holding true
    got:      error no_data: query "v" returned no series (append ` + "`or vector(0)`" + ` to the query if none means zero): no data (no good decision yet to hold)`}},
		"onError fail answers the error at once": {body: `
tests:
  - scaled_object: {name: a}
    input_series: [{series: 'x{job="a"}', values: '4 stale'}]
    rule_set_tests:
      - {eval_time: 0s, rule_set: fail, exp_replicas: 4}
      - {eval_time: 1m, rule_set: fail, exp_error: no_data, exp_active: false}
`},
		"onError a count answers it, not holding": {body: `
tests:
  - scaled_object: {name: a}
    input_series: [{series: 'x{job="a"}', values: '4 stale'}]
    rule_set_tests:
      - {eval_time: 1m, rule_set: fixed, exp_replicas: 2, exp_active: true}
      - {eval_time: 1m, rule_set: fixed, exp_replicas: 2, exp_holding: true}
`, want: []string{"got:      replicas 2, active true, holding false (onError's fixed count)"}},
		"a built-in the test does not give fails as the scaler without its source": {body: `
tests:
  - scaled_object: {name: a}
    input_series: [{series: 'x{job="a"}', values: '4x5'}]
    builtins: {queued: '0x5'}
    rule_set_tests:
      - {eval_time: 1m, rule_set: demand, exp_error: demand}
      - {eval_time: 1m, rule_set: target, exp_error: scale_target}
`},
		"built-ins are read at eval_time, and nothing after a stale": {body: `
tests:
  - scaled_object: {name: a}
    input_series: [{series: 'x{job="a"}', values: '1x10'}]
    builtins: {inflight: '2 _ 8 stale', current: '3'}
    rule_set_tests:
      - {eval_time: 0s, rule_set: demand, exp_replicas: 2}
      - {eval_time: 1m59s, rule_set: demand, exp_replicas: 2}
      - {eval_time: 2m, rule_set: demand, exp_replicas: 5}
      - {eval_time: 3m, rule_set: demand, exp_error: demand}
      - {eval_time: 4m59s, rule_set: target, exp_replicas: 5}
      - {eval_time: 5m, rule_set: target, exp_error: scale_target}
`},
		"a query that fails is the prometheus reason": {body: `
tests:
  - input_series:
      - {series: 'x{job="a"}', values: '1'}
      - {series: 'x{job="b"}', values: '1'}
      - {series: 'y', values: '1'}
    rule_set_tests: [{eval_time: 0s, rule_set: many-to-many, exp_error: prometheus}]
`},
		"several series where one number is needed": {body: `
tests:
  - scaled_object: {name: a}
    input_series:
      - {series: 'x{job="a", pod="1"}', values: '1'}
      - {series: 'x{job="a", pod="2"}', values: '1'}
    rule_set_tests: [{eval_time: 0s, rule_set: per-series, exp_error: series}]
`},
		"queued wakes a failing rule set": {body: `
tests:
  - scaled_object: {name: a}
    builtins: {queued: '1'}
    rule_set_tests:
      - {eval_time: 0s, rule_set: fail, exp_error: no_data, exp_active: true}
      - {eval_time: 0s, rule_set: fail, exp_error: no_data, exp_active: false}
`, want: []string{"expected: error no_data, active false\n    got:      error no_data: query \"v\" returned no series"}},
		"a test without a name is shown by its place": {body: `
tests:
  - name: named
    rule_set_tests: [{eval_time: 0s, rule_set: fixed, exp_replicas: 2}]
  - rule_set_tests: [{eval_time: 0s, rule_set: fixed, exp_replicas: 3}]
`, want: []string{"testdata/inline-test.yaml:6: test #2: eval_time 0s, rule set fixed:"}},
		"a failure shows every query and built-in": {body: `
tests:
  - name: shown
    scaled_object: {name: a}
    input_series: [{series: 'x{job="a"}', values: '3'}]
    builtins: {inflight: '4', queued: '1'}
    rule_set_tests: [{eval_time: 30s, rule_set: demand, exp_replicas: 1}]
`, want: []string{`testdata/inline-test.yaml:8: test "shown": eval_time 30s, rule set demand:
    expected: replicas 1, holding false
    got:      replicas 5, active true, holding false (expression 5)
    query v = sum(x{job="a"}): {} 3
    built-in inflight = 4
    built-in queued = 1`}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			checkFailures(t, runInline(t, tc.body), tc.want)
		})
	}
}

// Run selects tests by name, and runs the others not at all.
func TestRunMatch(t *testing.T) {
	f, err := Parse("testdata/inline-test.yaml", []byte(`
rule_files: [semantics.rules.yaml]
tests:
  - name: passes
    rule_set_tests: [{eval_time: 0s, rule_set: fail, exp_error: no_data}]
  - name: fails
    rule_set_tests: [{eval_time: 0s, rule_set: fail, exp_replicas: 1}]
  - name: also passes
    rule_set_tests: [{eval_time: 0s, rule_set: fixed, exp_replicas: 2}]
`))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		re         string
		wantRun    []string
		wantFailed int
	}{
		"all":        {re: "", wantRun: []string{"passes", "fails", "also passes"}, wantFailed: 1},
		"unanchored": {re: "passes", wantRun: []string{"passes", "also passes"}},
		"anchored":   {re: "^fails$", wantRun: []string{"fails"}, wantFailed: 1},
		"none":       {re: "nothing"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var match func(string) bool
			if tc.re != "" {
				match = regexp.MustCompile(tc.re).MatchString
			}
			var ran []string
			failed := 0
			for _, r := range f.Run(t.Context(), match) {
				ran = append(ran, r.Test.Name)
				if len(r.Failures) > 0 {
					failed++
				}
			}
			if !slices.Equal(ran, tc.wantRun) || failed != tc.wantFailed {
				t.Errorf("ran %q with %d failed, want %q with %d", ran, failed, tc.wantRun, tc.wantFailed)
			}
		})
	}
}

// Every example rule set ships a test file, and they all pass.
func TestExamples(t *testing.T) {
	rulesFiles, err := filepath.Glob("../examples/rules/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var tested []string
	for _, path := range rulesFiles {
		if strings.HasSuffix(path, "-test.yaml") {
			continue
		}
		testFile := strings.TrimSuffix(path, ".yaml") + "-test.yaml"
		t.Run(filepath.Base(testFile), func(t *testing.T) {
			f, err := Load(testFile)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(f.RuleFiles, path) {
				t.Errorf("%s does not test %s: it loads %v", testFile, path, f.RuleFiles)
			}
			results := f.Run(t.Context(), nil)
			if len(results) < 3 {
				t.Errorf("%d tests: want at least 3 (scale-up, idle, an error)", len(results))
			}
			for _, r := range results {
				for _, fl := range r.Failures {
					t.Error(fl)
				}
			}
		})
		tested = append(tested, path)
	}
	if len(tested) != 6 {
		t.Errorf("%d example rule files, want 6: %v", len(tested), tested)
	}
}
