package externalscaler

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"

	"github.com/k8s-nemesis/nemesis/metrics"
	"github.com/k8s-nemesis/nemesis/rules"
)

// listQuerier answers a query with the values set for the first metric
// name it contains, each response in a slice of its own.
type listQuerier struct {
	vals map[string][]float64
	err  error
}

func (l *listQuerier) Query(_ context.Context, q string) (metrics.Result, error) {
	if l.err != nil {
		return metrics.Result{}, l.err
	}
	for name, v := range l.vals {
		if strings.Contains(q, name+"{") {
			return metrics.Result{Values: slices.Clone(v)}, nil
		}
	}
	return metrics.Result{}, nil
}

const mixedRules = `
ruleSets:
  - name: mixed
    queries:
      pods: sum by (pod) (load{namespace="$namespace"})
      waiting: sum(waiting{namespace="$namespace"})
    replicas: sum(series.pods) / 50 + waiting + queued + current
    max: 16
`

// TestRecordOfSeriesAndBuiltins checks that a record keeps what a query
// used as series returned and the built-ins read, and that its explanation
// is the one the rule set gives for the evaluation's full inputs.
func TestRecordOfSeriesAndBuiltins(t *testing.T) {
	q := &listQuerier{vals: map[string][]float64{"load": {30, 70}, "waiting": {1}}}
	demand := newFakeDemand()
	demand.set("ns", "mixed", 5, 2)
	e := newUnitServer(t, mixedRules, q, Options{Demand: demand, ScaleTargets: &countingTargets{}})
	r := ref("ns", "mixed", map[string]string{"ruleSet": "mixed"})
	e.expect(t, r, 8, true) // 100 / 50 + 1 + 2 + 3

	got := history(t, e, "mixed")[0]
	if got.Queries[0].Value != nil || got.Queries[0].Error != "" || !slices.Equal(got.Queries[0].Values, []float64{30, 70}) {
		t.Errorf("series query %+v, want values [30 70], no value, no error", got.Queries[0])
	}
	if got.Queries[1].Value == nil || *got.Queries[1].Value != 1 {
		t.Errorf("bare query %+v, want value 1", got.Queries[1])
	}
	if len(got.Builtins) != 2 || got.Builtins["queued"] != 2 || got.Builtins["current"] != 3 {
		t.Errorf("builtins %v, want queued 2 and current 3", got.Builtins)
	}
	rs, _ := e.store.Current().RuleSet("mixed")
	want := "replicas 8: " + rs.Explain([]rules.Result{{Values: []float64{30, 70}}, {Values: []float64{1}}}, &rules.BuiltinValues{InFlight: 5, Queued: 2, Current: 3, Ready: 2}, 8)
	if got.Explanation != want {
		t.Errorf("explanation %q,\nwant %q", got.Explanation, want)
	}
	if !strings.Contains(got.Explanation, "current = 3") {
		t.Errorf("explanation %q does not show current", got.Explanation)
	}
	if got.ActiveReason != "replicas > 0 (the default active) is true" || !got.Active {
		t.Errorf("active %v, reason %q", got.Active, got.ActiveReason)
	}
}

// TestRecordOfQueryProblems checks what a record says of a query that did
// not return one number.
func TestRecordOfQueryProblems(t *testing.T) {
	for name, tc := range map[string]struct {
		waiting          []float64
		wantErr, reason  string
		wantRecordReason string
	}{
		"no series":   {nil, "returned no series", "no_data", "no_data"},
		"several":     {[]float64{1, 2, 3}, "returned 3 series where one number was needed", "series", "series"},
		"NaN":         {[]float64{math.NaN()}, "returned a value that is not a finite number", "not_finite", "not_finite"},
		"Inf of two":  {[]float64{1, math.Inf(1)}, "returned a value that is not a finite number", "not_finite", "not_finite"},
		"one, finite": {[]float64{8}, "", "", ""},
	} {
		t.Run(name, func(t *testing.T) {
			q := &listQuerier{vals: map[string][]float64{"waiting": tc.waiting, "running": {10}}}
			e := newUnitServer(t, strings.Replace(recordRules, "onError: hold", "onError: fail", 1), q, Options{})
			r := chatRef("chat")
			_, _, _ = e.replicas(r)
			got := history(t, e, "chat")[0]
			w := got.Queries[0]
			if w.Error != tc.wantErr || w.Reason != tc.reason || (w.Value != nil) != (tc.wantErr == "") {
				t.Errorf("waiting %+v, want error %q, reason %q", w, tc.wantErr, tc.reason)
			}
			if got.Queries[1].Value == nil || *got.Queries[1].Value != 10 {
				t.Errorf("running %+v, want 10", got.Queries[1])
			}
			if got.Reason != tc.wantRecordReason {
				t.Errorf("record reason %q, want %q", got.Reason, tc.wantRecordReason)
			}
		})
	}
}

