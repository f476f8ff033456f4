package plot_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/k8s-nemesis/nemesis/e2e/plot"
)

var update = flag.Bool("update", false, "rewrite testdata/chart.svg from the current output")

// The parts of the SVG the tests look at. Element names match any
// namespace, the root's only the SVG one.
type svgDoc struct {
	XMLName xml.Name `xml:"http://www.w3.org/2000/svg svg"`
	Width   string   `xml:"width,attr"`
	Height  string   `xml:"height,attr"`
	ViewBox string   `xml:"viewBox,attr"`
	Title   string   `xml:"title"`
	Rects   []struct {
		Class  string  `xml:"class,attr"`
		X      float64 `xml:"x,attr"`
		Y      float64 `xml:"y,attr"`
		Width  float64 `xml:"width,attr"`
		Height float64 `xml:"height,attr"`
	} `xml:"rect"`
	Groups []svgGroup `xml:"g"`
	Texts  []svgText  `xml:"text"`
}

type svgGroup struct {
	Class     string `xml:"class,attr"`
	Polylines []struct {
		Series int    `xml:"data-series,attr"`
		Stroke string `xml:"stroke,attr"`
		Points string `xml:"points,attr"`
		Title  string `xml:"title"`
	} `xml:"polyline"`
	Texts []svgText `xml:"text"`
}

type svgText struct {
	Class string `xml:"class,attr"`
	Text  string `xml:",chardata"`
}

type vertex struct{ x, y float64 }

type box struct{ left, top, right, bottom float64 }

// render writes c, checks that the output is well-formed XML to its very
// end, and parses it.
func render(t *testing.T, c *plot.Chart) ([]byte, svgDoc) {
	t.Helper()
	var b bytes.Buffer
	if err := c.WriteSVG(&b); err != nil {
		t.Fatalf("WriteSVG: %v", err)
	}
	return b.Bytes(), parse(t, b.Bytes())
}

func parse(t *testing.T, out []byte) svgDoc {
	t.Helper()
	// Unmarshal stops at the end of the root element; a strict token loop
	// also rejects anything after it.
	d := xml.NewDecoder(bytes.NewReader(out))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("output is not well-formed XML: %v\n%s", err, out)
		}
	}
	var doc svgDoc
	if err := xml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("parsing output: %v", err)
	}
	return doc
}

func (d svgDoc) group(t *testing.T, class string) svgGroup {
	t.Helper()
	for _, g := range d.Groups {
		if g.Class == class {
			return g
		}
	}
	t.Fatalf("no <g class=%q>", class)
	return svgGroup{}
}

func (d svgDoc) hasGroup(class string) bool {
	return slices.ContainsFunc(d.Groups, func(g svgGroup) bool { return g.Class == class })
}

// plotArea returns the bounds of <rect class="plot-area">.
func (d svgDoc) plotArea(t *testing.T) box {
	t.Helper()
	for _, r := range d.Rects {
		if r.Class == "plot-area" {
			return box{r.X, r.Y, r.X + r.Width, r.Y + r.Height}
		}
	}
	t.Fatal("no plot-area rect")
	return box{}
}

// lines returns the vertices of each series' polyline by series index.
func (d svgDoc) lines(t *testing.T) map[int][]vertex {
	t.Helper()
	got := map[int][]vertex{}
	for _, p := range d.group(t, "series").Polylines {
		if _, dup := got[p.Series]; dup {
			t.Errorf("series %d has more than one polyline", p.Series)
		}
		var vs []vertex
		for _, f := range strings.Fields(p.Points) {
			xs, ys, ok := strings.Cut(f, ",")
			x, errX := strconv.ParseFloat(xs, 64)
			y, errY := strconv.ParseFloat(ys, 64)
			if !ok || errX != nil || errY != nil {
				t.Fatalf("series %d: bad vertex %q", p.Series, f)
			}
			vs = append(vs, vertex{x, y})
		}
		got[p.Series] = vs
	}
	return got
}

