package rules

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// expectedErrors holds, for each *.bad.yaml file, every line `rules check`
// must print for it, in order.
var expectedErrors = map[string][]string{
	"builtins.bad.yaml": {
		`builtins.bad.yaml:3:15: rule set "builtin-types": replicas: must compute a number of replicas, but computes a bool`,
		`builtins.bad.yaml:4:13: rule set "builtin-types": active: must compute true or false, but computes a float64`,
		`builtins.bad.yaml:7:26: rule set "builtin-series": replicas: series.inflight: inflight is a built-in number, not a query: use inflight`,
		`builtins.bad.yaml:10:23: rule set "builtin-strings": replicas: invalid operation: + (mismatched types float64 and string)`,
		`builtins.bad.yaml:13:15: rule set "scale-target-types": replicas: must compute a number of replicas, but computes a bool`,
		`builtins.bad.yaml:14:24: rule set "scale-target-types": active: series.ready: ready is a built-in number, not a query: use ready`,
	},
	"empty.bad.yaml": {
		`empty.bad.yaml:1:1: ruleSets: the file holds no rule sets`,
	},
	"fields.bad.yaml": {
		`fields.bad.yaml:4:7: rule set "fields": queries.max: "max" is an expr built-in function: choose another query name`,
		`fields.bad.yaml:5:7: rule set "fields": queries.2fast: "2fast" is not a valid query name: it is a variable in expressions, so use letters, digits and '_', not starting with a digit`,
		`fields.bad.yaml:6:7: rule set "fields": queries.series: "series" is a built-in variable: choose another query name`,
		`fields.bad.yaml:9:10: rule set "fields": max: 2 is below min 5`,
		`fields.bad.yaml:10:14: rule set "fields": onError: "sometimes" is not hold, fail or a whole number of replicas`,
		`fields.bad.yaml:11:17: rule set "fields": staleAfter: "soon" is not a positive duration such as 30s, 5m or 1h`,
		`fields.bad.yaml:12:5: rule set "fields": cooldown: unknown field: a rule set has name, description, queries, replicas, active, min, max, onError and staleAfter`,
		`fields.bad.yaml:13:5: name: required`,
		`fields.bad.yaml:16:5: rule set "fields": max: required: an upper bound on replicas, so that a wrong query cannot scale without limit`,
		`fields.bad.yaml:18:11: name: "bad name!" is not a valid name: use letters, digits, '-', '_' and '.', starting and ending with a letter or digit`,
	},
	"injection.bad.yaml": {
		`injection.bad.yaml:4:44: rule set "injection": queries.outside: variable $divisor stands outside a quoted string: variables may only appear inside "..." or '...' PromQL strings`,
		"injection.bad.yaml:5:31: rule set \"injection\": queries.raw: variable $namespace stands inside a raw `...` string, where its value could not be escaped: use \"...\" or '...'",
		`injection.bad.yaml:6:30: rule set "injection": queries.modifier: ${pod:upper}: unknown modifier "upper": the only one is "regex"`,
		`injection.bad.yaml:7:14: rule set "injection": queries.range: query returns a matrix: it must return an instant vector or a scalar`,
	},
	"syntax.bad.yaml": {
		`syntax.bad.yaml:4:47: rule set "broken": queries.waiting: invalid PromQL: unclosed left parenthesis`,
		`syntax.bad.yaml:6:23: rule set "broken": replicas: unexpected token EOF`,
		`syntax.bad.yaml:7:13: rule set "broken": active: must compute true or false, but computes a float64`,
	},
	"types.bad.yaml": {
		`types.bad.yaml:5:15: rule set "types": replicas: must compute a number of replicas, but computes a bool`,
		`types.bad.yaml:6:13: rule set "types": active: must compute true or false, but computes a float64`,
		`types.bad.yaml:11:15: rule set "unknown": replicas: unknown name waitin`,
		`types.bad.yaml:16:26: rule set "series-misuse": replicas: series.pod: there is no query named "pod"`,
		`types.bad.yaml:16:37: rule set "series-misuse": replicas: series must be followed by the name of a query, as in series.pods`,
	},
	"sandbox.bad.yaml": {
		`sandbox.bad.yaml:6:20: rule set "sandbox": replicas: repeat() is not available in rules: it can build values larger than its input`,
		`sandbox.bad.yaml:6:51: rule set "sandbox": replicas: toJSON() is not available in rules: it can build values larger than its input`,
		`sandbox.bad.yaml:7:18: rule set "sandbox": active: reduce() is not available in rules: use sum(), max(), min(), mean() or count()`,
		`sandbox.bad.yaml:10:48: rule set "strings": replicas: + on strings is not available in rules`,
		`sandbox.bad.yaml:15:36: rule set "nested-loops": replicas: mean() over a list inside a loop is not available in rules; compute it before the loop with let, e.g. let m = mean(series.x); count(series.x, # > m)`,
		`sandbox.bad.yaml:15:84: rule set "nested-loops": replicas: a loop inside a loop is not available in rules; compute it before the loop with let, e.g. let m = mean(series.x); count(series.x, # > m)`,
		`sandbox.bad.yaml:15:115: rule set "nested-loops": replicas: a range a..b inside a loop is not available in rules; compute it before the loop with let, e.g. let m = mean(series.x); count(series.x, # > m)`,
		"sandbox.bad.yaml:15:150: rule set \"nested-loops\": replicas: `in` over a list inside a loop is not available in rules; compute it before the loop with let, e.g. let m = mean(series.x); count(series.x, # > m)",
	},
	"yaml.bad.yaml": {
		`yaml.bad.yaml:2:1: invalid YAML: did not find expected ',' or ']'`,
	},
}

func TestGoldenFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seenBad := 0
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			sets, err := Parse(name, data)
			switch {
			case strings.HasSuffix(name, ".good.yaml"):
				if err != nil {
					t.Fatalf("want no error, got:\n%v", err)
				}
				if len(sets) == 0 {
					t.Fatal("no rule sets parsed")
				}
			case strings.HasSuffix(name, ".bad.yaml"):
				seenBad++
				want, ok := expectedErrors[name]
				if !ok {
					t.Fatalf("no expected errors for %s in expectedErrors", name)
				}
				if err == nil {
					t.Fatal("want errors, got none")
				}
				if got := err.Error(); got != strings.Join(want, "\n") {
					t.Errorf("errors differ\ngot:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
				}
				if n := len(Errors(err)); n != len(want) {
					t.Errorf("Errors() returned %d errors, want %d", n, len(want))
				}
			default:
				t.Fatalf("testdata file %s is neither .good.yaml nor .bad.yaml", name)
			}
		})
	}
	if seenBad != len(expectedErrors) {
		t.Errorf("expectedErrors has %d files, testdata has %d bad files", len(expectedErrors), seenBad)
	}
}

func mustParse(t testing.TB, src string) *RuleSet {
	t.Helper()
	sets, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return sets[0]
}

func TestDefaults(t *testing.T) {
	rs := mustParse(t, "ruleSets:\n- name: d\n  replicas: '2'\n  max: 3\n")
	if rs.Min != 0 || rs.Max != 3 || rs.OnError.Mode != Hold || rs.StaleAfter != DefaultStaleAfter || rs.Active != "" {
		t.Errorf("defaults: got min=%d max=%d onError=%v staleAfter=%v active=%q", rs.Min, rs.Max, rs.OnError, rs.StaleAfter, rs.Active)
	}
}

func num(v ...float64) Result { return Result{Values: v} }

