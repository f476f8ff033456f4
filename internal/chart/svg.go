package chart

import (
	"bytes"
	"encoding/xml"
	"fmt"
)

// standalone rewrites the three things in vgsvg's output that keep it from
// being a self-contained picture that a browser shows the same way with no
// network and no extra fonts installed:
//
//   - vgsvg sizes the image in points (960pt is 1280 CSS pixels); the
//     chart's size is in pixels, so the units are dropped;
//   - it names only "Liberation Sans", which most machines lack, and a
//     browser then falls back to its default font, usually a serif one;
//     Arial and Helvetica have the same metrics, so text still fits the
//     room measured for it, and sans-serif is the last resort. Embedding
//     the font (vgsvg.EmbedFonts) would add about 400 kB to every chart;
//   - it declares the xlink namespace, used only by images, which the
//     chart never draws; a reader checking for external references
//     should find only the SVG namespace.
//
// Each rewrite must apply exactly: a gonum/plot upgrade that changes its
// output fails here (and in the golden tests) instead of silently
// producing a chart that renders differently.
//
// It also gives the document a <title> when the chart has one, which a
// browser shows as the tab's name and a screen reader reads out.
func standalone(svg []byte, width, height int, title string) ([]byte, error) {
	rewrites := []struct {
		old, new string
		all      bool
	}{
		{fmt.Sprintf(`<svg width="%dpt" height="%dpt"`, width, height), fmt.Sprintf(`<svg width="%d" height="%d"`, width, height), false},
		{"\n\txmlns:xlink=\"http://www.w3.org/1999/xlink\"", "", false},
		{"font-family:Liberation Sans;", "font-family:'Liberation Sans',Arial,Helvetica,sans-serif;", true},
	}
	for _, r := range rewrites {
		n := bytes.Count(svg, []byte(r.old))
		if n == 0 || (n > 1 && !r.all) {
			return nil, fmt.Errorf("unexpected vgsvg output: %d occurrences of %q", n, r.old)
		}
		svg = bytes.ReplaceAll(svg, []byte(r.old), []byte(r.new))
	}
	if title != "" {
		const open = "xmlns=\"http://www.w3.org/2000/svg\">\n"
		var t bytes.Buffer
		t.WriteString(open + "<title>")
		_ = xml.EscapeText(&t, []byte(title)) // a bytes.Buffer never fails
		t.WriteString("</title>\n")
		if bytes.Count(svg, []byte(open)) != 1 {
			return nil, fmt.Errorf("unexpected vgsvg output: no single %q", open)
		}
		svg = bytes.Replace(svg, []byte(open), t.Bytes(), 1)
	}
	if bytes.Contains(svg, []byte("xlink:")) {
		return nil, fmt.Errorf("unexpected vgsvg output: an xlink reference")
	}
	return svg, nil
}
