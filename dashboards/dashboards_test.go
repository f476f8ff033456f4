package dashboards

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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

func load(t *testing.T, file string) *dashboard {
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
	// Strict, so that a field the model does not know (a hand edit, a
	// misspelling) fails rather than passes unchecked.
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return &d
}

// TestDashboardShape checks what makes a dashboard portable between
// Grafana instances: no fixed id, a stable uid, every query on the
// ${datasource} variable, and a layout on the grid.
func TestDashboardShape(t *testing.T) {
	uids := map[string]string{}
	for _, c := range committed {
		t.Run(c.file, func(t *testing.T) {
			d := load(t, c.file)
			if d.UID == "" || len(d.UID) > 40 {
				t.Errorf("uid %q: want a fixed uid of 1 to 40 characters", d.UID)
			}
			if prev, ok := uids[d.UID]; ok {
				t.Errorf("uid %q is also %s's", d.UID, prev)
			}
			uids[d.UID] = c.file
			if d.SchemaVersion < 39 {
				t.Errorf("schemaVersion %d: want 39 (Grafana 11) or later", d.SchemaVersion)
			}
			if d.Title == "" {
				t.Error("no title")
			}

			var names []string
			for _, v := range d.Templating.List {
				names = append(names, v.Name)
				switch v.Type {
				case "datasource":
					if v.Query != "prometheus" {
						t.Errorf("variable %s: a datasource variable of type %q, want prometheus", v.Name, v.Query)
					}
				case "query":
					if v.Datasource == nil || *v.Datasource != promDatasource {
						t.Errorf("variable %s: datasource %v, want %v", v.Name, v.Datasource, promDatasource)
					}
				default:
					t.Errorf("variable %s: unexpected type %q", v.Name, v.Type)
				}
			}
			if len(names) == 0 || names[0] != "datasource" || d.Templating.List[0].Type != "datasource" {
				t.Errorf("variables %v: the first must be the datasource variable named datasource", names)
			}
			for _, want := range c.wantVars {
				if !slices.Contains(names, want) {
					t.Errorf("no %s variable (variables: %v)", want, names)
				}
			}

			ids := map[int]bool{}
			var boxes []gridPos
			for _, p := range d.Panels {
				where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
				if p.ID <= 0 || ids[p.ID] {
					t.Errorf("%s: id not unique and positive", where)
				}
				ids[p.ID] = true
				g := p.GridPos
				if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > gridWidth {
					t.Errorf("%s: gridPos %+v is off the %d-column grid", where, g, gridWidth)
				}
				for _, o := range boxes {
					if g.X < o.X+o.W && o.X < g.X+g.W && g.Y < o.Y+o.H && o.Y < g.Y+g.H {
						t.Errorf("%s: gridPos %+v overlaps %+v", where, g, o)
					}
				}
				boxes = append(boxes, g)
				if p.Type == "row" {
					continue
				}
				if p.Title == "" || p.Description == "" {
					t.Errorf("%s: every panel needs a title and a description", where)
				}
				if p.Datasource == nil || *p.Datasource != promDatasource {
					t.Errorf("%s: datasource %v, want %v", where, p.Datasource, promDatasource)
				}
				if len(p.Targets) == 0 {
					t.Errorf("%s: no query", where)
				}
				refs := map[string]bool{}
				for _, tg := range p.Targets {
					if tg.Datasource != promDatasource {
						t.Errorf("%s, query %s: datasource %v, want %v", where, tg.RefID, tg.Datasource, promDatasource)
					}
					if tg.RefID == "" || refs[tg.RefID] {
						t.Errorf("%s: refId %q empty or repeated", where, tg.RefID)
					}
					refs[tg.RefID] = true
				}
			}
		})
	}
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
				if v.Type != "query" {
					continue
				}
				q, err := expand(v.Query, defined, used)
				if err == nil {
					err = chk.labelValues(q)
				}
				if err != nil {
					t.Errorf("variable %s: %q: %v", v.Name, v.Query, err)
				}
				if v.Definition != "" && v.Definition != v.Query {
					t.Errorf("variable %s: definition %q differs from query %q", v.Name, v.Definition, v.Query)
				}
			}
			for _, p := range d.Panels {
				for _, tg := range p.Targets {
					where := fmt.Sprintf("panel %q, query %s", p.Title, tg.RefID)
					expr, err := expand(tg.Expr, defined, used)
					if err != nil {
						t.Errorf("%s: %q: %v", where, tg.Expr, err)
						continue
					}
					result, err := chk.expr(expr)
					if err == nil {
						err = legendLabels(tg.LegendFormat, result)
					}
					if err == nil && tg.Format == "heatmap" && !result["le"] {
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
