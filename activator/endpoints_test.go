package activator

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/k8s-nemesis/nemesis/kube"
)

// routeNamed returns the running route of that name.
func routeNamed(t testing.TB, h *harness, name string) *route {
	t.Helper()
	h.a.mu.Lock()
	defer h.a.mu.Unlock()
	r := h.a.routes[name]
	if r == nil {
		t.Fatalf("no route %q", name)
	}
	return r
}

// heldCount is the number of requests in the route's queue.
func heldCount(r *route) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.queue.n
}

// getCtx sends a GET with ctx and returns "code body", or the error.
func getCtx(ctx context.Context, url string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

// TestGivingUpPassesFreedSlotOn: on a capped route (endpointConcurrency
// 1), a held request that times out or whose client leaves just as a freed
// slot is handed to it passes the slot on to the next held request, which
// is served at once rather than at its own timeout (or at the next
// EndpointSlice change); the route then serves at full capacity.
func TestGivingUpPassesFreedSlotOn(t *testing.T) {
	for _, mode := range holdModes() {
		for _, how := range []string{"timeout", "client gone"} {
			t.Run(mode.name+"/"+how, func(t *testing.T) { testGivingUpPassesFreedSlotOn(t, mode.opts, how) })
		}
	}
}

func testGivingUpPassesFreedSlotOn(t *testing.T, opts Options, how string) {
	// The first request stays in flight until unblock; the others are
	// answered at once.
	var first atomic.Bool
	started, unblock := make(chan struct{}), make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first.CompareAndSwap(false, true) {
			close(started)
			select {
			case <-unblock:
			case <-r.Context().Done():
			}
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(be.Close)
	svc := newFakeServices()
	svc.set("ml", "chat", 8000, []string{hostOf(be)}, nil)
	opts.Services = svc
	timeout := "10s"
	if how == "timeout" {
		timeout = "1s"
	}
	h := startActivator(t, fmt.Sprintf(`routes:
  - name: capped
    service: {namespace: ml, name: chat, port: 8000}
    endpointConcurrency: 1
    queue: {size: 10, timeout: %s}
`, timeout), opts)
	rt := routeNamed(t, h, "capped")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	send := func(ctx context.Context) <-chan string {
		res := make(chan string, 1)
		go func() { res <- getCtx(ctx, h.url) }()
		return res
	}
	// waitHeld waits for n held requests; it may run off the test's
	// goroutine, so it reports rather than stops the test.
	waitHeld := func(what string, n int) {
		for deadline := time.Now().Add(5 * time.Second); heldCount(rt) != n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("timed out waiting for %s", what)
				return
			}
		}
	}
	startB := func() <-chan string {
		res := send(ctx)
		waitHeld("B held behind A", 2)
		return res
	}

	// A held request B behind A, whichever way A gives up; A gets the
	// slot the request in flight frees just as it gives up.
	resBc := make(chan (<-chan string), 1)
	var once sync.Once
	rt.givingUp = func() {
		once.Do(func() {
			if how == "timeout" {
				resBc <- startB() // B comes in as A times out
			}
			close(unblock)
			waitHeld("the freed slot handed to A", 1)
		})
	}

	res0 := send(ctx)
	<-started
	ctxA, cancelA := context.WithCancel(ctx)
	defer cancelA()
	resA := send(ctxA)
	eventually(t, "A held", func() bool { return heldCount(rt) == 1 })
	if how == "client gone" {
		resBc <- startB()
		cancelA()
	}
	if r := <-res0; r != "200 ok" {
		t.Errorf("request in flight: %s", r)
	}
	if r := <-resA; how == "timeout" && r != "504 no endpoint became ready in time\n" {
		t.Errorf("A: %q, want 504", r)
	}
	select {
	case r := <-<-resBc:
		if r != "200 ok" {
			t.Errorf("B, held behind A: %s", r)
		}
	case <-time.After(500 * time.Millisecond):
		// Before its own timeout (1s or 10s after it came).
		t.Fatalf("B still held 500ms after A gave up its slot; %d held, %d in flight", heldCount(rt), rt.readyEndpoints()[0].InFlight())
	}

	// Full capacity: a burst goes through one by one, none waits for an
	// EndpointSlice change.
	const n = 5
	results := make([]<-chan string, n)
	for i := range results {
		results[i] = send(ctx)
	}
	for i, res := range results {
		if r := <-res; r != "200 ok" {
			t.Errorf("request %d after the race: %s", i, r)
		}
	}
	if n := heldCount(rt); n != 0 {
		t.Errorf("%d requests still held", n)
	}
	eventually(t, "nothing in flight", func() bool { return rt.readyEndpoints()[0].InFlight() == 0 })
}

