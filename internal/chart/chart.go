package chart

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	xfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Axis names the y axis, and so the panel, a series is measured against.
type Axis int

const (
	// Left is the load axis, drawn in the upper panel: request counts
	// (clients, in flight, queued) or the value of a rule set's query.
	Left Axis = iota
	// Right is the replica axis, drawn in the lower panel.
	Right
)

// String returns "left" or "right".
func (a Axis) String() string {
	switch a {
	case Left:
		return "left"
	case Right:
		return "right"
	}
	return fmt.Sprintf("Axis(%d)", int(a))
}

// Point is one sample of a series.
type Point struct {
	// T is the time since the start of the chart (Chart.Start, or the
	// start of the run when Start is zero).
	T time.Duration
	// V is the value. NaN, infinite and absurdly large values (beyond
	// ±1e300) are not drawn: the line has a gap there.
	V float64
}

// Series is one line of the chart.
type Series struct {
	// Name appears in the legend.
	Name string
	// Unit titles the series' y axis, for example "requests" or
	// "replicas"; it is added to the legend only when one panel mixes
	// several units.
	Unit string
	// Axis is the y axis the series is scaled against.
	Axis Axis
	// Step draws the series as a step line, holding each value until the
	// next point, which is how a replica count changes; otherwise points
	// are joined by straight segments.
	Step bool
	// Points need not be sorted; they are drawn in order of T.
	Points []Point
}

// Marker is a dashed vertical line with a label, such as "load stops".
type Marker struct {
	// T is the time since the start of the chart.
	T time.Duration
	// Label is written along the line, at its top.
	Label string
}

// Chart is a time-series chart of load and replicas.
type Chart struct {
	// Title is written above the panels; it may be empty.
	Title string
	// Width and Height are the size of the image in pixels; zero means
	// the default of 960x540.
	Width, Height int
	// Start, when set, is the wall-clock time of T = 0, and the time
	// axis is labelled with wall-clock times in Start's location;
	// otherwise it is labelled in seconds since the start.
	Start time.Time
	// Series are drawn in order, so later ones are on top, and each gets
	// the next colour of a colour-blind-friendly palette.
	Series []Series
	// Markers are drawn under the series, in every panel; their labels
	// are written in the upper one.
	Markers []Marker
}

// Layout, in pixels (one SVG user unit, one vg point).
const (
	defaultWidth  = 960
	defaultHeight = 540
	maxSize       = 20000 // beyond any screen; keeps vgsvg's %g sizes exact
	minPlot       = 20    // smallest data area worth drawing
	pad           = 10
	panelGap      = 12
	titleSize     = 15
	labelSize     = 12
	tickSize      = 10
	legendSize    = 11
	legendCap     = 0.4 // most of the width the legend column may take
	lineWidth     = 1.5
	stepWidth     = 2
	dotRadius     = 2.5
	// pixelsPerTimeTick is the least room a time tick label gets, which
	// bounds how many wall-clock ticks fit.
	pixelsPerTimeTick = 100
)

// WriteSVG writes the chart to w as a standalone SVG document. It fails
// on an invalid chart (an unknown axis, a negative or huge size, or a
// size too small for the panels) or when w fails.
func (c *Chart) WriteSVG(w io.Writer) error {
	l, err := c.layout()
	if err != nil {
		return fmt.Errorf("laying out chart: %w", err)
	}
	cv := vgsvg.New(vg.Length(l.width), vg.Length(l.height))
	if err := l.draw(draw.New(cv)); err != nil {
		return fmt.Errorf("drawing chart: %w", err)
	}
	var b bytes.Buffer
	if _, err := cv.WriteTo(&b); err != nil {
		return fmt.Errorf("encoding svg: %w", err)
	}
	out, err := standalone(b.Bytes(), l.width, l.height, l.title)
	if err != nil {
		return fmt.Errorf("encoding svg: %w", err)
	}
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("writing svg: %w", err)
	}
	return nil
}

// panel is one y axis with its series: the load panel above, the replica
// panel below.
type panel struct {
	axis  Axis
	lines []*line
	y     scale
	units []string
}

// layout is a chart with every scale decided, ready to draw.
type layout struct {
	title         string
	width, height int
	start         time.Time
	xlo, xhi      float64 // time range in seconds since start
	xs            scale   // nice time scale, used when start is zero
	panels        []*panel
	markers       []Marker
}