func texts(ts []svgText) []string {
	var s []string
	for _, t := range ts {
		if t.Class == "" {
			s = append(s, t.Text)
		}
	}
	return s
}

func pts(vs ...float64) []plot.Point {
	p := make([]plot.Point, len(vs))
	for i, v := range vs {
		p[i] = plot.Point{T: time.Duration(i) * time.Second, V: v}
	}
	return p
}

// demo is the chart the demo draws, with integer values so that the
// golden file cannot depend on the platform's floating point.
func demo() *plot.Chart {
	var load, inflight, queued, replicas []plot.Point
	for i := range 91 {
		t := time.Duration(i) * time.Second
		l := 0.0
		switch {
		case i >= 10 && i < 30:
			l = float64(2 * (i - 9))
		case i >= 30 && i < 60:
			l = 40
		}
		in := min(l, float64(10*max(0, min(4, (i-12)/5+1))))
		if i >= 75 {
			in = 0
		}
		load = append(load, plot.Point{T: t, V: l})
		inflight = append(inflight, plot.Point{T: t, V: in})
		queued = append(queued, plot.Point{T: t, V: l - in})
		if i%3 == 0 {
			r := float64(max(0, min(4, (i-12)/5+1)))
			if i < 12 || i >= 75 {
				r = 0
			}
			replicas = append(replicas, plot.Point{T: t, V: r})
		}
	}
	return &plot.Chart{
		Title: "Scale from zero, out and back to zero",
		Series: []plot.Series{
			{Name: "load", Unit: "requests", Points: load},
			{Name: "in flight", Unit: "requests", Points: inflight},
			{Name: "queued", Unit: "requests", Points: queued},
			{Name: "replicas", Unit: "replicas", Axis: plot.Right, Step: true, Points: replicas},
		},
		Markers: []plot.Marker{
			{T: 10 * time.Second, Label: "load starts"},
			{T: 60 * time.Second, Label: "load stops"},
		},
	}
}

func TestWellFormedStandalone(t *testing.T) {
	tests := map[string]struct {
		chart        *plot.Chart
		wantViewBox  string
		wantW, wantH string
	}{
		"demo":         {chart: demo(), wantViewBox: "0 0 960 480", wantW: "960", wantH: "480"},
		"empty":        {chart: &plot.Chart{}, wantViewBox: "0 0 960 480", wantW: "960", wantH: "480"},
		"custom size":  {chart: &plot.Chart{Width: 400, Height: 300, Series: demo().Series}, wantViewBox: "0 0 400 300", wantW: "400", wantH: "300"},
		"many series":  {chart: &plot.Chart{Series: slices.Repeat(demo().Series, 5)}, wantViewBox: "0 0 960 480", wantW: "960", wantH: "480"},
		"control char": {chart: &plot.Chart{Title: "a\x00b\x1bc\uFFFE", Series: []plot.Series{{Name: "\x7f]]>"}}}, wantViewBox: "0 0 960 480", wantW: "960", wantH: "480"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, doc := render(t, tc.chart)
			if doc.ViewBox != tc.wantViewBox || doc.Width != tc.wantW || doc.Height != tc.wantH {
				t.Errorf("svg width=%q height=%q viewBox=%q, want %q %q %q", doc.Width, doc.Height, doc.ViewBox, tc.wantW, tc.wantH, tc.wantViewBox)
			}
			// Standalone: nothing a browser would fetch.
			for _, ref := range []string{"href", "url(", "@import", "<image", "<script", "<foreignObject"} {
				if bytes.Contains(out, []byte(ref)) {
					t.Errorf("output refers to an external resource with %q", ref)
				}
			}
		})
	}
}

