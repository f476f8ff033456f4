package externalscaler

// The demand signal: the built-ins inflight and queued, the queued
// override, and the wake-up of StreamIsActive, from unit level to KEDA's own
// push client against real activator trackers.

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kedacore/keda/v2/pkg/scalers"
	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"

	"github.com/k8s-nemesis/nemesis/demand"
	"github.com/k8s-nemesis/nemesis/metrics"
)

// fakeDemand is a Demand the test sets by hand.
type fakeDemand struct {
	mu      sync.Mutex
	known   bool
	counts  map[[2]string][2]int64
	waiters map[[2]string]chan struct{}
	gets    [][2]string
}

var _ Demand = (*fakeDemand)(nil)

func newFakeDemand() *fakeDemand {
	return &fakeDemand{known: true, counts: map[[2]string][2]int64{}, waiters: map[[2]string]chan struct{}{}}
}

func (f *fakeDemand) Get(namespace, service string) (int64, int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets = append(f.gets, [2]string{namespace, service})
	c := f.counts[[2]string{namespace, service}]
	return c[0], c[1], f.known
}

func (f *fakeDemand) Changes(namespace, service string) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := [2]string{namespace, service}
	if f.waiters[k] == nil {
		f.waiters[k] = make(chan struct{})
	}
	return f.waiters[k]
}

func (f *fakeDemand) set(namespace, service string, inFlight, queued int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := [2]string{namespace, service}
	f.counts[k] = [2]int64{inFlight, queued}
	if ch := f.waiters[k]; ch != nil {
		close(ch)
		delete(f.waiters, k)
	}
}

func (f *fakeDemand) readFrom() [][2]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.gets)
}

const demandRules = `
ruleSets:
  - name: demand
    replicas: ceil(inflight / 4)
    active: inflight > 0 || queued > 0
    max: 8
    onError: fail
  - name: mixed
    queries:
      load: sum(load{namespace="$namespace"})
    replicas: max(load, inflight / 4)
    max: 8
    onError: fail
  - name: shadowed
    queries:
      inflight: sum(in_flight{namespace="$namespace", service="$service"})
    replicas: inflight
    max: 8
    onError: fail
  - name: prometheus-only
    queries:
      load: sum(load{namespace="$namespace"})
    replicas: load
    active: load > 5
    max: 8
    onError: fail
`

func TestDemandBuiltins(t *testing.T) {
	q := &fakeQuerier{}
	q.value(1)
	d := newFakeDemand()
	e := newUnitServer(t, demandRules, q, Options{Demand: d})
	d.set("ml", "chat", 9, 0)
	d.set("ml", "so", 2, 0)
	d.set("other", "chat", 100, 0)

	// metadata service names the Service; its namespace is always the
	// ScaledObject's, whatever the metadata says.
	e.expect(t, ref("ml", "so", map[string]string{"ruleSet": "demand", "service": "chat", "namespace": "other"}), 3, true)
	// Without metadata service, the ScaledObject's name.
	e.expect(t, ref("ml", "so", map[string]string{"ruleSet": "demand"}), 1, true)
	e.expect(t, ref("ml", "so", map[string]string{"ruleSet": "mixed", "service": "chat"}), 3, true)
	for _, got := range d.readFrom() {
		if got[0] != "ml" {
			t.Errorf("read the demand of %s/%s: another namespace", got[0], got[1])
		}
	}
	// A query named inflight shadows the built-in.
	e.expect(t, ref("ml", "so2", map[string]string{"ruleSet": "shadowed", "service": "chat"}), 1, true)

	// Unknown demand (no activator connected) is an error for onError, never 0.
	d.mu.Lock()
	d.known = false
	d.mu.Unlock()
	e.expectCode(t, ref("ml", "so3", map[string]string{"ruleSet": "demand", "service": "chat"}), codes.Unavailable)
	if got := testutil.ToFloat64(e.server.m.errors.WithLabelValues("demand", "demand")); got != 1 {
		t.Errorf("evaluation_errors_total{reason=demand} = %v, want 1", got)
	}
}

func TestDemandWithoutActivators(t *testing.T) {
	q := &fakeQuerier{}
	q.value(1)
	e := newUnitServer(t, demandRules, q, Options{})
	err := e.expectCode(t, ref("ml", "so", map[string]string{"ruleSet": "demand"}), codes.Unavailable)
	if want := "--activator"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say to use %s", err, want)
	}
	// Rule sets without built-ins are untouched.
	e.expect(t, ref("ml", "so", map[string]string{"ruleSet": "prometheus-only"}), 1, false)
}