// slowBackend is an upstream that holds requests to /slow until release
// is closed, counting them, and answers any other request at once.
type slowBackend struct {
	*httptest.Server
	release     chan struct{}
	releaseOnce sync.Once
	dials       atomic.Int64
	mu          sync.Mutex
	cur         int // /slow requests being held
	peak        int
}

func newSlowBackend(t testing.TB, name string) *slowBackend {
	t.Helper()
	b := &slowBackend{release: make(chan struct{})}
	b.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			b.mu.Lock()
			b.cur++
			b.peak = max(b.peak, b.cur)
			b.mu.Unlock()
			select {
			case <-b.release:
			case <-r.Context().Done():
			}
			b.mu.Lock()
			b.cur--
			b.mu.Unlock()
		}
		fmt.Fprint(w, name)
	}))
	b.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			b.dials.Add(1)
		}
	}
	b.Start()
	t.Cleanup(func() { b.unblock(); b.Close() })
	return b
}

// unblock lets the held /slow requests finish, and the later ones pass.
func (b *slowBackend) unblock() { b.releaseOnce.Do(func() { close(b.release) }) }

// held returns the /slow requests being held now, and the most held at
// once so far.
func (b *slowBackend) held() (cur, peak int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cur, b.peak
}

// endpointOf returns the route's endpoint of addr, ready or not.
func endpointOf(r *route, addr string) *Endpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.all[addr]
}

// readyAddrs lists the route's ready endpoints.
func readyAddrs(r *route) []string {
	var out []string
	for _, ep := range r.readyEndpoints() {
		out = append(out, ep.addr)
	}
	return out
}

// podSlice is an EndpointSlice of Service ml/chat holding one pod at
// 127.0.0.1:port (one slice per pod, so that each pod has its own port on
// the loopback address).
func podSlice(pod string, port int32, ready bool) *discoveryv1.EndpointSlice {
	name, tcp := "http", corev1.ProtocolTCP
	notTerminating := false
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "ml", Name: "chat-" + pod,
			Labels: map[string]string{discoveryv1.LabelServiceName: "chat"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &tcp}},
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{"127.0.0.1"},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready, Terminating: &notTerminating},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "ml", Name: pod},
		}},
	}
}

func portOf(t testing.TB, s *httptest.Server) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(hostOf(s))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}

// TestReadinessFlapKeepsInFlight: a pod whose readiness flaps (ready, not
// ready, ready again: EndpointSlice changes through a fake clientset and
// the real EndpointSlice source) while it holds requests keeps its
// in-flight count. The cap is not exceeded, and least-request sends new
// requests to the other pod rather than to the one that looks idle only
// because it was forgotten.
func TestReadinessFlapKeepsInFlight(t *testing.T) {
	for _, limit := range []int{0, 2} {
		t.Run(fmt.Sprintf("endpointConcurrency=%d", limit), func(t *testing.T) { testReadinessFlapKeepsInFlight(t, limit) })
	}
}