func TestSeriesVertices(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := map[string]struct {
		series plot.Series
		want   int // vertices; -1 for no polyline
	}{
		"straight":          {plot.Series{Points: pts(1, 2, 3)}, 3},
		"step":              {plot.Series{Step: true, Points: pts(1, 2, 3)}, 5},
		"step one point":    {plot.Series{Step: true, Points: pts(1)}, 1},
		"straight NaN":      {plot.Series{Points: pts(1, nan, 3, inf, -inf, 6)}, 3},
		"step NaN":          {plot.Series{Step: true, Axis: plot.Right, Points: pts(nan, 1, 2, nan)}, 3},
		"too large skipped": {plot.Series{Points: pts(1, 1e301, -math.MaxFloat64, 2)}, 2},
		"empty":             {plot.Series{}, -1},
		"all NaN":           {plot.Series{Step: true, Points: pts(nan, nan)}, -1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// A series before and after, so that the index is checked too.
			_, doc := render(t, &plot.Chart{Series: []plot.Series{
				{Points: pts(0, 1)}, tc.series, {Axis: plot.Right, Step: true, Points: pts(0, 1, 2, 3)},
			}})
			got := doc.lines(t)
			want := map[int]int{0: 2, 1: tc.want, 2: 7}
			if tc.want < 0 {
				delete(want, 1)
			}
			if len(got) != len(want) {
				t.Errorf("got polylines for series %v, want for %v", keys(got), keys(want))
			}
			for i, n := range want {
				if len(got[i]) != n {
					t.Errorf("series %d: got %d vertices, want %d", i, len(got[i]), n)
				}
			}
		})
	}
}

func keys[V any](m map[int]V) []int {
	var k []int
	for i := range m {
		k = append(k, i)
	}
	slices.Sort(k)
	return k
}

const eps = 0.01 // coordinates are written with two decimals

func checkInside(t *testing.T, doc svgDoc) {
	t.Helper()
	area := doc.plotArea(t)
	for i, vs := range doc.lines(t) {
		for _, v := range vs {
			if v.x < area.left-eps || v.x > area.right+eps || v.y < area.top-eps || v.y > area.bottom+eps {
				t.Errorf("series %d: vertex %v outside the plot area %+v", i, v, area)
			}
		}
	}
}

func TestPointsInsidePlotArea(t *testing.T) {
	_, doc := render(t, &plot.Chart{Series: []plot.Series{
		{Name: "negative", Points: pts(-5, 3, -1, 1e6)},
		{Axis: plot.Right, Step: true, Points: []plot.Point{{-time.Minute, 0.5}, {time.Hour, -0.25}}},
	}})
	checkInside(t, doc)

	_, doc = render(t, demo())
	checkInside(t, doc)
	area := doc.plotArea(t)
	if area.right-area.left < 100 || area.bottom-area.top < 100 {
		t.Fatalf("plot area %+v is implausibly small", area)
	}
	lines := doc.lines(t)

	// The load starts at 0 at time 0, the bottom left corner on the left
	// scale 0..40, and peaks at 40, the top.
	load := lines[0]
	if first := load[0]; math.Abs(first.x-area.left) > eps || math.Abs(first.y-area.bottom) > eps {
		t.Errorf("load's first vertex %v, want the bottom left corner (%v, %v)", first, area.left, area.bottom)
	}
	if top := slices.MinFunc(load, func(a, b vertex) int { return int(a.y - b.y) }); math.Abs(top.y-area.top) > eps {
		t.Errorf("load's peak at y=%v, want the top of the plot area %v", top.y, area.top)
	}
	// The replicas peak at 4, the top of the right scale 0..4, and their
	// step line holds the previous value until the next point's time.
	reps := lines[3]
	if top := slices.MinFunc(reps, func(a, b vertex) int { return int(a.y - b.y) }); math.Abs(top.y-area.top) > eps {
		t.Errorf("replicas' peak at y=%v, want the top of the plot area %v", top.y, area.top)
	}
	for j := 1; j+1 < len(reps); j += 2 {
		if reps[j].y != reps[j-1].y || reps[j].x != reps[j+1].x {
			t.Errorf("replicas: vertices %v %v %v do not form a step", reps[j-1], reps[j], reps[j+1])
		}
	}
	// The load ends at 90 s, nine tenths of the x scale 0..100 s.
	if last, want := load[len(load)-1], area.left+0.9*(area.right-area.left); math.Abs(last.x-want) > eps {
		t.Errorf("load's last vertex at x=%v, want %v", last.x, want)
	}
}