// TestDemandQueuedWakes: queued requests make a trigger active whatever
// its rule set says, and even when it cannot be evaluated.
func TestDemandQueuedWakes(t *testing.T) {
	q := &fakeQuerier{}
	q.value(1)
	d := newFakeDemand()
	e := newUnitServer(t, demandRules, q, Options{Demand: d})
	r := ref("ml", "so", map[string]string{"ruleSet": "prometheus-only", "service": "chat"})
	e.expect(t, r, 1, false)
	d.set("ml", "chat", 0, 1)
	e.clock.Add(time.Hour)
	e.expect(t, r, 1, true)

	// Prometheus down, onError: fail: GetMetrics fails (KEDA's fallback),
	// IsActive still says true.
	q.set(metrics.Result{}, errors.New("connection refused"))
	e.clock.Add(time.Hour)
	if _, err := e.server.GetMetrics(context.Background(), &pb.GetMetricsRequest{ScaledObjectRef: r}); err == nil {
		t.Error("GetMetrics succeeded with Prometheus down and onError: fail")
	}
	e.clock.Add(time.Hour)
	if a, err := e.server.IsActive(context.Background(), r); err != nil || !a.Result {
		t.Errorf("IsActive = %v, %v with a queued request, want true", a, err)
	}
	d.set("ml", "chat", 0, 0)
	e.clock.Add(time.Hour)
	if _, err := e.server.IsActive(context.Background(), r); err == nil {
		t.Error("IsActive succeeded with Prometheus down, onError: fail and nothing queued")
	}
}

// pushStream is a StreamIsActive server stream that records what is sent.
type pushStream struct {
	pb.ExternalScaler_StreamIsActiveServer
	ctx  context.Context
	sent chan bool
}

func (p *pushStream) Context() context.Context { return p.ctx }
func (p *pushStream) Send(r *pb.IsActiveResponse) error {
	p.sent <- r.Result
	return nil
}

