package chart

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
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

// subpaths parses SVG path data of M and L commands, as vgsvg writes a
// stroked line, into its runs of vertices.
func subpaths(t testing.TB, d string) [][][2]float64 {
	t.Helper()
	var runs [][][2]float64
	i := 0
	for i < len(d) {
		c := d[i]
		j := i + 1
		for j < len(d) && d[j] != 'M' && d[j] != 'L' {
			j++
		}
		var x, y float64
		if _, err := fmt.Sscanf(d[i+1:j], "%g,%g", &x, &y); err != nil {
			t.Fatalf("path data %q: %v", d, err)
		}
		switch c {
		case 'M':
			runs = append(runs, [][2]float64{{x, y}})
		case 'L':
			if len(runs) == 0 {
				t.Fatalf("path data %q starts with L", d)
			}
			runs[len(runs)-1] = append(runs[len(runs)-1], [2]float64{x, y})
		default:
			t.Fatalf("path data %q: unexpected command %q", d, c)
		}
		i = j
	}
	return runs
}

// seriesRuns renders c and returns the runs of the series drawn in
// colour, which must be drawn as exactly one path besides its legend's.
func seriesRuns(t *testing.T, c *Chart, colour string) [][][2]float64 {
	t.Helper()
	out, els := render(t, c)
	for _, bad := range []string{"NaN", "Inf"} {
		if bytes.Contains(out, []byte(bad)) {
			t.Errorf("output contains %q", bad)
		}
	}
	// The series' path, then its legend entry's.
	ds := strokes(els, colour)
	if len(ds) != 2 {
		t.Fatalf("got %d paths stroked in %s, want the series' and its legend entry's", len(ds), colour)
	}
	return subpaths(t, ds[0])
}

func TestStandalone(t *testing.T) {
	tests := map[string]struct {
		chart        *Chart
		wantW, wantH string
	}{
		"demo":        {chart: demo(), wantW: "960", wantH: "540"},
		"backtest":    {chart: backtest(600, time.Minute), wantW: "960", wantH: "540"},
		"empty":       {chart: &Chart{}, wantW: "960", wantH: "540"},
		"custom size": {chart: &Chart{Width: 500, Height: 300, Series: demo().Series}, wantW: "500", wantH: "300"},
		"many series": {chart: &Chart{Series: slices.Repeat(demo().Series, 4)}, wantW: "960", wantH: "540"},
		"markup and control characters": {
			chart: &Chart{Title: "a\x00b\x1bc\uFFFE<&>\xff", Series: []Series{{Name: "\x7f]]><x/>", Unit: "\"'", Points: pts(1)}},
				Markers: []Marker{{T: time.Second, Label: "</text>"}}},
			wantW: "960", wantH: "540",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, els := render(t, tc.chart)
			root := els[0]
			if root.attrs["width"] != tc.wantW || root.attrs["height"] != tc.wantH || root.attrs["viewBox"] != "0 0 "+tc.wantW+" "+tc.wantH {
				t.Errorf("svg width=%q height=%q viewBox=%q, want %s x %s pixels", root.attrs["width"], root.attrs["height"], root.attrs["viewBox"], tc.wantW, tc.wantH)
			}
			// Nothing a browser would fetch: the only URL is the SVG
			// namespace, which is a name, not a resource.
			for _, e := range els {
				for k, v := range e.attrs {
					if k == "xmlns" && v == "http://www.w3.org/2000/svg" {
						continue
					}
					if strings.Contains(v, "http:") || strings.Contains(v, "https:") || strings.Contains(v, "url(") {
						t.Errorf("<%s %s=%q> refers to a resource", e.name.Local, k, v)
					}
					if strings.HasSuffix(k, "href") {
						t.Errorf("<%s> has a link %s=%q", e.name.Local, k, v)
					}
				}
				if e.name.Local == "image" || e.name.Local == "script" || e.name.Local == "foreignObject" || e.name.Local == "style" {
					t.Errorf("output has a <%s> element", e.name.Local)
				}
			}
			if title := els[1]; tc.chart.Title != "" && (title.name.Local != "title" || title.text != clean(tc.chart.Title)) {
				t.Errorf("first element <%s>%s, want <title>%s", title.name.Local, title.text, clean(tc.chart.Title))
			}
			if n := bytes.Count(out, []byte("http")); n != 1 {
				t.Errorf("output has %d occurrences of http, want only the SVG namespace", n)
			}
			// Text falls back to fonts every browser has.
			if !bytes.Contains(out, []byte("font-family:'Liberation Sans',Arial,Helvetica,sans-serif;")) || bytes.Contains(out, []byte("font-family:Liberation")) {
				t.Error("text is not in Liberation Sans with sans-serif fallbacks")
			}
		})
	}
}

