package dashboards

import (
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/heatmap"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// The panels of both dashboards share one look: these helpers set it, and
// the dashboards in scaler.go and activator.go only say what each panel
// shows, how big it is (Span and Height) and how it differs. The SDK's
// dashboard builder places each panel right of the previous one and
// starts a new line once a line is full, so the widths of a line must
// add up to the grid's 24 columns (a line that overflows puts a panel off
// the grid, which TestDashboardShape reports); a row starts a new line.

// query is one PromQL query of a panel, with its legend.
type query struct {
	expr, legend string
}

// promDatasource is the datasource of every panel, query and query
// variable: the ${datasource} variable, so that the dashboards import
// into any Grafana whatever its Prometheus data source is called.
func promDatasource() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}
}

func targets(qs []query) []cog.Builder[variants.Dataquery] {
	ts := make([]cog.Builder[variants.Dataquery], len(qs))
	for i, q := range qs {
		ts[i] = target(q, string(rune('A'+i)))
	}
	return ts
}

func target(q query, refID string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().
		Datasource(promDatasource()).
		EditorMode(prometheus.QueryEditorModeCode).
		Expr(q.expr).
		LegendFormat(q.legend).
		Range().
		RefId(refID)
}

// greenBase is a single green threshold: the panel has no alarm level.
func greenBase() *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().
		Mode(dashboard.ThresholdsModeAbsolute).
		Steps([]dashboard.Threshold{{Color: "green"}})
}

// redAbove is a threshold: green, then red from v on.
func redAbove(v float64) []dashboard.Threshold {
	return []dashboard.Threshold{{Color: "green"}, {Color: "red", Value: &v}}
}

func colorMode(mode dashboard.FieldColorModeId) *dashboard.FieldColorBuilder {
	return dashboard.NewFieldColorBuilder().Mode(mode)
}

// graphPanel is a line chart of qs.
func graphPanel(title, description, unit string, qs ...query) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(promDatasource()).
		Targets(targets(qs)).
		ColorScheme(colorMode(dashboard.FieldColorModeIdPaletteClassic)).
		Min(0).
		Thresholds(greenBase()).
		Unit(unit).
		DrawStyle(common.GraphDrawStyleLine).
		FillOpacity(10).
		LineInterpolation(common.LineInterpolationLinear).
		LineWidth(1).
		ShowPoints(common.VisibilityModeNever).
		SpanNulls(common.BoolOrFloat64{Bool: cog.ToPtr(false)}).
		Stacking(common.NewStackingConfigBuilder().Group("A").Mode(common.StackingModeNone)).
		Legend(common.NewVizLegendOptionsBuilder().
			Calcs([]string{"lastNotNull", "max"}).
			DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementBottom).
			ShowLegend(true).
			SortBy("Max").
			SortDesc(true)).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderDescending))
}

// steps draws p's lines as steps: for values that change at discrete
// moments, like replica counts.
func steps(p *timeseries.PanelBuilder) *timeseries.PanelBuilder {
	return p.LineInterpolation(common.LineInterpolationStepAfter)
}

// bars draws p's values as stacked bars: for counts per interval.
func bars(p *timeseries.PanelBuilder) *timeseries.PanelBuilder {
	return p.DrawStyle(common.GraphDrawStyleBars).
		FillOpacity(80).
		Stacking(common.NewStackingConfigBuilder().Group("A").Mode(common.StackingModeNormal))
}

// fixedColor is the override that draws the matched series in color.
func fixedColor(color string) []dashboard.DynamicConfigValue {
	return []dashboard.DynamicConfigValue{{
		Id:    "color",
		Value: map[string]string{"mode": string(dashboard.FieldColorModeIdFixed), "fixedColor": color},
	}}
}

// statPanel is a single number: the last value of q, colored by
// thresholds (green alone when there are none).
func statPanel(title, description, unit string, q query, thresholds ...dashboard.Threshold) *stat.PanelBuilder {
	th := greenBase()
	if len(thresholds) > 0 {
		th.Steps(thresholds)
	}
	return stat.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(promDatasource()).
		Targets(targets([]query{q})).
		ColorScheme(colorMode(dashboard.FieldColorModeIdThresholds)).
		Min(0).
		Thresholds(th).
		Unit(unit).
		ColorMode(common.BigValueColorModeValue).
		GraphMode(common.BigValueGraphModeArea).
		JustifyMode(common.BigValueJustifyModeAuto).
		Orientation(common.VizOrientationAuto).
		ReduceOptions(common.NewReduceDataOptionsBuilder().
			Calcs([]string{"lastNotNull"}).
			Fields("").
			Values(false)).
		TextMode(common.BigValueTextModeAuto)
}

// state is how a timeline shows one value of a 0/1 series.
type state struct {
	text, color string
}

// timelinePanel shows a 0/1 series per object as bands, named by states.
func timelinePanel(title, description string, q query, off, on state) *statetimeline.PanelBuilder {
	result := func(s state, index int32) dashboard.ValueMappingResult {
		return dashboard.ValueMappingResult{Text: &s.text, Color: &s.color, Index: &index}
	}
	return statetimeline.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(promDatasource()).
		Targets(targets([]query{q})).
		ColorScheme(colorMode(dashboard.FieldColorModeIdThresholds)).
		Min(0).
		Thresholds(greenBase()).
		Mappings([]dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{
			Type:    dashboard.MappingTypeValueToText,
			Options: map[string]dashboard.ValueMappingResult{"0": result(off, 0), "1": result(on, 1)},
		}}}).
		FillOpacity(80).
		LineWidth(0).
		AlignValue(common.TimelineValueAlignmentLeft).
		Legend(common.NewVizLegendOptionsBuilder().
			Calcs([]string{}).
			DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom).
			ShowLegend(false)).
		MergeValues(true).
		RowHeight(0.9).
		ShowValue(common.VisibilityModeNever).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeSingle).
			Sort(common.SortOrderNone))
}

// heatmapPanel shows the buckets of a Prometheus histogram as they are (q
// must return one series per le), without Grafana recomputing them.
func heatmapPanel(title, description, unit string, q query) *heatmap.PanelBuilder {
	return heatmap.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(promDatasource()).
		WithTarget(target(q, "A").Format(prometheus.PromQueryFormatHeatmap)).
		Thresholds(greenBase()).
		Calculate(false).
		CellGap(1).
		Color(heatmap.NewHeatmapColorOptionsBuilder().
			Exponent(0.5).
			Fill("dark-orange").
			Mode(heatmap.HeatmapColorModeScheme).
			Reverse(false).
			Scale(heatmap.HeatmapColorScaleExponential).
			Scheme("Oranges").
			Steps(64)).
		FilterValues(heatmap.NewFilterValueRangeBuilder().Le(1e-9)).
		ShowLegend().
		RowsFrame(heatmap.NewRowsHeatmapOptionsBuilder().Layout(common.HeatmapCellLayoutAuto)).
		Tooltip(heatmap.NewHeatmapTooltipBuilder().
			Mode(common.TooltipDisplayModeSingle).
			ShowColorScale(false).
			YHistogram(true)).
		YAxis(heatmap.NewYAxisConfigBuilder().
			AxisPlacement(common.AxisPlacementLeft).
			Unit(unit)).
		ExemplarsColor("rgba(255,0,255,0.7)").
		CellValues(heatmap.NewCellValuesBuilder().Unit(units.Short)).
		ShowValue(common.VisibilityModeNever)
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
