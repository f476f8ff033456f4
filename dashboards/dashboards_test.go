package dashboards

//lint:file-ignore SA1019 the SDK deprecates its classic dashboard model for dashboardv2, which Grafana imports only with dynamic dashboards switched on

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/heatmap"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

var update = flag.Bool("update", false, "rewrite the committed dashboards from the generator")

// TestCommittedDashboardsAreGenerated fails when a committed dashboard
// differs from what the generator writes, or when dashboards/ holds a
// dashboard the generator does not write.
func TestCommittedDashboardsAreGenerated(t *testing.T) {
	files, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
		if *update {
			if err := os.WriteFile(f.Name, f.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		committed, err := os.ReadFile(f.Name)
		if err != nil {
			t.Errorf("%v: run go generate ./dashboards", err)
			continue
		}
		if !bytes.Equal(committed, f.Data) {
			t.Errorf("%s is stale (%s): run go generate ./dashboards, or go test ./dashboards -update", f.Name, firstDifference(committed, f.Data))
		}
	}
	present, err := filepath.Glob("*.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range present {
		if !slices.Contains(names, p) {
			t.Errorf("%s is not generated: delete it, or add it to the generator", p)
		}
	}
}

func firstDifference(committed, generated []byte) string {
	a, b := strings.Split(string(committed), "\n"), strings.Split(string(generated), "\n")
	for i := range max(len(a), len(b)) {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return fmt.Sprintf("line %d: committed %q, generated %q", i+1, x, y)
		}
	}
	return "same lines"
}

// committed are the dashboard files as Grafana imports them, with the
// registry of the binary each one watches.
var committed = []struct {
	file     string
	families func(*testing.T) map[string]family
	// wantVars are variables the dashboard must offer.
	wantVars []string
}{
	{"nemesis-scaler.json", scalerFamilies, []string{"datasource", "namespace", "scaled_object"}},
	{"nemesis-activator.json", activatorFamilies, []string{"datasource", "namespace", "route"}},
}

// registerVariants teaches the SDK's decoder the panel and query types
// the dashboards use, so that it reads their options and queries into
// the SDK's types (which load's round trip then holds field by field)
// instead of keeping them as untyped maps. The SDK keeps them in one
// registry of its own; registering is idempotent.
func registerVariants() {
	rt := cog.NewRuntime()
	for _, v := range []variants.PanelcfgConfig{
		timeseries.VariantConfig(), stat.VariantConfig(), statetimeline.VariantConfig(), heatmap.VariantConfig(),
	} {
		rt.RegisterPanelcfgVariant(v)
	}
	rt.RegisterDataqueryVariant(prometheus.VariantConfig())
}

func load(t *testing.T, file string) *dashboard.Dashboard {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if _, ok := raw["id"]; ok {
		t.Fatalf("%s has an id: Grafana assigns it per instance, leave it out", file)
	}
	// Strict, so that a field the SDK's model does not know (a hand
	// edit, a misspelling) fails rather than passes unchecked: the file
	// must be exactly what the model makes of it. The SDK's own strict
	// decoder cannot do this: in v0.0.22 its UnmarshalJSONStrict methods
	// return their empty error list as a non-nil error, and the callers
	// inside it then drop every panel, query and panel option.
	registerVariants()
	var d dashboard.Dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	again, err := json.Marshal(d)
	if err != nil {
		t.Fatalf("%s: encoding it again: %v", file, err)
	}
	var decoded any
	if err := json.Unmarshal(again, &decoded); err != nil {
		t.Fatal(err)
	}
	if diff := treeDifference(raw, decoded, ""); diff != "" {
		t.Fatalf("%s: %s: the SDK's dashboard model does not hold it as written", file, diff)
	}
	return &d
}

