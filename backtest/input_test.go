package backtest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/k8s-nemesis/nemesis/memprom"
)

// writeTestFile writes a rules-test file beside a rule file it names.
func writeTestFile(t *testing.T, data string) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	rules := "ruleSets:\n  - name: queue\n    queries: {depth: 'sum(queue_depth)'}\n    replicas: depth / 4\n    max: 8\n"
	if err := os.WriteFile(filepath.Join(dir, "queue.yaml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "queue-test.yaml")
	return path, []byte(data)
}

func TestLoadSeriesFile(t *testing.T) {
	path, data := writeTestFile(t, `
rule_files: [queue.yaml]
evaluation_interval: 30s
tests:
  - name: first
    input_series:
      - series: 'queue_depth{model="llama"}'
        values: '0 4 _ 8'
      - series: 'other'
        values: '1x2'
    builtins: {queued: '0 3 0', current: '1x5'}
    rule_set_tests:
      - {eval_time: 30s, rule_set: queue, exp_replicas: 1}
  - name: second
    interval: 1s
    input_series:
      - series: 'queue_depth{model="llama"}'
        values: '100x10'
`)
	sf, err := LoadSeriesFile(path, data)
	if err != nil {
		t.Fatal(err)
	}
	if sf.Test != "first" || !sf.First.Equal(memprom.Epoch()) || !sf.Last.Equal(memprom.Epoch().Add(90*time.Second)) {
		t.Errorf("test %q, first %v, last %v; want first, the epoch and 90s after it (evaluation_interval 30s)", sf.Test, sf.First, sf.Last)
	}
	if len(sf.Builtins) != 1 || sf.Builtins["queued"] == "" {
		t.Errorf("builtins %v: want queued only (current comes from the simulation)", sf.Builtins)
	}
	e := memprom.NewEngine(sf.Storage, memprom.Options{})
	for query, want := range map[string][]float64{`queue_depth`: {0, 4, 4, 8}, sf.Builtins["queued"]: {0, 3, 0, 0}} {
		got, err := e.QueryRange(context.Background(), query, memprom.Epoch(), memprom.Epoch().Add(90*time.Second), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var vals []float64
		for _, p := range got[0].Points {
			vals = append(vals, p.V)
		}
		if len(got) != 1 || !slices.Equal(vals, want) {
			t.Errorf("%s = %v; want the first test's %v", query, vals, want)
		}
	}
}

func TestLoadSeriesFileErrors(t *testing.T) {
	tests := map[string]struct{ data, want string }{
		"not yaml":  {"tests: [", "queue-test.yaml:1:1: invalid YAML"},
		"no series": {"rule_files: [queue.yaml]\ntests:\n  - name: a\n    rule_set_tests: [{eval_time: 0s, rule_set: queue, exp_error: no_data}]\n", `queue-test.yaml:3:5: the first test ("a") has no input_series with a sample`},
		"bad values": {"rule_files: [queue.yaml]\ntests:\n  - input_series:\n      - series: 'a{b=\"c\"}'\n        values: '1 2 x'\n",
			"queue-test.yaml:5:22: "},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path, data := writeTestFile(t, tc.data)
			_, err := LoadSeriesFile(path, data)
			if err == nil || !strings.HasPrefix(err.Error(), path[:len(path)-len("queue-test.yaml")]+tc.want) {
				t.Errorf("err = %v, want it to start with %q", err, tc.want)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		in   string
		want time.Time
		err  bool
	}{
		"now":              {in: "now", want: now},
		"relative hours":   {in: "-6h", want: now.Add(-6 * time.Hour)},
		"relative days":    {in: "-7d", want: now.Add(-7 * 24 * time.Hour)},
		"compound":         {in: "-1h30m", want: now.Add(-90 * time.Minute)},
		"ahead":            {in: "+15m", want: now.Add(15 * time.Minute)},
		"rfc 3339":         {in: "2026-12-01T08:00:00Z", want: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)},
		"rfc 3339 offset":  {in: "2026-12-01T09:00:00+01:00", want: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)},
		"bare duration":    {in: "6h", err: true},
		"garbage":          {in: "yesterday", err: true},
		"relative garbage": {in: "-6 hours", err: true},
		"empty":            {in: "", err: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseTime(tc.in, now)
			if tc.err {
				if err == nil {
					t.Errorf("ParseTime(%q) = %v, want an error", tc.in, got)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Errorf("ParseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"now", "-6h", "+1d", "2026-12-01T08:00:00Z", "-1h30m", "-"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTime(s, now)
		if err != nil {
			return
		}
		if strings.HasPrefix(strings.TrimSpace(s), "-") && got.After(now) {
			t.Errorf("ParseTime(%q) = %v, after now", s, got)
		}
	})
}
