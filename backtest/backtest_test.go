package backtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/k8s-nemesis/nemesis/hpasim"
	"github.com/k8s-nemesis/nemesis/memprom"
	"github.com/k8s-nemesis/nemesis/metrics"
	"github.com/k8s-nemesis/nemesis/rules"
)

const testRules = `
ruleSets:
  - name: queue
    queries: {depth: 'sum(queue_depth{namespace="$namespace", model="$model"})'}
    replicas: depth / 4
    active: depth > 0
    max: 8
    onError: hold
    staleAfter: 2m
  - name: queue-fail
    queries: {depth: 'sum(queue_depth{namespace="$namespace", model="$model"})'}
    replicas: depth / 2
    max: 8
    onError: fail
  - name: grow
    description: One more than the simulation runs, up to 3.
    queries: {depth: 'sum(queue_depth{namespace="$namespace", model="$model"})'}
    replicas: current + 1 + depth * 0
    max: 3
  - name: per-pod
    queries: {load: 'pod_load{namespace="$namespace"}'}
    replicas: max(series.load)
    max: 8
  - name: uses-inflight
    replicas: inflight
    max: 8
  - name: pod-sum
    queries: {load: 'pod_load{namespace="$namespace"}'}
    replicas: load
    max: 8
`

func ruleSets(t testing.TB, names ...string) []*rules.RuleSet {
	t.Helper()
	all, err := rules.Parse("test.yaml", []byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	var out []*rules.RuleSet
	for _, name := range names {
		found := false
		for _, rs := range all {
			if rs.Name == name {
				out = append(out, rs)
				found = true
			}
		}
		if !found {
			t.Fatalf("no rule set %q", name)
		}
	}
	return out
}

// memSource is memprom's engine over series in promtool's notation, all
// starting at the epoch at 15s.
func memSource(t testing.TB, series map[string]string) Source {
	t.Helper()
	st := memprom.New()
	for s, v := range series {
		if err := st.AddSeries(s, v, memprom.Epoch(), 15*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	return memprom.NewEngine(st, memprom.Options{})
}

func at(s int) time.Time { return memprom.Epoch().Add(time.Duration(s) * time.Second) }

func baseOptions(rs []*rules.RuleSet, end int) Options {
	return Options{
		RuleSets:  rs,
		Namespace: "ml", Name: "llama",
		Metadata: map[string]string{"model": "llama"},
		Start:    at(0), End: at(end), Step: 15 * time.Second,
		Sim: hpasim.DefaultConfig(),
	}
}

// TestRunDecisions replays two rule sets side by side over a queue that
// builds up and then goes stale, and checks each step's answer, worked by
// hand, and that each simulation got exactly those answers.
func TestRunDecisions(t *testing.T) {
	src := memSource(t, map[string]string{
		`queue_depth{namespace="ml", model="llama"}`: "0 0 4 12 20 20 20 stale",
		`queue_depth{namespace="ml", model="other"}`: "100x20",
	})
	opts := baseOptions(ruleSets(t, "queue", "queue-fail"), 240)
	opts.Builtins = map[string]string{"queued": `vector(0)`}
	res, err := Run(t.Context(), src, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Steps) != 17 {
		t.Fatalf("%d steps, want 17", len(res.Steps))
	}
	if len(res.Queries) != 1 || res.Queries[0].Text != `sum(queue_depth{namespace="ml", model="llama"})` ||
		strings.Join(res.Queries[0].Uses, ",") != "queue.depth,queue-fail.depth" {
		t.Fatalf("queries %+v: want the one rendered query, used by both rule sets", res.Queries)
	}
	type want struct {
		value          float64 // -1: no data
		desired        int64   // -1: null
		active, holds  bool
		reason         string
		failDesired    int64
		failActive     bool
		failReasonNone bool
	}
	// depth 0 0 4 12 20 20 20, then stale from 105s. queue holds 5 until
	// 90s + staleAfter 2m = 210s, then has no answer; queue-fail has none
	// from the first step without data.
	wants := []want{
		{0, 0, false, false, "", 0, false, true},
		{0, 0, false, false, "", 0, false, true},
		{4, 1, true, false, "", 2, true, true},
		{12, 3, true, false, "", 6, true, true},
		{20, 5, true, false, "", 8, true, true},
		{20, 5, true, false, "", 8, true, true},
		{20, 5, true, false, "", 8, true, true},
		{-1, 5, true, true, "no_data", -1, false, false}, // 105s
		{-1, 5, true, true, "no_data", -1, false, false},
		{-1, 5, true, true, "no_data", -1, false, false},
		{-1, 5, true, true, "no_data", -1, false, false},
		{-1, 5, true, true, "no_data", -1, false, false},
		{-1, 5, true, true, "no_data", -1, false, false},
		{-1, 5, true, true, "no_data", -1, false, false}, // 195s
		{-1, 5, true, true, "no_data", -1, false, false}, // 210s: exactly staleAfter
		{-1, -1, false, false, "no_data", -1, false, false},
		{-1, -1, false, false, "no_data", -1, false, false},
	}
	sims := make([]*hpasim.Sim, 2)
	for k := range sims {
		if sims[k], err = hpasim.New(opts.Sim, opts.Start, 0); err != nil {
			t.Fatal(err)
		}
	}
	for i, w := range wants {
		st := res.Steps[i]
		if !st.Time.Equal(at(15 * i)) {
			t.Fatalf("step %d at %v", i, st.Time)
		}
		if got := st.Values[0]; (w.value < 0) == got.OK || got.OK && got.V != w.value {
			t.Errorf("step %d: value %+v, want %v", i, got, w.value)
		}
		q, f := st.RuleSets[0], st.RuleSets[1]
		if (w.desired < 0) == q.DesiredOK || q.DesiredOK && q.Desired != w.desired || q.Active != w.active || q.Holding != w.holds || q.Reason != w.reason {
			t.Errorf("step %d: queue %+v, want desired %d active %v holding %v reason %q", i, q, w.desired, w.active, w.holds, w.reason)
		}
		if (w.failDesired < 0) == f.DesiredOK || f.DesiredOK && f.Desired != w.failDesired || f.Active != w.failActive || (f.Reason == "") != w.failReasonNone {
			t.Errorf("step %d: queue-fail %+v, want desired %d active %v", i, f, w.failDesired, w.failActive)
		}
		for k, rs := range []RuleSetStep{q, f} {
			s := sims[k].Step(st.Time, hpasim.Input{Desired: float64(rs.Desired), DesiredOK: rs.DesiredOK, Active: rs.Active, ActiveOK: rs.DesiredOK})
			if s.Replicas != rs.Replicas || s.Ready != rs.Ready {
				t.Errorf("step %d, %s: simulated %d (%d ready), the same inputs give %d (%d ready)", i, res.RuleSets[k], rs.Replicas, rs.Ready, s.Replicas, s.Ready)
			}
		}
	}
	if res.Steps[4].RuleSets[0].Replicas == 0 {
		t.Errorf("queue runs no replica at 60s with a desired 5 since 30s")
	}
}

// TestRunCurrentFromSimulation: current is the simulation's replicas
// before the step.
func TestRunCurrentFromSimulation(t *testing.T) {
	src := memSource(t, map[string]string{`queue_depth{namespace="ml", model="llama"}`: "1x40"})
	opts := baseOptions(ruleSets(t, "grow"), 300)
	opts.Builtins = map[string]string{"queued": "vector(0)"}
	res, err := Run(t.Context(), src, opts)
	if err != nil {
		t.Fatal(err)
	}
	prev := res.Initial
	grew := false
	for i, st := range res.Steps {
		rs := st.RuleSets[0]
		if want := min(int64(prev)+1, 3); !rs.DesiredOK || rs.Desired != want {
			t.Fatalf("step %d: desired %d, want current %d + 1 = %d", i, rs.Desired, prev, want)
		}
		grew = grew || rs.Replicas > prev
		prev = rs.Replicas
	}
	if !grew || prev != 3 {
		t.Errorf("the simulation ends at %d replicas (grew %v), want 3", prev, grew)
	}
}

// TestRunQueuedWakes: queued > 0 makes the answer active whatever the
// rule set says, as in the scaler.
func TestRunQueuedWakes(t *testing.T) {
	src := memSource(t, map[string]string{
		`queue_depth{namespace="ml", model="llama"}`:                           "0x10",
		`nemesis_activator_requests_queued{namespace="ml", service="chat"}`:    "0 0 3 0x7",
		`nemesis_activator_requests_in_flight{namespace="ml", service="chat"}`: "0 0 0 2x7",
		`nemesis_activator_requests_queued{namespace="ml", service="llama"}`:   "9x10",
	})
	opts := baseOptions(ruleSets(t, "queue", "uses-inflight"), 90)
	opts.Metadata["service"] = "chat"
	res, err := Run(t.Context(), src, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range res.Steps {
		queued := map[int]float64{2: 3}[i]
		inflight := map[bool]float64{true: 2}[i >= 3]
		if st.Queued != queued || st.InFlight != inflight {
			t.Errorf("step %d: queued %v inflight %v, want %v and %v", i, st.Queued, st.InFlight, queued, inflight)
		}
		if got := st.RuleSets[0].Active; got != (queued > 0) {
			t.Errorf("step %d: active %v with queued %v and depth 0", i, got, queued)
		}
		if got := st.RuleSets[1].Desired; got != int64(inflight) {
			t.Errorf("step %d: uses-inflight desired %d, want %v", i, got, inflight)
		}
	}
}

// TestRunSeriesQuery: a query read through series.NAME may return several
// series; its value in the output is then null.
func TestRunSeriesQuery(t *testing.T) {
	src := memSource(t, map[string]string{
		`pod_load{namespace="ml", pod="a"}`: "1 2 3",
		`pod_load{namespace="ml", pod="b"}`: "5 1 _",
	})
	opts := baseOptions(ruleSets(t, "per-pod"), 30)
	opts.Builtins = map[string]string{"queued": "vector(0)"}
	opts.Sim.PodStartup = 0
	res, err := Run(t.Context(), src, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int64{5, 2, 3} { // b's 1 at 15s still holds at 30s through the lookback
		if got := res.Steps[i].RuleSets[0].Desired; got != want {
			t.Errorf("step %d: desired %d, want %d", i, got, want)
		}
		if res.Steps[i].Values[0].OK {
			t.Errorf("step %d: two series gave the value %v, want null", i, res.Steps[i].Values[0])
		}
	}
}

// failingSource fails every query.
type failingSource struct{}

func (failingSource) QueryRange(context.Context, string, time.Time, time.Time, time.Duration) ([]metrics.Series, error) {
	return nil, errors.New("querying prometheus: connection refused")
}

func TestRunBadInput(t *testing.T) {
	good := map[string]string{
		`queue_depth{namespace="ml", model="llama"}`: "1x40",
		`pod_load{namespace="ml", pod="a"}`:          "1x40",
		`pod_load{namespace="ml", pod="b"}`:          "1x40",
	}
	tests := map[string]struct {
		src    Source
		rs     []string
		change func(*Options)
		want   string
	}{
		"step under 1s": {rs: []string{"queue"}, change: func(o *Options) { o.Step = 500 * time.Millisecond },
			want: "step 500ms is under 1s"},
		"end before start": {rs: []string{"queue"}, change: func(o *Options) { o.End = at(-15) },
			want: "end 1969-12-31T23:59:45Z is before start 1970-01-01T00:00:00Z"},
		"more than a million steps": {rs: []string{"queue"}, change: func(o *Options) { o.Step = time.Second; o.End = at(1_000_000) },
			want: "1970-01-01T00:00:00Z to 1970-01-12T13:46:40Z at 1s is more than 1000000 steps: shorten the window or lengthen the step"},
		"step not whole milliseconds": {rs: []string{"queue"}, change: func(o *Options) { o.Step = time.Second + time.Microsecond },
			want: "step 1.000001s is not a whole number of milliseconds, the resolution of Prometheus' timestamps"},
		"query fails": {src: failingSource{}, rs: []string{"queue"},
			want: `query queue.depth (sum(queue_depth{namespace="ml", model="llama"})): querying prometheus: connection refused`},
		"several series for a number": {rs: []string{"pod-sum"},
			want: `query pod-sum.load (pod_load{namespace="ml"}): 2 series at 1970-01-01T00:00:00Z where one number is needed: aggregate it in PromQL`},
		"no data": {rs: []string{"queue"}, change: func(o *Options) { o.Metadata["model"] = "nope" },
			want: `query queue.depth (sum(queue_depth{namespace="ml", model="nope"})): no data from 1970-01-01T00:00:00Z to 1970-01-01T00:01:00Z`},
		"built-in without data": {rs: []string{"uses-inflight"},
			want: `built-in inflight (sum(nemesis_activator_requests_in_flight{namespace="ml", service="llama"})): no data from 1970-01-01T00:00:00Z to 1970-01-01T00:01:00Z, and a rule set uses inflight: give its history with --builtin 'inflight=PromQL'`},
		"built-in with several series": {rs: []string{"queue"}, change: func(o *Options) { o.Builtins = map[string]string{"queued": "pod_load"} },
			want: `built-in queued (pod_load): 2 series at 1970-01-01T00:00:00Z where one number is needed: aggregate it in PromQL`},
		"current is not a query": {rs: []string{"queue"}, change: func(o *Options) { o.Builtins = map[string]string{"current": "vector(1)"} },
			want: `built-in "current": only inflight and queued take a query; current and ready come from the simulation`},
		"actual with several series": {rs: []string{"queue"}, change: func(o *Options) { o.Actual = "pod_load" },
			want: `actual (pod_load): 2 series at 1970-01-01T00:00:00Z where one number is needed: aggregate it in PromQL`},
		"actual without data": {rs: []string{"queue"}, change: func(o *Options) { o.Actual = "nope" },
			want: `actual (nope): no data from 1970-01-01T00:00:00Z to 1970-01-01T00:01:00Z`},
		"missing metadata": {rs: []string{"queue"}, change: func(o *Options) { delete(o.Metadata, "model") },
			want: `rule set "queue": query "depth": `},
		"rule set twice": {rs: []string{"queue", "queue"}, want: `rule set "queue" is given twice`},
		"no rule set":    {want: "no rule set to replay"},
		"bad scaled object": {rs: []string{"queue"}, change: func(o *Options) { o.Sim.MinReplicas = 200 },
			want: "scaled object: minReplicaCount 200 must not exceed maxReplicaCount 100"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			src := tc.src
			if src == nil {
				src = memSource(t, good)
			}
			opts := baseOptions(nil, 60)
			if len(tc.rs) > 0 {
				opts.RuleSets = ruleSets(t, tc.rs...)
			}
			if tc.change != nil {
				tc.change(&opts)
			}
			res, err := Run(t.Context(), src, opts)
			var ie *InputError
			if !errors.As(err, &ie) || res != nil {
				t.Fatalf("Run() = %v, %v; want an *InputError and no result", res, err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error:\n%s\nwant one line starting with:\n%s", err, tc.want)
			}
		})
	}
}

// TestRunCancelled: a cancelled run is not bad input.
func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	src := memSource(t, map[string]string{`queue_depth{namespace="ml", model="llama"}`: "1x40"})
	_, err := Run(ctx, src, baseOptions(ruleSets(t, "queue"), 60))
	var ie *InputError
	if err == nil || errors.As(err, &ie) {
		t.Errorf("Run() with a cancelled context = %v, want an error that is not an *InputError", err)
	}
}

func TestRunInitialFromActual(t *testing.T) {
	src := memSource(t, map[string]string{
		`queue_depth{namespace="ml", model="llama"}`: "0x40",
		`kube_replicas{namespace="ml"}`:              "_ 4x39",
	})
	opts := baseOptions(ruleSets(t, "queue"), 60)
	opts.Actual = `kube_replicas{namespace="ml"}`
	res, err := Run(t.Context(), src, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Initial != 4 || res.Steps[0].Actual.OK || !res.Steps[1].Actual.OK {
		t.Errorf("initial %d, actual at 0s %+v, at 15s %+v; want 4, null, 4", res.Initial, res.Steps[0].Actual, res.Steps[1].Actual)
	}
	// Inactive from the start, the target stays up for the cooldown (5m).
	if got := res.Steps[4].RuleSets[0].Replicas; got == 0 {
		t.Errorf("replicas at 60s = 0, want the cooldown to keep them")
	}
}

func BenchmarkRunWeek(b *testing.B) {
	st := memprom.New()
	for i, s := range []string{`a{namespace="ml"}`, `b{namespace="ml"}`, `c{namespace="ml"}`} {
		if err := st.AddSeries(s, fmt.Sprintf("%d+1x40320", i), memprom.Epoch(), 15*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	rs, err := rules.Parse("bench.yaml", []byte(`
ruleSets:
  - name: three
    queries: {a: 'sum(a{namespace="$namespace"})', b: 'sum(b{namespace="$namespace"})', c: 'sum(c{namespace="$namespace"})'}
    replicas: (a + b + c) / 30000
    max: 20
`))
	if err != nil {
		b.Fatal(err)
	}
	src := memprom.NewEngine(st, memprom.Options{})
	opts := Options{RuleSets: rs, Namespace: "ml", Name: "x", Start: memprom.Epoch(), End: memprom.Epoch().Add(7 * 24 * time.Hour),
		Step: 15 * time.Second, Sim: hpasim.DefaultConfig(), Builtins: map[string]string{"inflight": "vector(0)", "queued": "vector(0)"}}
	for b.Loop() {
		if _, err := Run(b.Context(), src, opts); err != nil {
			b.Fatal(err)
		}
	}
}
