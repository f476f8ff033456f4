package backtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/k8s-nemesis/nemesis/memprom"
)

func TestLoadSeriesFile(t *testing.T) {
	data := `
rule_files: [queue.yaml]
evaluation_interval: 30s
tests:
  - name: first
    input_series:
      - series: 'queue_depth{model="llama"}'
        values: '0 4 _ 8'
      - series: 'other'
        values: '1x2'
  - name: second
    interval: 1s
    input_series:
      - series: 'queue_depth{model="llama"}'
        values: '100x10'
`
	sf, err := LoadSeriesFile("t.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if sf.Test != "first" || !sf.First.Equal(memprom.Epoch()) || !sf.Last.Equal(memprom.Epoch().Add(90*time.Second)) {
		t.Errorf("test %q, first %v, last %v; want first, the epoch and 90s after it (evaluation_interval 30s)", sf.Test, sf.First, sf.Last)
	}
	e := memprom.NewEngine(sf.Storage, memprom.Options{})
	got, err := e.QueryRange(context.Background(), `queue_depth`, memprom.Epoch(), memprom.Epoch().Add(90*time.Second), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var vals []float64
	for _, p := range got[0].Points {
		vals = append(vals, p.V)
	}
	if len(got) != 1 || len(vals) != 4 || vals[0] != 0 || vals[1] != 4 || vals[2] != 4 || vals[3] != 8 {
		t.Errorf("queue_depth = %v; want the first test's 0 4 4 8", vals)
	}
}

func TestLoadSeriesFileErrors(t *testing.T) {
	tests := map[string]struct{ data, want string }{
		"not yaml":     {"tests: [", "t.yaml: yaml: line 1: did not find expected node content"},
		"no tests":     {"evaluation_interval: 1m\n", "t.yaml: no tests: the series come from the input_series of the first test"},
		"no series":    {"tests:\n  - name: a\n", `t.yaml: the first test ("a") has no input_series`},
		"bad interval": {"tests:\n  - interval: soon\n    input_series: [{series: a, values: '1'}]\n", `t.yaml:2:15: tests[0].interval: "soon" is not a positive duration such as 15s`},
		"bad evaluation interval": {"evaluation_interval: [1]\ntests: []\n",
			"t.yaml:1:22: evaluation_interval: want a duration such as 15s"},
		"bad values": {"tests:\n  - input_series:\n      - series: 'a{b=\"c\"}'\n        values: '1 2 x'\n",
			"t.yaml:4:22: tests[0].input_series[0].values: unexpected \"x\""},
		"bad series": {"tests:\n  - input_series:\n      - series: a{b=\n        values: '1'\n",
			"t.yaml:3:21: tests[0].input_series[0].series: unexpected end of input"},
		"series not a string": {"tests:\n  - input_series:\n      - series: [a]\n        values: '1'\n",
			"t.yaml: tests[0].input_series[0].series: want a string"},
		"only gaps": {"tests:\n  - input_series:\n      - {series: a, values: '_ _'}\n",
			`t.yaml: the input_series of the first test ("") hold no sample`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := LoadSeriesFile("t.yaml", []byte(tc.data))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
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

func FuzzLoadSeriesFile(f *testing.F) {
	f.Add("evaluation_interval: 1m\ntests:\n  - interval: 15s\n    input_series:\n      - {series: 'a{b=\"c\"}', values: '0+1x5 _ stale'}\n")
	f.Add("tests:\n  - input_series:\n      - series: |\n          a\n        values: 1x3\n")
	f.Add("tests: [{input_series: [{series: a, values: '1e3 -Inf NaN'}]}]")
	f.Fuzz(func(t *testing.T, data string) {
		sf, err := LoadSeriesFile("f.yaml", []byte(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Errorf("error %q does not name the file", err)
			}
			return
		}
		if sf.Last.Before(sf.First) {
			t.Errorf("last sample %v before the first %v", sf.Last, sf.First)
		}
	})
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