func TestNonFiniteLeavesGap(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := map[string]struct {
		series Series
		want   [][]int // per run, the times (s) of its vertices
	}{
		"line":            {Series{Name: "load", Points: pts(1, 2, nan, 3, 4)}, [][]int{{0, 1}, {3, 4}}},
		"line infinities": {Series{Name: "load", Points: pts(-inf, 1, 2, inf, 3, 4, 1e301)}, [][]int{{1, 2}, {4, 5}}},
		"line no gap":     {Series{Name: "load", Points: pts(1, 2, 3, 4)}, [][]int{{0, 1, 2, 3}}},
		// A step holds its value until the gap begins.
		"step": {Series{Name: "replicas", Axis: Right, Step: true, Points: pts(1, 1, nan, 2, 2)}, [][]int{{0, 2}, {3, 4}}},
		// A run of a single point is a dot, not part of the path.
		"single point between gaps": {Series{Name: "load", Points: pts(nan, 1, nan, 3, 4)}, [][]int{{3, 4}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// The scale is fixed by a second series so that x positions
			// map back to seconds: 0 to 10 s over the plot's width.
			c := &Chart{Series: []Series{tc.series, {Name: "frame", Axis: tc.series.Axis, Points: []Point{{0, 4}, {10 * time.Second, 0}}}}}
			runs := seriesRuns(t, c, firstColour)
			frame := seriesRuns(t, c, secondColour)[0]
			x0, x10 := frame[0][0], frame[len(frame)-1][0]
			var got [][]int
			for _, r := range runs {
				var ts []int
				for _, v := range r {
					ts = append(ts, int(math.Round((v[0]-x0)/(x10-x0)*10)))
				}
				got = append(got, slices.Compact(ts))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("runs at times %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	for name, c := range map[string]func() *Chart{"demo": demo, "backtest": func() *Chart { return backtest(2000, time.Minute) }} {
		t.Run(name, func(t *testing.T) {
			first, _ := render(t, c())
			for range 10 {
				if again, _ := render(t, c()); !bytes.Equal(first, again) {
					t.Fatal("two renderings of the same chart differ")
				}
			}
			// The points' order does not matter either: they are drawn
			// by time.
			shuffled := c()
			for i := range shuffled.Series {
				slices.Reverse(shuffled.Series[i].Points)
			}
			if got, _ := render(t, shuffled); !bytes.Equal(first, got) {
				t.Error("reversing the series' points changed the output")
			}
		})
	}
}

func TestEmptyChart(t *testing.T) {
	tests := map[string]struct {
		chart   *Chart
		legends int // entries in the legend, each a 24 px line
	}{
		"no series":    {chart: &Chart{}},
		"empty series": {chart: &Chart{Series: []Series{{Name: "load"}, {Name: "replicas", Axis: Right, Step: true}}}, legends: 1},
		"only NaN":     {chart: &Chart{Series: []Series{{Name: "load", Points: pts(math.NaN(), math.NaN())}}}, legends: 1},
		"only markers": {chart: &Chart{Markers: []Marker{{T: 30 * time.Second, Label: "load stops"}}}},
		"wall clock":   {chart: &Chart{Start: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, els := render(t, tc.chart)
			if bytes.Contains(out, []byte("NaN")) || bytes.Contains(out, []byte("Inf")) {
				t.Errorf("output contains NaN or Inf:\n%s", out)
			}
			// The series are listed but draw nothing.
			got := strokes(els, firstColour)
			if len(got) != tc.legends {
				t.Fatalf("got paths %q in the first series' colour, want %d legend entries", got, tc.legends)
			}
			for _, d := range got {
				if r := subpaths(t, d); len(r) != 1 || len(r[0]) != 2 || r[0][0][1] != r[0][1][1] || r[0][1][0]-r[0][0][0] != 24 {
					t.Errorf("path %q is not a legend entry", d)
				}
			}
			ts := texts(els)
			if !slices.Contains(ts, "0") {
				t.Errorf("texts %q have no 0 tick", ts)
			}
			if len(ts) < 4 {
				t.Errorf("texts %q: want at least the ticks of two axes", ts)
			}
		})
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestErrors(t *testing.T) {
	tests := map[string]struct {
		chart *Chart
		w     io.Writer
		want  []string
	}{
		"unknown axes": {
			chart: &Chart{Series: []Series{{Name: "a", Axis: 2}, {Name: "b"}, {Name: "c", Axis: -1}}},
			want:  []string{`series 0 "a": unknown axis 2`, `series 2 "c": unknown axis -1`},
		},
		"negative size": {chart: &Chart{Width: -1}, want: []string{"size -1x0 is negative"}},
		"huge size":     {chart: &Chart{Width: 1 << 20}, want: []string{"is larger than"}},
		"too small":     {chart: &Chart{Width: 80, Height: 60, Series: demo().Series}, want: []string{"size 80x60 leaves no room"}},
		"writer fails":  {chart: demo(), w: failingWriter{}, want: []string{"writing svg: disk full"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := tc.w
			if w == nil {
				w = io.Discard
			}
			err := tc.chart.WriteSVG(w)
			if err == nil {
				t.Fatal("WriteSVG succeeded, want an error")
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestAxisTicks(t *testing.T) {
	tests := map[string]struct {
		series    []Series
		wantLeft  []string // nil: no load panel
		wantRight []string // nil: no replica panel
	}{
		"replicas are whole even when answers are not": {
			series:    []Series{{Axis: Right, Points: pts(0.5, 1.5, 2.5)}},
			wantRight: []string{"0", "1", "2", "3"},
		},
		"load starts at 0": {
			series:   []Series{{Points: pts(5, 8)}},
			wantLeft: []string{"0", "2", "4", "6", "8"},
		},
		"fractional load": {
			series:    []Series{{Points: pts(0.1, 0.9)}, {Axis: Right, Step: true, Points: pts(0, 4)}},
			wantLeft:  []string{"0", "0.2", "0.4", "0.6", "0.8", "1.0"},
			wantRight: []string{"0", "1", "2", "3", "4"},
		},
		"many replicas": {
			series:    []Series{{Axis: Right, Step: true, Points: pts(3, 37)}},
			wantRight: []string{"0", "10", "20", "30", "40"},
		},
		"nothing": {wantLeft: []string{"0", "1"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l, err := (&Chart{Series: tc.series}).layout()
			if err != nil {
				t.Fatal(err)
			}
			got := map[Axis][]string{}
			for _, p := range l.panels {
				for _, tk := range (scaleTicks{p.y}).Ticks(0, 0) {
					got[p.axis] = append(got[p.axis], tk.Label)
				}
			}
			if !slices.Equal(got[Left], tc.wantLeft) || !slices.Equal(got[Right], tc.wantRight) {
				t.Errorf("ticks left %q right %q, want %q and %q", got[Left], got[Right], tc.wantLeft, tc.wantRight)
			}
			// The labels reach the SVG.
			_, els := render(t, &Chart{Series: tc.series})
			ts := texts(els)
			for _, want := range append(slices.Clone(tc.wantLeft), tc.wantRight...) {
				if !slices.Contains(ts, want) {
					t.Errorf("tick label %q not in the SVG's texts %q", want, ts)
				}
			}
		})
	}
}

func TestWallTicks(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	monday := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		start    time.Time
		from, to time.Duration
		max      int
		want     []string
	}{
		"an hour": {start: monday.Add(10*time.Hour + 7*time.Minute), to: time.Hour, max: 9,
			want: []string{"10:10", "10:20", "10:30", "10:40", "10:50", "11:00"}},
		"ninety seconds": {start: monday, to: 90 * time.Second, max: 9,
			want: []string{"00:00:00", "00:00:10", "00:00:20", "00:00:30", "00:00:40", "00:00:50", "00:01:00", "00:01:10", "00:01:20", "00:01:30"}},
		"two days": {start: monday, to: 48 * time.Hour, max: 9,
			want: []string{"Mon 00:00", "Mon 06:00", "Mon 12:00", "Mon 18:00", "Tue 00:00", "Tue 06:00", "Tue 12:00", "Tue 18:00", "Wed 00:00"}},
		"a week": {start: monday, to: 7 * 24 * time.Hour, max: 9,
			want: []string{"Mon 30 Nov", "Tue 1 Dec", "Wed 2 Dec", "Thu 3 Dec", "Fri 4 Dec", "Sat 5 Dec", "Sun 6 Dec", "Mon 7 Dec"}},
		"a week, narrow": {start: monday.Add(13 * time.Hour), to: 7 * 24 * time.Hour, max: 4,
			want: []string{"Wed 2 Dec", "Fri 4 Dec", "Sun 6 Dec"}},
		"ten weeks from a Wednesday": {start: monday.Add(2 * 24 * time.Hour), to: 70 * 24 * time.Hour, max: 9,
			want: []string{"Mon 14 Dec", "Mon 28 Dec", "Mon 11 Jan", "Mon 25 Jan", "Mon 8 Feb"}},
		"from a negative offset": {start: monday, from: -2 * time.Hour, to: 2 * time.Hour, max: 9,
			want: []string{"22:00", "22:30", "23:00", "23:30", "00:00", "00:30", "01:00", "01:30", "02:00"}},
		// Clocks go forward at 02:00 on 29 March 2026 in Berlin: ticks
		// stay on the hours of the clock, 02:00 does not exist, and eight
		// hours after 21:00 is 06:00.
		"daylight saving": {start: time.Date(2026, 3, 28, 21, 0, 0, 0, berlin), to: 8 * time.Hour, max: 9,
			want: []string{"21:00", "22:00", "23:00", "00:00", "01:00", "03:00", "04:00", "05:00", "06:00"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ticks := wallTicks{start: tc.start, max: tc.max}.Ticks(tc.from.Seconds(), tc.to.Seconds())
			var got []string
			for i, tk := range ticks {
				got = append(got, tk.Label)
				// The value is where the label's time lies.
				at := tc.start.Add(time.Duration(tk.Value * float64(time.Second)))
				if strings.Contains(tk.Label, ":") && !strings.Contains(tk.Label, at.Format("15:04")) ||
					!strings.Contains(tk.Label, ":") && (at.Hour() != 0 || at.Minute() != 0 || !strings.HasPrefix(tk.Label, at.Format("Mon 2 Jan"))) {
					t.Errorf("tick %q is at %v", tk.Label, at)
				}
				if i > 0 && tk.Value <= ticks[i-1].Value {
					t.Errorf("tick %q not after the previous one", tk.Label)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ticks %q, want %q", got, tc.want)
			}
		})
	}
}
