package rules

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// FuzzParse feeds arbitrary rule files to the loader: it must never panic,
// and every problem it reports must carry a position.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sets, err := Parse("fuzz.yaml", data)
		if err != nil {
			if sets != nil {
				t.Fatal("rule sets returned along with errors")
			}
			for _, e := range Errors(err) {
				if e.File != "fuzz.yaml" || e.Line < 1 || e.Column < 1 {
					t.Fatalf("error without a position: %q", e.Error())
				}
			}
			if len(Errors(err)) == 0 {
				t.Fatalf("error of another kind: %v", err)
			}
			return
		}
		for _, rs := range sets {
			results := make([]Result, len(rs.Queries))
			for i := range results {
				results[i] = Result{Values: []float64{1}}
			}
			_, _ = rs.Evaluate(results) // must not panic
		}
	})
}

// FuzzRender checks that no metadata value can change a query: the rendered
// query must parse, and its matchers must hold exactly the value given.
func FuzzRender(f *testing.F) {
	rs := mustParse(f, `
ruleSets:
- name: r
  queries:
    q: sum(x{namespace="$namespace", a="$v", b='$v', c=~"${v:regex}"})
  replicas: q
  max: 3
`)
	for _, s := range []string{"", "plain", `"`, `'`, `\`, "\n", `"}) or vector(1) or x{a="`, "\\\"", "日本", ".*", "a\x00b", "\x7f", "$", "${v}"} {
		f.Add("ns", s)
	}
	f.Fuzz(func(t *testing.T, ns, v string) {
		got, err := rs.Render(ns, "name", map[string]string{"v": v})
		if err != nil {
			if !strings.Contains(err.Error(), "not valid UTF-8") {
				t.Fatalf("unexpected error: %v", err)
			}
			return
		}
		assertSelectorValues(t, got[0], map[string]string{"namespace": ns, "a": v, "b": v})
	})
}

// assertSelectorValues parses query and checks that its first vector
// selector has exactly the wanted label matcher values.
func assertSelectorValues(t *testing.T, query string, want map[string]string) {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(query)
	if err != nil {
		t.Fatalf("rendered query does not parse: %v\n%s", err, query)
	}
	var sel *parser.VectorSelector
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && sel == nil {
			sel = vs
		}
		return nil
	})
	if sel == nil {
		t.Fatalf("no selector in %s", query)
	}
	got := map[string]string{}
	for _, m := range sel.LabelMatchers {
		if m.Type == labels.MatchEqual {
			got[m.Name] = m.Value
		}
	}
	for k, v := range want {
		if v == "" {
			continue // an empty matcher value is fine, but absent from some inputs
		}
		if got[k] != v {
			t.Errorf("matcher %s = %q, want %q in %s", k, got[k], v, query)
		}
	}
}

// FuzzFastPath checks that the fast path computes what expr's VM computes,
// for any expression over two queries and any values.
func FuzzFastPath(f *testing.F) {
	for _, e := range []string{
		"max(a / 4, b / 8)", "ceil(a) - floor(b) + round(a * b) + abs(-a)", "a > 1 ? a ** 2 : -b",
		"min(a, b, 3) ^ 2", "a / b", "(a + 1) * (b - 2) / 3", "a != b ? a : b",
		"max(a, inflight / 8) + queued", "queued > 0 ? max(1, ceil(inflight / 4)) : a",
		"ready < current ? max(current, a) : b", "current - ready + a / 2",
	} {
		f.Add(e, "a > 0 || b > 0", 1.5, -2.0)
		f.Add(e, "!(a >= b) && replicas <= 3 || a == b", 0.0, 0.0)
		f.Add(e, "queued > 0 || inflight > a", 2.0, 3.0)
		f.Add(e, "current > 0 && ready >= replicas", 4.0, 1.0)
	}
	f.Fuzz(func(t *testing.T, replicasExpr, activeExpr string, a, b float64) {
		if strings.ContainsAny(replicasExpr+activeExpr, "\n\r") {
			return
		}
		src := fmt.Sprintf("ruleSets:\n- name: f\n  queries:\n    a: sum(a)\n    b: sum(b)\n  replicas: %s\n  active: %s\n  max: 1000\n", strconv.Quote(replicasExpr), strconv.Quote(activeExpr))
		sets, err := Parse("f.yaml", []byte(src))
		if err != nil {
			return
		}
		rs := sets[0]
		if rs.fastReplicas == nil {
			return
		}
		results := []Result{{Values: []float64{a}}, {Values: []float64{b}}}
		// The built-ins take values of their own, derived from a and b.
		builtins := &BuiltinValues{InFlight: b * 3, Queued: a - 1, Current: a + b, Ready: math.Floor(a)}
		fastD, fastErr := rs.EvaluateWith(results, builtins)
		// The same rule set, forced onto the VM.
		again, err := Parse("f.yaml", []byte(src))
		if err != nil {
			t.Fatalf("second parse failed: %v", err)
		}
		slow := again[0]
		slow.fastReplicas, slow.fastActive = nil, nil
		slowD, slowErr := slow.EvaluateWith(results, builtins)
		if (fastErr == nil) != (slowErr == nil) {
			t.Fatalf("errors differ: fast %v, vm %v", fastErr, slowErr)
		}
		if fastErr == nil && fastD != slowD && !(math.IsNaN(fastD.Raw) && math.IsNaN(slowD.Raw)) {
			t.Fatalf("decisions differ for a=%v b=%v: fast %+v, vm %+v", a, b, fastD, slowD)
		}
	})
}

// FuzzSandbox evaluates any expression that loads, over a number and a list
// of series, and checks that it stays within bounds of time and memory: a
// rule must not be able to hang or exhaust the scaler.
func FuzzSandbox(f *testing.F) {
	for _, e := range []string{
		"len(map(1..90000, # * a))", "count(s, # > a) + sum(map(s, # * 2))", "let m = mean(s); count(s, # > m)",
		`let x = a > 0 ? "ab" : 1; len(string(x + x))`, "len(filter(1..99999, # % 2 == 0))", "max(s) + min(s) + first(s)",
		`len(sortBy(1..50000, -#))`, `all(1..50000, # > 0) ? 1 : 0`, "let r = 1..40000; len(r) + len(r)",
		`len(upper(trim("  x  ")))`, `now().Hour() + len(keys({a: 1, b: 2}))`, "len(uniq(map(s, # % 3)))",
	} {
		f.Add(e)
	}
	series := make([]float64, 2000)
	for i := range series {
		series[i] = float64(i % 97)
	}
	f.Fuzz(func(t *testing.T, replicas string) {
		if strings.ContainsAny(replicas, "\n\r") {
			return
		}
		src := fmt.Sprintf("ruleSets:\n- name: f\n  queries:\n    a: sum(a)\n    s: s\n  replicas: %s\n  max: 1000\n", strconv.Quote(replicas))
		src = strings.ReplaceAll(src, "series.", "") // keep the fuzzer on the expression itself
		sets, err := Parse("f.yaml", []byte(strings.ReplaceAll(src, "replicas: \"", "replicas: \"let s = series.s; ")))
		if err != nil {
			return
		}
		var before, after goruntime.MemStats
		goruntime.ReadMemStats(&before)
		start := time.Now()
		_, _ = sets[0].Evaluate([]Result{{Values: []float64{3}}, {Values: series}})
		elapsed := time.Since(start)
		goruntime.ReadMemStats(&after)
		if elapsed > 2*time.Second {
			t.Fatalf("evaluation took %v: %s", elapsed, replicas)
		}
		if grown := after.TotalAlloc - before.TotalAlloc; grown > 256<<20 {
			t.Fatalf("evaluation allocated %d MiB: %s", grown>>20, replicas)
		}
	})
}