func TestEvaluate(t *testing.T) {
	const twoQueries = `
ruleSets:
- name: chat
  queries:
    waiting: sum(w)
    running: sum(r)
  replicas: max(waiting / 4, running / 8)
  active: waiting > 0 || running > 0
  min: 1
  max: 10
`
	const series = `
ruleSets:
- name: pods
  queries:
    pods: max by (pod) (x)
  replicas: 'len(series.pods) == 0 ? 0 : max(series.pods) / 10'
  max: 5
`
	const defaultActive = `
ruleSets:
- name: d
  queries:
    q: sum(x)
  replicas: q
  min: 0
  max: 100
`
	const activeUsesReplicas = `
ruleSets:
- name: r
  queries:
    q: sum(x)
  replicas: q
  active: replicas >= 2
  max: 100
`
	const hostile = `
ruleSets:
- name: hostile
  queries:
    q: sum(x)
  replicas: 'len(map(1..10000000, # * q))'
  max: 100
`
	const divide = `
ruleSets:
- name: div
  queries:
    q: sum(x)
  replicas: 1 / q
  max: 100
`
	const guardedAdd = `
ruleSets:
- name: guarded
  queries:
    q: x
  replicas: 'max(series.q) + first(series.q) + (len(series.q) > 5 ? 1 : 0)'
  max: 100
`
	const runtimeStrings = `
ruleSets:
- name: runtime-strings
  queries:
    q: sum(x)
  replicas: 'let s = q > 0 ? "ab" : 1; let t = s + s; 1'
  max: 100
`
	const loops = `
ruleSets:
- name: loops
  queries:
    q: x
  replicas: 'let m = mean(series.q); count(series.q, # > m) + sum(map(series.q, # * 2)) + len(filter(1..50000, # % 7 == 0))'
  max: 100000
`
	cases := map[string]struct {
		src     string
		results []Result
		want    Decision
		wantErr error
	}{
		"+ of unknown types":         {guardedAdd, []Result{num(5, 30, 12)}, Decision{Replicas: 35, Raw: 35, Active: true}, nil},
		"+ on strings at run time":   {runtimeStrings, []Result{num(1)}, Decision{}, ErrExpression},
		"+ of numbers at run time":   {runtimeStrings, []Result{num(0)}, Decision{Replicas: 1, Raw: 1, Active: true}, nil},
		"one loop at a time":         {loops, []Result{num(1, 2, 6)}, Decision{Replicas: 7161, Raw: 1 + 18 + 7142, Active: true}, nil},
		"two queries":                {twoQueries, []Result{num(9), num(8)}, Decision{Replicas: 3, Raw: 2.25, Active: true}, nil},
		"clamped to max":             {twoQueries, []Result{num(400), num(0)}, Decision{Replicas: 10, Raw: 100, Active: true}, nil},
		"clamped to min, inactive":   {twoQueries, []Result{num(0), num(0)}, Decision{Replicas: 1, Raw: 0, Active: false}, nil},
		"scalar result":              {twoQueries, []Result{{Scalar: true, Values: []float64{4}}, num(0)}, Decision{Replicas: 1, Raw: 1, Active: true}, nil},
		"rounding slack":             {defaultActive, []Result{num(0.1 + 0.2 + 3.7)}, Decision{Replicas: 4, Raw: 0.1 + 0.2 + 3.7, Active: true}, nil},
		"rounds up":                  {defaultActive, []Result{num(3.01)}, Decision{Replicas: 4, Raw: 3.01, Active: true}, nil},
		"negative clamps to min":     {defaultActive, []Result{num(-5)}, Decision{Replicas: 0, Raw: -5, Active: false}, nil},
		"default active is replicas": {defaultActive, []Result{num(0)}, Decision{Replicas: 0, Raw: 0, Active: false}, nil},
		"active sees replicas":       {activeUsesReplicas, []Result{num(1)}, Decision{Replicas: 1, Raw: 1, Active: false}, nil},
		"series max":                 {series, []Result{num(5, 30, 12)}, Decision{Replicas: 3, Raw: 3, Active: true}, nil},
		"series empty is allowed":    {series, []Result{num()}, Decision{Replicas: 0, Raw: 0, Active: false}, nil},
		"empty result is an error":   {twoQueries, []Result{num(), num(1)}, Decision{}, ErrNoData},
		"several series as a number": {twoQueries, []Result{num(1, 2), num(1)}, Decision{}, ErrSeries},
		"NaN is an error":            {twoQueries, []Result{num(math.NaN()), num(1)}, Decision{}, ErrNotFinite},
		"+Inf is an error":           {twoQueries, []Result{num(1), num(math.Inf(1))}, Decision{}, ErrNotFinite},
		"NaN in a series":            {series, []Result{num(1, math.NaN())}, Decision{}, ErrNotFinite},
		"division by zero":           {divide, []Result{num(0)}, Decision{}, ErrNotFinite},
		"memory budget":              {hostile, []Result{num(1)}, Decision{}, ErrExpression},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rs := mustParse(t, tc.src)
			got, err := rs.Evaluate(tc.results)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("want error %v, got %v (decision %+v)", tc.wantErr, err, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestQueryUsage(t *testing.T) {
	rs := mustParse(t, `
ruleSets:
- name: u
  queries:
    a: sum(a)
    b: b
    c: sum(c)
  replicas: a + sum(series.b)
  active: c > 0
  max: 3
`)
	got := map[string][2]bool{}
	for _, q := range rs.Queries {
		got[q.Name] = [2]bool{q.Bare, q.Series}
	}
	want := map[string][2]bool{"a": {true, false}, "b": {false, true}, "c": {true, false}}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("query %s: bare,series = %v, want %v", k, got[k], v)
		}
	}
}

func TestRender(t *testing.T) {
	const src = `
ruleSets:
- name: r
  queries:
    q: sum(x{namespace="$namespace", so="${name}", model='$model', pod=~"${pod:regex}-.*$", price="$$5"})
  replicas: q
  max: 3
`
	rs := mustParse(t, src)
	cases := map[string]struct {
		ns, name string
		md       map[string]string
		want     string
		wantErr  string
	}{
		"plain": {"ml", "chat", map[string]string{"model": "llama", "pod": "chat"},
			`sum(x{namespace="ml", so="chat", model='llama', pod=~"chat-.*$", price="$5"})`, ""},
		"injection in double quotes": {"ml", "chat", map[string]string{"model": "m", "pod": `a"}) or vector(1e9) or x{y="`},
			`sum(x{namespace="ml", so="chat", model='m', pod=~"a\"\\}\\) or vector\\(1e9\\) or x\\{y=\"-.*$", price="$5"})`, ""},
		"injection in single quotes": {"ml", "chat", map[string]string{"model": `'}) or vector(1) #`, "pod": "p"},
			`sum(x{namespace="ml", so="chat", model='\'}) or vector(1) #', pod=~"p-.*$", price="$5"})`, ""},
		"backslash and newline": {"ml", "chat", map[string]string{"model": "a\\b\nc\x01", "pod": "p"},
			`sum(x{namespace="ml", so="chat", model='a\\b\nc\x01', pod=~"p-.*$", price="$5"})`, ""},
		"metadata cannot override namespace": {"ml", "chat", map[string]string{"namespace": "kube-system", "name": "other", "model": "m", "pod": "p"},
			`sum(x{namespace="ml", so="chat", model='m', pod=~"p-.*$", price="$5"})`, ""},
		"missing key":   {"ml", "chat", map[string]string{"pod": "p"}, "", `query "q": variable $model is not set: add "model" to the trigger metadata`},
		"invalid utf-8": {"ml", "chat", map[string]string{"model": "\xff", "pod": "p"}, "", `query "q": variable $model: value is not valid UTF-8`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := rs.Render(tc.ns, tc.name, tc.md)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("want error %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got[0] != tc.want {
				t.Errorf("got  %s\nwant %s", got[0], tc.want)
			}
			assertSelectorValues(t, got[0], map[string]string{"namespace": tc.ns, "so": tc.name, "model": tc.md["model"]})
		})
	}
}

