package rulestest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/k8s-nemesis/nemesis/rules"
)

// badFiles are the exact problems Load reports for each testdata/*.bad.yaml,
// in order: every problem at once, each with file:line:column.
var badFiles = map[string][]string{
	"empty.bad.yaml": {
		`testdata/empty.bad.yaml:1:1: tests: the file holds no tests`,
	},
	"expectations.bad.yaml": {
		`testdata/expectations.bad.yaml:9:35: test "expectations": rule_set_tests[0].rule_set: no rule set named "queues" in the rule files: there are queue`,
		`testdata/expectations.bad.yaml:10:53: test "expectations": rule_set_tests[1].exp_error: "nodata" is not a reason of an evaluation error: use one of prometheus, scale_target, no_data, series, not_finite, demand, expression`,
		`testdata/expectations.bad.yaml:12:76: test "expectations": rule_set_tests[3].exp_replicas: exp_error expects an error, which has no replicas: give one or the other`,
		`testdata/expectations.bad.yaml:13:75: test "expectations": rule_set_tests[4].exp_holding: exp_error expects an error, and a holding answer is none: give one or the other`,
		`testdata/expectations.bad.yaml:14:9: test "expectations": rule_set_tests[5].exp_replicas: required unless exp_error is given: the replicas the rule set must answer`,
		`testdata/expectations.bad.yaml:15:56: test "expectations": rule_set_tests[6].exp_replicas: "-1" is not a whole number of replicas between 0 and 2147483647`,
		`testdata/expectations.bad.yaml:15:72: test "expectations": rule_set_tests[6].exp_active: "yes" is not true or false`,
		`testdata/expectations.bad.yaml:16:72: test "expectations": rule_set_tests[7].exp_holding: "true" is not true or false`,
		`testdata/expectations.bad.yaml:17:9: test "expectations": rule_set_tests[8].eval_time: required: when to evaluate, such as 1m30s (from the start of the series)`,
		`testdata/expectations.bad.yaml:18:9: test "expectations": rule_set_tests[9].rule_set: required: the name of the rule set to evaluate`,
		`testdata/expectations.bad.yaml:25:35: test "rendering": rule_set_tests[0].rule_set: rendering the queries for the test's scaled_object: query "depth": variable $model is not set: add "model" to the trigger metadata`,
	},
	"fields.bad.yaml": {
		`testdata/fields.bad.yaml:2:22: evaluation_interval: "soon" is not a positive duration such as 15s, 1m or 1m30s`,
		`testdata/fields.bad.yaml:3:1: group_eval_order: unknown field: the fields here are rule_files, evaluation_interval, fuzzy_compare, tests`,
		`testdata/fields.bad.yaml:6:15: test "fields": interval: "-15s" is not a positive duration such as 15s, 1m or 1m30s`,
		`testdata/fields.bad.yaml:10:9: test "fields": input_series[0].value: unknown field: the fields here are series, values`,
		`testdata/fields.bad.yaml:11:75: test "fields": scaled_object.labels: unknown field: the fields here are namespace, name, metadata`,
		`testdata/fields.bad.yaml:12:5: tests[0].alert_rule_test: unknown field: the fields here are name, interval, input_series, scaled_object, builtins, rule_set_tests, promql_expr_test`,
		`testdata/fields.bad.yaml:14:59: test "fields": rule_set_tests[0].exp_replica: unknown field: the fields here are eval_time, rule_set, exp_replicas, exp_active, exp_holding, exp_error`,
		`testdata/fields.bad.yaml:15:25: test "fields": rule_set_tests[1].eval_time: duplicate key`,
		`testdata/fields.bad.yaml:17:19: test "shapes": input_series: must be a list`,
		`testdata/fields.bad.yaml:19:20: test "shapes": rule_set_tests[0].eval_time: must be a single value, not a list or mapping`,
		`testdata/fields.bad.yaml:20:19: test "shapes": rule_set_tests[0].rule_set: rendering the queries for the test's scaled_object: query "depth": variable $model is not set: add "model" to the trigger metadata`,
		`testdata/fields.bad.yaml:22:5: tests[2]: must be a mapping of name, interval, input_series, scaled_object, builtins, rule_set_tests, promql_expr_test`,
	},
	"notation.bad.yaml": {
		`testdata/notation.bad.yaml:5:59: test "notation": input_series[0].series: unexpected end of input inside braces`,
		`testdata/notation.bad.yaml:8:22: test "notation": input_series[1].values: unexpected identifier "three" in series values, expected number or "stale"`,
		`testdata/notation.bad.yaml:10:19: test "notation": input_series[2].values: values expand to more than 1000000 samples`,
		`testdata/notation.bad.yaml:11:9: test "notation": input_series[3].series: required: a series such as 'queue_depth{namespace="ml"}'`,
		`testdata/notation.bad.yaml:14:9: test "notation": input_series[5]: series {__name__="queue_depth", model="gemma", namespace="ml"}: two different values at 0 ms: 1 and 4`,
		`testdata/notation.bad.yaml:17:21: test "notation": input_series[6].values: unexpected identifier "three" in series values, expected number or "stale"`,
		`testdata/notation.bad.yaml:19:22: test "notation": input_series[7].values: unexpected identifier "three" in series values, expected number or "stale"`,
		`testdata/notation.bad.yaml:21:21: test "notation": builtins.queued: unexpected end of input in series values`,
		`testdata/notation.bad.yaml:22:7: test "notation": builtins.waiting: unknown field: the fields here are inflight, queued, current, ready`,
		`testdata/notation.bad.yaml:24:30: test "notation": promql_expr_test[0].expr: invalid PromQL: unclosed left parenthesis`,
		`testdata/notation.bad.yaml:26:15: test "notation": promql_expr_test[1].expr: the expression gives a matrix: it must give an instant vector or a scalar`,
		`testdata/notation.bad.yaml:31:48: test "notation": promql_expr_test[2].exp_samples[0].labels: unexpected identifier "ml" in label set, expected string`,
		`testdata/notation.bad.yaml:34:20: test "notation": promql_expr_test[2].exp_samples[1].value: "one" is not a number`,
		`testdata/notation.bad.yaml:35:13: test "notation": promql_expr_test[2].exp_samples[2].value: required: the sample's value`,
	},
	"notests.bad.yaml": {
		`testdata/notests.bad.yaml:1:1: tests: required: a list of tests`,
	},
	"rulefiles.bad.yaml": {
		`testdata/broken.rules.yaml:3:38: rule set "broken": queries.depth: invalid PromQL: unclosed left parenthesis`,
		`testdata/queue-dup.rules.yaml:2:5: rule set "queue": name: duplicate rule set name: also defined at testdata/queue.yaml:2:5`,
		`testdata/rulefiles.bad.yaml:1:14: rule_files[0]: "missing.yaml" matches no file (it is relative to the test file, in testdata)`,
		`testdata/rulefiles.bad.yaml:1:28: rule_files[1]: "nothing-*.yaml" matches no file (it is relative to the test file, in testdata)`,
		`testdata/rulefiles.bad.yaml:1:65: rule_files[3]: "[" is not a valid glob: syntax error in pattern`,
		`testdata/rulefiles.bad.yaml:5:35: test "t": rule_set_tests[0].rule_set: rendering the queries for the test's scaled_object: query "depth": variable $model is not set: add "model" to the trigger metadata`,
	},
	"yaml.bad.yaml": {
		`testdata/yaml.bad.yaml:4:1: invalid YAML: did not find expected node content`,
	},
}

