package activator

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
