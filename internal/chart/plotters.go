package chart

import (
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// line is a series as a gonum plot.Plotter and legend plot.Thumbnailer.
// gonum's plotter.Line rejects NaN points and strokes every point it is
// given; this one leaves a gap at a non-finite value and emits only the
// vertices a reader can see, so a week of samples stays a small file.
type line struct {
	Series
	pts   []Point // sorted by T, non-finite values included (gaps)
	style draw.LineStyle
}

// Plot strokes the series as one path of one or more runs of finite
// points, with a dot for a run of a single point, which a path alone
// would not show.
func (ln *line) Plot(c draw.Canvas, p *plot.Plot) {
	tx, ty := p.Transforms(&c)
	var (
		path vg.Path
		dots []vg.Point
		run  []vg.Point // vertices of the current run of finite points
		// held is the last point of a stretch of equal values whose
		// vertex was not emitted yet: the stretch needs only its ends.
		held    vg.Point
		holding bool
		prev    float64 // value of the last finite point of the run
		inRun   bool
	)
	flush := func() {
		if holding {
			run = append(run, held)
			holding = false
		}
		switch {
		case len(run) == 1:
			dots = append(dots, run[0])
		case len(run) > 1:
			run = thin(run)
			path.Move(run[0])
			for _, q := range run[1:] {
				path.Line(q)
			}
		}
		run, inRun = run[:0], false
	}
	for _, pt := range ln.pts {
		x := tx(pt.T.Seconds())
		if !finite(pt.V) {
			if inRun && ln.Step {
				// A step holds its value until the gap begins.
				held, holding = vg.Point{X: x, Y: ty(prev)}, true
				if len(run) == 1 && run[0].X == x {
					holding = false
				}
			}
			flush()
			continue
		}
		y := ty(pt.V)
		switch {
		case !inRun:
			run = append(run, vg.Point{X: x, Y: y})
			inRun = true
		case pt.V == prev:
			held, holding = vg.Point{X: x, Y: y}, true
		case ln.Step:
			holding = false
			run = append(run, vg.Point{X: x, Y: ty(prev)}, vg.Point{X: x, Y: y})
		default:
			if holding {
				run = append(run, held)
				holding = false
			}
			run = append(run, vg.Point{X: x, Y: y})
		}
		prev = pt.V
	}
	flush()
	if len(path) > 0 {
		c.SetLineStyle(ln.style)
		c.Stroke(path)
	}
	for _, d := range dots {
		c.DrawGlyph(draw.GlyphStyle{Color: ln.style.Color, Radius: dotRadius, Shape: draw.CircleGlyph{}}, d)
	}
}

// Thumbnail draws the series' line style in the legend.
func (ln *line) Thumbnail(c *draw.Canvas) {
	y := c.Center().Y
	c.StrokeLine2(ln.style, c.Min.X, y, c.Max.X, y)
}

// thin keeps, of the vertices that fall in one pixel column, the first,
// the last, the lowest and the highest, in their order: the line drawn
// through them covers the same pixels as the line through all of them
// (the M4 reduction), so a series of any length costs at most four
// vertices per pixel of width. It reuses v's storage.
func thin(v []vg.Point) []vg.Point {
	out := v[:0]
	for i := 0; i < len(v); {
		col := math.Floor(float64(v[i].X))
		j := i + 1
		for j < len(v) && math.Floor(float64(v[j].X)) == col {
			j++
		}
		if j-i <= 4 {
			out = append(out, v[i:j]...)
			i = j
			continue
		}
		lo, hi := i, i
		for k := i + 1; k < j; k++ {
			if v[k].Y < v[lo].Y {
				lo = k
			}
			if v[k].Y > v[hi].Y {
				hi = k
			}
		}
		keep := [4]int{i, min(lo, hi), max(lo, hi), j - 1}
		var pts [4]vg.Point
		n := 0
		for k, idx := range keep {
			if k > 0 && idx == keep[k-1] {
				continue
			}
			pts[n] = v[idx]
			n++
		}
		out = append(out, pts[:n]...)
		i = j
	}
	return out
}

// markers draws each marker as a dashed vertical line across the panel,
// with its label written upwards beside the line's top when labels is
// set.
type markers struct {
	ms     []Marker
	labels bool
}

// Plot implements plot.Plotter.
func (m *markers) Plot(c draw.Canvas, p *plot.Plot) {
	tx, _ := p.Transforms(&c)
	sty := draw.LineStyle{Color: rgb(markColour), Width: 1, Dashes: []vg.Length{5, 4}}
	for _, mk := range m.ms {
		x := tx(mk.T.Seconds())
		c.StrokeLine2(sty, x, c.Min.Y, x, c.Max.Y)
		if !m.labels || mk.Label == "" {
			continue
		}
		// Rotated a quarter turn, the text's top faces left: aligning its
		// top on the point puts the glyphs right of the line, unless that
		// leaves the panel, where its bottom goes on the point instead.
		ts := sans(tickSize, draw.XRight, draw.YTop)
		ts.Color = rgb(markColour)
		ts.Rotation = math.Pi / 2
		pt := vg.Point{X: x + 2, Y: c.Max.Y - 3}
		if x+2+ts.Rectangle(mk.Label).Size().Y > c.Max.X {
			ts.YAlign = draw.YBottom
			pt.X = x - 2
		}
		c.FillText(ts, pt, mk.Label)
	}
}
