package backtest

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/k8s-nemesis/nemesis/memprom"
)

// SeriesFile is the input of a backtest from a rules-test file rather than
// from Prometheus: the input_series of its first test, loaded as `promtool
// test rules` loads them (the first value at the Unix epoch, one value per
// interval).
type SeriesFile struct {
	Storage *memprom.Storage
	// Test is the name of the test whose series were loaded.
	Test string
	// First and Last are the times of the earliest and latest sample.
	First, Last time.Time
}

// seriesFileYAML is the part of a rules-test file a backtest reads.
type seriesFileYAML struct {
	EvaluationInterval yaml.Node `yaml:"evaluation_interval"`
	Tests              []struct {
		Name        string    `yaml:"name"`
		Interval    yaml.Node `yaml:"interval"`
		InputSeries []struct {
			Series yaml.Node `yaml:"series"`
			Values yaml.Node `yaml:"values"`
		} `yaml:"input_series"`
	} `yaml:"tests"`
}

// defaultEvaluationInterval is promtool's evaluation_interval when the
// file gives none.
const defaultEvaluationInterval = time.Minute

// LoadSeriesFile reads the input_series of the first test of a rules-test
// file (file names it in errors, which give its line and column). Only
// tests[0].input_series, its interval and the file's evaluation_interval
// are read; every other field is left to `nemesis rules test`.
func LoadSeriesFile(file string, data []byte) (*SeriesFile, error) {
	var doc seriesFileYAML
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	at := func(n *yaml.Node) string { return fmt.Sprintf("%s:%d:%d", file, n.Line, n.Column) }
	duration := func(n *yaml.Node, field string, def time.Duration) (time.Duration, error) {
		if n.Kind == 0 {
			return def, nil
		}
		if n.Kind != yaml.ScalarNode {
			return 0, fmt.Errorf("%s: %s: want a duration such as 15s", at(n), field)
		}
		d, err := model.ParseDuration(n.Value)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("%s: %s: %q is not a positive duration such as 15s", at(n), field, n.Value)
		}
		return time.Duration(d), nil
	}
	eval, err := duration(&doc.EvaluationInterval, "evaluation_interval", defaultEvaluationInterval)
	if err != nil {
		return nil, err
	}
	if len(doc.Tests) == 0 {
		return nil, fmt.Errorf("%s: no tests: the series come from the input_series of the first test", file)
	}
	test := doc.Tests[0]
	interval, err := duration(&test.Interval, "tests[0].interval", eval)
	if err != nil {
		return nil, err
	}
	if len(test.InputSeries) == 0 {
		return nil, fmt.Errorf("%s: the first test (%q) has no input_series", file, test.Name)
	}
	out := &SeriesFile{Storage: memprom.New(), Test: test.Name}
	var first, last int64
	seen := false
	for i, in := range test.InputSeries {
		field := fmt.Sprintf("tests[0].input_series[%d]", i)
		for _, n := range []struct {
			node *yaml.Node
			name string
		}{{&in.Series, "series"}, {&in.Values, "values"}} {
			if n.node.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("%s: %s.%s: want a string", file, field, n.name)
			}
		}
		lset, samples, err := memprom.ParseSeries(in.Series.Value, in.Values.Value, memprom.Epoch(), interval)
		if err != nil {
			return nil, notationAt(file, field, &in.Series, &in.Values, err)
		}
		if err := out.Storage.Add(lset, samples); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", at(&in.Series), field, err)
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
	}
	if !seen {
		return nil, fmt.Errorf("%s: the input_series of the first test (%q) hold no sample", file, test.Name)
	}
	out.First, out.Last = time.UnixMilli(first).UTC(), time.UnixMilli(last).UTC()
	return out, nil
}

// notationAt places a notation error at its file, line and column. A
// plain scalar's column plus the offset points at the character; a quoted
// one is off by its opening quote, which is added.
func notationAt(file, field string, series, values *yaml.Node, err error) error {
	var ne *memprom.NotationError
	if !errors.As(err, &ne) {
		return fmt.Errorf("%s:%d:%d: %s: %w", file, series.Line, series.Column, field, err)
	}
	n := series
	if ne.Field == "values" {
		n = values
	}
	col := n.Column
	if ne.Offset >= 0 && n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 && !strings.Contains(n.Value, "\n") {
		col += ne.Offset
		if n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
			col++
		}
	}
	return fmt.Errorf("%s:%d:%d: %s.%s: %w", file, n.Line, col, field, ne.Field, ne.Err)
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