// TestFastPathCoverage pins which expressions take the fast path, so that a
// change to the compiler cannot silently send typical rules back to the VM.
func TestFastPathCoverage(t *testing.T) {
	cases := map[string]struct {
		replicas, active string
		fast             bool
	}{
		"typical":         {"max(waiting / 4, running / 8)", "waiting > 0 || running > 0", true},
		"default active":  {"ceil(waiting / 4)", "", true},
		"ternary":         {"waiting > 10 ? 4 : 1", "replicas >= 1 && !(running == 0)", true},
		"series":          {"max(series.waiting)", "", false},
		"time of day":     {"now().Hour() > 8 ? 2 : 0", "", false},
		"vm active":       {"waiting", "len(series.running) > 0", false},
		"let":             {"let x = waiting; x * 2", "", false},
		"integer literal": {"2", "true", true},
		"built-ins":       {"max(waiting / 4, inflight / 8)", "queued > 0 || inflight > replicas", true},
		"scale target":    {"ready < current ? max(current, waiting) : waiting", "current > 0 || ready > replicas", true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			src := "ruleSets:\n- name: f\n  queries:\n    waiting: sum(w)\n    running: sum(r)\n  replicas: " + strconv.Quote(tc.replicas) + "\n  max: 10\n"
			if tc.active != "" {
				src += "  active: " + strconv.Quote(tc.active) + "\n"
			}
			rs := mustParse(t, src)
			fast := rs.fastReplicas != nil && (rs.active == nil || rs.fastActive != nil)
			if fast != tc.fast {
				t.Errorf("fast path = %v, want %v", fast, tc.fast)
			}
			if _, err := rs.EvaluateWith([]Result{num(1), num(2)}, &BuiltinValues{InFlight: 1, Current: 2}); err != nil {
				t.Errorf("evaluate: %v", err)
			}
		})
	}
}

