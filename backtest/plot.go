package backtest

import (
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/k8s-nemesis/nemesis/internal/chart"
)

// Chart draws the replay: the load (each query that gives one number, and
// inflight and queued where they are not zero throughout) in the upper
// panel, and the simulated replicas of every rule set and --actual in the
// lower one. A step without a value is a gap in its line.
func (r *Result) Chart() *chart.Chart {
	c := &chart.Chart{
		Title: fmt.Sprintf("Backtest of %s", strings.Join(r.RuleSets, ", ")),
		Start: r.Start,
	}
	line := func(name, unit string, axis chart.Axis, step bool, value func(Step) (float64, bool)) chart.Series {
		s := chart.Series{Name: name, Unit: unit, Axis: axis, Step: step, Points: make([]chart.Point, len(r.Steps))}
		for i, st := range r.Steps {
			v, ok := value(st)
			if !ok {
				v = math.NaN()
			}
			s.Points[i] = chart.Point{T: st.Time.Sub(r.Start), V: v}
		}
		return s
	}
	for q, query := range r.Queries {
		hasValue := false
		for _, st := range r.Steps {
			hasValue = hasValue || st.Values[q].OK
		}
		if !hasValue {
			continue // read only through series.NAME, several series
		}
		c.Series = append(c.Series, line(strings.Join(query.Uses, ", "), "value", chart.Left, false, func(st Step) (float64, bool) {
			return st.Values[q].V, st.Values[q].OK
		}))
	}
	for _, b := range []struct {
		name  string
		value func(Step) float64
	}{{inflightName, func(st Step) float64 { return st.InFlight }}, {queuedName, func(st Step) float64 { return st.Queued }}} {
		nonZero := false
		for _, st := range r.Steps {
			nonZero = nonZero || b.value(st) != 0
		}
		if nonZero {
			c.Series = append(c.Series, line(b.name, "requests", chart.Left, false, func(st Step) (float64, bool) { return b.value(st), true }))
		}
	}
	for k, name := range r.RuleSets {
		c.Series = append(c.Series, line(name+" (simulated)", "replicas", chart.Right, true, func(st Step) (float64, bool) {
			return float64(st.RuleSets[k].Replicas), true
		}))
	}
	if r.Actual != "" {
		c.Series = append(c.Series, line("actual", "replicas", chart.Right, true, func(st Step) (float64, bool) {
			return st.Actual.V, st.Actual.OK
		}))
	}
	return c
}

// WriteSVG writes Chart as a standalone SVG document.
func (r *Result) WriteSVG(w io.Writer) error {
	return r.Chart().WriteSVG(w)
}