func (c *Chart) layout() (*layout, error) {
	l := &layout{title: clean(c.Title), width: c.Width, height: c.Height, start: c.Start}
	for _, m := range c.Markers {
		l.markers = append(l.markers, Marker{T: m.T, Label: clean(m.Label)})
	}
	if l.width == 0 {
		l.width = defaultWidth
	}
	if l.height == 0 {
		l.height = defaultHeight
	}
	var errs []error
	if l.width < 0 || l.height < 0 {
		errs = append(errs, fmt.Errorf("size %dx%d is negative", c.Width, c.Height))
	}
	if l.width > maxSize || l.height > maxSize {
		errs = append(errs, fmt.Errorf("size %dx%d is larger than %dx%d", c.Width, c.Height, maxSize, maxSize))
	}
	for i, s := range c.Series {
		if s.Axis != Left && s.Axis != Right {
			errs = append(errs, fmt.Errorf("series %d %q: unknown axis %d", i, s.Name, int(s.Axis)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	// Time always includes 0, the start, and every marker, so that no
	// marker falls outside the plot.
	var tlo, thi float64
	for _, m := range c.Markers {
		tlo, thi = min(tlo, m.T.Seconds()), max(thi, m.T.Seconds())
	}
	type domain struct {
		lo, hi  float64
		integer bool // every value is a whole number
	}
	dom := [2]domain{{integer: true}, {integer: true}}
	byAxis := [2]*panel{{axis: Left}, {axis: Right}}
	for i, s := range c.Series {
		d, p := &dom[s.Axis], byAxis[s.Axis]
		s.Name, s.Unit = clean(s.Name), clean(s.Unit)
		if s.Unit != "" && !slices.Contains(p.units, s.Unit) {
			p.units = append(p.units, s.Unit)
		}
		pts := slices.Clone(s.Points)
		slices.SortStableFunc(pts, func(a, b Point) int { return cmp.Compare(a.T, b.T) })
		for _, pt := range pts {
			tlo, thi = min(tlo, pt.T.Seconds()), max(thi, pt.T.Seconds())
			if !finite(pt.V) {
				continue
			}
			d.lo, d.hi = min(d.lo, pt.V), max(d.hi, pt.V)
			if pt.V != math.Trunc(pt.V) {
				d.integer = false
			}
		}
		p.lines = append(p.lines, &line{Series: s, pts: pts, style: lineStyle(i, s.Step)})
	}
	for a, p := range byAxis {
		// Replica counts are whole numbers even when a rule set's answer
		// is not, so their axis never has fractional ticks.
		p.y = niceScale(dom[a].lo, dom[a].hi, dom[a].integer || Axis(a) == Right)
		if len(p.lines) > 0 {
			l.panels = append(l.panels, p)
		}
	}
	if len(l.panels) == 0 {
		l.panels = []*panel{byAxis[Left]} // an empty chart still shows its axes
	}

	l.xs = niceScale(tlo, thi, false)
	l.xlo, l.xhi = l.xs.lo(), l.xs.hi()
	if !l.start.IsZero() {
		// Wall-clock axes end at the data: a week must not stretch to a
		// rounded ten days.
		l.xlo, l.xhi = tlo, thi
		if !(l.xhi > l.xlo) {
			l.xhi = l.xlo + 60
		}
	}
	return l, nil
}

// clean makes s safe to hand to vgsvg, which escapes markup but not the
// characters XML forbids: invalid UTF-8 and control characters become
// U+FFFD, and a tab or line break becomes a space since every label is
// one line.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0, r == 0xfffe, r == 0xffff, r == utf8.RuneError:
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(s, string(utf8.RuneError)))
}

// finite reports whether v is drawn: not NaN, infinite or absurdly large.
func finite(v float64) bool { return math.Abs(v) <= maxValue }

// Colours of everything but the series, as 0xRRGGBB.
const (
	textColour = 0x222222
	axisColour = 0x555555
	gridColour = 0xe6e6e6
	markColour = 0x555555
)

// rgb turns a 0xRRGGBB constant into an opaque colour.
func rgb(c uint32) color.RGBA {
	return color.RGBA{R: uint8(c >> 16), G: uint8(c >> 8), B: uint8(c), A: 0xff}
}

// lineStyle returns the style of the i-th series. The colours are the
// Okabe-Ito palette, which stays distinct under the common forms of colour
// blindness, without its yellow, which is unreadable on white. Past seven
// series the colours repeat with a different dash pattern.
func lineStyle(i int, step bool) draw.LineStyle {
	palette := [...]uint32{0x0072b2, 0xe69f00, 0x009e73, 0xd55e00, 0xcc79a7, 0x56b4e9, 0x000000}
	dashes := [...][]vg.Length{nil, {8, 4}, {2, 3}}
	sty := draw.LineStyle{Color: rgb(palette[i%len(palette)]), Width: lineWidth, Dashes: dashes[i/len(palette)%len(dashes)]}
	if step {
		sty.Width = stepWidth
	}
	return sty
}

// sans returns a text style in Liberation Sans, whose metrics match Arial
// and Helvetica, the fallbacks named in the SVG (see standalone), so text
// measured here fits in a browser too.
func sans(size vg.Length, x text.XAlignment, y text.YAlignment) text.Style {
	return text.Style{
		Color:   rgb(textColour),
		Font:    font.From(font.Font{Typeface: "Liberation", Variant: "Sans"}, size),
		XAlign:  x,
		YAlign:  y,
		Handler: plot.DefaultTextHandler,
	}
}

// draw renders the chart on dc. gonum/plot reports some misuse by
// panicking; the recover turns that into an error, so no panic reaches a
// user.
func (l *layout) draw(dc draw.Canvas) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("gonum/plot: %v", r)
		}
	}()
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())

	area := draw.Crop(dc, pad, -pad, pad, -pad)
	if l.title != "" {
		sty := sans(titleSize, draw.XCenter, draw.YTop)
		sty.Font.Weight = xfont.WeightBold
		dc.FillText(sty, vg.Point{X: dc.Center().X, Y: area.Max.Y}, l.title)
		area.Max.Y -= sty.Rectangle(l.title).Size().Y + pad
	}

	plots := make([][]*plot.Plot, len(l.panels))
	legends := make([]plot.Legend, len(l.panels))
	var legendWidth vg.Length
	for i, p := range l.panels {
		plots[i] = []*plot.Plot{l.plot(p, i == 0, i == len(l.panels)-1)}
		legends[i] = l.legend(p)
		if len(p.lines) > 0 {
			legendWidth = max(legendWidth, legends[i].Rectangle(area).Size().X+pad)
		}
	}
	legendWidth = min(legendWidth, vg.Length(legendCap*float64(area.Size().X)))
	plotArea := draw.Crop(area, 0, -legendWidth, 0, 0)
	if plotArea.Size().X < minPlot || plotArea.Size().Y < minPlot {
		return fmt.Errorf("size %dx%d leaves no room for the panels", l.width, l.height)
	}
	tiles := draw.Tiles{Rows: len(l.panels), Cols: 1, PadY: panelGap}
	canvases := plot.Align(plots, tiles, plotArea)
	for i, row := range plots {
		data := row[0].DataCanvas(canvases[i][0])
		if data.Size().X < minPlot || data.Size().Y < minPlot {
			return fmt.Errorf("size %dx%d leaves no room for the panels", l.width, l.height)
		}
		row[0].Draw(canvases[i][0])
		lc := draw.Crop(area, area.Size().X-legendWidth+pad, 0, 0, 0)
		lc.Max.Y = data.Max.Y
		legends[i].Draw(lc)
	}
	return nil
}