func testReadinessFlapKeepsInFlight(t *testing.T, limit int) {
	const n = 2 // requests held at pod a through the flap
	a, b := newSlowBackend(t, "a"), newSlowBackend(t, "b")
	sa, sb := podSlice("a", portOf(t, a.Server), true), podSlice("b", portOf(t, b.Server), false)
	client := fake.NewClientset(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: "chat"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: "http", Port: 8000, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http"),
		}}},
	}, sa, sb)
	se := kube.NewServiceEndpoints(client, testLogger(t), nil)
	runCtx, stopRun := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- se.Run(runCtx) }()
	t.Cleanup(func() {
		stopRun()
		if err := <-ran; err != nil {
			t.Errorf("endpoints source: %v", err)
		}
	})
	routeConfig := func(timeout string) string {
		return fmt.Sprintf(`routes:
  - name: capped
    service: {namespace: ml, name: chat, port: 8000}
    policy: least-request
    endpointConcurrency: %d
    queue: {size: 100, timeout: %s}
`, limit, timeout)
	}
	h := startActivator(t, routeConfig("10s"), Options{Services: se})
	rt := routeNamed(t, h, "capped")
	addrA, addrB := hostOf(a.Server), hostOf(b.Server)
	setSlice := func(s *discoveryv1.EndpointSlice) {
		t.Helper()
		if _, err := client.DiscoveryV1().EndpointSlices("ml").Update(t.Context(), s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitReady := func(want ...string) {
		t.Helper()
		slices.Sort(want) // the ready set is in address order
		eventually(t, fmt.Sprintf("ready endpoints %v", want), func() bool { return slices.Equal(readyAddrs(rt), want) })
	}
	waitReady(addrA)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan string, 2*n)
	for range n {
		go func() { results <- getCtx(ctx, h.url+"/slow") }()
	}
	eventually(t, "requests held at pod a", func() bool { cur, _ := a.held(); return cur == n })

	// The flap: a turns not ready, then ready again, with b.
	setSlice(podSlice("a", portOf(t, a.Server), false))
	waitReady()
	setSlice(podSlice("a", portOf(t, a.Server), true))
	setSlice(podSlice("b", portOf(t, b.Server), true))
	waitReady(addrA, addrB)
	if got := endpointOf(rt, addrA).InFlight(); got != n {
		t.Errorf("pod a has %d requests in flight after its flap, the route counts %d", n, got)
	}
	if v, _ := metricValue(t, h.reg, "nemesis_activator_endpoint_requests_in_flight", map[string]string{"route": "capped", "endpoint": addrA}); v != n {
		t.Errorf("endpoint_requests_in_flight{endpoint=a} = %v, want %d", v, n)
	}

	// New requests go to b: a is at the cap, or (uncapped) busier.
	for range n {
		go func() { results <- getCtx(ctx, h.url+"/slow") }()
	}
	eventually(t, "new requests in flight", func() bool { ca, _ := a.held(); cb, _ := b.held(); return ca+cb == 2*n })
	if ca, peak := a.held(); ca != n || peak != n {
		t.Errorf("pod a holds %d requests (at most %d at once), want %d: new requests went to the pod that was just busy", ca, peak, n)
	}
	if cb, _ := b.held(); cb != n {
		t.Errorf("pod b holds %d requests, want %d", cb, n)
	}

	// A reload that rebuilds the route keeps the counts, and the new
	// route subscribes while the EndpointSlice cache is warm: it has its
	// ready endpoints as soon as Apply returns.
	cfg, err := ParseConfig("reload.yaml", []byte(routeConfig("20s")))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.a.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	rt = routeNamed(t, h, "capped")
	want := []string{addrA, addrB}
	slices.Sort(want)
	if got := readyAddrs(rt); !slices.Equal(got, want) {
		t.Errorf("ready endpoints right after a reload: %v, want %v", got, want)
	}
	for _, addr := range []string{addrA, addrB} {
		if ep := endpointOf(rt, addr); ep == nil || ep.InFlight() != n {
			t.Errorf("after a reload, %s has %d requests in flight and the route counts %v", addr, n, ep)
		}
	}

	a.unblock()
	b.unblock()
	for range 2 * n {
		if r := <-results; r != "200 a" && r != "200 b" {
			t.Errorf("request: %s", r)
		}
	}
	eventually(t, "nothing in flight", func() bool {
		return endpointOf(rt, addrA).InFlight() == 0 && endpointOf(rt, addrB).InFlight() == 0
	})
}

