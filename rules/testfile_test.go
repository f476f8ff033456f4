package rules

import "testing"

func TestIsTestFile(t *testing.T) {
	cases := map[string]struct {
		data string
		want bool
	}{
		"test file":              {"rule_files: [a.yaml]\ntests:\n  - name: x\n", true},
		"tests only":             {"tests: []\n", true},
		"rule file":              {"ruleSets:\n  - name: a\n", false},
		"both is a rule file":    {"tests: []\nruleSets: []\n", false},
		"neither":                {"rule_files: [a.yaml]\n", false},
		"not a mapping":          {"- tests\n", false},
		"empty":                  {"", false},
		"invalid YAML":           {"tests: [\n", false},
		"tests nested deeper":    {"x:\n  tests: []\n", false},
		"comment mentions tests": {"# tests:\nruleSets: []\n", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := IsTestFile([]byte(tc.data)); got != tc.want {
				t.Errorf("IsTestFile(%q) = %t, want %t", tc.data, got, tc.want)
			}
		})
	}
}