func TestLoadBad(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		if _, ok := badFiles[filepath.Base(path)]; !ok {
			t.Errorf("%s has no expected errors in badFiles", path)
		}
	}
	for name, want := range badFiles {
		t.Run(name, func(t *testing.T) {
			f, err := Load(filepath.Join("testdata", name))
			if err == nil {
				t.Fatalf("loaded with no error: %d tests", len(f.Tests))
			}
			if f != nil {
				t.Error("a file returned along with errors")
			}
			got := strings.Split(err.Error(), "\n")
			if !slices.Equal(got, want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			for _, e := range rules.Errors(err) {
				if e.Line < 1 || e.Column < 1 {
					t.Errorf("error without a position: %v", e)
				}
			}
			if n := len(rules.Errors(err)); n != len(want) {
				t.Errorf("%d *rules.Error in the error, want %d", n, len(want))
			}
		})
	}
}

// The issue's example loads into what it says.
func TestLoadIssueExample(t *testing.T) {
	f, err := Load("testdata/queue-test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join("testdata", "queue.yaml")}; !slices.Equal(f.RuleFiles, want) {
		t.Errorf("rule files %v, want %v", f.RuleFiles, want)
	}
	if f.EvaluationInterval != time.Minute || len(f.Tests) != 1 {
		t.Fatalf("evaluation_interval %v, %d tests", f.EvaluationInterval, len(f.Tests))
	}
	tc := f.Tests[0]
	if tc.Name != "queue builds up, then the series goes stale" || tc.Interval != 15*time.Second || tc.Line != 14 {
		t.Errorf("test %q, interval %v, line %d", tc.Name, tc.Interval, tc.Line)
	}
	so := tc.ScaledObject
	if so.Namespace != "ml" || so.Name != "llama" || so.Metadata["model"] != "llama" {
		t.Errorf("scaled_object %+v", so)
	}
	if tc.Builtins["queued"] != "0 3 0x10" || len(tc.Builtins) != 1 {
		t.Errorf("builtins %v", tc.Builtins)
	}
	if len(tc.InputSeries) != 1 || tc.InputSeries[0].Values != "0 0 4 12 20x3 stale" {
		t.Errorf("input_series %+v", tc.InputSeries)
	}
	type exp struct {
		at       time.Duration
		replicas int64 // -1: not given
		active   string
		holding  bool
		err      string
	}
	var got []exp
	for _, rt := range tc.RuleSetTests {
		e := exp{at: rt.EvalTime, replicas: -1, holding: rt.ExpHolding, err: rt.ExpError}
		if rt.ExpReplicas != nil {
			e.replicas = *rt.ExpReplicas
		}
		if rt.ExpActive != nil {
			e.active = map[bool]string{true: "true", false: "false"}[*rt.ExpActive]
		}
		if rt.RuleSet != "queue" {
			t.Errorf("rule set %q", rt.RuleSet)
		}
		got = append(got, e)
	}
	want := []exp{
		{15 * time.Second, 0, "true", false, ""},
		{time.Minute, 5, "true", false, ""},
		{150 * time.Second, 5, "", true, ""},
		{210 * time.Second, -1, "", false, "no_data"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("rule_set_tests %+v, want %+v", got, want)
	}
	if len(tc.ExprTests) != 1 || tc.ExprTests[0].EvalTime != 90*time.Second || tc.ExprTests[0].ExpSamples[0].Value != 20 ||
		tc.ExprTests[0].ExpSamples[0].Labels["model"] != "llama" {
		t.Errorf("promql_expr_test %+v", tc.ExprTests)
	}
}

// A glob in rule_files passes over test files, as a directory listing of
// the scaler does; a rule file named explicitly is always parsed.
func TestRuleFilesGlob(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rulesData, err := os.ReadFile("testdata/queue.yaml")
	if err != nil {
		t.Fatal(err)
	}
	write("queue.yaml", string(rulesData))
	test := "tests:\n  - name: t\n    scaled_object: {metadata: {model: m}}\n    rule_set_tests: [{eval_time: 0s, rule_set: queue, exp_error: no_data}]\n"
	write("a-test.yaml", "rule_files: ['*.yaml']\n"+test)
	write("b-test.yaml", "rule_files: ['*.yaml', a-test.yaml]\n"+test)
	cases := map[string]struct {
		file    string
		wantErr string
	}{
		"glob skips the test files": {file: "a-test.yaml"},
		"a test file named is parsed as rules": {file: "b-test.yaml",
			wantErr: "a-test.yaml:1:1: rule_files: unknown field: the top level holds only ruleSets"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f, err := Load(filepath.Join(dir, tc.file))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{filepath.Join(dir, "queue.yaml")}; !slices.Equal(f.RuleFiles, want) {
				t.Errorf("rule files %v, want %v", f.RuleFiles, want)
			}
			if fails := f.Run(t.Context(), nil)[0].Failures; len(fails) > 0 {
				t.Error(fails[0])
			}
		})
	}
}
