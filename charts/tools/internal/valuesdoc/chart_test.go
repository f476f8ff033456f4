package valuesdoc

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the values table of charts/nemesis/README.md from values.yaml")

const chartDir = "../../../nemesis"

// TestChartREADME keeps the chart's README in step with values.yaml: every
// key is documented, and the README's table lists exactly those keys with
// the same defaults and descriptions. -update rewrites the table.
func TestChartREADME(t *testing.T) {
	values, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := Parse(values)
	if err != nil {
		t.Fatalf("values.yaml:\n%v", err)
	}
	readmePath := filepath.Join(chartDir, "README.md")
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	table := Table(rows)
	if *update {
		out, err := Splice(string(readme), table)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(readmePath, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := Extract(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	if err := Compare(have, rows); err != nil {
		t.Errorf("%v\n(cd charts/tools && go test ./internal/valuesdoc -update rewrites the table)", err)
	}
}

// TestChartSchema checks that values.schema.json describes the keys of
// values.yaml: every documented key is a property of the schema, and every
// property of the schema is a key of values.yaml (or below a documented
// one), so that the schema's additionalProperties: false never refuses a
// documented key and never allows an undocumented one.
func TestChartSchema(t *testing.T) {
	values, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := Parse(values)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	defs, _ := schema["definitions"].(map[string]any)
	props := map[string]bool{}
	var walk func(node map[string]any, prefix string)
	walk = func(node map[string]any, prefix string) {
		if ref, ok := node["$ref"].(string); ok {
			if def, ok := defs[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any); ok {
				node = def
			}
		}
		if node["additionalProperties"] != false {
			return // a free-form map (labels, resources): its keys are the user's
		}
		p, _ := node["properties"].(map[string]any)
		for name, sub := range p {
			key := name
			if prefix != "" {
				key = prefix + "." + name
			}
			props[key] = true
			if m, ok := sub.(map[string]any); ok {
				walk(m, key)
			}
		}
	}
	walk(schema, "")

	documented := map[string]bool{}
	for _, r := range rows {
		documented[r.Key] = true
		if !props[r.Key] {
			t.Errorf("values.yaml:%d: %s is not in values.schema.json", r.Line, r.Key)
		}
	}
	// A schema property must be documented, lie below a documented key,
	// or be a group of documented keys.
	var extra []string
	for p := range props {
		if p == "global" { // passed down by parent charts
			continue
		}
		ok := documented[p]
		for k := range documented {
			if strings.HasPrefix(p, k+".") || strings.HasPrefix(k, p+".") {
				ok = true
			}
		}
		if !ok {
			extra = append(extra, p)
		}
	}
	slices.Sort(extra)
	for _, p := range extra {
		t.Errorf("values.schema.json: %s is no key of values.yaml", p)
	}
}
