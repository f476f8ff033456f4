package activator

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A burst, such as a queue released onto a fresh pod, opens no more than
// MaxConnsPerEndpoint connections to the endpoint; the other requests wait
// for one, and every request is answered.
func TestMaxConnsPerEndpoint(t *testing.T) {
	const limit, requests = 4, 60
	var open, peak atomic.Int64
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		fmt.Fprint(w, "ok")
	}))
	be.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			n := open.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	be.Start()
	t.Cleanup(be.Close)
	h := startActivator(t, fmt.Sprintf("routes:\n  - name: r\n    endpoints: [%q]\n", hostOf(be)), Options{MaxConnsPerEndpoint: limit})

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: requests}, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range requests {
		wg.Go(func() {
			code, body, _ := get(t, client, h.url+"/", nil)
			if code != 200 || body != "ok" {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	// Connections the client dialled but did not use would hold up the
	// server's shutdown for 5 s (net/http waits that long for a first request).
	client.CloseIdleConnections()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed", n, requests)
	}
	if p := peak.Load(); p > limit {
		t.Errorf("the endpoint saw %d connections at once, want at most %d", p, limit)
	}
	if p := peak.Load(); p < 2 {
		t.Errorf("the endpoint saw %d connection at once: the burst was not concurrent", p)
	}
}