// TestReloadKeepsEndpointState: a reload that touches a route (here its
// queue timeout, and then its endpoints) builds a new route, which takes
// over the endpoints' in-flight counts and connection pools: the cap
// holds across the reload, least-request sees the busy endpoint as busy,
// and idle connections stay in use rather than being closed and dialled
// again.
func TestReloadKeepsEndpointState(t *testing.T) {
	const n = 2 // requests held at a through the reload
	a, b := newSlowBackend(t, "a"), newSlowBackend(t, "b")
	config := func(timeout string, eps ...string) *Config {
		t.Helper()
		cfg, err := ParseConfig("reload.yaml", []byte(fmt.Sprintf(`routes:
  - name: capped
    endpoints: [%s]
    policy: least-request
    endpointConcurrency: %d
    queue: {size: 100, timeout: %s}
`, quoteList(eps), n, timeout)))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	h := startActivator(t, "routes: []", Options{})
	apply := func(cfg *Config) *route {
		t.Helper()
		h.a.mu.Lock()
		before := h.a.routes["capped"]
		h.a.mu.Unlock()
		if err := h.a.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		rt := routeNamed(t, h, "capped")
		if rt == before {
			t.Fatal("the reload kept the route: it does not test what it should")
		}
		return rt
	}
	addrA, addrB := hostOf(a.Server), hostOf(b.Server)
	apply(config("10s", addrA))

	// One connection to a, idle in the pool.
	if code, body, _ := get(t, nil, h.url, nil); code != 200 || body != "a" {
		t.Fatalf("first request: %d %q", code, body)
	}
	rt := apply(config("20s", addrA))
	if code, body, _ := get(t, nil, h.url, nil); code != 200 || body != "a" {
		t.Fatalf("request after the reload: %d %q", code, body)
	}
	if d := a.dials.Load(); d != 1 {
		t.Errorf("two requests in a row, one before and one after a reload, opened %d connections to a, want 1", d)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan string, 2*n)
	for range n {
		go func() { results <- getCtx(ctx, h.url+"/slow") }()
	}
	eventually(t, "requests held at a", func() bool { cur, _ := a.held(); return cur == n })
	if got := endpointOf(rt, addrA).InFlight(); got != n {
		t.Fatalf("a has %d requests in flight, the route counts %d", n, got)
	}

	rt = apply(config("30s", addrA, addrB))
	if got := endpointOf(rt, addrA).InFlight(); got != n {
		t.Errorf("after the reload, a has %d requests in flight and the route counts %d", n, got)
	}
	for range n {
		go func() { results <- getCtx(ctx, h.url+"/slow") }()
	}
	eventually(t, "new requests in flight", func() bool { ca, _ := a.held(); cb, _ := b.held(); return ca+cb == 2*n })
	if ca, peak := a.held(); ca != n || peak != n {
		t.Errorf("a holds %d requests (at most %d at once), want %d: the cap did not hold across the reload", ca, peak, n)
	}

	// The requests in flight across the reload free their slots on the
	// new route: a request held while both are at the cap goes to a as
	// soon as they finish, with b still full.
	go func() { results <- getCtx(ctx, h.url+"/slow") }()
	eventually(t, "one request held", func() bool { return heldCount(rt) == 1 })
	a.unblock()
	for range n + 1 {
		if r := <-results; r != "200 a" {
			t.Errorf("request to a: %s", r)
		}
	}
	b.unblock()
	for range n {
		if r := <-results; r != "200 b" {
			t.Errorf("request to b: %s", r)
		}
	}
	eventually(t, "nothing in flight", func() bool {
		return endpointOf(rt, addrA).InFlight() == 0 && endpointOf(rt, addrB).InFlight() == 0
	})
}

// TestGoneEndpointKeptUntilIdle: an endpoint that leaves the ready set
// with requests in flight stays known (counted, its series exported) but
// gets no new requests, and is forgotten when the last one finishes.
func TestGoneEndpointKeptUntilIdle(t *testing.T) {
	a := newSlowBackend(t, "a")
	addrA := hostOf(a.Server)
	svc := newFakeServices()
	svc.set("ml", "chat", 8000, []string{addrA}, nil)
	h := startActivator(t, fmt.Sprintf(serviceRoute, 10, "10s"), Options{Services: svc})
	rt := routeNamed(t, h, "cold")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := make(chan string, 1)
	go func() { res <- getCtx(ctx, h.url+"/slow") }()
	eventually(t, "request held at a", func() bool { cur, _ := a.held(); return cur == 1 })

	svc.set("ml", "chat", 8000, nil, nil)
	series := map[string]string{"route": "cold", "endpoint": addrA}
	if ep := endpointOf(rt, addrA); ep == nil || ep.InFlight() != 1 {
		t.Fatalf("endpoint with a request in flight forgotten when it left the ready set: %v", ep)
	}
	if v, ok := metricValue(t, h.reg, "nemesis_activator_endpoint_requests_in_flight", series); !ok || v != 1 {
		t.Errorf("endpoint_requests_in_flight{endpoint=a} = %v (exported %v), want 1", v, ok)
	}
	if n := len(rt.readyEndpoints()); n != 0 {
		t.Errorf("%d ready endpoints, want 0", n)
	}

	a.unblock()
	if r := <-res; r != "200 a" {
		t.Errorf("request in flight: %s", r)
	}
	eventually(t, "endpoint forgotten", func() bool { return endpointOf(rt, addrA) == nil })
	if _, ok := metricValue(t, h.reg, "nemesis_activator_endpoint_requests_in_flight", series); ok {
		t.Error("series of a forgotten endpoint still exported")
	}
}
