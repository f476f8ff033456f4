package kube

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const (
	ns      = "ml"
	waitFor = 5 * time.Second
)

// state is one call of an update function.
type state struct{ ready, terminating []string }

func (s state) String() string {
	return fmt.Sprintf("ready=%v terminating=%v", s.ready, s.terminating)
}

func (s state) equal(o state) bool {
	return slices.Equal(s.ready, o.ready) && slices.Equal(s.terminating, o.terminating)
}

// recorder collects the calls of an update function.
type recorder struct {
	t     *testing.T
	calls chan state
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{t: t, calls: make(chan state, 1000)}
}

func (r *recorder) update(ready, terminating []string) {
	r.calls <- state{ready, terminating}
}

// next returns the next call.
func (r *recorder) next() state {
	r.t.Helper()
	select {
	case s := <-r.calls:
		return s
	case <-time.After(waitFor):
		r.t.Fatalf("no update within %v", waitFor)
		return state{}
	}
}

// waitFor reads calls until one equals want (updates are coalesced, so
// intermediate states may be skipped).
func (r *recorder) waitFor(want state) {
	r.t.Helper()
	deadline := time.After(waitFor)
	var last []state
	for {
		select {
		case s := <-r.calls:
			if s.equal(want) {
				return
			}
			last = append(last, s)
		case <-deadline:
			r.t.Fatalf("no update with %v within %v; got %v", want, waitFor, last)
		}
	}
}

// subscribe subscribes r and checks that Subscribe made the first call
// before returning; it returns that call and cancel.
func (e *env) subscribe(namespace, name string, port int32, r *recorder) (state, func()) {
	e.t.Helper()
	cancel := e.se.Subscribe(namespace, name, port, r.update)
	select {
	case first := <-r.calls:
		return first, cancel
	default:
		e.t.Fatal("Subscribe returned before its first call of update")
		return state{}, cancel
	}
}

// quiet asserts that no call comes for a while.
func (r *recorder) quiet(d time.Duration) {
	r.t.Helper()
	select {
	case s := <-r.calls:
		r.t.Fatalf("unexpected update %v", s)
	case <-time.After(d):
	}
}

type env struct {
	t      *testing.T
	client *fake.Clientset
	se     *ServiceEndpoints
	reg    *prometheus.Registry
	ctx    context.Context
}