// treeDifference is the first difference between two decoded JSON
// values, with its path, or "" when they are equal.
func treeDifference(want, got any, path string) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: an object, now %T", path, got)
		}
		for _, k := range slices.Sorted(maps.Keys(w)) {
			if _, ok := g[k]; !ok {
				return fmt.Sprintf("%s.%s: lost", path, k)
			}
			if d := treeDifference(w[k], g[k], path+"."+k); d != "" {
				return d
			}
		}
		for _, k := range slices.Sorted(maps.Keys(g)) {
			if _, ok := w[k]; !ok {
				return fmt.Sprintf("%s.%s: added", path, k)
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s: %d elements, now %v", path, len(w), got)
		}
		for i := range w {
			if d := treeDifference(w[i], g[i], fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
		return ""
	}
	if want != got {
		return fmt.Sprintf("%s: %v, now %v", path, want, got)
	}
	return ""
}

// isPromDatasource tells whether ref is the ${datasource} variable.
func isPromDatasource(ref *common.DataSourceRef) bool {
	return ref != nil && ref.Equals(promDatasource())
}

// refString shows a datasource reference in an error.
func refString(ref *common.DataSourceRef) string {
	if ref == nil {
		return "none"
	}
	return fmt.Sprintf("{type %q, uid %q}", deref(ref.Type), deref(ref.Uid))
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// promTargets are the queries of p, each of which must be a Prometheus
// query.
func promTargets(t *testing.T, where string, p *dashboard.Panel) []*prometheus.Dataquery {
	t.Helper()
	var qs []*prometheus.Dataquery
	for i, tg := range p.Targets {
		q, ok := tg.(*prometheus.Dataquery)
		if !ok {
			t.Errorf("%s, query %d: a %T, want a Prometheus query", where, i, tg)
			continue
		}
		qs = append(qs, q)
	}
	return qs
}

// TestDashboardShape checks what makes a dashboard portable between
// Grafana instances: no fixed id, a stable uid, every query on the
// ${datasource} variable, and a layout on the grid.
func TestDashboardShape(t *testing.T) {
	uids := map[string]string{}
	for _, c := range committed {
		t.Run(c.file, func(t *testing.T) {
			d := load(t, c.file)
			uid := deref(d.Uid)
			if uid == "" || len(uid) > 40 {
				t.Errorf("uid %q: want a fixed uid of 1 to 40 characters", uid)
			}
			if prev, ok := uids[uid]; ok {
				t.Errorf("uid %q is also %s's", uid, prev)
			}
			uids[uid] = c.file
			if d.SchemaVersion < 39 {
				t.Errorf("schemaVersion %d: want 39 (Grafana 11) or later", d.SchemaVersion)
			}
			if deref(d.Title) == "" {
				t.Error("no title")
			}

			var names []string
			for _, v := range d.Templating.List {
				names = append(names, v.Name)
				switch v.Type {
				case dashboard.VariableTypeDatasource:
					if q := variableQuery(v); q != "prometheus" {
						t.Errorf("variable %s: a datasource variable of type %q, want prometheus", v.Name, q)
					}
				case dashboard.VariableTypeQuery:
					if !isPromDatasource(v.Datasource) {
						t.Errorf("variable %s: datasource %s, want %s", v.Name, refString(v.Datasource), refString(new(promDatasource())))
					}
				default:
					t.Errorf("variable %s: unexpected type %q", v.Name, v.Type)
				}
			}
			if len(names) == 0 || names[0] != "datasource" || d.Templating.List[0].Type != dashboard.VariableTypeDatasource {
				t.Errorf("variables %v: the first must be the datasource variable named datasource", names)
			}
			for _, want := range c.wantVars {
				if !slices.Contains(names, want) {
					t.Errorf("no %s variable (variables: %v)", want, names)
				}
			}

			ids := map[uint32]bool{}
			var boxes []dashboard.GridPos
			for i, pr := range d.Panels {
				var (
					id      uint32
					title   string
					gridPos *dashboard.GridPos
				)
				switch {
				case pr.RowPanel != nil:
					id, title, gridPos = pr.RowPanel.Id, deref(pr.RowPanel.Title), pr.RowPanel.GridPos
					// A collapsed row holds its panels inside it, out
					// of sight until opened; the dashboards open with
					// every panel shown.
					if pr.RowPanel.Collapsed || len(pr.RowPanel.Panels) > 0 {
						t.Errorf("row %q: collapsed %v with %d panels inside, want an open row followed by its panels", title, pr.RowPanel.Collapsed, len(pr.RowPanel.Panels))
					}
				case pr.Panel != nil:
					id, title, gridPos = deref(pr.Panel.Id), deref(pr.Panel.Title), pr.Panel.GridPos
				default:
					t.Errorf("panel %d: neither a panel nor a row", i)
					continue
				}
				where := fmt.Sprintf("panel %d %q", id, title)
				if id == 0 || ids[id] {
					t.Errorf("%s: id not unique and positive", where)
				}
				ids[id] = true
				if gridPos == nil {
					t.Errorf("%s: no gridPos", where)
					continue
				}
				g := *gridPos
				if g.W == 0 || g.H == 0 || g.X+g.W > gridWidth {
					t.Errorf("%s: gridPos %+v is off the %d-column grid", where, g, gridWidth)
				}
				for _, o := range boxes {
					if g.X < o.X+o.W && o.X < g.X+g.W && g.Y < o.Y+o.H && o.Y < g.Y+g.H {
						t.Errorf("%s: gridPos %+v overlaps %+v", where, g, o)
					}
				}
				boxes = append(boxes, g)
				p := pr.Panel
				if p == nil {
					continue
				}
				if deref(p.Title) == "" || deref(p.Description) == "" {
					t.Errorf("%s: every panel needs a title and a description", where)
				}
				if !isPromDatasource(p.Datasource) {
					t.Errorf("%s: datasource %s, want %s", where, refString(p.Datasource), refString(new(promDatasource())))
				}
				if len(p.Targets) == 0 {
					t.Errorf("%s: no query", where)
				}
				refs := map[string]bool{}
				for _, tg := range promTargets(t, where, p) {
					ref := deref(tg.RefId)
					if !isPromDatasource(tg.Datasource) {
						t.Errorf("%s, query %s: datasource %s, want %s", where, ref, refString(tg.Datasource), refString(new(promDatasource())))
					}
					if ref == "" || refs[ref] {
						t.Errorf("%s: refId %q empty or repeated", where, ref)
					}
					refs[ref] = true
				}
			}
		})
	}
}

// gridWidth is the width of Grafana's dashboard grid.
const gridWidth = 24

// variableQuery is the query of v as a string: a datasource variable's
// plugin type, a query variable's PromQL.
func variableQuery(v dashboard.VariableModel) string {
	if v.Query == nil {
		return ""
	}
	return deref(v.Query.String)
}

// TestQueriesNameExportedMetrics parses every query of the committed
// dashboards as PromQL, Grafana's variables replaced, and checks each
// metric, label and legend against the registry of the binary the
// dashboard watches.
func TestQueriesNameExportedMetrics(t *testing.T) {
	for _, c := range committed {
		t.Run(c.file, func(t *testing.T) {
			d := load(t, c.file)
			chk := newChecker(c.families(t))
			var defined []string
			for _, v := range d.Templating.List {
				defined = append(defined, v.Name)
			}
			used := map[string]bool{}
			for _, v := range d.Templating.List {
				if v.Type != dashboard.VariableTypeQuery {
					continue
				}
				query := variableQuery(v)
				q, err := expand(query, defined, used)
				if err == nil {
					err = chk.labelValues(q)
				}
				if err != nil {
					t.Errorf("variable %s: %q: %v", v.Name, query, err)
				}
				if def := deref(v.Definition); def != "" && def != query {
					t.Errorf("variable %s: definition %q differs from query %q", v.Name, def, query)
				}
			}
			// Every panel, those inside a collapsed row included, so
			// that none escapes the check.
			var panels []dashboard.Panel
			for _, pr := range d.Panels {
				switch {
				case pr.Panel != nil:
					panels = append(panels, *pr.Panel)
				case pr.RowPanel != nil:
					panels = append(panels, pr.RowPanel.Panels...)
				}
			}
			for _, p := range panels {
				for _, tg := range promTargets(t, fmt.Sprintf("panel %q", deref(p.Title)), &p) {
					where := fmt.Sprintf("panel %q, query %s", deref(p.Title), deref(tg.RefId))
					expr, err := expand(tg.Expr, defined, used)
					if err != nil {
						t.Errorf("%s: %q: %v", where, tg.Expr, err)
						continue
					}
					result, err := chk.expr(expr)
					if err == nil {
						err = legendLabels(deref(tg.LegendFormat), result)
					}
					if err == nil && deref(tg.Format) == prometheus.PromQueryFormatHeatmap && !result["le"] {
						err = fmt.Errorf("a heatmap query must return one series per le, its result has %s", result)
					}
					if err != nil {
						t.Errorf("%s: %q: %v", where, tg.Expr, err)
					}
				}
			}
			// A variable no query uses filters nothing: it misleads.
			for _, name := range defined {
				if !used[name] && name != "datasource" {
					t.Errorf("variable %s is used by no query", name)
				}
			}
		})
	}
}