// TestRecordOfOnError checks the records of onError's fixed count, of a
// hold gone stale, and of queries that never ran.
func TestRecordOfOnError(t *testing.T) {
	t.Run("fixed", func(t *testing.T) {
		q := &listQuerier{err: errors.New("connection refused")}
		e := newUnitServer(t, strings.Replace(recordRules, "onError: hold", "onError: 2", 1), q, Options{})
		e.expect(t, chatRef("chat"), 2, true)
		got := history(t, e, "chat")[0]
		if got.OnError != "onError: 2 replicas" || got.Replicas != 2 || got.Holding || got.Raw != nil || got.Reason != "prometheus" {
			t.Errorf("record %+v", got)
		}
		if got.ActiveReason != "onError's fixed count: replicas > 0 is true" {
			t.Errorf("activeReason %q", got.ActiveReason)
		}
		if !strings.HasPrefix(got.Explanation, "replicas 2 (onError: 2 replicas): ") || !strings.Contains(got.Explanation, "connection refused") {
			t.Errorf("explanation %q", got.Explanation)
		}
	})
	t.Run("stale hold", func(t *testing.T) {
		q := &listQuerier{vals: map[string][]float64{"waiting": {18}, "running": {10}}}
		e := newUnitServer(t, recordRules, q, Options{})
		r := chatRef("chat")
		e.expect(t, r, 5, true)
		q.err = errors.New("connection refused")
		for range 2 {
			e.clock.Add(time.Minute)
			e.expect(t, r, 5, true) // held
		}
		e.clock.Add(5 * time.Minute)
		e.expectCode(t, r, 14) // Unavailable: nothing young enough to hold
		recs := history(t, e, "chat")
		got := recs[0]
		if got.Replicas != 0 || got.Active || got.Holding || got.PreviousReplicas == nil || *got.PreviousReplicas != 5 {
			t.Errorf("record %+v", got)
		}
		want := "no replicas (onError: hold, nothing young enough to hold: KEDA's fallback applies): "
		if !strings.HasPrefix(got.Explanation, want) || !strings.HasSuffix(got.Explanation, "(the last good decision is older than staleAfter 5m0s)") {
			t.Errorf("explanation %q", got.Explanation)
		}
		if got.ActiveReason != "no answer: KEDA's fallback applies" {
			t.Errorf("activeReason %q", got.ActiveReason)
		}
		// The two holds failed alike: one failure kept for both.
		o := e.server.objects[objectKey(r)]
		if f1, f2 := o.records.buf[1].fail, o.records.buf[2].fail; f1 == nil || f1 != f2 {
			t.Errorf("the holds keep failures %p and %p, want one shared", f1, f2)
		}
		if recs[1].Error != recs[2].Error || recs[1].OnError != recs[2].OnError {
			t.Errorf("holds differ: %+v, %+v", recs[1], recs[2])
		}
	})
	t.Run("not run", func(t *testing.T) {
		q := &listQuerier{vals: map[string][]float64{"waiting": {18}, "running": {10}}}
		e := newUnitServer(t, strings.Replace(recordRules, "max(waiting / 4, running / 8)", "max(waiting / 4, inflight)", 1), q, Options{})
		_, _, _ = e.replicas(chatRef("chat"))
		got := history(t, e, "chat")[0]
		if got.Reason != "demand" || got.Queries[0].Error != "not run" || got.Queries[0].Value != nil || len(got.Builtins) != 0 {
			t.Errorf("record %+v", got)
		}
	})
}

// TestRecordCalls checks that every call an evaluation answers is counted
// on its record, also one that arrives after the next evaluation.
func TestRecordCalls(t *testing.T) {
	q := &byQuery{vals: map[string]float64{"waiting": 18, "running": 10}}
	e := newUnitServer(t, recordRules, q, Options{})
	r := chatRef("chat")
	for range 3 {
		if _, err := e.server.GetMetrics(context.Background(), &pb.GetMetricsRequest{ScaledObjectRef: r}); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Add(2 * time.Second)
	e.expect(t, r, 5, true)
	// A call answered by the first evaluation, counted after the second.
	e.server.mu.Lock()
	o := e.server.objects[objectKey(r)]
	if o.countCall(1) {
		t.Error("countCall counted an older record than the newest")
	}
	o.records.count(1)
	e.server.mu.Unlock()

	recs := history(t, e, "chat")
	if recs[1].Calls != 4 || recs[0].Calls != 2 {
		t.Errorf("calls %d then %d, want 4 (3 GetMetrics and a late one), then 2", recs[1].Calls, recs[0].Calls)
	}
}
