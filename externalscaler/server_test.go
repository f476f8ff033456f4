package externalscaler

// Unit tests of the server with a fake Querier and a fake clock: no
// Prometheus, no gRPC.

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/k8s-nemesis/nemesis/metrics"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// querierFunc adapts a function to Querier.
type querierFunc func(ctx context.Context, query string) (metrics.Result, error)

func (f querierFunc) Query(ctx context.Context, query string) (metrics.Result, error) {
	return f(ctx, query)
}

// fakeQuerier answers every query with one settable result and counts calls.
type fakeQuerier struct {
	calls atomic.Int64

	mu  sync.Mutex
	res metrics.Result
	err error
}

func (f *fakeQuerier) set(res metrics.Result, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.res, f.err = res, err
}

func (f *fakeQuerier) value(v float64) { f.set(metrics.Result{Values: []float64{v}}, nil) }

func (f *fakeQuerier) Query(context.Context, string) (metrics.Result, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.res, f.err
}

// unitRules has one rule set per onError policy, all on one query.
const unitRules = `
ruleSets:
  - name: hold
    queries:
      load: sum(load{namespace="$namespace"})
    replicas: load / 4
    max: 16
    onError: hold
    staleAfter: 2m
  - name: fail
    queries:
      load: sum(load{namespace="$namespace"})
    replicas: load / 4
    max: 16
    onError: fail
  - name: fixed
    queries:
      load: sum(load{namespace="$namespace"})
    replicas: load / 4
    max: 16
    onError: 3
  - name: fixed-zero
    queries:
      load: sum(load{namespace="$namespace"})
    replicas: load / 4
    max: 16
    onError: 0
  - name: two-queries
    queries:
      a: sum(a{namespace="$namespace", service="$service"})
      b: sum(b{namespace="$namespace", service="$service"})
    replicas: a + b
    max: 100
    onError: fail
  - name: Chat_LLM.v2
    queries:
      load: sum(load{namespace="$namespace"})
    replicas: load
    max: 16
    onError: fail
`

type unitEnv struct {
	server *Server
	store  *RuleStore
	reg    *prometheus.Registry
	clock  *fakeClock
	path   string
	logs   *syncBuffer
}

// newUnitServer serves rules through q, on a fake clock.
func newUnitServer(t *testing.T, rules string, q Querier, opts Options) *unitEnv {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	e := &unitEnv{reg: prometheus.NewRegistry(), clock: newFakeClock(), path: path}
	logs := &syncBuffer{}
	e.logs = logs
	logger := newTestLogger(logs)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	})
	var err error
	if e.store, err = NewRuleStore([]string{path}, logger, e.reg); err != nil {
		t.Fatal(err)
	}
	opts.Logger, opts.Registerer, opts.Now = logger, e.reg, e.clock.Now
	e.server = New(e.store, q, opts)
	return e
}

func ref(namespace, name string, meta map[string]string) *pb.ScaledObjectRef {
	return &pb.ScaledObjectRef{Namespace: namespace, Name: name, ScalerMetadata: meta}
}

// replicas calls GetMetrics and IsActive as KEDA does.
func (e *unitEnv) replicas(r *pb.ScaledObjectRef) (int64, bool, error) {
	ctx := context.Background()
	m, err := e.server.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: r, MetricName: "x"})
	if err != nil {
		return 0, false, err
	}
	a, err := e.server.IsActive(ctx, r)
	if err != nil {
		return 0, false, err
	}
	v := m.MetricValues[0]
	if float64(v.MetricValue) != v.MetricValueFloat {
		return 0, false, errors.New("MetricValue and MetricValueFloat differ")
	}
	return v.MetricValue, a.Result, nil
}

func (e *unitEnv) expect(t *testing.T, r *pb.ScaledObjectRef, want int64, wantActive bool) {
	t.Helper()
	got, active, err := e.replicas(r)
	if err != nil {
		t.Fatalf("%s/%s: %v; want %d replicas", r.Namespace, r.Name, err, want)
	}
	if got != want || active != wantActive {
		t.Fatalf("%s/%s: %d replicas, active %v; want %d, active %v", r.Namespace, r.Name, got, active, want, wantActive)
	}
}