func TestAxisTicks(t *testing.T) {
	tests := map[string]struct {
		series     []plot.Series
		markers    []plot.Marker
		wantRight  []string // nil: no right axis
		wantLeft   []string
		wantX      []string
		wantTitles []string
	}{
		"replicas up to 4": {
			series:     []plot.Series{{Unit: "replicas", Axis: plot.Right, Step: true, Points: pts(0, 1, 4, 2)}},
			wantRight:  []string{"0", "1", "2", "3", "4"},
			wantLeft:   []string{"0", "1"},
			wantX:      []string{"0", "1", "2", "3"},
			wantTitles: []string{"time (s)", "replicas"},
		},
		"demo": {
			series:     demo().Series,
			wantRight:  []string{"0", "1", "2", "3", "4"},
			wantLeft:   []string{"0", "10", "20", "30", "40"},
			wantX:      []string{"0", "20", "40", "60", "80", "100"},
			wantTitles: []string{"time (s)", "requests", "replicas"},
		},
		"fractional load": {
			series:     []plot.Series{{Unit: "requests/s", Points: pts(0.25, 0.9)}, {Unit: "requests", Points: pts(0.1)}},
			wantLeft:   []string{"0", "0.2", "0.4", "0.6", "0.8", "1.0"},
			wantX:      []string{"0", "0.2", "0.4", "0.6", "0.8", "1.0"},
			wantTitles: []string{"time (s)", "requests/s, requests"},
		},
		"marker beyond the data": {
			series:     []plot.Series{{Unit: "requests", Points: pts(1, 2)}},
			markers:    []plot.Marker{{T: 120 * time.Second, Label: "load stops"}},
			wantLeft:   []string{"0", "1", "2"},
			wantX:      []string{"0", "50", "100", "150"},
			wantTitles: []string{"time (s)", "requests"},
		},
		"negative": {
			series:     []plot.Series{{Unit: "requests", Points: pts(-5, 3, 17)}},
			wantLeft:   []string{"-5", "0", "5", "10", "15", "20"},
			wantX:      []string{"0", "0.5", "1.0", "1.5", "2.0"},
			wantTitles: []string{"time (s)", "requests"},
		},
		"all zero": {
			series:     []plot.Series{{Unit: "requests", Points: pts(0, 0, 0)}, {Unit: "replicas", Axis: plot.Right, Points: pts(0, 0)}},
			wantRight:  []string{"0", "1"},
			wantLeft:   []string{"0", "1"},
			wantX:      []string{"0", "0.5", "1.0", "1.5", "2.0"},
			wantTitles: []string{"time (s)", "requests", "replicas"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, doc := render(t, &plot.Chart{Series: tc.series, Markers: tc.markers})
			if doc.hasGroup("axis right") != (tc.wantRight != nil) {
				t.Errorf("right axis drawn: %v, want %v", doc.hasGroup("axis right"), tc.wantRight != nil)
			} else if tc.wantRight != nil {
				if got := texts(doc.group(t, "axis right").Texts); !slices.Equal(got, tc.wantRight) {
					t.Errorf("right axis ticks %q, want %q", got, tc.wantRight)
				}
			}
			if got := texts(doc.group(t, "axis left").Texts); !slices.Equal(got, tc.wantLeft) {
				t.Errorf("left axis ticks %q, want %q", got, tc.wantLeft)
			}
			if got := texts(doc.group(t, "axis x").Texts); !slices.Equal(got, tc.wantX) {
				t.Errorf("x axis ticks %q, want %q", got, tc.wantX)
			}
			var titles []string
			for _, g := range doc.Groups {
				for _, tx := range g.Texts {
					if tx.Class == "axis-title" {
						titles = append(titles, tx.Text)
					}
				}
			}
			if !slices.Equal(titles, tc.wantTitles) {
				t.Errorf("axis titles %q, want %q", titles, tc.wantTitles)
			}
		})
	}
}