// TestDemandStreamWakes: a rise from zero re-evaluates an open stream at
// once, although the last answer could still be reused (the fake clock does
// not move, so the periodic re-evaluation reuses it).
func TestDemandStreamWakes(t *testing.T) {
	q := &fakeQuerier{}
	q.value(0)
	d := newFakeDemand()
	e := newUnitServer(t, demandRules, q, Options{Demand: d, ReuseFor: time.Second, PushInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ps := &pushStream{ctx: ctx, sent: make(chan bool, 4)}
	done := make(chan error, 1)
	go func() {
		done <- e.server.StreamIsActive(ref("ml", "so", map[string]string{"ruleSet": "demand", "service": "chat"}), ps)
	}()
	next := func() bool {
		t.Helper()
		select {
		case v := <-ps.sent:
			return v
		case <-time.After(5 * time.Second):
			t.Fatal("nothing pushed")
		}
		panic("unreachable")
	}
	if next() {
		t.Fatal("first push true, want false")
	}
	d.set("ml", "chat", 1, 0) // in flight only: the rule's active must be re-evaluated
	if !next() {
		t.Fatal("pushed false after a rise of inflight, want true")
	}
	// Idle again: the periodic re-evaluation pushes false once the answer
	// may no longer be reused.
	d.set("ml", "chat", 0, 0)
	e.clock.Add(2 * time.Second)
	if next() {
		t.Fatal("pushed true after the demand left, want false")
	}
	// And the next rise wakes the stream again, within the reuse window.
	d.set("ml", "chat", 2, 0)
	select {
	case v := <-ps.sent:
		if !v {
			t.Fatal("pushed false after the second rise, want true")
		}
	case <-time.After(time.Second):
		t.Fatal("the second rise did not wake the stream")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("StreamIsActive: %v", err)
	}
}

// activatorCluster is N activator trackers on real HTTP servers, each
// watched by M scalers (aggregator + gRPC scaler), each scaler driven by
// KEDA's own push client.
type activatorCluster struct {
	trackers []*demand.Tracker
	scalers  []*scalerEnv
	aggs     []*demand.Aggregator
}

func startActivatorCluster(t *testing.T, activators, scalerReplicas int, rules string) *activatorCluster {
	t.Helper()
	c := &activatorCluster{}
	var addrs demand.StaticSources
	for i := range activators {
		tr := demand.NewTracker("activator-"+string(rune('a'+i)), demand.TrackerOptions{})
		srv := httptest.NewServer(tr.Handler())
		t.Cleanup(func() { tr.Close(); srv.Close() })
		c.trackers = append(c.trackers, tr)
		addrs = append(addrs, srv.URL)
	}
	q := &fakeQuerier{}
	q.value(0)
	for range scalerReplicas {
		agg := demand.NewAggregator(addrs, demand.AggregatorOptions{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan struct{})
		go func() { defer close(ran); _ = agg.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-ran })
		c.aggs = append(c.aggs, agg)
		c.scalers = append(c.scalers, startScaler(t, envConfig{rules: rules, querier: q, demand: agg, push: 50 * time.Millisecond}))
	}
	for _, agg := range c.aggs {
		deadline := time.Now().Add(5 * time.Second)
		for agg.Activators() != activators {
			if time.Now().After(deadline) {
				t.Fatalf("aggregator sees %d activators, want %d", agg.Activators(), activators)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return c
}

// pushClient runs KEDA's push scaler for one trigger and returns its
// channel of pushed states.
func pushClient(t *testing.T, addr, namespace, name string, meta map[string]string) <-chan bool {
	t.Helper()
	push, err := scalers.NewExternalPushScaler(scalerConfig(addr, "external-push", namespace, name, meta, nil))
	if err != nil {
		t.Fatalf("NewExternalPushScaler: %v", err)
	}
	t.Cleanup(func() { _ = push.Close(context.Background()) })
	ctx, cancel := context.WithCancel(context.Background())
	active := make(chan bool, 64)
	ran := make(chan struct{})
	go func() { defer close(ran); push.Run(ctx, active) }()
	t.Cleanup(func() {
		cancel()
		for range active { // Run closes it when it returns
		}
		<-ran
	})
	return active
}

func waitPush(t *testing.T, ch <-chan bool, want bool, what string) time.Time {
	t.Helper()
	for {
		select {
		case v, ok := <-ch:
			if !ok {
				t.Fatalf("%s: KEDA's Run ended", what)
			}
			if v == want {
				return time.Now()
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no %v pushed within 10s", what, want)
		}
	}
}

// TestDemandPushLatency measures, through KEDA's own push client, the time
// from the activator queueing a request (Tracker.Add) to true on KEDA's
// channel, with two activator replicas and two scaler replicas: every
// scaler must wake, whichever activator holds the request.
func TestDemandPushLatency(t *testing.T) {
	const rules = `
ruleSets:
  - name: wake
    queries:
      waiting: sum(vllm:num_requests_waiting{namespace="$namespace"})
    replicas: max(waiting / 4, inflight / 8)
    active: waiting > 0 || inflight > 0 || queued > 0
    max: 4
  - name: override
    queries:
      waiting: sum(vllm:num_requests_waiting{namespace="$namespace"})
    replicas: waiting
    active: waiting > 0
    max: 4
`
	c := startActivatorCluster(t, 2, 2, rules)
	type trigger struct {
		name string
		ch   <-chan bool
	}
	var triggers []trigger
	for i, s := range c.scalers {
		for _, rs := range []string{"wake", "override"} {
			name := rs + "-scaler-" + string(rune('0'+i))
			triggers = append(triggers, trigger{name, pushClient(t, s.addr, "ml", rs, map[string]string{"ruleSet": rs, "service": "chat"})})
		}
	}
	for _, tr := range triggers {
		waitPush(t, tr.ch, false, tr.name+": the first state")
	}

	const rounds = 15
	var lat []time.Duration
	for i := range rounds {
		act := c.trackers[i%len(c.trackers)]
		start := time.Now()
		act.Add("ml", "chat", 0, +1)
		for _, tr := range triggers {
			at := waitPush(t, tr.ch, true, tr.name)
			if d := at.Sub(start); d > 100*time.Millisecond {
				t.Errorf("round %d, %s: true %v after the request was queued, want under 100ms", i, tr.name, d)
			}
			if tr.name == "wake-scaler-0" {
				lat = append(lat, at.Sub(start))
			}
		}
		act.Add("ml", "chat", 0, -1)
		for _, tr := range triggers {
			waitPush(t, tr.ch, false, tr.name+" back to idle")
		}
	}
	slices.Sort(lat)
	t.Logf("queued request → true on KEDA's channel, %d rounds over 2 activators × 2 scalers: min %v, median %v, max %v",
		rounds, lat[0], lat[len(lat)/2], lat[len(lat)-1])
}
