package memprom

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"
)

func load(t testing.TB, interval time.Duration, defs ...[2]string) *Storage {
	t.Helper()
	s := New()
	for _, d := range defs {
		if err := s.AddSeries(d[0], d[1], Epoch(), interval); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestQuery(t *testing.T) {
	s := load(t, time.Minute,
		[2]string{`q{ns="ml", model="llama"}`, "0 0 4 12 20x3 stale"},
		[2]string{`q{ns="ml", model="qwen"}`, "1x4"},
	)
	e := NewEngine(s, Options{})
	ctx := context.Background()
	at := func(d time.Duration) time.Time { return Epoch().Add(d) }

	res, err := e.Query(ctx, `sum(q)`, at(90*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if res.Scalar || len(res.Values) != 1 || res.Values[0] != 1 || len(res.Labels[0]) != 0 {
		t.Errorf("sum(q) at 1m30s = %+v, want one series of value 1 (0 + 1)", res)
	}

	res, err = e.Query(ctx, `time()`, at(90*time.Second))
	if err != nil || !res.Scalar || res.Values[0] != 90 {
		t.Errorf("time() = %+v, %v; want scalar 90", res, err)
	}

	// After the staleness marker at 8m, llama is gone at once; qwen, which
	// just stopped at 4m, lasts the 5m lookback.
	res, err = e.Query(ctx, `q`, at(8*time.Minute+30*time.Second))
	if err != nil || len(res.Values) != 1 || res.Labels[0]["model"] != "qwen" {
		t.Errorf("q at 8m30s = %+v, %v; want qwen only", res, err)
	}
	res, err = e.Query(ctx, `q`, at(9*time.Minute+30*time.Second))
	if err != nil || res.Values == nil || len(res.Values) != 0 {
		t.Errorf("q at 9m30s = %+v, %v; want an empty, non-nil vector", res, err)
	}

	for query, want := range map[string]string{
		`q[1m]`:   "got matrix",
		`sum(q`:   "unclosed left parenthesis",
		`"hello"`: "string",
	} {
		if _, err := e.Query(ctx, query, at(time.Minute)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one mentioning %q", query, err, want)
		}
	}
}

func TestQueryOptions(t *testing.T) {
	s := load(t, time.Minute, [2]string{`m`, "1"})
	at := Epoch().Add(90 * time.Second)
	if res, err := NewEngine(s, Options{LookbackDelta: time.Minute}).Query(context.Background(), "m", at); err != nil || len(res.Values) != 0 {
		t.Errorf("lookback 1m, 90s after the sample: %+v, %v; want nothing", res, err)
	}
	big := load(t, time.Second, [2]string{`m`, "1x100"})
	if _, err := NewEngine(big, Options{MaxSamples: 10}).Query(context.Background(), "m[1m]", Epoch().Add(time.Minute)); err == nil || !strings.Contains(err.Error(), "too many samples") {
		t.Errorf("MaxSamples 10: error %v, want too many samples", err)
	}
	// A subquery without a step takes SubqueryInterval: 10m at 5m steps is
	// two (left-open) points.
	res, err := NewEngine(load(t, time.Minute, [2]string{`m`, "1x20"}), Options{SubqueryInterval: 5 * time.Minute}).
		Query(context.Background(), "count_over_time(m[10m:])", Epoch().Add(10*time.Minute))
	if err != nil || len(res.Values) != 1 || res.Values[0] != 2 {
		t.Errorf("subquery at 5m steps: %+v, %v; want 2 points", res, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewEngine(s, Options{}).Query(ctx, "m", at); err == nil {
		t.Error("cancelled context: no error")
	}
}

func TestQueryRange(t *testing.T) {
	s := load(t, time.Minute, [2]string{`m{a="x"}`, "0+1x10"})
	e := NewEngine(s, Options{})
	got, err := e.QueryRange(context.Background(), "m * 2", Epoch().Add(2*time.Minute), Epoch().Add(4*time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Points) != 3 || got[0].Labels["a"] != "x" || got[0].Labels["__name__"] != "" {
		t.Fatalf("got %+v", got)
	}
	for i, p := range got[0].Points {
		if wantT := Epoch().Add(time.Duration(2+i) * time.Minute); !p.T.Equal(wantT) || p.V != float64(2*(2+i)) {
			t.Errorf("point %d: %v %v, want %v %v", i, p.T, p.V, wantT, 2*(2+i))
		}
	}
	sc, err := e.QueryRange(context.Background(), "time()", Epoch(), Epoch().Add(time.Minute), 30*time.Second)
	if err != nil || len(sc) != 1 || len(sc[0].Points) != 3 || sc[0].Points[2].V != 60 {
		t.Errorf("time() over a range: %+v, %v; want one series of 3 points", sc, err)
	}
	for name, call := range map[string]func() error{
		"zero step": func() error {
			_, err := e.QueryRange(context.Background(), "m", Epoch(), Epoch(), 0)
			return err
		},
		"end before start": func() error {
			_, err := e.QueryRange(context.Background(), "m", Epoch().Add(time.Minute), Epoch(), time.Second)
			return err
		},
		"parse error": func() error {
			_, err := e.QueryRange(context.Background(), "m{", Epoch(), Epoch(), time.Second)
			return err
		},
	} {
		if call() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestEqualSamples(t *testing.T) {
	a := map[string]string{"a": "1"}
	b := map[string]string{"a": "2"}
	one := 1.0
	next := 1.0000000000000002 // one float step above 1
	cases := map[string]struct {
		exp, got []ExprSample
		fuzzy    bool
		want     bool
	}{
		"equal, other order":     {[]ExprSample{{a, 1}, {b, 2}}, []ExprSample{{b, 2}, {a, 1}}, false, true},
		"other value":            {[]ExprSample{{a, 1}}, []ExprSample{{a, 2}}, false, false},
		"other labels":           {[]ExprSample{{a, 1}}, []ExprSample{{b, 1}}, false, false},
		"one missing":            {[]ExprSample{{a, 1}, {b, 2}}, []ExprSample{{a, 1}}, false, false},
		"both empty":             {nil, []ExprSample{}, false, true},
		"one ulp, exact":         {[]ExprSample{{a, one}}, []ExprSample{{a, next}}, false, false},
		"one ulp, fuzzy":         {[]ExprSample{{a, one}}, []ExprSample{{a, next}}, true, true},
		"two ulps, fuzzy":        {[]ExprSample{{a, one}}, []ExprSample{{a, 1.0000000000000004}}, true, false},
		"NaN matches NaN":        {[]ExprSample{{a, nan()}}, []ExprSample{{a, nan()}}, false, true},
		"nil labels match empty": {[]ExprSample{{nil, 3}}, []ExprSample{{map[string]string{}, 3}}, false, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := EqualSamples(tc.exp, tc.got, tc.fuzzy); got != tc.want {
				t.Errorf("EqualSamples(%s, %s, %v) = %v", FormatSamples(tc.exp), FormatSamples(tc.got), tc.fuzzy, got)
			}
		})
	}
	if got, want := FormatSamples([]ExprSample{{b, 2}, {map[string]string{"__name__": "m", "a": "1"}, 1.5}}), `{__name__="m", a="1"} 1.5E+00, {a="2"} 2E+00`; got != want {
		t.Errorf("FormatSamples = %s, want %s", got, want)
	}
}

func nan() float64 { return math.NaN() }

func nextUp(x float64) float64 { return math.Nextafter(x, math.Inf(1)) }