func (e *unitEnv) expectCode(t *testing.T, r *pb.ScaledObjectRef, code codes.Code) error {
	t.Helper()
	got, active, err := e.replicas(r)
	if err == nil {
		t.Fatalf("%s/%s: %d replicas, active %v; want an error", r.Namespace, r.Name, got, active)
	}
	if status.Code(err) != code {
		t.Fatalf("%s/%s: error %v, want code %v", r.Namespace, r.Name, err, code)
	}
	return err
}

func TestOnErrorTimeline(t *testing.T) {
	promDown := errors.New("querying prometheus: connection refused")

	t.Run("hold", func(t *testing.T) {
		q := &fakeQuerier{}
		e := newUnitServer(t, unitRules, q, Options{})
		r := ref("ns", "so", map[string]string{"ruleSet": "hold"})
		holding := func() float64 { return testutil.ToFloat64(e.server.m.holding.WithLabelValues("ns", "so", "hold")) }

		q.value(9)
		e.expect(t, r, 3, true)
		q.set(metrics.Result{}, promDown)
		for _, step := range []time.Duration{time.Second, time.Minute, 59 * time.Second} { // up to staleAfter exactly
			e.clock.Add(step)
			e.expect(t, r, 3, true)
			if got := holding(); got != 1 {
				t.Fatalf("holding = %v, want 1", got)
			}
		}
		e.clock.Add(time.Second) // staleAfter + 1s
		e.expectCode(t, r, codes.Unavailable)
		if got := holding(); got != 0 {
			t.Errorf("holding = %v past staleAfter, want 0", got)
		}
		q.value(20)
		e.clock.Add(time.Second)
		e.expect(t, r, 5, true)
		if got := holding(); got != 0 {
			t.Errorf("holding = %v after recovery, want 0", got)
		}
		if got := testutil.ToFloat64(e.server.m.desired.WithLabelValues("ns", "so", "hold")); got != 5 {
			t.Errorf("desired = %v, want 5", got)
		}
	})

	t.Run("hold without a good decision", func(t *testing.T) {
		q := &fakeQuerier{}
		q.set(metrics.Result{}, promDown)
		e := newUnitServer(t, unitRules, q, Options{})
		err := e.expectCode(t, ref("ns", "so", map[string]string{"ruleSet": "hold"}), codes.Unavailable)
		if !strings.Contains(err.Error(), "no good decision yet") {
			t.Errorf("error %v: want it to say there is nothing to hold", err)
		}
	})

	t.Run("fail", func(t *testing.T) {
		q := &fakeQuerier{}
		e := newUnitServer(t, unitRules, q, Options{})
		r := ref("ns", "so", map[string]string{"ruleSet": "fail"})
		q.value(9)
		e.expect(t, r, 3, true)
		q.set(metrics.Result{}, promDown)
		e.clock.Add(time.Second)
		e.expectCode(t, r, codes.Unavailable)
		// The desired gauge keeps the last value KEDA was given.
		if got := testutil.ToFloat64(e.server.m.desired.WithLabelValues("ns", "so", "fail")); got != 3 {
			t.Errorf("desired = %v, want 3", got)
		}
	})

	t.Run("fixed", func(t *testing.T) {
		q := &fakeQuerier{}
		e := newUnitServer(t, unitRules, q, Options{})
		q.set(metrics.Result{}, promDown)
		e.expect(t, ref("ns", "so", map[string]string{"ruleSet": "fixed"}), 3, true)
		e.expect(t, ref("ns", "so", map[string]string{"ruleSet": "fixed-zero"}), 0, false)
		q.value(40)
		e.clock.Add(time.Second)
		e.expect(t, ref("ns", "so", map[string]string{"ruleSet": "fixed"}), 10, true)
	})
}

// blockingQuerier blocks every query until release is closed.
type blockingQuerier struct {
	calls   atomic.Int64
	started chan struct{} // gets a value per call
	release chan struct{}
}

func (b *blockingQuerier) Query(ctx context.Context, _ string) (metrics.Result, error) {
	b.calls.Add(1)
	b.started <- struct{}{}
	select {
	case <-b.release:
		return metrics.Result{Values: []float64{7}}, nil
	case <-ctx.Done():
		return metrics.Result{}, ctx.Err()
	}
}

