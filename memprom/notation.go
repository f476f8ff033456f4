package memprom

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/parser/posrange"
)

// MaxSeriesSamples bounds how many values one values string may expand to.
// Prometheus' parser expands `1x1000000000` into a slice before returning,
// so an unchecked repeat count is a way to exhaust memory; a million is
// about 29 days at a 2.5 s interval, far beyond a test file.
const MaxSeriesSamples = 1_000_000

// NotationError is a series, values or labels string that does not parse.
// It says which string and, where the parser gives one, the byte offset
// within it, so that a caller can point at file:line:column.
type NotationError struct {
	Field  string // "series", "values" or "labels"
	Offset int    // byte offset of the problem within the field's string (its length: at the end); -1 when unknown
	Err    error
}

func (e *NotationError) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("%s: %v", e.Field, e.Err)
	}
	return fmt.Sprintf("%s: column %d: %v", e.Field, e.Offset+1, e.Err)
}

func (e *NotationError) Unwrap() error { return e.Err }

// AddSeries adds one input series in promtool's notation: series is a
// metric such as `queue_depth{namespace="ml"}` and values a sequence such
// as `0+10x5 4x3 _ stale`. The i-th value is at start + i×interval; `_`
// is no sample and `stale` a staleness marker, as `promtool test rules`
// loads them (its series start at the Unix epoch: see [Epoch]). Both
// strings go through Prometheus' own parser (ParseSeriesDesc) exactly as
// promtool joins them, with one space between.
//
// Native histogram values (`{{…}}`) are refused: the rules that read these
// series need floats.
func (s *Storage) AddSeries(series, values string, start time.Time, interval time.Duration) error {
	lset, samples, err := ParseSeries(series, values, start, interval)
	if err != nil {
		return err
	}
	return s.Add(lset, samples)
}

// ParseSeries parses one input series as [Storage.AddSeries] does and
// returns its labels and samples without storing them.
func ParseSeries(series, values string, start time.Time, interval time.Duration) (lset labels.Labels, samples []Sample, err error) {
	if interval <= 0 {
		return lset, nil, fmt.Errorf("interval %s: must be positive", interval)
	}
	if off, err := checkRepeats(values); err != nil {
		return lset, nil, &NotationError{Field: "values", Offset: off, Err: err}
	}
	p := parser.NewParser(parser.Options{})
	if strings.TrimSpace(series) == "" {
		return lset, nil, &NotationError{Field: "series", Offset: -1, Err: errors.New("empty")}
	}
	// The series alone first, so that an error in it (an unclosed brace)
	// is not reported where the parser notices it, in the values.
	if _, err := p.ParseMetric(series); err != nil {
		return lset, nil, notationError(err, len(series))
	}
	input := series + " " + values
	lset, seq, err := p.ParseSeriesDesc(input)
	if err != nil {
		return lset, nil, notationError(err, len(series))
	}
	if lset.IsEmpty() {
		return lset, nil, &NotationError{Field: "series", Offset: -1, Err: errors.New("no metric name and no labels")}
	}
	samples = make([]Sample, 0, len(seq))
	ts := start
	for i, v := range seq {
		if v.Histogram != nil {
			return lset, nil, &NotationError{Field: "values", Offset: -1,
				Err: fmt.Errorf("value %d is a native histogram; only float values are supported", i+1)}
		}
		if !v.Omitted {
			// As promqltest's loadCmd: the time advances in nanoseconds
			// and each sample's is truncated to milliseconds.
			samples = append(samples, Sample{T: ts.UnixNano() / int64(time.Millisecond), V: v.Value})
		}
		ts = ts.Add(interval)
	}
	return lset, samples, nil
}

// notationError turns a parser error on "series values" into a
// NotationError on the field it falls in.
func notationError(err error, seriesLen int) error {
	var perrs parser.ParseErrors
	var perr *parser.ParseErr
	var pos posrange.Pos = -1
	msg := err
	switch {
	case errors.As(err, &perrs) && len(perrs) > 0:
		pos, msg = perrs[0].PositionRange.Start, perrs[0].Err
	case errors.As(err, &perr):
		pos, msg = perr.PositionRange.Start, perr.Err
	}
	if msg == nil {
		msg = err
	}
	switch {
	case pos < 0:
		return &NotationError{Field: "series", Offset: -1, Err: msg}
	case int(pos) <= seriesLen:
		return &NotationError{Field: "series", Offset: int(pos), Err: msg}
	default:
		return &NotationError{Field: "values", Offset: int(pos) - seriesLen - 1, Err: msg}
	}
}

// checkRepeats sums the repeat counts (the N of `xN`) of a values string
// and refuses one that would expand past MaxSeriesSamples, before the
// parser allocates them. It over-counts rather than under-counts: any `x`
// followed by digits counts, even where the parser would reject it.
func checkRepeats(values string) (offset int, err error) {
	total := 0.0
	for i := 0; i < len(values); i++ {
		if values[i] != 'x' {
			if values[i] == ' ' || values[i] == '\t' || values[i] == '\n' || values[i] == '\r' {
				total++ // a separator: at most one more value
			}
			continue
		}
		j := i + 1
		for j < len(values) && values[j] >= '0' && values[j] <= '9' {
			j++
		}
		if j == i+1 {
			continue
		}
		n, err := strconv.ParseFloat(values[i+1:j], 64)
		if err != nil {
			n = math.Inf(1)
		}
		total += n + 1
		if total > MaxSeriesSamples {
			return i, fmt.Errorf("values expand to more than %d samples", MaxSeriesSamples)
		}
		i = j - 1
	}
	return 0, nil
}
