package statuspage

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/k8s-nemesis/nemesis/externalscaler"
)

// The chart's drawing area, in SVG user units.
const (
	chartWidth  = 860
	chartHeight = 220
	chartLeft   = 40 // room for the replica ticks
	chartRight  = 12
	chartTop    = 10
	chartBottom = 24 // room for the time ticks
)

// chart is a ScaledObject's decisions over time: one step line per rule
// set, the live one solid and the shadows dashed over it, one dot per
// decision linking to its record.
type chart struct {
	Width, Height int
	Series        []series
	YTicks        []tick
	XTicks        []tick
	// Plot is the drawing area's corners.
	X0, Y0, X1, Y1 float64
}

type series struct {
	RuleSet string
	Shadow  bool
	// Class picks the line's colour and dash.
	Class string
	Path  string
	Dots  []dot
}

type dot struct {
	X, Y  float64
	ID    string
	Title string
	// Class marks a decision without an answer (error) or a held one.
	Class string
}

type tick struct {
	At    float64
	Label string
	// Anchor is the label's text-anchor: the end ticks stay inside.
	Anchor string
}

// newChart draws recs, the records of one ScaledObject in any order; nil
// when there are none.
func newChart(recs []externalscaler.Record) *chart {
	if len(recs) == 0 {
		return nil
	}
	type key struct {
		ruleSet string
		shadow  bool
	}
	groups := map[key][]externalscaler.Record{}
	t0, t1 := recs[0].Time, recs[0].Time
	var top int64 = 1
	for _, r := range recs {
		k := key{r.RuleSet, r.Shadow}
		groups[k] = append(groups[k], r)
		if r.Time.Before(t0) {
			t0 = r.Time
		}
		if r.Time.After(t1) {
			t1 = r.Time
		}
		top = max(top, r.Replicas)
	}
	c := &chart{Width: chartWidth, Height: chartHeight, X0: chartLeft, Y0: chartTop, X1: chartWidth - chartRight, Y1: chartHeight - chartBottom}
	span := t1.Sub(t0)
	x := func(t time.Time) float64 {
		if span <= 0 {
			return (c.X0 + c.X1) / 2
		}
		return c.X0 + (c.X1-c.X0)*float64(t.Sub(t0))/float64(span)
	}
	step := niceStep(top)
	top = (top + step - 1) / step * step
	y := func(n int64) float64 { return c.Y1 - (c.Y1-c.Y0)*float64(n)/float64(top) }
	for n := int64(0); n <= top; n += step {
		c.YTicks = append(c.YTicks, tick{At: y(n), Label: strconv.FormatInt(n, 10), Anchor: "end"})
	}
	for i := range 5 {
		t := t0.Add(span * time.Duration(i) / 4)
		anchor := [...]string{"start", "middle", "middle", "middle", "end"}[i]
		if span <= 0 {
			anchor = "middle"
		}
		c.XTicks = append(c.XTicks, tick{At: x(t), Label: t.UTC().Format("15:04:05"), Anchor: anchor})
		if span <= 0 {
			break
		}
	}

	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	// The live rule set first, so that the shadows are drawn over it.
	slices.SortFunc(keys, func(a, b key) int { return cmp.Or(boolCmp(a.shadow, b.shadow), cmp.Compare(a.ruleSet, b.ruleSet)) })
	shadows := 0
	for _, k := range keys {
		g := groups[k]
		slices.SortFunc(g, func(a, b externalscaler.Record) int { return a.Time.Compare(b.Time) })
		s := series{RuleSet: k.ruleSet, Shadow: k.shadow, Class: "live"}
		if k.shadow {
			shadows++
			s.Class = fmt.Sprintf("shadow shadow-%d", (shadows-1)%4)
		}
		var path strings.Builder
		for i, r := range g {
			px, py := x(r.Time), y(r.Replicas)
			if i == 0 {
				fmt.Fprintf(&path, "M%.1f %.1f", px, py)
			} else {
				// A step: the count holds until the next decision.
				fmt.Fprintf(&path, "H%.1f V%.1f", px, py)
			}
			d := dot{X: px, Y: py, ID: recordID(r), Title: r.Time.UTC().Format("15:04:05") + " " + r.RuleSet + ": " + r.Explanation}
			switch {
			case r.Error != "" && !r.Holding:
				d.Class = "error"
			case r.Holding:
				d.Class = "holding"
			}
			s.Dots = append(s.Dots, d)
		}
		s.Path = path.String()
		c.Series = append(c.Series, s)
	}
	return c
}

// niceStep is a tick step for replica counts up to top: about 5 ticks at
// 1, 2 or 5 times a power of ten.
func niceStep(top int64) int64 {
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if s := m * p; top/s <= 5 {
				return s
			}
		}
	}
}