func TestConcurrentCallsEvaluateOnce(t *testing.T) {
	q := &blockingQuerier{started: make(chan struct{}, 100), release: make(chan struct{})}
	e := newUnitServer(t, unitRules, q, Options{})
	r := ref("ns", "so", map[string]string{"ruleSet": "two-queries", "service": "api"})

	const callers = 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*callers)
	for range callers {
		wg.Go(func() {
			got, active, err := e.replicas(ref(r.Namespace, r.Name, r.ScalerMetadata))
			if err == nil && (got != 14 || !active) {
				err = errors.New("wrong answer")
			}
			errs <- err
		})
	}
	<-q.started
	<-q.started                       // both queries of the one evaluation run
	time.Sleep(50 * time.Millisecond) // let the other callers pile up
	close(q.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := testutil.ToFloat64(e.server.m.evaluations.WithLabelValues("two-queries")); got != 1 {
		t.Errorf("evaluations = %v for %d concurrent GetMetrics+IsActive pairs, want 1", got, callers)
	}
	if got := q.calls.Load(); got != 2 {
		t.Errorf("queries = %d, want 2", got)
	}
}

// A caller that gives up must not turn the evaluation it started into an
// error for the callers that joined it.
func TestCancelledCallerDoesNotFailOthers(t *testing.T) {
	q := &blockingQuerier{started: make(chan struct{}, 100), release: make(chan struct{})}
	e := newUnitServer(t, unitRules, q, Options{})
	r := ref("ns", "so", map[string]string{"ruleSet": "fail"})

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := e.server.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: r})
		first <- err
	}()
	<-q.started // the first caller's evaluation runs
	second := make(chan error, 1)
	var got *pb.GetMetricsResponse
	go func() {
		var err error
		got, err = e.server.GetMetrics(context.Background(), &pb.GetMetricsRequest{ScaledObjectRef: r})
		second <- err
	}()
	time.Sleep(50 * time.Millisecond) // the second caller joins
	cancel()
	if err := <-first; status.Code(err) != codes.Canceled {
		t.Errorf("cancelled caller: %v, want code Canceled", err)
	}
	close(q.release)
	if err := <-second; err != nil {
		t.Fatalf("the caller that joined got %v, want the evaluation's answer", err)
	}
	if v := got.MetricValues[0].MetricValue; v != 2 { // ceil(7/4)
		t.Errorf("replicas = %d, want 2", v)
	}
	if got := testutil.ToFloat64(e.server.m.errors.WithLabelValues("fail", "prometheus")); got != 0 {
		t.Errorf("prometheus errors = %v, want 0: nothing failed", got)
	}
	// And the answer KEDA gets next, within ReuseFor, is the good one.
	e.expect(t, r, 2, true)
}

func TestEvaluationErrorReasons(t *testing.T) {
	for _, c := range []struct {
		reason string
		res    metrics.Result
		err    error
	}{
		{"prometheus", metrics.Result{}, errors.New("querying prometheus: connection refused")},
		{"prometheus", metrics.Result{}, context.DeadlineExceeded},
		{"no_data", metrics.Result{Values: []float64{}}, nil},
		{"series", metrics.Result{Values: []float64{1, 2}}, nil},
		{"not_finite", metrics.Result{Values: []float64{math.NaN()}}, nil},
		{"not_finite", metrics.Result{Values: []float64{math.Inf(1)}}, nil},
	} {
		t.Run(c.reason, func(t *testing.T) {
			q := &fakeQuerier{}
			q.set(c.res, c.err)
			e := newUnitServer(t, unitRules, q, Options{})
			e.expectCode(t, ref("ns", "so", map[string]string{"ruleSet": "fail"}), codes.Unavailable)
			for _, reason := range []string{"prometheus", "no_data", "series", "not_finite", "expression"} {
				want := 0.0
				if reason == c.reason {
					want = 1
				}
				if got := testutil.ToFloat64(e.server.m.errors.WithLabelValues("fail", reason)); got != want {
					t.Errorf("evaluation_errors_total{reason=%q} = %v, want %v", reason, got, want)
				}
			}
			if got := testutil.ToFloat64(e.server.m.evaluations.WithLabelValues("fail")); got != 1 {
				t.Errorf("evaluations = %v, want 1", got)
			}
		})
	}
}