func TestLegendAndColours(t *testing.T) {
	c := demo()
	c.Series = append(c.Series, plot.Series{Name: "unitless", Points: pts(1)})
	_, doc := render(t, c)
	want := []string{"load (requests)", "in flight (requests)", "queued (requests)", "replicas (replicas, right axis)", "unitless"}
	if got := texts(doc.group(t, "legend").Texts); !slices.Equal(got, want) {
		t.Errorf("legend %q, want %q", got, want)
	}
	colours := map[string]bool{}
	for _, p := range doc.group(t, "series").Polylines {
		colours[p.Stroke] = true
		if p.Title != want[p.Series] {
			t.Errorf("series %d tooltip %q, want %q", p.Series, p.Title, want[p.Series])
		}
	}
	if len(colours) != len(c.Series) {
		t.Errorf("%d series drawn in %d colours, want distinct colours", len(c.Series), len(colours))
	}
}

func TestEscaping(t *testing.T) {
	const title = `load <&> "peak" 'test'`
	c := &plot.Chart{
		Title:   title,
		Series:  []plot.Series{{Name: "a<b", Unit: "r&r", Points: pts(1, 2)}},
		Markers: []plot.Marker{{T: time.Second, Label: "</text><script>alert(1)</script>"}},
	}
	out, doc := render(t, c)
	if !bytes.Contains(out, []byte("load &lt;&amp;&gt;")) {
		t.Errorf("title not escaped:\n%s", out)
	}
	if bytes.Contains(out, []byte("<&>")) || bytes.Contains(out, []byte("<script")) {
		t.Errorf("output contains unescaped text:\n%s", out)
	}
	if doc.Title != title {
		t.Errorf("<title> parses as %q, want %q", doc.Title, title)
	}
	var shown []string
	for _, tx := range doc.Texts {
		shown = append(shown, tx.Text)
	}
	if !slices.Contains(shown, title) {
		t.Errorf("title text not drawn; top-level texts %q", shown)
	}
	if got := texts(doc.group(t, "legend").Texts); !slices.Equal(got, []string{"a<b (r&r)"}) {
		t.Errorf("legend %q, want %q", got, "a<b (r&r)")
	}
	if got := texts(doc.group(t, "markers").Texts); !slices.Equal(got, []string{c.Markers[0].Label}) {
		t.Errorf("marker label %q, want %q", got, c.Markers[0].Label)
	}
}

// TestNonFiniteSkipped checks that NaN and infinite points are dropped
// as if they had never been there.
func TestNonFiniteSkipped(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	with := &plot.Chart{Series: []plot.Series{
		{Name: "load", Points: pts(1, nan, 3, inf, 2)},
		{Name: "replicas", Axis: plot.Right, Step: true, Points: pts(-inf, 1, nan, 2)},
	}}
	without := &plot.Chart{Series: []plot.Series{
		{Name: "load", Points: []plot.Point{{0, 1}, {2 * time.Second, 3}, {4 * time.Second, 2}}},
		{Name: "replicas", Axis: plot.Right, Step: true, Points: []plot.Point{{time.Second, 1}, {3 * time.Second, 2}}},
	}}
	got, _ := render(t, with)
	want, _ := render(t, without)
	for _, bad := range []string{"NaN", "Inf"} {
		if bytes.Contains(got, []byte(bad)) {
			t.Errorf("output contains %q", bad)
		}
	}
	if !bytes.Equal(got, want) {
		t.Errorf("chart with NaN and Inf points differs from the chart without them:\n%s\nwant:\n%s", got, want)
	}
}

func TestDeterministic(t *testing.T) {
	first, _ := render(t, demo())
	for range 20 {
		if again, _ := render(t, demo()); !bytes.Equal(first, again) {
			t.Fatal("two renderings of the same chart differ")
		}
	}
	// The points' order does not matter either: they are drawn by time.
	c := demo()
	slices.Reverse(c.Series[0].Points)
	if reversed, _ := render(t, c); !bytes.Equal(first, reversed) {
		t.Error("reversing a series' points changed the output")
	}
}

