package activator

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

const serviceRoute = `routes:
  - name: cold
    service: {namespace: ml, name: chat, port: 8000}
    queue: {size: %d, timeout: %s}
`

func queued(t testing.TB, h *harness) float64 {
	v, _ := metricValue(t, h.reg, "nemesis_activator_requests_queued", map[string]string{"route": "cold", "namespace": "ml", "service": "chat"})
	return v
}

func TestReleaseOnReadiness(t *testing.T) {
	for _, mode := range holdModes() {
		t.Run(mode.name, func(t *testing.T) { testReleaseOnReadiness(t, mode.opts, mode.wantWatched) })
	}
}

func testReleaseOnReadiness(t *testing.T, opts Options, wantWatched int) {
	be := backend(t, "warm")
	svc := newFakeServices()
	demand := newFakeDemand()
	opts.Services, opts.Demand = svc, demand
	h := startActivator(t, fmt.Sprintf(serviceRoute, 100, "10s"), opts)

	const n = 5
	results := make(chan string, n)
	for range n {
		go func() {
			code, body, _ := get(t, nil, h.url, nil)
			results <- fmt.Sprintf("%d %s", code, body)
		}()
	}
	eventually(t, "requests queued", func() bool { return queued(t, h) == n })
	if got := h.srv.watcher.watched(); got != n*wantWatched {
		t.Errorf("%d connections watched by epoll, want %d", got, n*wantWatched)
	}
	if _, q := demand.get("ml/chat"); q != n {
		t.Errorf("demand queued = %d, want %d", q, n)
	}
	start := time.Now()
	svc.set("ml", "chat", 8000, []string{hostOf(be)}, nil)
	for range n {
		if r := <-results; r != "200 warm" {
			t.Errorf("held request: %s", r)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("release took %v", d)
	}
	if q := queued(t, h); q != 0 {
		t.Errorf("queued gauge %v after release", q)
	}
	if inf, q := demand.get("ml/chat"); inf != 0 || q != 0 {
		t.Errorf("demand after release: in-flight %d queued %d", inf, q)
	}
	if v, _ := metricValue(t, h.reg, "nemesis_activator_queue_wait_seconds", map[string]string{"route": "cold"}); v != n {
		t.Errorf("queue_wait_seconds count %v, want %d", v, n)
	}
	if v, _ := metricValue(t, h.reg, "nemesis_activator_requests_total", map[string]string{"route": "cold", "code": "200"}); v != n {
		t.Errorf("requests_total{code=200} %v, want %d", v, n)
	}
}

// holdModes are the two ways a request is held: parked without a
// goroutine (the default), and waiting on its own goroutine (with tracing
// on, so that the server span covers the wait). wantWatched is how many
// connections the epoll watcher has while one request is held.
func holdModes() []struct {
	name        string
	opts        Options
	wantWatched int
} {
	return []struct {
		name        string
		opts        Options
		wantWatched int
	}{
		{"parked", Options{}, watchedWhenParked},
		{"goroutine", Options{TracerProvider: sdktrace.NewTracerProvider()}, 0},
	}
}

func TestQueueFullTimeoutCancel(t *testing.T) {
	for _, mode := range holdModes() {
		t.Run(mode.name, func(t *testing.T) { testQueueFullTimeoutCancel(t, mode.opts, mode.wantWatched) })
	}
}

func testQueueFullTimeoutCancel(t *testing.T, base Options, wantWatched int) {
	svc := newFakeServices()
	opts := func() Options { o := base; o.Services = svc; return o }
	t.Run("full", func(t *testing.T) {
		h := startActivator(t, fmt.Sprintf(serviceRoute, 2, "10s"), opts())
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for range 2 {
			go func() {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
		}
		eventually(t, "queue full", func() bool { return queued(t, h) == 2 })
		code, body, hdr := get(t, nil, h.url, nil)
		if code != 503 || hdr.Get("Retry-After") != RetryAfterSeconds || !strings.Contains(body, "queue is full") {
			t.Errorf("full queue: %d %q Retry-After %q", code, body, hdr.Get("Retry-After"))
		}
	})
	t.Run("timeout", func(t *testing.T) {
		h := startActivator(t, fmt.Sprintf(serviceRoute, 2, "100ms"), opts())
		start := time.Now()
		code, body, _ := get(t, nil, h.url, nil)
		if code != 504 || time.Since(start) < 100*time.Millisecond {
			t.Errorf("timeout: %d %q after %v", code, body, time.Since(start))
		}
		if q := queued(t, h); q != 0 {
			t.Errorf("queued gauge %v", q)
		}
	})
	t.Run("client gone", func(t *testing.T) {
		demand := newFakeDemand()
		o := opts()
		o.Demand = demand
		h := startActivator(t, fmt.Sprintf(serviceRoute, 2, "10s"), o)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		eventually(t, "queued", func() bool { return queued(t, h) == 1 })
		if n := h.srv.watcher.watched(); n != wantWatched {
			t.Errorf("%d connections watched by epoll while one request is held, want %d", n, wantWatched)
		}
		cancel()
		<-done
		eventually(t, "removed from the queue", func() bool { return queued(t, h) == 0 })
		eventually(t, "demand back to zero", func() bool { _, q := demand.get("ml/chat"); return q == 0 })
		h.a.mu.Lock()
		n := h.a.routes["cold"].queue.n
		h.a.mu.Unlock()
		if n != 0 {
			t.Errorf("%d waiters left in the queue", n)
		}
	})
	t.Run("no queue", func(t *testing.T) {
		h := startActivator(t, fmt.Sprintf(serviceRoute, 0, "10s"), opts())
		if code, _, hdr := get(t, nil, h.url, nil); code != 503 || hdr.Get("Retry-After") == "" {
			t.Errorf("size 0: %d", code)
		}
	})
}

// TestHeldPostParks: a held request with a body of known length (an LLM
// prompt) parks too: its body is read first, its client is watched, and
// the body reaches the endpoint once it is ready.
func TestHeldPostParks(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %s", b)
	}))
	t.Cleanup(be.Close)
	svc := newFakeServices()
	h := startActivator(t, fmt.Sprintf(serviceRoute, 10, "10s"), Options{Services: svc})
	res := make(chan string, 1)
	go func() {
		resp, err := http.Post(h.url+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"hello"}`))
		if err != nil {
			res <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	eventually(t, "queued", func() bool { return queued(t, h) == 1 })
	if n := h.srv.watcher.watched(); n != watchedWhenParked {
		t.Errorf("%d connections watched while a POST is held, want %d", n, watchedWhenParked)
	}
	svc.set("ml", "chat", 8000, []string{hostOf(be)}, nil)
	if r := <-res; r != `200 got {"prompt":"hello"}` {
		t.Errorf("held POST: %s", r)
	}

	// Its client going away takes it out of the queue.
	svc.set("ml", "chat", 8000, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url, strings.NewReader("prompt"))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	eventually(t, "queued", func() bool { return queued(t, h) == 1 })
	cancel()
	<-done
	eventually(t, "removed from the queue", func() bool { return queued(t, h) == 0 })
}

func TestTerminatingEndpoints(t *testing.T) {
	var mu sync.Mutex
	hits := map[string]int{}
	release := make(chan struct{})
	mk := func(name string, hold bool) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hits[name]++
			mu.Unlock()
			if hold {
				<-release
			}
			fmt.Fprint(w, name)
		}))
		t.Cleanup(s.Close)
		return s
	}
	old, fresh := mk("old", true), mk("new", false)
	svc := newFakeServices()
	svc.set("ml", "chat", 8000, []string{hostOf(old)}, nil)
	h := startActivator(t, fmt.Sprintf(serviceRoute, 10, "10s"), Options{Services: svc})
	inflight := make(chan string, 1)
	go func() {
		code, body, _ := get(t, nil, h.url, nil)
		inflight <- fmt.Sprintf("%d %s", code, body)
	}()
	eventually(t, "request on old", func() bool { mu.Lock(); defer mu.Unlock(); return hits["old"] == 1 })
	// old starts terminating: it keeps its request, new ones go to fresh.
	svc.set("ml", "chat", 8000, []string{hostOf(fresh)}, []string{hostOf(old)})
	for range 5 {
		if code, body, _ := get(t, nil, h.url, nil); code != 200 || body != "new" {
			t.Errorf("%d %q", code, body)
		}
	}
	close(release)
	if r := <-inflight; r != "200 old" {
		t.Errorf("terminating endpoint's request: %s", r)
	}
	if v, _ := metricValue(t, h.reg, "nemesis_activator_endpoints", map[string]string{"route": "cold", "state": "terminating"}); v != 1 {
		t.Errorf("terminating endpoints gauge %v", v)
	}
}

// TestReadyAgainReusesConnections: an endpoint that was terminating and is
// ready again gets its connections kept alive again.
func TestReadyAgainReusesConnections(t *testing.T) {
	var dials atomic.Int64
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	be.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			dials.Add(1)
		}
	}
	be.Start()
	t.Cleanup(be.Close)
	svc := newFakeServices()
	svc.set("ml", "chat", 8000, []string{hostOf(be)}, nil)
	h := startActivator(t, fmt.Sprintf(serviceRoute, 10, "10s"), Options{Services: svc})
	if code, _, _ := get(t, nil, h.url, nil); code != 200 {
		t.Fatalf("status %d", code)
	}
	svc.set("ml", "chat", 8000, nil, []string{hostOf(be)})
	svc.set("ml", "chat", 8000, []string{hostOf(be)}, nil)
	before := dials.Load()
	for range 5 {
		if code, _, _ := get(t, nil, h.url, nil); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	if n := dials.Load() - before; n != 1 {
		t.Errorf("5 sequential requests after the endpoint was ready again opened %d connections, want 1", n)
	}
}

func TestReload(t *testing.T) {
	b1, b2 := backend(t, "one"), backend(t, "two")
	dir := t.TempDir()
	path := filepath.Join(dir, "activator.yaml")
	write := func(s string) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(staticRoute("r", hostOf(b1)))
	h := startActivator(t, "routes: []", Options{})
	if _, err := h.a.Load(path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.a.Watch(ctx, path, 0)
	time.Sleep(50 * time.Millisecond)
	body := func() string { _, b, _ := get(t, nil, h.url, nil); return b }
	if b := body(); b != "one" {
		t.Fatalf("before reload: %q", b)
	}
	write(staticRoute("r", hostOf(b2)))
	eventually(t, "reload", func() bool { return body() == "two" })
	// An invalid version is refused; the running one stays.
	write("routes:\n  - name: r\n    endpoints: [nope]\n")
	eventually(t, "rejection counted", func() bool {
		v, _ := metricValue(t, h.reg, "nemesis_activator_config_last_reload_failed", nil)
		return v == 1
	})
	if b := body(); b != "two" {
		t.Errorf("after a bad reload: %q", b)
	}
	if v, _ := metricValue(t, h.reg, "nemesis_activator_config_reloads_total", map[string]string{"result": "failure"}); v < 1 {
		t.Errorf("reload failures %v", v)
	}
}

// TestRemovedRouteReleasesQueue: held requests of a route that disappears
// get 503 at once rather than waiting out their timeout.
func TestRemovedRouteReleasesQueue(t *testing.T) {
	svc := newFakeServices()
	h := startActivator(t, fmt.Sprintf(serviceRoute, 10, "10s"), Options{Services: svc})
	res := make(chan int, 1)
	go func() {
		resp, err := http.Get(h.url)
		if err != nil {
			res <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		res <- resp.StatusCode
	}()
	eventually(t, "queued", func() bool { return queued(t, h) == 1 })
	cfg, err := ParseConfig("new.yaml", []byte("routes:\n  - name: other\n    match: {hosts: [other.test]}\n    endpoints: [\"127.0.0.1:1\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.a.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-res:
		if code != 503 {
			t.Errorf("held request of a removed route: %d", code)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("held request not released")
	}
	if _, ok := metricValue(t, h.reg, "nemesis_activator_requests_queued", map[string]string{"route": "cold"}); ok {
		t.Errorf("series of the removed route still exported")
	}
}

// TestHeldRequestSurvivesReload: a reload that replaces the route (here its
// queue timeout changes) hands the held request to the new route, which
// releases it when the service turns ready.
func TestHeldRequestSurvivesReload(t *testing.T) {
	be := backend(t, "warm")
	svc := newFakeServices()
	h := startActivator(t, fmt.Sprintf(serviceRoute, 10, "10s"), Options{Services: svc})
	res := make(chan string, 1)
	go func() {
		code, body, _ := get(t, nil, h.url, nil)
		res <- fmt.Sprintf("%d %s", code, body)
	}()
	eventually(t, "queued", func() bool { return queued(t, h) == 1 })
	cfg, err := ParseConfig("new.yaml", []byte(fmt.Sprintf(serviceRoute, 10, "20s")))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.a.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	eventually(t, "queued on the new route", func() bool {
		h.a.mu.Lock()
		defer h.a.mu.Unlock()
		r := h.a.routes["cold"]
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.queue.n == 1
	})
	svc.set("ml", "chat", 8000, []string{hostOf(be)}, nil)
	if r := <-res; r != "200 warm" {
		t.Errorf("held request: %s", r)
	}
}

// TestDrainWithHeldRequests: a graceful shutdown waits for held requests,
// which complete when an endpoint turns ready during the drain.
func TestDrainWithHeldRequests(t *testing.T) {
	be := backend(t, "warm")
	svc := newFakeServices()
	h := startActivator(t, fmt.Sprintf(serviceRoute, 10, "10s"), Options{Services: svc})
	res := make(chan string, 1)
	go func() {
		code, body, _ := get(t, nil, h.url, nil)
		res <- fmt.Sprintf("%d %s", code, body)
	}()
	eventually(t, "queued", func() bool { return queued(t, h) == 1 })
	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdown <- h.a.Shutdown(ctx, h.srv)
	}()
	time.Sleep(50 * time.Millisecond)
	svc.set("ml", "chat", 8000, []string{hostOf(be)}, nil)
	if r := <-res; r != "200 warm" {
		t.Errorf("held request: %s", r)
	}
	if err := <-shutdown; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// TestEndpointConcurrency: with endpointConcurrency 2 an endpoint never
// has more than 2 requests in flight; the others wait in the queue (and
// count as queued), go to a new endpoint as soon as it is ready, and take
// each slot that frees up.
func TestEndpointConcurrency(t *testing.T) {
	for _, mode := range holdModes() {
		t.Run(mode.name, func(t *testing.T) { testEndpointConcurrency(t, mode.opts) })
	}
}

func testEndpointConcurrency(t *testing.T, opts Options) {
	tokens := make(chan struct{})
	var mu sync.Mutex
	cur, peak := map[string]int{}, map[string]int{}
	mk := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			cur[name]++
			peak[name] = max(peak[name], cur[name])
			mu.Unlock()
			select {
			case <-tokens:
			case <-r.Context().Done():
			}
			mu.Lock()
			cur[name]--
			mu.Unlock()
			fmt.Fprint(w, name)
		}))
		t.Cleanup(s.Close)
		return s
	}
	a, b := mk("a"), mk("b")
	inFlight := func(name string) int { mu.Lock(); defer mu.Unlock(); return cur[name] }
	svc := newFakeServices()
	svc.set("ml", "chat", 8000, []string{hostOf(a)}, nil)
	opts.Services = svc
	h := startActivator(t, `routes:
  - name: capped
    service: {namespace: ml, name: chat, port: 8000}
    endpointConcurrency: 2
    queue: {size: 100, timeout: 10s}
`, opts)
	queuedCapped := func() float64 {
		v, _ := metricValue(t, h.reg, "nemesis_activator_requests_queued", map[string]string{"route": "capped"})
		return v
	}
	const n = 6
	results := make(chan string, n)
	for range n {
		go func() {
			code, body, _ := get(t, nil, h.url, nil)
			results <- fmt.Sprintf("%d %s", code, body)
		}()
	}
	eventually(t, "2 in flight at a, 4 queued", func() bool { return inFlight("a") == 2 && queuedCapped() == 4 })

	// A second endpoint takes 2 of the held requests at once.
	svc.set("ml", "chat", 8000, []string{hostOf(a), hostOf(b)}, nil)
	eventually(t, "2 in flight at b, 2 queued", func() bool { return inFlight("b") == 2 && queuedCapped() == 2 })

	// Each finished request frees a slot for the next held one.
	for range n {
		tokens <- struct{}{}
	}
	got := map[string]int{}
	for range n {
		r := <-results
		got[r]++
	}
	if got["200 a"]+got["200 b"] != n || got["200 a"] < 2 || got["200 b"] < 2 {
		t.Errorf("results %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if peak["a"] > 2 || peak["b"] > 2 {
		t.Errorf("peak in flight a=%d b=%d, want at most 2 each", peak["a"], peak["b"])
	}
	if q := queuedCapped(); q != 0 {
		t.Errorf("queued gauge %v at the end", q)
	}
}
