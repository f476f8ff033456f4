package backtest

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func TestChart(t *testing.T) {
	r := handResult()
	c := r.Chart()
	var names []string
	for _, s := range c.Series {
		names = append(names, s.Name+"/"+s.Axis.String())
	}
	// x is NaN at the first step but a number at the others; inflight and
	// queued are not zero throughout.
	want := "queue.depth/left,other.x/left,inflight/left,queued/left,queue (simulated)/right,other (simulated)/right,actual/right"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("series %s, want %s", got, want)
	}
	actual := c.Series[len(c.Series)-1]
	if !math.IsNaN(actual.Points[2].V) || actual.Points[1].V != 2 || actual.Points[1].T != 15*time.Second {
		t.Errorf("actual points %v: want 2 at 15s and a gap at 30s", actual.Points)
	}
	var b bytes.Buffer
	if err := r.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b.Bytes(), []byte("<svg")) || !bytes.Contains(b.Bytes(), []byte("other (simulated)")) {
		t.Errorf("SVG lacks the chart: %.300s", b.String())
	}
}

// BenchmarkWriteSVGWeek draws a week at 15 s.
func BenchmarkWriteSVGWeek(b *testing.B) {
	r := &Result{RuleSets: []string{"a", "b"}, Queries: []Query{{Text: "q", Uses: []string{"a.q", "b.q"}}}, Actual: "x",
		Start: time.Unix(0, 0), Step: 15 * time.Second, End: time.Unix(0, 0).Add(7 * 24 * time.Hour)}
	for i := range 40320 {
		v := 50 + 40*math.Sin(float64(i)/500)
		r.Steps = append(r.Steps, Step{Time: r.Start.Add(time.Duration(i) * r.Step), Values: []Value{{v, true}},
			RuleSets: []RuleSetStep{{Replicas: int32(v / 10)}, {Replicas: int32(v / 7)}}, Actual: Value{math.Ceil(v / 8), true}})
	}
	for b.Loop() {
		var buf bytes.Buffer
		if err := r.WriteSVG(&buf); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(buf.Len()), "bytes/svg")
	}
}
