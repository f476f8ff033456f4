package dashboards

import (
	"fmt"
	"strings"
)

// gridWidth is the width of Grafana's dashboard grid.
const gridWidth = 24

var promDatasource = datasourceRef{Type: "prometheus", UID: datasourceVar}

// board lays panels out left to right, top to bottom, and numbers them.
type board struct {
	d      *dashboard
	x, y   int // where the next panel goes
	lineH  int // height of the tallest panel on the current line
	nextID int
}

func newBoard(uid, title, description string, vars ...variable) *board {
	list := append([]variable{{
		Name:    "datasource",
		Label:   "Data source",
		Type:    "datasource",
		Query:   "prometheus",
		Refresh: 1,
		Options: []string{},
	}}, vars...)
	return &board{
		nextID: 1,
		d: &dashboard{
			Annotations: annotations{List: []annotation{{
				BuiltIn:    1,
				Datasource: datasourceRef{Type: "grafana", UID: "-- Grafana --"},
				Enable:     true,
				Hide:       true,
				IconColor:  "rgba(0, 211, 255, 1)",
				Name:       "Annotations & Alerts",
				Type:       "dashboard",
			}}},
			Description:  description,
			Editable:     true,
			GraphTooltip: 1, // shared crosshair
			Links: []link{{
				AsDropdown: true,
				Icon:       "external link",
				KeepTime:   true,
				Tags:       []string{"nemesis"},
				Title:      "Nemesis",
				Type:       "dashboards",
			}},
			Panels:        []*panel{},
			Refresh:       "30s",
			SchemaVersion: schemaVersion,
			Tags:          []string{"nemesis", "keda", "autoscaling"},
			Templating:    templating{List: list},
			Time:          timeRange{From: "now-3h", To: "now"},
			Title:         title,
			UID:           uid,
			Version:       1,
		},
	}
}

// newline moves the cursor below the current line.
func (b *board) newline() {
	if b.x > 0 {
		b.y += b.lineH
	}
	b.x, b.lineH = 0, 0
}

// row starts a new row of panels under a title.
func (b *board) row(title string) {
	b.newline()
	b.d.Panels = append(b.d.Panels, &panel{
		ID: b.id(), Type: "row", Title: title,
		GridPos: gridPos{H: 1, W: gridWidth, X: 0, Y: b.y},
	})
	b.y++
}

// add places p, w columns wide and h high, after the previous panel, or
// on a new line when it does not fit.
func (b *board) add(w, h int, p *panel) {
	if b.x+w > gridWidth {
		b.newline()
	}
	p.ID = b.id()
	p.GridPos = gridPos{H: h, W: w, X: b.x, Y: b.y}
	b.x += w
	b.lineH = max(b.lineH, h)
	b.d.Panels = append(b.d.Panels, p)
}

func (b *board) id() int {
	b.nextID++
	return b.nextID - 1
}

// queryVar is a variable whose values are those of label in the series
// selected by selector; "All" selects every value.
func queryVar(name, label, description, selector, valueLabel string) variable {
	q := fmt.Sprintf("label_values(%s, %s)", selector, valueLabel)
	return variable{
		Name:        name,
		Label:       label,
		Description: description,
		Type:        "query",
		Datasource:  &promDatasource,
		Query:       q,
		Definition:  q,
		Refresh:     2,
		Sort:        1,
		IncludeAll:  true,
		Multi:       true,
		// With All, match everything, not the values listed when the
		// dashboard loaded: series that appear later still show.
		AllValue: ".*",
		Current:  current{Selected: true, Text: []string{"All"}, Value: []string{"$__all"}},
		Options:  []string{},
	}
}

// query is one PromQL query of a panel, with its legend.
type query struct {
	expr, legend string
}

func targets(qs []query) []target {
	ts := make([]target, len(qs))
	for i, q := range qs {
		ts[i] = target{
			Datasource:   promDatasource,
			EditorMode:   "code",
			Expr:         q.expr,
			LegendFormat: q.legend,
			Range:        true,
			RefID:        string(rune('A' + i)),
		}
	}
	return ts
}

func defaults(unit string) fieldDefaults {
	zero := 0.0
	return fieldDefaults{
		Color:      &fieldColor{Mode: "palette-classic"},
		Mappings:   []valueMapping{},
		Min:        &zero,
		Thresholds: thresholds{Mode: "absolute", Steps: []thresholdStep{{Color: "green"}}},
		Unit:       unit,
	}
}

// timeseries is a line chart of qs.
func timeseries(title, description, unit string, qs ...query) *panel {
	d := defaults(unit)
	d.Custom = &timeseriesCustom{
		DrawStyle:         "line",
		FillOpacity:       10,
		LineInterpolation: "linear",
		LineWidth:         1,
		ShowPoints:        "never",
		Stacking:          stacking{Group: "A", Mode: "none"},
	}
	return &panel{
		Type:        "timeseries",
		Title:       title,
		Description: description,
		Datasource:  &promDatasource,
		Targets:     targets(qs),
		FieldConfig: &fieldConfig{Defaults: d, Overrides: []fieldOverride{}},
		Options: &timeseriesOptions{
			Legend:  legend{Calcs: []string{"lastNotNull", "max"}, DisplayMode: "table", Placement: "bottom", ShowLegend: true, SortBy: "Max", SortDesc: true},
			Tooltip: tooltip{Mode: "multi", Sort: "desc"},
		},
	}
}

