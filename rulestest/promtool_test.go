package rulestest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/k8s-nemesis/nemesis/internal/promtest"
)

// promtool runs `promtool test rules` on a file and returns how many
// promql_expr_test expectations it reports failed, and whether it passed.
func promtool(t *testing.T, bin, file string) (failed int, ok bool, out string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, bin, "test", "rules", file).CombinedOutput()
	out = string(b)
	var exit *exec.ExitError
	switch {
	case err == nil:
		ok = true
	case ctx.Err() != nil:
		t.Fatalf("promtool timed out: %s", out)
	case !errors.As(err, &exit):
		t.Fatalf("running promtool: %v", err)
	}
	return strings.Count(out, "    expr: "), ok, out
}

// rulesTest runs a file through this package and returns how many
// expectations failed.
func rulesTest(t *testing.T, file string) (int, string) {
	t.Helper()
	f, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var texts []string
	for _, r := range f.Run(t.Context(), nil) {
		n += len(r.Failures)
		for _, fl := range r.Failures {
			texts = append(texts, fl.String())
		}
	}
	return n, strings.Join(texts, "\n")
}

var valueField = regexp.MustCompile(`value: ([0-9.]+)\}`)

// `nemesis rules test` and Debian's `promtool test rules` (2.42) agree on a
// file of promql_expr_test worked by hand (rate, increase, avg_over_time,
// histogram_quantile, absent, or vector(0), offset, staleness, time()):
// both pass it, and both fail each expectation made wrong.
func TestAgreesWithPromtool(t *testing.T) {
	bin := promtest.Promtool(t)
	const file = "testdata/promtool-test.yaml"
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	total := strings.Count(string(data), "- expr: ")

	if n, out := rulesTest(t, file); n != 0 {
		t.Errorf("nemesis rules test: %d of %d expectations failed:\n%s", n, total, out)
	}
	if n, ok, out := promtool(t, bin, file); !ok || n != 0 {
		t.Errorf("promtool: %d of %d expectations failed:\n%s", n, total, out)
	}

	cases := map[string]struct {
		mutate     func(string) string
		wantFailed int
	}{
		// Every value off by one: each expectation with a sample fails.
		"every value wrong": {
			mutate: func(s string) string {
				return valueField.ReplaceAllStringFunc(s, func(m string) string {
					v, _ := strconv.ParseFloat(valueField.FindStringSubmatch(m)[1], 64)
					return "value: " + strconv.FormatFloat(v+1, 'g', -1, 64) + "}"
				})
			},
			// All but the two that expect no sample.
			wantFailed: total - 2,
		},
		// A stale series expected still there.
		"a stale series expected present": {
			mutate: func(s string) string {
				return strings.Replace(s, `exp_samples: [{labels: 'up_gauge{g="t"}', value: 7}]`,
					`exp_samples: [{labels: 'up_gauge{g="t"}', value: 7}, {labels: 'up_gauge{g="s"}', value: 5}]`, 1)
			},
			wantFailed: 1,
		},
		// A series past the lookback expected still there.
		"a series past the lookback expected present": {
			mutate: func(s string) string {
				i := strings.LastIndex(s, "exp_samples: []")
				return s[:i] + `exp_samples: [{labels: 'up_gauge{g="t"}', value: 7}]` + s[i+len("exp_samples: []"):]
			},
			wantFailed: 1,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			mutated := tc.mutate(string(data))
			if mutated == string(data) {
				t.Fatal("the mutation changed nothing")
			}
			path := filepath.Join(t.TempDir(), "wrong-test.yaml")
			if err := os.WriteFile(path, []byte(mutated), 0o644); err != nil {
				t.Fatal(err)
			}
			n, out := rulesTest(t, path)
			if n != tc.wantFailed {
				t.Errorf("nemesis rules test: %d expectations failed, want %d:\n%s", n, tc.wantFailed, out)
			}
			pn, ok, pout := promtool(t, bin, path)
			if ok || pn != tc.wantFailed {
				t.Errorf("promtool: passed %t, %d expectations failed, want %d:\n%s", ok, pn, tc.wantFailed, pout)
			}
		})
	}
}
