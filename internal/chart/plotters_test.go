package chart

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot/vg"
)

// TestThin checks the M4 reduction on random lines: what it keeps is a
// subsequence of the input that has, in every pixel column, the column's
// first, last, lowest and highest vertex, and at most four vertices.
func TestThin(t *testing.T) {
	tests := map[string]struct {
		n    int
		dx   float64 // mean x step
		seed uint64
	}{
		"dense":          {n: 5000, dx: 0.05, seed: 1},
		"sparse":         {n: 200, dx: 3, seed: 2},
		"one column":     {n: 50, dx: 0.001, seed: 3},
		"mixed":          {n: 3000, dx: 0.4, seed: 4},
		"two vertices":   {n: 2, dx: 0.1, seed: 5},
		"vertical steps": {n: 1000, dx: 0, seed: 6},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(tc.seed, 0))
			in := make([]vg.Point, tc.n)
			x := 10.0
			for i := range in {
				x += tc.dx * 2 * r.Float64()
				in[i] = vg.Point{X: vg.Length(x), Y: vg.Length(math.Round(r.Float64()*1000) / 10)}
			}
			orig := append([]vg.Point(nil), in...)
			out := thin(in)

			// A subsequence: every kept vertex is found in order.
			j := 0
			for _, p := range out {
				for j < len(orig) && orig[j] != p {
					j++
				}
				if j == len(orig) {
					t.Fatalf("thin returned %v, not a subsequence of its input", p)
				}
				j++
			}
			type col struct {
				first, last, lo, hi vg.Point
				n                   int
			}
			columns := func(v []vg.Point) map[float64]*col {
				m := map[float64]*col{}
				for _, p := range v {
					k := math.Floor(float64(p.X))
					c, ok := m[k]
					if !ok {
						c = &col{first: p, lo: p, hi: p}
						m[k] = c
					}
					c.last, c.n = p, c.n+1
					if p.Y < c.lo.Y {
						c.lo = p
					}
					if p.Y > c.hi.Y {
						c.hi = p
					}
				}
				return m
			}
			want, got := columns(orig), columns(out)
			if len(got) != len(want) {
				t.Fatalf("thin kept %d columns of %d", len(got), len(want))
			}
			for k, w := range want {
				g := got[k]
				if g.first != w.first || g.last != w.last || g.lo.Y != w.lo.Y || g.hi.Y != w.hi.Y {
					t.Errorf("column %v: kept first %v last %v low %v high %v, want %v %v %v %v", k, g.first, g.last, g.lo.Y, g.hi.Y, w.first, w.last, w.lo.Y, w.hi.Y)
				}
				if g.n > 4 {
					t.Errorf("column %v: kept %d vertices, want at most 4", k, g.n)
				}
			}
		})
	}
}

// week is a backtest of a week at 15 s steps, the size the issue's
// example runs: 40,320 steps of a query value and four replica lines.
func week() *Chart { return backtest(7*24*60*4, 15*time.Second) }

// TestWeekIsSmall checks that a week of steps renders to a small file,
// which only holds if step lines keep only their changes and lines at
// most four vertices per pixel column.
func TestWeekIsSmall(t *testing.T) {
	c := week()
	points := 0
	for _, s := range c.Series {
		points += len(s.Points)
	}
	out, els := render(t, c)
	vertices := 0
	for _, e := range els {
		if e.name.Local == "path" {
			vertices += strings.Count(e.attrs["d"], "L") + strings.Count(e.attrs["d"], "M")
		}
	}
	const maxBytes = 300 << 10
	if len(out) > maxBytes {
		t.Errorf("a week of %d points renders to %d bytes, want at most %d", points, len(out), maxBytes)
	}
	// Five lines at most four vertices per pixel column each, and the
	// axes, grid and legend.
	if limit := 5*4*960 + 500; vertices > limit {
		t.Errorf("%d points drawn with %d vertices, want at most %d", points, vertices, limit)
	}
	t.Logf("%d points: %d bytes, %d vertices", points, len(out), vertices)
}

// BenchmarkWeek renders a week of 15 s steps, 40,320 points in each of
// five lines, and reports the size of the SVG.
func BenchmarkWeek(b *testing.B) {
	c := week()
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := c.WriteSVG(&buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "svg-bytes")
}

func FuzzWriteSVG(f *testing.F) {
	f.Add("title", "series", int64(0), 0.0, int64(time.Second), 4.0, true, int64(30*time.Second), int64(0))
	f.Add("<&>", "", int64(-5), math.Inf(1), int64(0), math.NaN(), false, int64(0), int64(1764460800))
	f.Add("", "x", int64(math.MaxInt64), 1e300, int64(math.MinInt64), -1e300, true, int64(-1), int64(-1))
	f.Add("\x00", "\xff", int64(1), 5e-324, int64(1), -5e-324, false, int64(1), int64(1<<40))
	f.Fuzz(func(t *testing.T, title, name string, t1 int64, v1 float64, t2 int64, v2 float64, step bool, marker, start int64) {
		c := &Chart{
			Title: title,
			Series: []Series{
				{Name: name, Step: step, Points: []Point{{time.Duration(t1), v1}, {time.Duration(t2), v2}}},
				{Name: name, Axis: Right, Step: !step, Points: []Point{{time.Duration(t2), v1}}},
			},
			Markers: []Marker{{T: time.Duration(marker), Label: name}},
		}
		if start != 0 {
			c.Start = time.Unix(start, 0).UTC()
		}
		out, _ := render(t, c)
		if text := title + name; !strings.Contains(text, "NaN") && !strings.Contains(text, "Inf") &&
			(bytes.Contains(out, []byte("NaN")) || bytes.Contains(out, []byte("Inf"))) {
			t.Errorf("output contains NaN or Inf:\n%s", out)
		}
	})
}