// plot builds one panel. Only the lowest panel labels the time axis; the
// others share its ticks and grid, which plot.Align lines up.
func (l *layout) plot(p *panel, top, bottom bool) *plot.Plot {
	pl := plot.New()
	pl.BackgroundColor = nil
	for _, a := range []*plot.Axis{&pl.X, &pl.Y} {
		a.Padding = 0
		a.LineStyle.Color = rgb(axisColour)
		a.Tick.LineStyle.Color = rgb(axisColour)
		a.Tick.Length = 4
		a.Label.TextStyle = sans(labelSize, draw.XCenter, draw.YBottom)
		a.Label.Padding = 4
	}
	pl.X.Tick.Label = sans(tickSize, draw.XCenter, draw.YTop)
	pl.Y.Tick.Label = sans(tickSize, draw.XRight, draw.YCenter)

	pl.X.Min, pl.X.Max = l.xlo, l.xhi
	var xt plot.Ticker = scaleTicks{l.xs}
	if !l.start.IsZero() {
		xt = wallTicks{start: l.start, max: max(2, l.width/pixelsPerTimeTick)}
	}
	if bottom {
		pl.X.Label.Text = l.timeTitle()
	} else {
		xt = unlabelled{xt}
	}
	pl.X.Tick.Marker = xt

	pl.Y.Min, pl.Y.Max = p.y.lo(), p.y.hi()
	pl.Y.Tick.Marker = scaleTicks{p.y}
	pl.Y.Label.Text = strings.Join(p.units, ", ")

	grid := plotter.NewGrid()
	grid.Vertical.Color, grid.Horizontal.Color = rgb(gridColour), rgb(gridColour)
	grid.Vertical.Width, grid.Horizontal.Width = 1, 1
	pl.Add(grid)
	if len(l.markers) > 0 {
		pl.Add(&markers{ms: l.markers, labels: top})
	}
	for _, ln := range p.lines {
		pl.Add(ln)
	}
	return pl
}

// timeTitle titles the time axis with its unit or, for wall-clock time,
// its zone and the start, since tick labels carry no date.
func (l *layout) timeTitle() string {
	if l.start.IsZero() {
		return "time since start (s)"
	}
	first := l.start.Add(time.Duration(l.xlo * float64(time.Second)))
	return "time (" + first.Format("MST") + "), from " + first.Format("Mon 2006-01-02 15:04")
}

// legend lists a panel's series, in a column right of the panels so that
// it never hides a line.
func (l *layout) legend(p *panel) plot.Legend {
	leg := plot.NewLegend()
	leg.TextStyle = sans(legendSize, draw.XLeft, draw.YBottom)
	leg.Top, leg.Left = true, true
	leg.ThumbnailWidth = 24
	leg.Padding = 3
	for _, ln := range p.lines {
		name := ln.Name
		if len(p.units) > 1 && ln.Unit != "" {
			name += " (" + ln.Unit + ")"
		}
		leg.Add(name, ln)
	}
	return leg
}