// steps draws p's lines as steps: for values that change at discrete
// moments, like replica counts.
func (p *panel) steps() *panel {
	p.FieldConfig.Defaults.Custom.(*timeseriesCustom).LineInterpolation = "stepAfter"
	return p
}

// bars draws p's values as bars: for counts per interval.
func (p *panel) bars() *panel {
	c := p.FieldConfig.Defaults.Custom.(*timeseriesCustom)
	c.DrawStyle, c.FillOpacity = "bars", 80
	c.Stacking.Mode = "normal"
	return p
}

// color gives the series whose legend matches the regular expression re
// a fixed color.
func (p *panel) color(re, color string) *panel {
	p.FieldConfig.Overrides = append(p.FieldConfig.Overrides, fieldOverride{
		Matcher:    overrideMatcher{ID: "byRegexp", Options: re},
		Properties: []overrideProperty{{ID: "color", Value: map[string]string{"mode": "fixed", "fixedColor": color}}},
	})
	return p
}

// stat is a single number: the last value of q.
func stat(title, description, unit string, q query, thresholdSteps ...thresholdStep) *panel {
	d := defaults(unit)
	d.Color = &fieldColor{Mode: "thresholds"}
	if len(thresholdSteps) > 0 {
		d.Thresholds.Steps = thresholdSteps
	}
	return &panel{
		Type:        "stat",
		Title:       title,
		Description: description,
		Datasource:  &promDatasource,
		Targets:     targets([]query{q}),
		FieldConfig: &fieldConfig{Defaults: d, Overrides: []fieldOverride{}},
		Options: &statOptions{
			ColorMode:     "value",
			GraphMode:     "area",
			JustifyMode:   "auto",
			Orientation:   "auto",
			ReduceOptions: reduceOptions{Calcs: []string{"lastNotNull"}, Values: false},
			TextMode:      "auto",
		},
	}
}

// redAbove is a threshold: green, then red from v on.
func redAbove(v float64) []thresholdStep {
	return []thresholdStep{{Color: "green"}, {Color: "red", Value: &v}}
}

// stateTimeline shows a 0/1 series per object as bands, named by states.
func stateTimeline(title, description string, q query, off, on mappingValue) *panel {
	d := defaults("")
	d.Color = &fieldColor{Mode: "thresholds"}
	off.Index, on.Index = 0, 1
	d.Mappings = []valueMapping{{Type: "value", Options: map[string]mappingValue{"0": off, "1": on}}}
	d.Custom = &stateTimelineCustom{FillOpacity: 80, LineWidth: 0}
	return &panel{
		Type:        "state-timeline",
		Title:       title,
		Description: description,
		Datasource:  &promDatasource,
		Targets:     targets([]query{q}),
		FieldConfig: &fieldConfig{Defaults: d, Overrides: []fieldOverride{}},
		Options: &stateTimelineOptions{
			AlignValue:  "left",
			Legend:      legend{Calcs: []string{}, DisplayMode: "list", Placement: "bottom", ShowLegend: false},
			MergeValues: true,
			RowHeight:   0.9,
			ShowValue:   "never",
			Tooltip:     tooltip{Mode: "single", Sort: "none"},
		},
	}
}

// heatmap shows the buckets of a Prometheus histogram as they are (q must
// return one series per le), without Grafana recomputing them.
func heatmap(title, description, unit string, q query) *panel {
	ts := targets([]query{q})
	ts[0].Format = "heatmap"
	return &panel{
		Type:        "heatmap",
		Title:       title,
		Description: description,
		Datasource:  &promDatasource,
		Targets:     ts,
		FieldConfig: &fieldConfig{Defaults: fieldDefaults{Mappings: []valueMapping{}, Thresholds: thresholds{Mode: "absolute", Steps: []thresholdStep{{Color: "green"}}}}, Overrides: []fieldOverride{}},
		Options: &heatmapOptions{
			Calculate:    false,
			CellGap:      1,
			Color:        heatmapColor{Exponent: 0.5, Fill: "dark-orange", Mode: "scheme", Scale: "exponential", Scheme: "Oranges", Steps: 64},
			FilterValues: heatmapFilter{Le: 1e-9},
			Legend:       heatmapLegend{Show: true},
			RowsFrame:    heatmapRowsFrame{Layout: "auto"},
			Tooltip:      heatmapTooltip{Mode: "single", ShowColorScale: false, YHistogram: true},
			YAxis:        heatmapYAxis{AxisPlacement: "left", Unit: unit},
			Exemplars:    heatmapExemplars{Color: "rgba(255,0,255,0.7)"},
			CellValues:   heatmapCellValues{Unit: "short"},
			ShowValue:    "never",
		},
	}
}

// quantiles are the 50th, 90th and 99th percentiles of the histogram
// whose _bucket series sel selects, rated over $__rate_interval and
// grouped by the labels of by (which may be empty).
func quantiles(bucketSel string, by []string, legend string) []query {
	group := strings.Join(append([]string{"le"}, by...), ", ")
	var qs []query
	for _, q := range []struct{ v, name string }{{"0.5", "p50"}, {"0.9", "p90"}, {"0.99", "p99"}} {
		qs = append(qs, query{
			expr:   fmt.Sprintf("histogram_quantile(%s, sum by (%s) (rate(%s[$__rate_interval])))", q.v, group, bucketSel),
			legend: strings.TrimSpace(q.name + " " + legend),
		})
	}
	return qs
}
