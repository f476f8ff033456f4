package main

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Chart layout, in points (one SVG user unit each).
const (
	panelWidth  = 320
	panelHeight = 230
	chartPad    = 10
	cdfPoints   = 400 // most points of one CDF line; a few hundred show its shape exactly enough
)

// policyColours are the Okabe-Ito colours internal/chart uses, by policy
// in report order, so a policy keeps its colour in every panel.
func policyColour(policy string) color.RGBA {
	palette := [...]uint32{0x0072b2, 0xe69f00, 0x009e73, 0xd55e00, 0xcc79a7, 0x56b4e9}
	i := max(0, slices.Index(policies(), policy))
	c := palette[i%len(palette)]
	return color.RGBA{R: uint8(c >> 16), G: uint8(c >> 8), B: uint8(c), A: 0xff}
}

// cdf returns the points of the empirical distribution of sorted: at
// each value, the fraction of values at or below it; at most max points,
// evenly spaced in rank, always ending at the largest value.
func cdf(sorted []float64, most int) plotter.XYs {
	n := len(sorted)
	if n == 0 || most < 1 {
		return nil
	}
	step := max(1, (n+most-1)/most)
	var xys plotter.XYs
	for i := step - 1; i < n; i += step {
		xys = append(xys, plotter.XY{X: sorted[i], Y: float64(i+1) / float64(n)})
	}
	if last := xys[len(xys)-1]; last.Y != 1 {
		xys = append(xys, plotter.XY{X: sorted[n-1], Y: 1})
	}
	return xys
}

// writeChart draws the TTFT distributions, one panel per workload (rows)
// and load (columns), one CDF line per policy, on a log time axis shared
// by the whole chart, and writes it to w as SVG.
func writeChart(w io.Writer, cells []cell, pols []string) (err error) {
	// gonum/plot reports some misuse by panicking; no panic reaches a user.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("drawing the chart: gonum/plot: %v", r)
		}
	}()
	var works []workload
	var loads []float64
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, c := range cells {
		if !slices.Contains(works, c.workload) {
			works = append(works, c.workload)
		}
		if !slices.Contains(loads, c.load) {
			loads = append(loads, c.load)
		}
		if len(c.ttfts) > 0 {
			lo, hi = min(lo, c.ttfts[0].Seconds()), max(hi, c.ttfts[len(c.ttfts)-1].Seconds())
		}
	}
	if len(works) == 0 {
		return fmt.Errorf("drawing the chart: no cells")
	}
	if !(lo > 0) || math.IsInf(hi, 0) {
		lo, hi = 0.01, 1 // no successful request: empty panels
	}
	lo, hi = math.Pow(10, math.Floor(math.Log10(lo))), math.Pow(10, math.Ceil(math.Log10(hi)))
	if hi <= lo {
		hi = lo * 10
	}

	plots := make([][]*plot.Plot, len(works))
	for r, wl := range works {
		plots[r] = make([]*plot.Plot, len(loads))
		for col, load := range loads {
			p := plot.New()
			styleSans(p)
			p.Title.Text = fmt.Sprintf("%s, %.0f%% load", wl, 100*load)
			p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
			p.X.Min, p.X.Max = lo, hi
			p.Y.Min, p.Y.Max = 0, 1
			p.X.Label.Text = "TTFT (simulated s)"
			if col == 0 {
				p.Y.Label.Text = "fraction of requests"
			}
			grid := plotter.NewGrid()
			grid.Vertical.Color, grid.Horizontal.Color = color.Gray{Y: 0xe6}, color.Gray{Y: 0xe6}
			p.Add(grid)
			p.Legend.Top, p.Legend.Left = false, false
			p.Legend.TextStyle.Font = font.From(sansFont(), 9)
			for _, pol := range pols {
				c, ok := find(cells, wl, load, pol)
				if !ok || len(c.ttfts) == 0 {
					continue
				}
				v := make([]float64, len(c.ttfts))
				for i, d := range c.ttfts {
					v[i] = max(d.Seconds(), lo)
				}
				line, err := plotter.NewLine(cdf(v, cdfPoints))
				if err != nil {
					return fmt.Errorf("drawing the chart: %w", err)
				}
				line.Color, line.Width = policyColour(pol), 1.5
				p.Add(line)
				if r == 0 && col == 0 {
					p.Legend.Add(pol, line)
				}
			}
			plots[r][col] = p
		}
	}
	width := vg.Length(len(loads)*panelWidth + 2*chartPad)
	height := vg.Length(len(works)*panelHeight + 2*chartPad)
	cv := vgsvg.NewWith(vgsvg.UseWH(width, height), vgsvg.EmbedFonts(false))
	dc := draw.New(cv)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	area := draw.Crop(dc, chartPad, -chartPad, chartPad, -chartPad)
	tiles := draw.Tiles{Rows: len(works), Cols: len(loads), PadX: 12, PadY: 12}
	canvases := plot.Align(plots, tiles, area)
	for r := range plots {
		for col := range plots[r] {
			plots[r][col].Draw(canvases[r][col])
		}
	}
	if _, err := cv.WriteTo(w); err != nil {
		return fmt.Errorf("writing the chart: %w", err)
	}
	return nil
}

func sansFont() font.Font { return font.Font{Typeface: "Liberation", Variant: "Sans"} }

// styleSans sets every text of p in Liberation Sans, whose metrics match
// Arial and Helvetica.
func styleSans(p *plot.Plot) {
	p.BackgroundColor = nil
	p.Title.TextStyle.Font = font.From(sansFont(), 11)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = font.From(sansFont(), 10)
		a.Tick.Label.Font = font.From(sansFont(), 9)
	}
}