func TestEmptyChart(t *testing.T) {
	tests := map[string]*plot.Chart{
		"no series":    {},
		"empty series": {Series: []plot.Series{{Name: "load"}, {Name: "replicas", Axis: plot.Right, Step: true}}},
		"only markers": {Markers: []plot.Marker{{T: 30 * time.Second, Label: "load stops"}}},
	}
	for name, c := range tests {
		t.Run(name, func(t *testing.T) {
			out, doc := render(t, c)
			if bytes.Contains(out, []byte("NaN")) || bytes.Contains(out, []byte("Inf")) {
				t.Errorf("output contains NaN or Inf:\n%s", out)
			}
			doc.plotArea(t)
			if got := doc.lines(t); len(got) != 0 {
				t.Errorf("got polylines for series %v, want none", keys(got))
			}
			if got := texts(doc.group(t, "axis left").Texts); len(got) < 2 || got[0] != "0" {
				t.Errorf("left axis ticks %q, want 0 and more", got)
			}
			if got := texts(doc.group(t, "axis x").Texts); len(got) < 2 || got[0] != "0" {
				t.Errorf("x axis ticks %q, want 0 and more", got)
			}
			if doc.hasGroup("legend") != (len(c.Series) > 0) {
				t.Errorf("legend drawn: %v, want %v", doc.hasGroup("legend"), len(c.Series) > 0)
			}
		})
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestErrors(t *testing.T) {
	tests := map[string]struct {
		chart *plot.Chart
		w     io.Writer
		want  []string
	}{
		"unknown axes": {
			chart: &plot.Chart{Series: []plot.Series{{Name: "a", Axis: 2}, {Name: "b"}, {Name: "c", Axis: -1}}},
			want:  []string{`series 0 "a": unknown axis 2`, `series 2 "c": unknown axis -1`},
		},
		"negative size": {chart: &plot.Chart{Width: -1}, want: []string{"size -1x0 is negative"}},
		"too small":     {chart: &plot.Chart{Width: 60, Height: 60, Series: demo().Series}, want: []string{"size 60x60 leaves no room"}},
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

// TestGolden compares the demo chart with testdata/chart.svg, so that any
// visual change shows up in review. Run with -update to accept a change,
// and open the file in a browser to look at it.
func TestGolden(t *testing.T) {
	got, _ := render(t, demo())
	path := filepath.Join("testdata", "chart.svg")
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
		t.Errorf("output differs from %s; if the change is intended, run go test ./e2e/plot -run TestGolden -update and review the diff", path)
	}
}

func FuzzWriteSVG(f *testing.F) {
	f.Add("title", "series", int64(0), 0.0, int64(time.Second), 4.0, true, int64(30*time.Second))
	f.Add("<&>", "", int64(-5), math.Inf(1), int64(0), math.NaN(), false, int64(0))
	f.Add("", "x", int64(math.MaxInt64), 1e300, int64(math.MinInt64), -1e300, true, int64(-1))
	f.Add("\x00", "\xff", int64(1), 5e-324, int64(1), -5e-324, false, int64(1))
	f.Fuzz(func(t *testing.T, title, name string, t1 int64, v1 float64, t2 int64, v2 float64, step bool, marker int64) {
		c := &plot.Chart{
			Title: title,
			Series: []plot.Series{
				{Name: name, Step: step, Points: []plot.Point{{time.Duration(t1), v1}, {time.Duration(t2), v2}}},
				{Name: name, Axis: plot.Right, Step: !step, Points: []plot.Point{{time.Duration(t2), v1}}},
			},
			Markers: []plot.Marker{{T: time.Duration(marker), Label: name}},
		}
		out, doc := render(t, c)
		if text := title + name; !strings.Contains(text, "NaN") && !strings.Contains(text, "Inf") &&
			(bytes.Contains(out, []byte("NaN")) || bytes.Contains(out, []byte("Inf"))) {
			t.Errorf("output contains NaN or Inf:\n%s", out)
		}
		checkInside(t, doc)
	})
}