func TestBuiltins(t *testing.T) {
	const useBoth = `
ruleSets:
- name: both
  queries:
    waiting: sum(w)
  replicas: max(waiting / 4, inflight / 8)
  active: queued > 0 || inflight > 0
  max: 10
`
	const onlyBuiltins = `
ruleSets:
- name: only
  replicas: inflight + queued
  max: 10
`
	// DESIGN.md's example names a query inflight: the query shadows the
	// built-in and keeps its meaning.
	const shadowed = `
ruleSets:
- name: shadow
  queries:
    inflight: sum(nemesis_activator_requests_in_flight{namespace="$namespace", service="$service"})
  replicas: inflight / 8 + queued
  active: inflight > 0
  max: 10
`
	const target = `
ruleSets:
- name: target
  queries:
    waiting: sum(w)
  replicas: "ready < current ? max(current, waiting / 4) : waiting / 4"
  active: current > 0 || inflight > 0
  max: 10
`
	// Rule sets written before current and ready existed keep their
	// meaning: a query or a let of that name shadows the built-in.
	const targetShadowed = `
ruleSets:
- name: target-shadowed
  queries:
    ready: sum(kube_deployment_status_replicas_ready{namespace="$namespace"})
  replicas: "let current = ready * 2; current + 0"
  active: ready > 0
  max: 10
`
	const unused = `
ruleSets:
- name: unused
  queries:
    q: sum(x)
  replicas: q
  max: 10
`
	vals := func(inFlight, queued float64) *BuiltinValues {
		return &BuiltinValues{InFlight: inFlight, Queued: queued}
	}
	scale := func(inFlight, current, ready float64) *BuiltinValues {
		return &BuiltinValues{InFlight: inFlight, Current: current, Ready: ready}
	}
	cases := map[string]struct {
		src      string
		results  []Result
		builtins *BuiltinValues
		uses     []string
		want     Decision
		wantErr  error
	}{
		"both":                       {useBoth, []Result{num(4)}, vals(24, 0), []string{"inflight", "queued"}, Decision{Replicas: 3, Raw: 3, Active: true}, nil},
		"queued alone is active":     {useBoth, []Result{num(0)}, vals(0, 1), []string{"inflight", "queued"}, Decision{Replicas: 0, Raw: 0, Active: true}, nil},
		"idle":                       {useBoth, []Result{num(0)}, vals(0, 0), []string{"inflight", "queued"}, Decision{Replicas: 0, Raw: 0, Active: false}, nil},
		"no values":                  {useBoth, []Result{num(0)}, nil, []string{"inflight", "queued"}, Decision{}, ErrNoDemand},
		"not finite":                 {onlyBuiltins, nil, vals(math.Inf(1), 0), []string{"inflight", "queued"}, Decision{}, ErrNotFinite},
		"no queries":                 {onlyBuiltins, nil, vals(3, 2), []string{"inflight", "queued"}, Decision{Replicas: 5, Raw: 5, Active: true}, nil},
		"query shadows":              {shadowed, []Result{num(16)}, vals(1000, 1), []string{"queued"}, Decision{Replicas: 3, Raw: 3, Active: true}, nil},
		"shadowing query needs data": {shadowed, []Result{num()}, vals(1000, 1), []string{"queued"}, Decision{}, ErrNoData},
		"unused built-ins":           {unused, []Result{num(2)}, nil, nil, Decision{Replicas: 2, Raw: 2, Active: true}, nil},
		"pods starting":              {target, []Result{num(4)}, scale(0, 5, 2), []string{"inflight", "current", "ready"}, Decision{Replicas: 5, Raw: 5, Active: true}, nil},
		"pods ready":                 {target, []Result{num(4)}, scale(0, 5, 5), []string{"inflight", "current", "ready"}, Decision{Replicas: 1, Raw: 1, Active: true}, nil},
		"scaled to zero":             {target, []Result{num(0)}, scale(0, 0, 0), []string{"inflight", "current", "ready"}, Decision{Replicas: 0, Raw: 0, Active: false}, nil},
		"no scale target values":     {target, []Result{num(0)}, nil, []string{"inflight", "current", "ready"}, Decision{}, ErrNoScaleTarget},
		"current not finite":         {target, []Result{num(0)}, scale(0, math.NaN(), 0), []string{"inflight", "current", "ready"}, Decision{}, ErrNotFinite},
		"query and let shadow":       {targetShadowed, []Result{num(3)}, nil, nil, Decision{Replicas: 6, Raw: 6, Active: true}, nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rs := mustParse(t, tc.src)
			if !slices.Equal(rs.Builtins, tc.uses) {
				t.Errorf("Builtins = %q, want %q", rs.Builtins, tc.uses)
			}
			// The fast path and the VM must agree.
			vm := mustParse(t, tc.src)
			vm.fastReplicas, vm.fastActive = nil, nil
			for path, rs := range map[string]*RuleSet{"fast": rs, "vm": vm} {
				got, err := rs.EvaluateWith(tc.results, tc.builtins)
				if tc.wantErr != nil {
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("%s: want error %v, got %v (decision %+v)", path, tc.wantErr, err, got)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: unexpected error: %v", path, err)
				}
				if got != tc.want {
					t.Errorf("%s: got %+v, want %+v", path, got, tc.want)
				}
			}
		})
	}
	if rs := mustParse(t, useBoth); rs.fastReplicas == nil || rs.fastActive == nil {
		t.Error("built-ins left the fast path")
	}
	if rs := mustParse(t, target); rs.fastReplicas == nil || rs.fastActive == nil {
		t.Error("current and ready left the fast path")
	}
	if _, err := mustParse(t, onlyBuiltins).Evaluate(nil); !errors.Is(err, ErrNoDemand) || !strings.Contains(err.Error(), "inflight, queued") {
		t.Errorf("Evaluate without values: %v, want ErrNoDemand naming the built-ins", err)
	}
	// Both sources missing: both errors, so that the caller can say which.
	if _, err := mustParse(t, target).Evaluate([]Result{num(1)}); !errors.Is(err, ErrNoDemand) || !errors.Is(err, ErrNoScaleTarget) || !strings.Contains(err.Error(), "inflight, current, ready") {
		t.Errorf("Evaluate without values: %v, want ErrNoDemand and ErrNoScaleTarget naming the built-ins", err)
	}
}

