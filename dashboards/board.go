package dashboards

//lint:file-ignore SA1019 the SDK deprecates its classic dashboard model for dashboardv2, which Grafana imports only with dynamic dashboards switched on

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// newDashboard is a dashboard with what both share: the ${datasource}
// variable first, then vars; Grafana's built-in annotations; a link to the
// other Nemesis dashboards; a shared crosshair.
func newDashboard(uid, title, description string, vars ...cog.Builder[dashboard.VariableModel]) *dashboard.DashboardBuilder {
	ds := dashboard.NewDatasourceVariableBuilder("datasource").
		Label("Data source").
		Type("prometheus")
	return dashboard.NewDashboardBuilder(title).
		// The uid is fixed so that links and provisioning survive a
		// re-import. There is deliberately no id: Grafana assigns it
		// per instance.
		Uid(uid).
		Description(description).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Annotation(dashboard.NewAnnotationQueryBuilder().
			BuiltIn(1).
			Datasource(common.DataSourceRef{Type: cog.ToPtr("grafana"), Uid: cog.ToPtr("-- Grafana --")}).
			Enable(true).
			Hide(true).
			IconColor("rgba(0, 211, 255, 1)").
			Name("Annotations & Alerts").
			Type("dashboard")).
		Link(dashboard.NewDashboardLinkBuilder("Nemesis").
			AsDropdown(true).
			Icon("external link").
			KeepTime(true).
			Tags([]string{"nemesis"}).
			Type(dashboard.DashboardLinkTypeDashboards)).
		Refresh("30s").
		Tags([]string{"nemesis", "keda", "autoscaling"}).
		Time("now-3h", "now").
		// Empty: each viewer's own time zone preference.
		Timezone("").
		Version(1).
		Variables(append([]cog.Builder[dashboard.VariableModel]{ds}, vars...))
}

// queryVar is a variable whose values are those of label in the series
// selected by selector; "All" selects every value.
func queryVar(name, label, description, selector, valueLabel string) *dashboard.QueryVariableBuilder {
	q := fmt.Sprintf("label_values(%s, %s)", selector, valueLabel)
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Description(description).
		Datasource(promDatasource()).
		Query(dashboard.StringOrMap{String: &q}).
		Definition(q).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		IncludeAll(true).
		Multi(true).
		// With All, match everything, not the values listed when the
		// dashboard loaded: series that appear later still show.
		AllValue(".*").
		Current(dashboard.VariableOption{
			Selected: cog.ToPtr(true),
			Text:     dashboard.StringOrArrayOfString{ArrayOfString: []string{"All"}},
			Value:    dashboard.StringOrArrayOfString{ArrayOfString: []string{"$__all"}},
		})
}

// build builds b and numbers its panels, rows included, from 1 in the
// order they were added: the SDK leaves panel ids to the caller, and
// Grafana needs them unique within a dashboard.
func build(b *dashboard.DashboardBuilder) (dashboard.Dashboard, error) {
	d, err := b.Build()
	if err != nil {
		return d, err
	}
	for i, p := range d.Panels {
		id := uint32(i + 1)
		switch {
		case p.Panel != nil:
			p.Panel.Id = &id
		case p.RowPanel != nil:
			p.RowPanel.Id = id
		}
	}
	// The SDK (v0.0.22) gives every link and annotation the placement
	// inControlsMenu, which Grafana 12.4 and later take as "hide it in
	// the controls menu"; without a placement they show above the
	// panels, as on any other Grafana.
	for i := range d.Links {
		d.Links[i].Placement = nil
	}
	for i := range d.Annotations.List {
		d.Annotations.List[i].Placement = nil
	}
	return d, nil
}
