package backtest

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/k8s-nemesis/nemesis/memprom"
	"github.com/k8s-nemesis/nemesis/rulestest"
)

// SeriesFile is the input of a backtest from a rules-test file rather than
// from Prometheus: the input_series of its first test, loaded as `promtool
// test rules` loads them (the first value at the Unix epoch, one value per
// interval), and the history of the built-ins inflight and queued that the
// test gives.
type SeriesFile struct {
	Storage *memprom.Storage
	// Test is the name of the test whose series were loaded.
	Test string
	// Builtins are the queries of the built-ins (inflight, queued) that
	// the test gives values for, by name: series of Storage.
	Builtins map[string]string
	// First and Last are the times of the earliest and latest sample.
	First, Last time.Time
}

// builtinSeries names the series a test's built-in values are loaded as.
func builtinSeries(name string) string { return "nemesis_backtest_builtin_" + name }

// LoadSeriesFile loads the input_series of the first test of a rules-test
// file, read and checked whole by package rulestest (rule files included),
// so that a file `nemesis rules test` accepts is the input here as well.
// path names the file in errors and locates its rule_files. A test's
// values for current and ready are not read: in a backtest they come from
// the simulation.
func LoadSeriesFile(path string, data []byte) (*SeriesFile, error) {
	f, err := rulestest.Parse(path, data)
	if err != nil {
		return nil, err
	}
	if len(f.Tests) == 0 {
		return nil, fmt.Errorf("%s: no tests: the series come from the input_series of the first test", path)
	}
	test := f.Tests[0]
	out := &SeriesFile{Storage: memprom.New(), Test: test.Name, Builtins: map[string]string{}}
	var first, last int64
	seen := false
	add := func(series, values string) error {
		lset, samples, err := memprom.ParseSeries(series, values, memprom.Epoch(), test.Interval)
		if err == nil {
			err = out.Storage.Add(lset, samples)
		}
		if err != nil {
			return fmt.Errorf("%s:%d:%d: test %q: %w", path, test.Line, test.Column, test.Name, err)
		}
		for _, s := range samples {
			if !seen || s.T < first {
				first = s.T
			}
			if !seen || s.T > last {
				last = s.T
			}
			seen = true
		}
		return nil
	}
	for _, in := range test.InputSeries {
		if err := add(in.Series, in.Values); err != nil {
			return nil, err
		}
	}
	for _, name := range []string{inflightName, queuedName} {
		if values, ok := test.Builtins[name]; ok {
			if err := add(builtinSeries(name), values); err != nil {
				return nil, err
			}
			out.Builtins[name] = builtinSeries(name)
		}
	}
	if !seen {
		return nil, fmt.Errorf("%s:%d:%d: the first test (%q) has no input_series with a sample", path, test.Line, test.Column, test.Name)
	}
	out.First, out.Last = time.UnixMilli(first).UTC(), time.UnixMilli(last).UTC()
	return out, nil
}

// ParseTime reads a --start or --end: RFC 3339, "now", or a duration
// relative to now such as -6h or -90m (Prometheus' units: ms, s, m, h, d,
// w, y).
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "now":
		return now, nil
	case strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+"):
		d, err := model.ParseDuration(s[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not RFC 3339, now, or a duration relative to now such as -6h", s)
		}
		if s[0] == '-' {
			return now.Add(-time.Duration(d)), nil
		}
		return now.Add(time.Duration(d)), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not RFC 3339, now, or a duration relative to now such as -6h", s)
	}
	return t, nil
}