// newEnv returns a ServiceEndpoints on a fake clientset holding objs, with
// Run started.
func newEnv(t *testing.T, objs ...*corev1.Service) *env {
	t.Helper()
	client := fake.NewClientset()
	e := &env{t: t, client: client, reg: prometheus.NewRegistry(), ctx: t.Context()}
	for _, o := range objs {
		e.createService(o)
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.se = NewServiceEndpoints(client, logger, e.reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.se.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitFor):
			t.Errorf("Run did not return after its context ended")
		}
	})
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func (e *env) sync() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, waitFor)
	defer cancel()
	if err := e.se.WaitForSync(ctx); err != nil {
		e.t.Fatal(err)
	}
	// An informer is synced after its list, and its watch starts a moment
	// later. The fake clientset does not replay to a watch what changed
	// since the list (a real API server does, from the list's
	// resourceVersion), so a change made in between would be lost to the
	// test: wait until every list has its watch.
	for {
		lists, watches := map[string]bool{}, map[string]bool{}
		for _, a := range e.client.Actions() {
			k := a.GetResource().Resource + " " + a.GetNamespace()
			switch a.GetVerb() {
			case "list":
				lists[k] = true
			case "watch":
				watches[k] = true
			}
		}
		missing := false
		for k := range lists {
			missing = missing || !watches[k]
		}
		if !missing {
			return
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("informers listed %v but watch only %v", lists, watches)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (e *env) createService(s *corev1.Service) {
	e.t.Helper()
	if _, err := e.client.CoreV1().Services(s.Namespace).Create(e.ctx, s, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) updateService(s *corev1.Service) {
	e.t.Helper()
	if _, err := e.client.CoreV1().Services(s.Namespace).Update(e.ctx, s, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) deleteService(namespace, name string) {
	e.t.Helper()
	if err := e.client.CoreV1().Services(namespace).Delete(e.ctx, name, metav1.DeleteOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) createSlice(s *discoveryv1.EndpointSlice) {
	e.t.Helper()
	if _, err := e.client.DiscoveryV1().EndpointSlices(s.Namespace).Create(e.ctx, s, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) updateSlice(s *discoveryv1.EndpointSlice) {
	e.t.Helper()
	if _, err := e.client.DiscoveryV1().EndpointSlices(s.Namespace).Update(e.ctx, s, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) deleteSlice(namespace, name string) {
	e.t.Helper()
	if err := e.client.DiscoveryV1().EndpointSlices(namespace).Delete(e.ctx, name, metav1.DeleteOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// service returns a ClusterIP Service in ns with the given ports.
func service(name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Ports: ports},
	}
}

// port returns a TCP Service port; targetPort is a number or a name.
func port(name string, number int32, targetPort any) corev1.ServicePort {
	p := corev1.ServicePort{Name: name, Port: number, Protocol: corev1.ProtocolTCP}
	switch tp := targetPort.(type) {
	case int:
		p.TargetPort = intstr.FromInt32(int32(tp))
	case string:
		p.TargetPort = intstr.FromString(tp)
	}
	return p
}

// slicePorts builds EndpointSlice ports from name, number pairs.
func slicePorts(nameNumber ...any) []discoveryv1.EndpointPort {
	var out []discoveryv1.EndpointPort
	for i := 0; i < len(nameNumber); i += 2 {
		name := nameNumber[i].(string)
		number := int32(nameNumber[i+1].(int))
		tcp := corev1.ProtocolTCP
		out = append(out, discoveryv1.EndpointPort{Name: &name, Port: &number, Protocol: &tcp})
	}
	return out
}

func slice(name, svc string, family discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc},
		},
		AddressType: family,
		Ports:       ports,
		Endpoints:   eps,
	}
}

// endpoint returns an endpoint in one of the states: "ready", "nil" (no
// conditions at all: ready), "notready", "terminating" (serving),
// "terminating-notserving".
func endpoint(addr, cond string) discoveryv1.Endpoint {
	t, f := true, false
	ep := discoveryv1.Endpoint{Addresses: []string{addr}}
	switch cond {
	case "ready":
		ep.Conditions = discoveryv1.EndpointConditions{Ready: &t, Serving: &t, Terminating: &f}
	case "nil":
	case "notready":
		ep.Conditions = discoveryv1.EndpointConditions{Ready: &f, Serving: &f, Terminating: &f}
	case "terminating":
		ep.Conditions = discoveryv1.EndpointConditions{Ready: &f, Serving: &t, Terminating: &t}
	case "terminating-notserving":
		ep.Conditions = discoveryv1.EndpointConditions{Ready: &f, Serving: &f, Terminating: &t}
	default:
		panic(cond)
	}
	return ep
}

// podEndpoint is endpoint with a targetRef to pod.
func podEndpoint(addr, cond, pod string) discoveryv1.Endpoint {
	ep := endpoint(addr, cond)
	ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod}
	return ep
}

func st(ready []string, terminating ...string) state {
	if len(terminating) == 0 {
		terminating = nil
	}
	return state{ready, terminating}
}

func TestReadyNotReadyTerminatingTransitions(t *testing.T) {
	e := newEnv(t, service("web", port("", 80, 8080)))
	ports := slicePorts("", 8080)
	es := slice("web-1", "web", discoveryv1.AddressTypeIPv4, ports,
		endpoint("10.0.0.1", "ready"), endpoint("10.0.0.2", "nil"), endpoint("10.0.0.3", "notready"))
	e.createSlice(es)

	r := newRecorder(t)
	defer e.se.Subscribe(ns, "web", 80, r.update)()
	if got := r.next(); !got.equal(st(nil)) {
		t.Fatalf("first update before sync = %v, want empty", got)
	}
	e.sync()
	r.waitFor(st([]string{"10.0.0.1:8080", "10.0.0.2:8080"}))

	// .3 turns ready, .1 starts terminating (still serving), .2 stops being ready.
	es.Endpoints = []discoveryv1.Endpoint{
		endpoint("10.0.0.1", "terminating"), endpoint("10.0.0.2", "notready"), endpoint("10.0.0.3", "ready"),
	}
	e.updateSlice(es)
	r.waitFor(st([]string{"10.0.0.3:8080"}, "10.0.0.1:8080"))

	// Terminating and no longer serving: still reported as terminating.
	es.Endpoints[0] = endpoint("10.0.0.1", "terminating-notserving")
	e.updateSlice(es)
	r.quiet(100 * time.Millisecond) // same state: no call

	// .1 is gone.
	es.Endpoints = es.Endpoints[1:]
	e.updateSlice(es)
	r.waitFor(st([]string{"10.0.0.3:8080"}))

	// Everything not ready.
	es.Endpoints = []discoveryv1.Endpoint{endpoint("10.0.0.3", "notready")}
	e.updateSlice(es)
	r.waitFor(st(nil))
}

func TestTwoSlicesOneService(t *testing.T) {
	e := newEnv(t, service("web", port("http", 80, "http")))
	ports := slicePorts("http", 8080)
	e.createSlice(slice("web-a", "web", discoveryv1.AddressTypeIPv4, ports,
		podEndpoint("10.0.0.10", "ready", "p10"), podEndpoint("10.0.0.9", "ready", "p9"), podEndpoint("10.0.0.5", "terminating", "p5")))
	e.createSlice(slice("web-b", "web", discoveryv1.AddressTypeIPv4, ports,
		podEndpoint("10.0.0.2", "ready", "p2"),
		podEndpoint("10.0.0.9", "ready", "p9"), // moved between slices: listed twice
		podEndpoint("10.0.0.5", "ready", "p5"), // the other slice is older: ready wins
	))
	// Another Service's slice, and one that belongs to no Service.
	e.createSlice(slice("other-1", "other", discoveryv1.AddressTypeIPv4, ports, endpoint("10.0.1.1", "ready")))
	stray := slice("stray", "", discoveryv1.AddressTypeIPv4, ports, endpoint("10.0.2.1", "ready"))
	stray.Labels = nil
	e.createSlice(stray)

	r := newRecorder(t)
	defer e.se.Subscribe(ns, "web", 80, r.update)()
	e.sync()
	r.waitFor(st([]string{"10.0.0.2:8080", "10.0.0.5:8080", "10.0.0.9:8080", "10.0.0.10:8080"}))

	e.deleteSlice(ns, "web-b")
	r.waitFor(st([]string{"10.0.0.9:8080", "10.0.0.10:8080"}, "10.0.0.5:8080"))

	e.deleteSlice(ns, "web-a")
	r.waitFor(st(nil))
}

func TestPortNameMapping(t *testing.T) {
	e := newEnv(t, service("chat",
		port("http", 8000, "http"),      // named targetPort
		port("metrics", 9000, 9090),     // numbered targetPort
		port("grpc", 8001, "grpc-port"), // no slice port for it
	))
	e.createSlice(slice("chat-1", "chat", discoveryv1.AddressTypeIPv4,
		slicePorts("http", 8080, "metrics", 9090),
		endpoint("10.0.0.1", "ready")))

	http, metrics, grpc, none := newRecorder(t), newRecorder(t), newRecorder(t), newRecorder(t)
	for _, sub := range []struct {
		port int32
		r    *recorder
	}{{8000, http}, {9000, metrics}, {8001, grpc}, {8080, none}} { // 8080: a targetPort, not a Service port
		_, cancel := e.subscribe(ns, "chat", sub.port, sub.r)
		defer cancel()
	}
	e.sync()
	http.waitFor(st([]string{"10.0.0.1:8080"}))
	metrics.waitFor(st([]string{"10.0.0.1:9090"}))
	grpc.quiet(100 * time.Millisecond)
	none.quiet(0)

	// Subscribed after the sync: the first call has the state.
	again := newRecorder(t)
	first, cancel := e.subscribe(ns, "chat", 8000, again)
	defer cancel()
	if !first.equal(st([]string{"10.0.0.1:8080"})) {
		t.Errorf("first call after sync = %v", first)
	}

	// The Service's port 8000 becomes 8002: nothing serves 8000 any more.
	svc := service("chat", port("http", 8002, "http"), port("metrics", 9000, 9090))
	e.updateService(svc)
	http.waitFor(st(nil))
	// Back, under another name the slice does not have yet.
	svc.Spec.Ports[0] = port("web", 8000, "web")
	e.updateService(svc)
	http.quiet(100 * time.Millisecond)
	e.updateSlice(slice("chat-1", "chat", discoveryv1.AddressTypeIPv4,
		slicePorts("web", 8081, "metrics", 9090),
		endpoint("10.0.0.1", "ready")))
	http.waitFor(st([]string{"10.0.0.1:8081"}))
}

func TestUnnamedSlicePortWithoutNumber(t *testing.T) {
	// A hand-made slice whose port has no number ("all ports"): the
	// Service's numbered targetPort applies.
	e := newEnv(t, service("db", port("", 5432, 6432)))
	es := slice("db-1", "db", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{{}}, endpoint("10.0.0.1", "ready"))
	e.createSlice(es)
	r := newRecorder(t)
	defer e.se.Subscribe(ns, "db", 5432, r.update)()
	e.sync()
	r.waitFor(st([]string{"10.0.0.1:6432"}))
}

func TestIPv6AndDualStack(t *testing.T) {
	svc6 := service("v6", port("http", 80, "http"))
	svc6.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	dual := service("dual", port("http", 80, "http"))
	dual.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	e := newEnv(t, svc6, dual)
	ports := slicePorts("http", 8080)
	e.createSlice(slice("v6-1", "v6", discoveryv1.AddressTypeIPv6, ports,
		endpoint("fd00::10", "ready"), endpoint("fd00::9", "ready"), endpoint("fd00::1", "terminating"),
		endpoint("10.0.0.1", "ready"), // wrong family for the slice: ignored
	))
	// Dual-stack: each pod in both slices; p3 only in the IPv6 one so far.
	e.createSlice(slice("dual-4", "dual", discoveryv1.AddressTypeIPv4, ports,
		podEndpoint("10.0.0.1", "ready", "p1"), podEndpoint("10.0.0.2", "ready", "p2")))
	e.createSlice(slice("dual-6", "dual", discoveryv1.AddressTypeIPv6, ports,
		podEndpoint("fd00::1", "ready", "p1"), podEndpoint("fd00::2", "ready", "p2"), podEndpoint("fd00::3", "ready", "p3")))

	v6, ds := newRecorder(t), newRecorder(t)
	defer e.se.Subscribe(ns, "v6", 80, v6.update)()
	defer e.se.Subscribe(ns, "dual", 80, ds.update)()
	e.sync()
	v6.waitFor(st([]string{"[fd00::9]:8080", "[fd00::10]:8080"}, "[fd00::1]:8080"))
	ds.waitFor(st([]string{"10.0.0.1:8080", "10.0.0.2:8080", "[fd00::3]:8080"}))
}

func TestServiceDeletion(t *testing.T) {
	e := newEnv(t, service("web", port("", 80, 8080)))
	e.createSlice(slice("web-1", "web", discoveryv1.AddressTypeIPv4, slicePorts("", 8080), endpoint("10.0.0.1", "ready")))
	r := newRecorder(t)
	defer e.se.Subscribe(ns, "web", 80, r.update)()
	e.sync()
	r.waitFor(st([]string{"10.0.0.1:8080"}))

	e.deleteService(ns, "web") // the slice stays until garbage collection
	r.waitFor(st(nil))

	e.createService(service("web", port("", 80, 8080)))
	r.waitFor(st([]string{"10.0.0.1:8080"}))
}

func TestSubscribeBeforeObjectsExist(t *testing.T) {
	e := newEnv(t)
	r := newRecorder(t)
	defer e.se.Subscribe(ns, "late", 80, r.update)()
	e.sync()
	if got := r.next(); !got.equal(st(nil)) {
		t.Fatalf("first update = %v, want empty", got)
	}
	r.quiet(50 * time.Millisecond) // synced state is empty too: no call

	e.createSlice(slice("late-1", "late", discoveryv1.AddressTypeIPv4, slicePorts("", 8080), endpoint("10.0.0.1", "ready")))
	r.quiet(50 * time.Millisecond) // no Service yet: port unresolvable
	e.createService(service("late", port("", 80, 8080)))
	r.waitFor(st([]string{"10.0.0.1:8080"}))
}

func TestSubscribeBeforeRun(t *testing.T) {
	client := fake.NewClientset()
	se := NewServiceEndpoints(client, nil, nil)
	r := newRecorder(t)
	defer se.Subscribe(ns, "web", 80, r.update)()
	if got := r.next(); !got.equal(st(nil)) {
		t.Fatalf("first update = %v, want empty", got)
	}

	// WaitForSync without Run ends with its context.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := se.WaitForSync(ctx); err == nil {
		t.Fatal("WaitForSync without Run: nil error")
	}

	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- se.Run(ctx) }()
	defer func() { stop(); <-done }()
	if err := se.WaitForSync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Services(ns).Create(t.Context(), service("web", port("", 80, 8080)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DiscoveryV1().EndpointSlices(ns).Create(t.Context(),
		slice("web-1", "web", discoveryv1.AddressTypeIPv4, slicePorts("", 8080), endpoint("10.0.0.1", "ready")),
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(st([]string{"10.0.0.1:8080"}))

	// A second Run is refused.
	if err := se.Run(t.Context()); err == nil {
		t.Fatal("second Run: nil error")
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t, service("web", port("", 80, 8080)))
	es := slice("web-1", "web", discoveryv1.AddressTypeIPv4, slicePorts("", 8080), endpoint("10.0.0.1", "ready"))
	e.createSlice(es)

	a, b := newRecorder(t), newRecorder(t)
	cancelA := e.se.Subscribe(ns, "web", 80, a.update)
	cancelB := e.se.Subscribe(ns, "web", 80, b.update)
	e.sync()
	a.waitFor(st([]string{"10.0.0.1:8080"}))
	b.waitFor(st([]string{"10.0.0.1:8080"}))
	if got := testutil.ToFloat64(e.se.m.services); got != 1 {
		t.Errorf("subscribed_services = %v, want 1", got)
	}

	cancelA()
	cancelA() // idempotent
	es.Endpoints = append(es.Endpoints, endpoint("10.0.0.2", "ready"))
	e.updateSlice(es)
	b.waitFor(st([]string{"10.0.0.1:8080", "10.0.0.2:8080"}))
	a.quiet(50 * time.Millisecond)
	if got := testutil.ToFloat64(e.se.m.services); got != 1 {
		t.Errorf("subscribed_services = %v, want 1", got)
	}

	cancelB()
	if got := testutil.ToFloat64(e.se.m.services); got != 0 {
		t.Errorf("subscribed_services = %v, want 0", got)
	}
	if got := testutil.ToFloat64(e.se.m.namespaces); got != 0 {
		t.Errorf("watched_namespaces = %v, want 0 after the last cancel", got)
	}

	// Cancel from within update; a new subscription restarts the watch.
	c := newRecorder(t)
	var cancelC func()
	var mu sync.Mutex
	mu.Lock()
	cancelC = e.se.Subscribe(ns, "web", 80, func(ready, terminating []string) {
		c.update(ready, terminating)
		if len(ready) > 0 {
			mu.Lock()
			cancelC()
			mu.Unlock()
		}
	})
	mu.Unlock()
	e.sync()
	c.waitFor(st([]string{"10.0.0.1:8080", "10.0.0.2:8080"}))
	es.Endpoints = es.Endpoints[:1]
	e.updateSlice(es)
	c.quiet(100 * time.Millisecond)
}

func TestUpdateLatency(t *testing.T) {
	e := newEnv(t, service("web", port("", 80, 8080)))
	type call struct {
		at    time.Time
		ready int
	}
	calls := make(chan call, 100)
	defer e.se.Subscribe(ns, "web", 80, func(ready, _ []string) {
		calls <- call{time.Now(), len(ready)}
	})()
	e.sync()
	awaitReady := func(n int) time.Time {
		t.Helper()
		for {
			select {
			case c := <-calls:
				if c.ready == n {
					return c.at
				}
			case <-time.After(waitFor):
				t.Fatalf("no update with %d ready endpoints", n)
			}
		}
	}
	awaitReady(0)

	const rounds = 20
	var worst, total time.Duration
	for i := range rounds {
		name := fmt.Sprintf("web-%d", i)
		start := time.Now()
		e.createSlice(slice(name, "web", discoveryv1.AddressTypeIPv4, slicePorts("", 8080), endpoint("10.0.0.1", "ready")))
		d := awaitReady(1).Sub(start)
		worst, total = max(worst, d), total+d
		e.deleteSlice(ns, name)
		awaitReady(0)
	}
	t.Logf("create→update latency over %d rounds: mean %v, worst %v", rounds, total/rounds, worst)
	// Updates come from watch events, not from a resync or polling; the
	// bound is loose because this is no benchmark, and loaded CI machines
	// (with -race) stretch the milliseconds.
	if worst > 2*time.Second {
		t.Errorf("worst latency %v, want an event-driven update", worst)
	}
}

func TestSlowSubscriberDoesNotBlock(t *testing.T) {
	e := newEnv(t, service("web", port("", 80, 8080)))
	es := slice("web-1", "web", discoveryv1.AddressTypeIPv4, slicePorts("", 8080))
	e.createSlice(es)

	release := make(chan struct{})
	slow := newRecorder(t)
	blocked := false
	defer e.se.Subscribe(ns, "web", 80, func(ready, terminating []string) {
		slow.update(ready, terminating)
		if !blocked && len(ready) > 0 {
			blocked = true
			<-release
		}
	})()
	fast := newRecorder(t)
	defer e.se.Subscribe(ns, "web", 80, fast.update)()
	e.sync()

	// The slow subscriber blocks in its first non-empty update; the fast
	// one sees every later state.
	var want []string
	for i := 1; i <= 10; i++ {
		addr := fmt.Sprintf("10.0.0.%d", i)
		es.Endpoints = append(es.Endpoints, endpoint(addr, "ready"))
		want = append(want, addr+":8080")
		e.updateSlice(es)
		fast.waitFor(st(slices.Clone(want)))
	}
	if got := slow.next(); !got.equal(st(nil)) {
		t.Fatalf("slow subscriber's first state = %v", got)
	}
	if got := slow.next(); !got.equal(st([]string{"10.0.0.1:8080"})) {
		t.Fatalf("slow subscriber's first state = %v", got)
	}
	close(release)
	// Coalesced: the latest state comes next, the ones in between are skipped.
	if got := slow.next(); !got.equal(st(want)) {
		t.Fatalf("slow subscriber after release = %v, want %v", got, want)
	}
}

func TestWatchesOnlySubscribedNamespaces(t *testing.T) {
	e := newEnv(t)
	r := newRecorder(t)
	defer e.se.Subscribe(ns, "web", 80, r.update)()
	defer e.se.Subscribe("other", "web", 80, r.update)()
	e.sync()
	wants := []string{
		"list services ml", "watch services ml", "list endpointslices ml", "watch endpointslices ml",
		"list services other", "list endpointslices other",
	}
	// An informer is synced after its list; its watch may start a moment
	// later: wait for the actions, then check them.
	var seen map[string]bool
	deadline := time.Now().Add(10 * time.Second)
	for {
		seen = map[string]bool{}
		for _, a := range e.client.Actions() {
			if a.GetVerb() == "list" || a.GetVerb() == "watch" {
				seen[a.GetVerb()+" "+a.GetResource().Resource+" "+a.GetNamespace()] = true
			}
		}
		missing := slices.ContainsFunc(wants, func(w string) bool { return !seen[w] })
		if !missing || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, a := range e.client.Actions() {
		if a.GetVerb() != "list" && a.GetVerb() != "watch" {
			continue
		}
		if a.GetNamespace() == "" {
			t.Errorf("cluster-wide %s %s", a.GetVerb(), a.GetResource().Resource)
		}
		if l, ok := a.(k8stesting.ListAction); ok && a.GetResource().Resource == "endpointslices" {
			if got := l.GetListRestrictions().Labels.String(); got != discoveryv1.LabelServiceName {
				t.Errorf("endpointslices listed with label selector %q", got)
			}
		}
	}
	for _, want := range wants {
		if !seen[want] {
			t.Errorf("no %q; saw %v", want, seen)
		}
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, service("web", port("", 80, 8080)))
	r := newRecorder(t)
	cancel := e.se.Subscribe(ns, "web", 80, r.update)
	e.sync()
	e.createSlice(slice("web-1", "web", discoveryv1.AddressTypeIPv4, slicePorts("", 8080), endpoint("10.0.0.1", "ready")))
	r.waitFor(st([]string{"10.0.0.1:8080"}))
	cancel()

	want := `
# HELP nemesis_kube_endpoint_updates_total Endpoint sets delivered to subscribers (the first one of each subscription, then one per change; coalesced changes count once).
# TYPE nemesis_kube_endpoint_updates_total counter
nemesis_kube_endpoint_updates_total 2
# HELP nemesis_kube_subscribed_services Services with at least one endpoint subscription.
# TYPE nemesis_kube_subscribed_services gauge
nemesis_kube_subscribed_services 0
# HELP nemesis_kube_watched_namespaces Namespaces whose Services and EndpointSlices are watched (those with subscriptions).
# TYPE nemesis_kube_watched_namespaces gauge
nemesis_kube_watched_namespaces 0
`
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}

	// A second tracker on the same registry shares the collectors.
	other := NewServiceEndpoints(fake.NewClientset(), nil, e.reg)
	defer other.Subscribe(ns, "x", 80, func(_, _ []string) {})()
	if got := testutil.ToFloat64(e.se.m.services); got != 1 {
		t.Errorf("shared subscribed_services = %v, want 1", got)
	}
}

func TestWaitForSyncWithoutSubscriptions(t *testing.T) {
	se := NewServiceEndpoints(fake.NewClientset(), nil, nil)
	if err := se.WaitForSync(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestRestConfig(t *testing.T) {
	path := t.TempDir() + "/kubeconfig"
	const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: u
  user: {token: t0k}
contexts:
- name: ctx
  context: {cluster: c, user: u}
current-context: ctx
`
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := RestConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://127.0.0.1:6443" || cfg.BearerToken != "t0k" {
		t.Errorf("config = host %q token %q", cfg.Host, cfg.BearerToken)
	}
	if _, err := RestConfig(path + ".missing"); err == nil {
		t.Error("missing kubeconfig: nil error")
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	if _, err := RestConfig(""); err == nil {
		t.Error("in-cluster outside a cluster: nil error")
	}
}
