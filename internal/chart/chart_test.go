package chart

import (
	"bytes"
	"encoding/xml"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata from the current output")

// element is one SVG element as encoding/xml reads it.
type element struct {
	name  xml.Name
	attrs map[string]string
	text  string
}

// render writes c and checks that the output is one well-formed XML
// document with an svg root in the SVG namespace, returning its bytes
// and elements in document order.
func render(t testing.TB, c *Chart) ([]byte, []element) {
	t.Helper()
	var b bytes.Buffer
	if err := c.WriteSVG(&b); err != nil {
		t.Fatalf("WriteSVG: %v", err)
	}
	return b.Bytes(), parse(t, b.Bytes())
}

func parse(t testing.TB, out []byte) []element {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(out))
	var (
		els   []element
		open  []int // indices into els of the open elements
		roots int
	)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("output is not well-formed XML: %v\n%s", err, out)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if len(open) == 0 {
				roots++
				if tok.Name != (xml.Name{Space: "http://www.w3.org/2000/svg", Local: "svg"}) {
					t.Fatalf("root element is %v, want svg in the SVG namespace", tok.Name)
				}
			}
			e := element{name: tok.Name, attrs: map[string]string{}}
			for _, a := range tok.Attr {
				key := a.Name.Local
				if a.Name.Space != "" {
					key = a.Name.Space + ":" + key
				}
				e.attrs[key] = a.Value
			}
			open = append(open, len(els))
			els = append(els, e)
		case xml.EndElement:
			open = open[:len(open)-1]
		case xml.CharData:
			if len(open) > 0 {
				els[open[len(open)-1]].text += string(tok)
			}
		}
	}
	if roots != 1 || len(open) != 0 {
		t.Fatalf("output has %d root elements and %d unclosed ones, want one closed root", roots, len(open))
	}
	return els
}

// texts returns the text of every text element.
func texts(els []element) []string {
	var ts []string
	for _, e := range els {
		if e.name.Local == "text" {
			ts = append(ts, e.text)
		}
	}
	return ts
}

// strokes returns the path data of the paths stroked in colour, which
// identifies a series: the first seven series each have their own.
func strokes(els []element, colour string) []string {
	var ds []string
	for _, e := range els {
		if e.name.Local == "path" && strings.Contains(e.attrs["style"], "stroke:"+colour) {
			ds = append(ds, e.attrs["d"])
		}
	}
	return ds
}

// The colours of the first series, as vgsvg writes them.
const (
	firstColour  = "#0072B2"
	secondColour = "#E69F00"
)

func pts(vs ...float64) []Point {
	p := make([]Point, len(vs))
	for i, v := range vs {
		p[i] = Point{T: time.Duration(i) * time.Second, V: v}
	}
	return p
}

// demo is the chart the demo draws, with integer values so that the
// golden file does not depend on floating-point details of the input.
func demo() *Chart {
	var clients, inflight, queued, decision, ready []Point
	for i := range 91 {
		t := time.Duration(i) * time.Second
		l := 0.0
		switch {
		case i >= 10 && i < 30:
			l = float64(2 * (i - 9))
		case i >= 30 && i < 60:
			l = 40
		}
		r := float64(max(0, min(4, (i-12)/5+1)))
		if i < 12 || i >= 75 {
			r = 0
		}
		in := min(l, 10*r)
		clients = append(clients, Point{T: t, V: l})
		inflight = append(inflight, Point{T: t, V: in})
		queued = append(queued, Point{T: t, V: l - in})
		decision = append(decision, Point{T: t, V: r})
		if i >= 2 {
			ready = append(ready, Point{T: t, V: float64(max(0, min(4, (i-14)/5+1)))})
		}
	}
	return &Chart{
		Title: "Nemesis demo: scale from zero, scale out, scale to zero",
		Series: []Series{
			{Name: "clients", Unit: "requests", Points: clients},
			{Name: "in flight at the activators", Unit: "requests", Points: inflight},
			{Name: "queued at the activators", Unit: "requests", Points: queued},
			{Name: "scaler decision", Unit: "replicas", Axis: Right, Step: true, Points: decision},
			{Name: "ready replicas", Unit: "replicas", Axis: Right, Step: true, Points: ready},
		},
		Markers: []Marker{
			{T: 10 * time.Second, Label: "scale out: 4 clients"},
			{T: 60 * time.Second, Label: "load stops"},
		},
	}
}

// backtest is a backtest-like chart: a query value and the replica lines
// of two rule sets, the simulated replicas and the actual ones, one point
// per step over the given number of steps from a Monday midnight in UTC.
// Values are whole or halves, exact in binary.
func backtest(steps int, step time.Duration) *Chart {
	series := []Series{
		{Name: "sum(rate(requests[1m]))", Unit: "requests/s"},
		{Name: "rule set fast", Unit: "replicas", Axis: Right, Step: true},
		{Name: "rule set slow", Unit: "replicas", Axis: Right, Step: true},
		{Name: "simulated (fast)", Unit: "replicas", Axis: Right, Step: true},
		{Name: "actual", Unit: "replicas", Axis: Right, Step: true},
	}
	for i := range steps {
		t := time.Duration(i) * step
		hour := math.Mod(t.Hours(), 24)
		// A daily cycle with a deterministic ripple.
		load := 20 + 15*math.Round(math.Sin(hour/24*2*math.Pi)*8)/8 + float64((i*7919)%5)/2
		fast := math.Ceil(load / 10)
		slow := math.Ceil(load / 15)
		sim := fast
		if i > 0 {
			sim = math.Max(fast, series[3].Points[i-1].V-1*float64(i%12/11)) // scales in one step an hour
		}
		actual := math.Ceil(load / 12)
		if i%97 == 50 {
			actual = math.NaN() // a gap in the recorded history
		}
		for j, v := range []float64{load, fast, slow, sim, actual} {
			series[j].Points = append(series[j].Points, Point{T: t, V: v})
		}
	}
	return &Chart{
		Title:   "Backtest of rule sets fast and slow",
		Start:   time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC),
		Series:  series,
		Markers: []Marker{{T: 26 * time.Hour, Label: "deploy v2"}},
	}
}

// TestGolden compares the charts with the files in testdata, so that
// any visual change shows up in review. Run with -update to accept a
// change, and open the files in a browser to look at them.
func TestGolden(t *testing.T) {
	tests := map[string]*Chart{
		"demo.svg":     demo(),
		"backtest.svg": backtest(2*24*12, 5*time.Minute),
	}
	for file, c := range tests {
		t.Run(file, func(t *testing.T) {
			got, _ := render(t, c)
			path := filepath.Join("testdata", file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s; if the change is intended, run go test ./internal/chart -run TestGolden -update and review the diff", path)
			}
		})
	}
}
