package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/k8s-nemesis/nemesis/internal/chart"
)

// TestChartOf checks that the demo's rows become the chart's series: a
// row without the activators' or the scaler's metrics adds no point to
// those series, so each line shows only what was measured, and the chart
// renders.
func TestChartOf(t *testing.T) {
	rows := []sample{
		{t: 0, clients: 0, ready: 0},
		{t: time.Second, clients: 40, inflight: 3, queued: 37, haveProxied: true, ready: 0},
		{t: 2 * time.Second, clients: 40, inflight: 8, queued: 32, haveProxied: true, decision: 2, haveDecision: true, ready: 1},
	}
	markers := []chart.Marker{{T: time.Second, Label: "scale from zero"}}
	c := chartOf(rows, markers)
	want := map[string]int{"clients": 3, "in flight at the activators": 2, "queued at the activators": 2, "scaler decision": 1, "ready replicas": 3}
	if len(c.Series) != len(want) {
		t.Fatalf("got %d series, want %d", len(c.Series), len(want))
	}
	for _, s := range c.Series {
		if n, ok := want[s.Name]; !ok || len(s.Points) != n {
			t.Errorf("series %q has %d points, want %d", s.Name, len(s.Points), n)
		}
		if replicas := s.Unit == "replicas"; replicas != (s.Axis == chart.Right) || replicas != s.Step {
			t.Errorf("series %q: unit %q on axis %v, step %v", s.Name, s.Unit, s.Axis, s.Step)
		}
	}
	if c.Series[3].Points[0] != (chart.Point{T: 2 * time.Second, V: 2}) {
		t.Errorf("scaler decision points %v", c.Series[3].Points)
	}
	if len(c.Markers) != 1 || !c.Start.IsZero() {
		t.Errorf("markers %v, start %v: want the demo's marker and seconds since start", c.Markers, c.Start)
	}
	var b bytes.Buffer
	if err := c.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b.Bytes(), []byte("scale from zero")) {
		t.Error("the marker's label is not in the SVG")
	}
}