func TestMetricNameSanitised(t *testing.T) {
	for in, want := range map[string]string{
		"chat":        "nemesis-chat",
		"Chat_LLM.v2": "nemesis-chat-llm-v2",
		"a-b_c.D":     "nemesis-a-b-c-d",
	} {
		if got := metricName(in); got != want {
			t.Errorf("metricName(%q) = %q, want %q", in, got, want)
		}
	}

	q := &fakeQuerier{}
	q.value(3)
	e := newUnitServer(t, unitRules, q, Options{})
	r := ref("ns", "so", map[string]string{"ruleSet": "Chat_LLM.v2"})
	spec, err := e.server.GetMetricSpec(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.MetricSpecs) != 1 || spec.MetricSpecs[0].MetricName != "nemesis-chat-llm-v2" ||
		spec.MetricSpecs[0].TargetSize != 1 || spec.MetricSpecs[0].TargetSizeFloat != 1 {
		t.Errorf("GetMetricSpec = %v, want one metric nemesis-chat-llm-v2 with target 1", spec.MetricSpecs)
	}
	m, err := e.server.GetMetrics(context.Background(), &pb.GetMetricsRequest{ScaledObjectRef: r, MetricName: "nemesis-chat-llm-v2"})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.MetricValues[0].MetricName; got != "nemesis-chat-llm-v2" {
		t.Errorf("GetMetrics metric name %q, want nemesis-chat-llm-v2", got)
	}
	if q.calls.Load() != 1 {
		t.Errorf("queries = %d, want 1 (GetMetricSpec runs none)", q.calls.Load())
	}
}

