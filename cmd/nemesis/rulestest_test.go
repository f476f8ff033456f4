package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRulesTest(t *testing.T) {
	const (
		pass  = "../../rulestest/testdata/queue-test.yaml"
		fails = "../../rulestest/testdata/fails-test.yaml"
		bad   = "../../rulestest/testdata/expectations.bad.yaml"
	)
	failure := `../../rulestest/testdata/fails-test.yaml:12: test "fails": eval_time 1m, rule set queue:
    expected: replicas 3, active true, holding false
    got:      replicas 2, active true, holding false (expression 2)
    query depth = sum(queue_depth{namespace="ml", model="llama"}): {} 8
`
	cases := map[string]struct {
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string // a prefix
	}{
		"all pass": {
			args:       []string{pass},
			wantStdout: "ok   " + pass + ": 1 test passed\n",
		},
		"a test fails": {
			args:       []string{pass, fails},
			wantCode:   1,
			wantStdout: "ok   " + pass + ": 1 test passed\n" + failure + "FAIL " + fails + ": 1 of 2 tests failed\n",
		},
		"--run selects tests": {
			args:       []string{"--run", "^pass", fails},
			wantStdout: "ok   " + fails + ": 1 test passed\n",
		},
		"--run after the files": {
			args:       []string{fails, "--run", "fail"},
			wantCode:   1,
			wantStdout: failure + "FAIL " + fails + ": 1 of 1 test failed\n",
		},
		"an invalid file is 2, and the others still run": {
			args:       []string{fails, bad},
			wantCode:   2,
			wantStdout: failure + "FAIL " + fails + ": 1 of 2 tests failed\nFAIL " + bad + ": invalid, no test ran\n",
			wantStderr: bad + `:9:35: test "expectations": rule_set_tests[0].rule_set: no rule set named "queues" in the rule files: there are queue` + "\n",
		},
		"an invalid rule file is 2": {
			args:       []string{"../../rulestest/testdata/rulefiles.bad.yaml"},
			wantCode:   2,
			wantStderr: "../../rulestest/testdata/broken.rules.yaml:3:38: rule set \"broken\": queries.depth: invalid PromQL: unclosed left parenthesis\n",
		},
		"a missing file is 2": {
			args:       []string{"nope-test.yaml"},
			wantCode:   2,
			wantStderr: "reading rules test file: open nope-test.yaml: no such file or directory\n",
		},
		"no test matches": {
			args:       []string{"--run", "nothing", pass},
			wantStdout: "ok   " + pass + ": 0 tests passed\n",
			wantStderr: "nemesis rules test: warning: no test matches --run \"nothing\"\n",
		},
		"a bad --run is 2": {args: []string{"--run", "(", pass}, wantCode: 2},
		"no file is 2":     {args: nil, wantCode: 2},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), append([]string{"rules", "test"}, tc.args...), &stdout, &stderr)
			if got := exitCode(err); got != tc.wantCode {
				t.Fatalf("exit code %d, want %d (err %v)\nstdout:\n%s\nstderr:\n%s", got, tc.wantCode, err, stdout.String(), stderr.String())
			}
			if tc.wantStdout != "" && stdout.String() != tc.wantStdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), tc.wantStdout)
			}
			if !strings.HasPrefix(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr:\n%s\nwant it to start with:\n%s", stderr.String(), tc.wantStderr)
			}
		})
	}
}
