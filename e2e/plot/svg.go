package plot

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
)

// Colours of everything but the series.
const (
	background = "#ffffff"
	gridColour = "#e6e6e6"
	axisColour = "#555555"
	textColour = "#222222"
)

// render writes the SVG document. Elements are written in paint order:
// grid, markers and series over it, then axes, legend and title.
func (l *layout) render(b *bytes.Buffer) {
	fmt.Fprintf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
	fmt.Fprintf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"%d\" fill=\"%s\">\n",
		l.width, l.height, l.width, l.height, fontSize, textColour)
	if l.title != "" {
		// Shown as the tab's tooltip and read by screen readers.
		fmt.Fprintf(b, "<title>%s</title>\n", esc(l.title))
	}
	fmt.Fprintf(b, "<rect width=\"%d\" height=\"%d\" fill=\"%s\"/>\n", l.width, l.height, background)
	l.renderGrid(b)
	l.renderMarkers(b)
	l.renderSeries(b)
	l.renderAxes(b)
	l.renderLegend(b)
	if l.title != "" {
		fmt.Fprintf(b, "<text class=\"title\" x=\"%s\" y=\"%d\" text-anchor=\"middle\" font-size=\"%d\" font-weight=\"bold\">%s</text>\n",
			num(float64(l.width)/2), pad+titleSize, titleSize, esc(l.title))
	}
	fmt.Fprintf(b, "</svg>\n")
}

// renderGrid draws horizontal lines at the ticks of the left axis, or of
// the right one when only it has series, and vertical lines at the time
// ticks.
func (l *layout) renderGrid(b *bytes.Buffer) {
	y := l.yl
	if l.hasRight && !l.hasAxis(Left) {
		y = l.yr
	}
	fmt.Fprintf(b, "<g class=\"grid\" stroke=\"%s\" stroke-width=\"1\" shape-rendering=\"crispEdges\">\n", gridColour)
	for _, v := range y.ticks() {
		fmt.Fprintf(b, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\"/>\n", num(l.left), num(l.py(y, v)), num(l.right), num(l.py(y, v)))
	}
	for _, t := range l.x.ticks() {
		fmt.Fprintf(b, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\"/>\n", num(l.px(t)), num(l.top), num(l.px(t)), num(l.bottom))
	}
	fmt.Fprintf(b, "</g>\n")
}

func (l *layout) hasAxis(a Axis) bool {
	for _, ln := range l.lines {
		if ln.Axis == a {
			return true
		}
	}
	return false
}

// renderMarkers draws each marker as a dashed line with its label written
// upwards beside the line's top, on the right unless that would leave the
// plot area.
func (l *layout) renderMarkers(b *bytes.Buffer) {
	if len(l.markers) == 0 {
		return
	}
	fmt.Fprintf(b, "<g class=\"markers\">\n")
	for _, m := range l.markers {
		x := l.px(m.T.Seconds())
		fmt.Fprintf(b, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"%s\" stroke-width=\"1\" stroke-dasharray=\"5 4\"/>\n",
			num(x), num(l.top), num(x), num(l.bottom), axisColour)
		if m.Label == "" {
			continue
		}
		// Rotated by -90°, glyphs extend to the left of the baseline, so
		// the baseline sits a font height right of the line.
		tx := x + fontSize + 1
		if tx > l.right {
			tx = x - 3
		}
		fmt.Fprintf(b, "<text transform=\"translate(%s,%s) rotate(-90)\" text-anchor=\"end\" fill=\"%s\">%s</text>\n",
			num(tx), num(l.top+4), axisColour, esc(m.Label))
	}
	fmt.Fprintf(b, "</g>\n")
}

// renderSeries draws one polyline per series with points, and a dot too
// when there is a single point, which a polyline alone would not show.
func (l *layout) renderSeries(b *bytes.Buffer) {
	fmt.Fprintf(b, "<g class=\"series\" fill=\"none\" stroke-width=\"2\" stroke-linejoin=\"round\">\n")
	for i, ln := range l.lines {
		if len(ln.Points) == 0 {
			continue
		}
		y := l.yl
		if ln.Axis == Right {
			y = l.yr
		}
		var pts strings.Builder
		prev := 0.0
		for j, p := range ln.Points {
			x, v := num(l.px(p.T.Seconds())), num(l.py(y, p.V))
			if j > 0 {
				pts.WriteByte(' ')
				if ln.Step {
					// Hold the previous value until this point's time.
					pts.WriteString(x + "," + num(prev) + " ")
				}
			}
			pts.WriteString(x + "," + v)
			prev = l.py(y, p.V)
		}
		fmt.Fprintf(b, "<polyline data-series=\"%d\" stroke=\"%s\"%s points=\"%s\"><title>%s</title></polyline>\n",
			i, ln.colour, dashAttr(ln.dash), pts.String(), esc(ln.label))
		if len(ln.Points) == 1 {
			p := ln.Points[0]
			fmt.Fprintf(b, "<circle cx=\"%s\" cy=\"%s\" r=\"3\" fill=\"%s\" stroke=\"none\"/>\n",
				num(l.px(p.T.Seconds())), num(l.py(y, p.V)), ln.colour)
		}
	}
	fmt.Fprintf(b, "</g>\n")
}