func TestForgetIdle(t *testing.T) {
	q := &fakeQuerier{}
	q.value(9)
	e := newUnitServer(t, unitRules, q, Options{ForgetAfter: time.Minute})
	old := ref("ns", "old", map[string]string{"ruleSet": "hold"})
	recent := ref("ns", "recent", map[string]string{"ruleSet": "hold"})
	e.expect(t, old, 3, true)
	e.expect(t, recent, 3, true)
	series := func() int {
		n, err := testutil.GatherAndCount(e.reg, "nemesis_scaler_desired_replicas", "nemesis_scaler_active", "nemesis_scaler_holding")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := series(); got != 6 {
		t.Fatalf("per-object series = %d, want 6", got)
	}

	e.clock.Add(45 * time.Second)
	e.expect(t, recent, 3, true)
	e.clock.Add(30 * time.Second) // old: 75s idle, recent: 30s
	e.server.forgetIdle()
	if got := series(); got != 3 {
		t.Errorf("per-object series = %d after forgetting one object, want 3", got)
	}
	e.server.mu.Lock()
	n := len(e.server.objects)
	_, kept := e.server.objects[objectKey(recent)]
	e.server.mu.Unlock()
	if n != 1 || !kept {
		t.Errorf("objects = %d (recent kept: %v), want only the recent one", n, kept)
	}

	// The forgotten object's last good decision is gone too: with
	// Prometheus down there is nothing to hold.
	q.set(metrics.Result{}, errors.New("down"))
	e.expectCode(t, old, codes.Unavailable)
	e.expect(t, recent, 3, true)
}

func TestInvalidRefs(t *testing.T) {
	q := &fakeQuerier{}
	q.value(1)
	e := newUnitServer(t, unitRules, q, Options{})
	ctx := context.Background()
	if _, err := e.server.GetMetrics(ctx, &pb.GetMetricsRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("GetMetrics without a ref: %v, want InvalidArgument", err)
	}
	if _, err := e.server.IsActive(ctx, nil); status.Code(err) != codes.InvalidArgument {
		t.Errorf("IsActive without a ref: %v, want InvalidArgument", err)
	}
	if _, err := e.server.GetMetricSpec(ctx, nil); status.Code(err) != codes.InvalidArgument {
		t.Errorf("GetMetricSpec without a ref: %v, want InvalidArgument", err)
	}
	for _, meta := range []map[string]string{
		nil,
		{"ruleSet": "nope"},
		{"ruleSet": "two-queries"}, // $service missing
	} {
		r := ref("ns", "so", meta)
		if _, err := e.server.GetMetricSpec(ctx, r); status.Code(err) != codes.InvalidArgument {
			t.Errorf("GetMetricSpec(%v): %v, want InvalidArgument", meta, err)
		}
		e.expectCode(t, r, codes.InvalidArgument)
	}
	if q.calls.Load() != 0 {
		t.Errorf("queries = %d, want 0", q.calls.Load())
	}
}

func TestReloadDropsReusedAnswer(t *testing.T) {
	q := &fakeQuerier{}
	q.value(8)
	e := newUnitServer(t, unitRules, q, Options{ReuseFor: time.Hour})
	r := ref("ns", "so", map[string]string{"ruleSet": "fail"})
	e.expect(t, r, 2, true)

	const before, after = "replicas: load / 4\n    max: 16\n    onError: fail", "replicas: load / 2\n    max: 16\n    onError: fail"
	if strings.Count(unitRules, before) != 1 {
		t.Fatal("the edit does not apply to unitRules")
	}
	edited := []byte(strings.Replace(unitRules, before, after, 1))
	if err := os.WriteFile(e.path, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	if changed, err := e.store.Reload(); !changed || err != nil {
		t.Fatalf("Reload = %v, %v; want a change", changed, err)
	}
	e.expect(t, r, 4, true) // within ReuseFor, but the rule changed
}

func TestReloadOfFixedFileClearsFailure(t *testing.T) {
	e := newUnitServer(t, unitRules, &fakeQuerier{}, Options{})
	m := e.store.m
	if err := os.WriteFile(e.path, []byte("ruleSets: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Reload(); err == nil {
		t.Fatal("Reload of an invalid file succeeded")
	}
	if got := testutil.ToFloat64(m.lastFailure); got != 1 {
		t.Fatalf("last_reload_failed = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.reloads.WithLabelValues("failure")); got != 1 {
		t.Errorf("failed reloads = %v, want 1", got)
	}
	// The operator puts back the version in force.
	if err := os.WriteFile(e.path, []byte(unitRules), 0o644); err != nil {
		t.Fatal(err)
	}
	if changed, err := e.store.Reload(); changed || err != nil {
		t.Fatalf("Reload = %v, %v; want no change, no error", changed, err)
	}
	if got := testutil.ToFloat64(m.lastFailure); got != 0 {
		t.Errorf("last_reload_failed = %v once the files are valid again, want 0", got)
	}
	if got := e.store.Current().Version; got != 1 {
		t.Errorf("version = %d, want 1", got)
	}
}

// KEDA's IsActive right after GetMetrics must answer from the same
// evaluation, even when that evaluation's reuse window ends between the two
// calls and the load has changed meanwhile.
func TestIsActiveAnswersFromGetMetricsEvaluation(t *testing.T) {
	q := &fakeQuerier{}
	e := newUnitServer(t, unitRules, q, Options{ReuseFor: time.Second})
	r := ref("ns", "so", map[string]string{"ruleSet": "fail"})
	ctx := context.Background()

	q.value(8)                                           // 2 replicas, active
	if _, err := e.server.IsActive(ctx, r); err != nil { // e.g. a push stream evaluates
		t.Fatal(err)
	}
	e.clock.Add(999 * time.Millisecond)
	m, err := e.server.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: r})
	if err != nil || m.MetricValues[0].MetricValue != 2 {
		t.Fatalf("GetMetrics: %v, %v; want 2 from the first evaluation", m, err)
	}
	q.value(0) // the load is gone, and the first evaluation's window ends
	e.clock.Add(2 * time.Millisecond)
	a, err := e.server.IsActive(ctx, r)
	if err != nil || !a.Result {
		t.Fatalf("IsActive: %v, %v; want true, from the evaluation GetMetrics answered from", a, err)
	}
	// The pairing is used once: the next IsActive evaluates afresh.
	if a, err = e.server.IsActive(ctx, r); err != nil || a.Result {
		t.Fatalf("second IsActive: %v, %v; want false from a new evaluation", a, err)
	}
	if got := testutil.ToFloat64(e.server.m.evaluations.WithLabelValues("fail")); got != 2 {
		t.Errorf("evaluations = %v, want 2", got)
	}
}
