package plot

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Axis names the y axis a series is measured against.
type Axis int

const (
	// Left is the axis for request counts: load, in-flight, queued.
	Left Axis = iota
	// Right is the axis for replica counts.
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
	// T is the time since the start of the run.
	T time.Duration
	// V is the value. NaN, infinite and absurdly large values (beyond
	// ±1e300) are skipped when drawing.
	V float64
}

// Series is one line of the chart.
type Series struct {
	// Name appears in the legend.
	Name string
	// Unit appears in the legend and in the title of the series' axis,
	// for example "requests" or "replicas".
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
	// T is the time since the start of the run.
	T time.Duration
	// Label is written along the line, at its top.
	Label string
}

// Chart is a time-series chart with a left and a right y axis.
type Chart struct {
	// Title is written above the plot; it may be empty.
	Title string
	// Width and Height are the size of the image in pixels; zero means
	// the default of 960x480.
	Width, Height int
	// Series are drawn in order, so later ones are on top, and each gets
	// the next colour of a colour-blind-friendly palette.
	Series []Series
	// Markers are drawn under the series.
	Markers []Marker
}

// Layout, in pixels. The chart is drawn without measuring text, which a
// standalone SVG cannot do before a browser renders it, so text widths are
// estimated from an average glyph advance of charWidth.
const (
	defaultWidth  = 960
	defaultHeight = 480
	fontSize      = 12
	titleSize     = 16
	charWidth     = 0.6 * fontSize
	xAxisHeight   = tickLen + 2*fontSize + 16 // tick labels and axis title
	pad           = 10
	tickLen       = 5
	legendRow     = 18
	legendSwatch  = 24
	legendGap     = 18
	minPlot       = 20 // smallest plot area worth drawing
)

// WriteSVG writes the chart to w as a standalone SVG document. It fails
// only on an invalid chart (an unknown axis, a negative size or a size too
// small for the plot area) or when w fails.
func (c *Chart) WriteSVG(w io.Writer) error {
	l, err := c.layout()
	if err != nil {
		return fmt.Errorf("laying out chart: %w", err)
	}
	var b bytes.Buffer
	l.render(&b)
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("writing svg: %w", err)
	}
	return nil
}

// line is a series ready to draw: its finite points sorted by time.
type line struct {
	Series
	label  string // legend text
	colour string
	dash   string // stroke-dasharray, empty for solid
}

// legendEntry is where a series' legend entry goes.
type legendEntry struct {
	x    float64 // left end of the swatch
	row  int     // 0 for the first row
	line int     // index into layout.lines
}

// layout is a chart with every scale, margin and position decided.
type layout struct {
	title         string
	width, height int
	// Plot area edges.
	left, top, right, bottom float64
	x, yl, yr                scale
	hasRight                 bool
	leftTitle, rightTitle    string
	lines                    []line
	markers                  []Marker
	legend                   []legendEntry
}

