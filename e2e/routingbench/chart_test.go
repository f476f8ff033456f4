package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

func TestCDF(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	all := cdf(v, 100)
	if len(all) != 10 || all[0].X != 1 || all[0].Y != 0.1 || all[9].X != 10 || all[9].Y != 1 {
		t.Errorf("cdf of ten: %v", all)
	}
	few := cdf(v, 3) // every 4th value, then the last
	if len(few) != 3 || few[0].X != 4 || few[1].X != 8 || few[2].X != 10 || few[2].Y != 1 {
		t.Errorf("thinned cdf: %v", few)
	}
	for i := 1; i < len(few); i++ {
		if few[i].Y <= few[i-1].Y {
			t.Errorf("not increasing: %v", few)
		}
	}
	if cdf(nil, 5) != nil {
		t.Error("cdf of nothing")
	}
}

func TestWriteChart(t *testing.T) {
	var cells []cell
	for _, w := range []workload{mixed, sharedPrefix} {
		for _, load := range []float64{0.5, 0.8} {
			for i, p := range []string{roundRobin, score} {
				c := cell{workload: w, load: load, policy: p}
				for j := range 50 {
					c.ttfts = append(c.ttfts, time.Duration((i+1)*(j+1))*time.Millisecond)
				}
				cells = append(cells, c)
			}
		}
	}
	cells = append(cells, cell{workload: mixed, load: 0.5, policy: leastRequest}) // all failed: no line
	var b bytes.Buffer
	if err := writeChart(&b, cells, []string{roundRobin, leastRequest, score}); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
	}
	for _, want := range []string{"mixed, 50% load", "shared-prefix, 80% load", "round-robin", "score", "TTFT (simulated s)"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	if strings.Contains(svg, "@font-face") {
		t.Error("the chart embeds a font")
	}
	if err := writeChart(&b, nil, nil); err == nil {
		t.Error("a chart of no cells was drawn")
	}
}