// renderAxes draws the plot frame and the x, left and right axes with
// their ticks, tick labels and titles.
func (l *layout) renderAxes(b *bytes.Buffer) {
	fmt.Fprintf(b, "<rect class=\"plot-area\" x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" fill=\"none\" stroke=\"%s\" shape-rendering=\"crispEdges\"/>\n",
		num(l.left), num(l.top), num(l.right-l.left), num(l.bottom-l.top), axisColour)

	fmt.Fprintf(b, "<g class=\"axis x\" text-anchor=\"middle\">\n")
	for _, t := range l.x.ticks() {
		x := l.px(t)
		fmt.Fprintf(b, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"%s\"/>\n", num(x), num(l.bottom), num(x), num(l.bottom+tickLen), axisColour)
		fmt.Fprintf(b, "<text x=\"%s\" y=\"%s\">%s</text>\n", num(x), num(l.bottom+tickLen+fontSize+2), esc(l.x.label(t)))
	}
	fmt.Fprintf(b, "<text class=\"axis-title\" x=\"%s\" y=\"%s\">time (s)</text>\n", num((l.left+l.right)/2), num(l.bottom+tickLen+2*fontSize+10))
	fmt.Fprintf(b, "</g>\n")

	l.renderYAxis(b, Left, l.yl, l.leftTitle)
	if l.hasRight {
		l.renderYAxis(b, Right, l.yr, l.rightTitle)
	}
}

func (l *layout) renderYAxis(b *bytes.Buffer, a Axis, s scale, title string) {
	// Ticks point outwards; labels are aligned against them.
	edge, dir, anchor := l.left, -1.0, "end"
	if a == Right {
		edge, dir, anchor = l.right, 1, "start"
	}
	fmt.Fprintf(b, "<g class=\"axis %s\" text-anchor=\"%s\">\n", a, anchor)
	for _, v := range s.ticks() {
		y := l.py(s, v)
		fmt.Fprintf(b, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"%s\"/>\n", num(edge), num(y), num(edge+dir*tickLen), num(y), axisColour)
		// 0.35em lowers the baseline to centre the digits on the tick.
		fmt.Fprintf(b, "<text x=\"%s\" y=\"%s\" dy=\"0.35em\">%s</text>\n", num(edge+dir*(tickLen+3)), num(y), esc(s.label(v)))
	}
	if title != "" {
		// Rotated to read along the axis, bottom-up on the left and
		// top-down on the right, glyphs towards the image's edge.
		x, rot := float64(pad+fontSize), -90
		if a == Right {
			x, rot = float64(l.width-pad-fontSize), 90
		}
		fmt.Fprintf(b, "<text class=\"axis-title\" transform=\"translate(%s,%s) rotate(%d)\" text-anchor=\"middle\">%s</text>\n",
			num(x), num((l.top+l.bottom)/2), rot, esc(title))
	}
	fmt.Fprintf(b, "</g>\n")
}

// renderLegend draws a line swatch and the label of every series.
func (l *layout) renderLegend(b *bytes.Buffer) {
	if len(l.legend) == 0 {
		return
	}
	fmt.Fprintf(b, "<g class=\"legend\">\n")
	for _, e := range l.legend {
		ln := l.lines[e.line]
		y := l.bottom + xAxisHeight + float64(e.row+1)*legendRow - 4
		fmt.Fprintf(b, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"%s\" stroke-width=\"2\"%s/>\n",
			num(e.x), num(y-4), num(e.x+legendSwatch), num(y-4), ln.colour, dashAttr(ln.dash))
		fmt.Fprintf(b, "<text x=\"%s\" y=\"%s\">%s</text>\n", num(e.x+legendSwatch+6), num(y), esc(ln.label))
	}
	fmt.Fprintf(b, "</g>\n")
}

func dashAttr(dash string) string {
	if dash == "" {
		return ""
	}
	return " stroke-dasharray=\"" + dash + "\""
}

// esc escapes s for use in XML text and attribute values.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder never fails
	return b.String()
}

// num formats a coordinate with at most two decimals, which is finer than
// any screen resolves, and without trailing zeros.
func num(f float64) string {
	s := strconv.FormatFloat(f, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		return "0"
	}
	return s
}