func TestBuiltinSources(t *testing.T) {
	cases := map[string]struct {
		replicas       string
		demand, target bool
	}{
		"none":            {"w", false, false},
		"demand":          {"inflight + queued", true, false},
		"current":         {"current", false, true},
		"ready":           {"w > 0 ? ready : 0", false, true},
		"both":            {"max(inflight, ready)", true, true},
		"let shadows":     {"let ready = w; ready + inflight", true, false},
		"let in one expr": {"(let current = w; current) + 1", false, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rs := mustParse(t, "ruleSets:\n- name: s\n  queries:\n    w: sum(w)\n  replicas: "+strconv.Quote(tc.replicas)+"\n  max: 9\n")
			if rs.UsesDemand() != tc.demand || rs.UsesScaleTarget() != tc.target {
				t.Errorf("UsesDemand %v, UsesScaleTarget %v, want %v, %v (Builtins %q)", rs.UsesDemand(), rs.UsesScaleTarget(), tc.demand, tc.target, rs.Builtins)
			}
		})
	}
	var b BuiltinValues
	for i, name := range builtinNames {
		if !b.Set(name, float64(i+1)) {
			t.Errorf("Set(%q) = false", name)
		}
	}
	if want := (BuiltinValues{InFlight: 1, Queued: 2, Current: 3, Ready: 4}); b != want {
		t.Errorf("Set: %+v, want %+v", b, want)
	}
	if b.Set("replicas", 1) {
		t.Error(`Set("replicas") = true`)
	}
}

// TestBuiltinsNoAllocs pins the fast path with built-ins at zero
// allocations per evaluation.
func TestBuiltinsNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop values")
	}
	rs := mustParse(t, "ruleSets:\n- name: a\n  queries:\n    w: sum(w)\n  replicas: 'max(w / 4, inflight / 8, ready < current ? current : w)'\n  active: queued > 0 || replicas > 0\n  max: 9\n")
	results, b := []Result{num(3)}, &BuiltinValues{InFlight: 9, Queued: 1, Current: 3, Ready: 1}
	_, _ = rs.EvaluateWith(results, b) // fill the pool
	if n := testing.AllocsPerRun(100, func() { _, _ = rs.EvaluateWith(results, b) }); n != 0 {
		t.Errorf("%v allocations per evaluation, want 0", n)
	}
}