func (c *Chart) layout() (*layout, error) {
	l := &layout{title: c.Title, width: c.Width, height: c.Height, markers: c.Markers}
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
	for i, s := range c.Series {
		if s.Axis != Left && s.Axis != Right {
			errs = append(errs, fmt.Errorf("series %d %q: unknown axis %d", i, s.Name, int(s.Axis)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	// Domains. Time always includes 0, the start of the run, and every
	// marker, so that no marker falls outside the plot.
	var tlo, thi float64
	for _, m := range c.Markers {
		tlo, thi = min(tlo, m.T.Seconds()), max(thi, m.T.Seconds())
	}
	type domain struct {
		lo, hi  float64
		integer bool // every value is a whole number
		units   []string
	}
	dom := [2]domain{{integer: true}, {integer: true}}
	for i, s := range c.Series {
		d := &dom[s.Axis]
		if s.Unit != "" && !slices.Contains(d.units, s.Unit) {
			d.units = append(d.units, s.Unit)
		}
		if s.Axis == Right {
			l.hasRight = true
		}
		pts := make([]Point, 0, len(s.Points))
		for _, p := range s.Points {
			if !(math.Abs(p.V) <= maxValue) { // NaN, ±Inf or absurdly large
				continue
			}
			pts = append(pts, p)
			tlo, thi = min(tlo, p.T.Seconds()), max(thi, p.T.Seconds())
			d.lo, d.hi = min(d.lo, p.V), max(d.hi, p.V)
			if p.V != math.Trunc(p.V) {
				d.integer = false
			}
		}
		slices.SortStableFunc(pts, func(a, b Point) int { return cmp.Compare(a.T, b.T) })
		s.Points = pts
		colour, dash := style(i)
		label := s.Name
		switch {
		case s.Unit != "" && s.Axis == Right:
			label += " (" + s.Unit + ", right axis)"
		case s.Unit != "":
			label += " (" + s.Unit + ")"
		case s.Axis == Right:
			label += " (right axis)"
		}
		l.lines = append(l.lines, line{Series: s, label: label, colour: colour, dash: dash})
	}
	l.x = niceScale(tlo, thi, false)
	l.yl = niceScale(dom[Left].lo, dom[Left].hi, dom[Left].integer)
	l.yr = niceScale(dom[Right].lo, dom[Right].hi, dom[Right].integer)
	l.leftTitle = strings.Join(dom[Left].units, ", ")
	l.rightTitle = strings.Join(dom[Right].units, ", ")

	// Margins: room for the tick labels and the axis titles beside them,
	// the title above and the x axis and legend below.
	l.left = pad + tickLen + 4 + labelWidth(l.yl)
	if l.leftTitle != "" {
		l.left += fontSize + 6
	}
	l.right = float64(l.width) - 2*pad
	if l.hasRight {
		l.right = float64(l.width) - (pad + tickLen + 4 + labelWidth(l.yr))
		if l.rightTitle != "" {
			l.right -= fontSize + 6
		}
	}
	l.top = 2 * pad
	if l.title != "" {
		l.top = 2*pad + titleSize + 8
	}

	// The legend flows left to right under the x axis, wrapping at the
	// plot's right edge.
	rows := 0
	x := l.left
	for i, ln := range l.lines {
		w := legendSwatch + 6 + textWidth(ln.label)
		if rows == 0 || (x > l.left && x+w > l.right) {
			rows++
			x = l.left
		}
		l.legend = append(l.legend, legendEntry{x: x, row: rows - 1, line: i})
		x += w + legendGap
	}
	l.bottom = float64(l.height) - xAxisHeight - float64(rows)*legendRow - 6

	if l.right-l.left < minPlot || l.bottom-l.top < minPlot {
		return nil, fmt.Errorf("size %dx%d leaves no room for the plot area", l.width, l.height)
	}
	return l, nil
}

// style returns a series' colour and dash pattern. The colours are the
// Okabe-Ito palette, which stays distinct under the common forms of colour
// blindness, without its yellow, which is unreadable on white. Past seven
// series the colours repeat with a different dash pattern.
func style(i int) (colour, dash string) {
	palette := [...]string{"#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000"}
	dashes := [...]string{"", "8 4", "2 3"}
	return palette[i%len(palette)], dashes[i/len(palette)%len(dashes)]
}

// labelWidth is the estimated width of the widest tick label of s.
func labelWidth(s scale) float64 {
	var w float64
	for _, v := range s.ticks() {
		w = max(w, textWidth(s.label(v)))
	}
	return w
}

// textWidth is the estimated width of s at fontSize.
func textWidth(s string) float64 {
	return float64(utf8.RuneCountInString(s)) * charWidth
}

// px maps a time in seconds to a horizontal position in the plot area.
func (l *layout) px(t float64) float64 {
	return l.left + l.x.frac(t)*(l.right-l.left)
}

// py maps a value on scale s to a vertical position in the plot area.
func (l *layout) py(s scale, v float64) float64 {
	return l.bottom - s.frac(v)*(l.bottom-l.top)
}
