package demand

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// startTracker serves a tracker on a real loopback HTTP server.
func startTracker(t testing.TB, id string, opts TrackerOptions) (*Tracker, *httptest.Server) {
	t.Helper()
	tr := NewTracker(id, opts)
	srv := httptest.NewServer(tr.Handler())
	t.Cleanup(func() {
		tr.Close()
		srv.Close()
	})
	return tr, srv
}

// watchLines is a raw watch stream: snapshots as they arrive, with arrival
// times.
type watchLines struct {
	t    testing.TB
	resp *http.Response
	ch   chan received
}

type received struct {
	s  Snapshot
	at time.Time
}

func openWatch(t testing.TB, base string) *watchLines {
	t.Helper()
	resp, err := http.Get(base + WatchPath)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", WatchPath, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != contentType {
		t.Errorf("Content-Type = %q, want %q", ct, contentType)
	}
	w := &watchLines{t: t, resp: resp, ch: make(chan received, 1024)}
	go func() {
		defer close(w.ch)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var s Snapshot
			if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
				t.Errorf("line %q: %v", sc.Text(), err)
				return
			}
			w.ch <- received{s, time.Now()}
		}
	}()
	t.Cleanup(func() { resp.Body.Close() })
	return w
}

func (w *watchLines) next(within time.Duration) received {
	w.t.Helper()
	select {
	case r, ok := <-w.ch:
		if !ok {
			w.t.Fatal("watch stream ended")
		}
		return r
	case <-time.After(within):
		w.t.Fatalf("no snapshot within %v", within)
	}
	panic("unreachable")
}

// none checks that no snapshot arrives for d.
func (w *watchLines) none(d time.Duration) {
	w.t.Helper()
	select {
	case r := <-w.ch:
		w.t.Fatalf("unexpected snapshot %+v", r.s)
	case <-time.After(d):
	}
}

func svc(ns, name string, inFlight, queued int64) ServiceDemand {
	return ServiceDemand{Namespace: ns, Service: name, InFlight: inFlight, Queued: queued}
}

func sameServices(t testing.TB, got Snapshot, want ...ServiceDemand) {
	t.Helper()
	if want == nil {
		want = []ServiceDemand{}
	}
	if got.Services == nil {
		got.Services = []ServiceDemand{}
	}
	if !slices.Equal(got.Services, want) {
		t.Fatalf("services = %+v, want %+v (seq %d)", got.Services, want, got.Seq)
	}
}

func TestTrackerSnapshots(t *testing.T) {
	tr, srv := startTracker(t, "act-0", TrackerOptions{Coalesce: 50 * time.Millisecond, Heartbeat: time.Hour})
	tr.Add("ml", "chat", 2, 0)
	tr.Add("ml", "embed", 0, 1)
	tr.Add("web", "idle", 1, 0)
	tr.Add("web", "idle", -1, 0)

	w := openWatch(t, srv.URL)
	first := w.next(time.Second)
	if first.s.Activator != "act-0" || first.s.Seq == 0 {
		t.Fatalf("first snapshot %+v: want activator act-0 and a sequence number", first.s)
	}
	// The full state at once; services at zero are left out.
	sameServices(t, first.s, svc("ml", "chat", 2, 0), svc("ml", "embed", 0, 1))

	// The wake-up edge: a queued count rising from zero goes out at once.
	sent := time.Now()
	tr.Add("ml", "chat", 0, 1)
	edge := w.next(time.Second)
	t.Logf("edge snapshot %v after Add", edge.at.Sub(sent))
	if lat := edge.at.Sub(sent); lat > 40*time.Millisecond {
		t.Errorf("edge snapshot took %v, want well under the coalescing interval", lat)
	}
	if edge.s.Seq != first.s.Seq+1 {
		t.Errorf("seq %d after %d, want +1", edge.s.Seq, first.s.Seq)
	}
	sameServices(t, edge.s, svc("ml", "chat", 2, 1), svc("ml", "embed", 0, 1))

	// A service that drops to zero is sent once with zeros, then left out.
	tr.Add("ml", "embed", 0, -1)
	drop := w.next(time.Second)
	sameServices(t, drop.s, svc("ml", "chat", 2, 1), svc("ml", "embed", 0, 0))
	tr.Add("ml", "chat", 1, 0) // not an edge: coalesced
	after := w.next(time.Second)
	sameServices(t, after.s, svc("ml", "chat", 3, 1))
	if gap := after.at.Sub(drop.at); gap < 40*time.Millisecond {
		t.Errorf("two non-edge snapshots %v apart, want at least the coalescing interval (50ms)", gap)
	}

	// A change that cancels out sends nothing.
	tr.Add("ml", "chat", 1, 0)
	tr.Add("ml", "chat", -1, 0)
	w.none(150 * time.Millisecond)

	// Negative counts (a caller's bug) are never sent.
	tr.Add("ml", "neg", -3, 0)
	tr.Add("ml", "chat", 0, 1)
	sameServices(t, w.next(time.Second).s, svc("ml", "chat", 3, 2))
}

func TestTrackerCoalesces(t *testing.T) {
	const coalesce = 100 * time.Millisecond
	tr, srv := startTracker(t, "act-0", TrackerOptions{Coalesce: coalesce, Heartbeat: time.Hour})
	tr.Add("ml", "chat", 1, 0)
	w := openWatch(t, srv.URL)
	w.next(time.Second)

	// 60 changes over 600ms, none of them a rise from zero.
	start := time.Now()
	for i := range 60 {
		tr.Add("ml", "chat", 1, 0)
		if i%2 == 0 {
			tr.Add("ml", "chat", -1, 0)
		}
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	var got []received
	deadline := time.After(3 * coalesce)
	for collecting := true; collecting; {
		select {
		case r := <-w.ch:
			got = append(got, r)
		case <-deadline:
			collecting = false
		}
	}
	if len(got) == 0 {
		t.Fatal("no snapshot for 60 changes")
	}
	sameServices(t, got[len(got)-1].s, svc("ml", "chat", 31, 0))
	if limit := int(elapsed/coalesce) + 2; len(got) > limit {
		t.Errorf("%d snapshots for changes over %v, want at most %d (one per %v)", len(got), elapsed, limit, coalesce)
	}
	for i := 1; i < len(got); i++ {
		if gap := got[i].at.Sub(got[i-1].at); gap < coalesce*8/10 {
			t.Errorf("snapshots %d and %d only %v apart", i-1, i, gap)
		}
	}
	t.Logf("%d snapshots for 90 changes over %v", len(got), elapsed.Round(time.Millisecond))
}

func TestTrackerHeartbeat(t *testing.T) {
	const beat = 100 * time.Millisecond
	tr, srv := startTracker(t, "act-0", TrackerOptions{Heartbeat: beat})
	tr.Add("ml", "chat", 0, 2)
	w := openWatch(t, srv.URL)
	prev := w.next(time.Second)
	for range 3 {
		r := w.next(3 * beat)
		if r.s.Seq != prev.s.Seq+1 {
			t.Errorf("heartbeat seq %d after %d", r.s.Seq, prev.s.Seq)
		}
		if gap := r.at.Sub(prev.at); gap < beat*8/10 || gap > 3*beat {
			t.Errorf("heartbeat after %v, want about %v", gap, beat)
		}
		sameServices(t, r.s, svc("ml", "chat", 0, 2))
		prev = r
	}
}

// TestTrackerWatchersComeAndGo checks the watcher limit, that the publisher
// stops with the last watcher while counting goes on, and Close.
func TestTrackerWatchersComeAndGo(t *testing.T) {
	reg := prometheus.NewRegistry()
	tr, srv := startTracker(t, "act-0", TrackerOptions{Registerer: reg, MaxWatchers: 2})
	tr.Add("ml", "chat", 1, 0)
	a, b := openWatch(t, srv.URL), openWatch(t, srv.URL)
	sameServices(t, a.next(time.Second).s, svc("ml", "chat", 1, 0))
	sameServices(t, b.next(time.Second).s, svc("ml", "chat", 1, 0))
	if got := testutil.ToFloat64(tr.m.watchers); got != 2 {
		t.Errorf("watchers gauge %v, want 2", got)
	}
	// A third displaces the oldest: MaxWatchers does not refuse.
	third := openWatch(t, srv.URL)
	sameServices(t, third.next(time.Second).s, svc("ml", "chat", 1, 0))
	for ended := time.After(2 * time.Second); ; {
		select {
		case _, ok := <-a.ch: // the snapshot of the third's join may come first
			if ok {
				continue
			}
		case <-ended:
			t.Fatal("the oldest watcher's stream did not end when a third came")
		}
		break
	}
	if got := testutil.ToFloat64(tr.m.evicted); got != 1 {
		t.Errorf("displaced watchers %v, want 1", got)
	}
	a.resp.Body.Close()
	b.resp.Body.Close()
	third.resp.Body.Close()
	waitFor(t, time.Second, func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return !tr.publishing && len(tr.watchers) == 0
	}, "the publisher to stop with the last watcher")

	// Counting goes on; a new watcher gets the state, with a larger seq.
	tr.Add("ml", "chat", 0, 1)
	c := openWatch(t, srv.URL)
	sameServices(t, c.next(time.Second).s, svc("ml", "chat", 1, 1))

	// Close ends the stream and refuses new ones.
	tr.Close()
	select {
	case _, ok := <-c.ch:
		if ok {
			for range c.ch {
			}
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not end the stream")
	}
	resp, err := http.Get(srv.URL + WatchPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after Close: %s, want 503", resp.Status)
	}
}

func TestTrackerHandlerRoutes(t *testing.T) {
	_, srv := startTracker(t, "act-0", TrackerOptions{})
	for name, tc := range map[string]struct {
		method, path string
		want         int
	}{
		"other path": {http.MethodGet, "/demand/other", http.StatusNotFound},
		"POST":       {http.MethodPost, WatchPath, http.StatusMethodNotAllowed},
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s %s: %s, want %d", tc.method, tc.path, resp.Status, tc.want)
			}
		})
	}
}

// blockingWriter is a ResponseWriter whose Write blocks until released: a
// scaler that stopped reading.
type blockingWriter struct {
	header  http.Header
	release chan struct{}
	mu      sync.Mutex
	lines   [][]byte
	writing chan struct{} // cap 1: a Write started
}

func (b *blockingWriter) Header() http.Header { return b.header }
func (b *blockingWriter) WriteHeader(int)     {}
func (b *blockingWriter) Flush()              {}
func (b *blockingWriter) Write(p []byte) (int, error) {
	select {
	case b.writing <- struct{}{}:
	default:
	}
	<-b.release
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, slices.Clone(p))
	return len(p), nil
}

func TestTrackerSlowWatcher(t *testing.T) {
	reg := prometheus.NewRegistry()
	tr := NewTracker("act-0", TrackerOptions{Registerer: reg, Coalesce: time.Millisecond, Heartbeat: time.Hour})
	defer tr.Close()
	bw := &blockingWriter{header: http.Header{}, release: make(chan struct{}), writing: make(chan struct{}, 1)}
	req := httptest.NewRequest(http.MethodGet, WatchPath, nil)
	done := make(chan struct{})
	go func() { defer close(done); tr.Handler().ServeHTTP(bw, req) }()
	<-bw.writing // stuck writing the first snapshot

	// Thousands of changes, each a wake-up edge, while the watcher is stuck:
	// Add never waits for it.
	start := time.Now()
	for range 5000 {
		tr.Add("ml", "chat", 0, 1)
		tr.Add("ml", "chat", 0, -1)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("10,000 Adds took %v with a stuck watcher", d)
	}
	// A few changes far enough apart to make a snapshot each.
	for range 7 {
		tr.Add("ml", "chat", 1, 0)
		time.Sleep(5 * time.Millisecond)
	}
	tr.Add("ml", "chat", 0, 3)
	waitFor(t, 2*time.Second, func() bool { return testutil.ToFloat64(tr.m.dropped) >= 3 }, "snapshots to be dropped for the stuck watcher")
	close(bw.release)
	waitFor(t, 2*time.Second, func() bool {
		bw.mu.Lock()
		defer bw.mu.Unlock()
		if len(bw.lines) < 2 {
			return false
		}
		var s Snapshot
		_ = json.Unmarshal(bw.lines[len(bw.lines)-1], &s)
		return len(s.Services) == 1 && s.Services[0] == svc("ml", "chat", 7, 3)
	}, "the newest snapshot to reach the watcher")
	bw.mu.Lock()
	n := len(bw.lines)
	bw.mu.Unlock()
	built := testutil.ToFloat64(tr.m.snapshots.WithLabelValues(kindEdge)) + testutil.ToFloat64(tr.m.snapshots.WithLabelValues(kindCoalesced))
	if dropped := testutil.ToFloat64(tr.m.dropped); dropped == 0 || float64(n) > built {
		t.Errorf("watcher got %d lines of %v built, %v dropped: want the ones in between dropped", n, built, dropped)
	}
	t.Logf("stuck watcher: %v snapshots built, %d written, %v dropped", built, n, testutil.ToFloat64(tr.m.dropped))
	tr.Close()
	<-done
}

func waitFor(t testing.TB, within time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", within, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// BenchmarkTrackerAdd is the proxy's hot path: two Adds per request.
func BenchmarkTrackerAdd(b *testing.B) {
	for name, watched := range map[string]bool{"unwatched": false, "watched": true} {
		b.Run(name, func(b *testing.B) {
			tr, srv := startTracker(b, "act-0", TrackerOptions{})
			if watched {
				w := openWatch(b, srv.URL)
				go func() {
					for range w.ch {
					}
				}()
			}
			tr.Add("ml", "busy", 1, 0) // a busy service: no wake-up edges
			b.ReportAllocs()
			i := int64(0)
			for b.Loop() {
				i++
				tr.Add("ml", "chat", 2*(i&1)-1, 0) // +1, -1, +1, …
			}
		})
	}
}

// BenchmarkTrackerAddParallel runs Add from every core on a few services.
func BenchmarkTrackerAddParallel(b *testing.B) {
	tr, _ := startTracker(b, "act-0", TrackerOptions{})
	services := []string{"a", "b", "c", "d"}
	for _, s := range services {
		tr.Add("ml", s, 1, 0)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s := services[i%len(services)]
			tr.Add("ml", s, 1, 0)
			tr.Add("ml", s, -1, 0)
			i++
		}
	})
}

// openIdleWatchers opens n watch streams from the loopback address from
// that send the request and then never read: what any pod that reaches the
// admin port can do. It waits until the tracker has registered want
// watchers in all.
func openIdleWatchers(t *testing.T, tr *Tracker, base, from string, n, want int) []net.Conn {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := d.Dial("tcp", u.Host)
		if err != nil {
			t.Fatalf("dialing from %s: %v", from, err)
		}
		conns = append(conns, c)
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", WatchPath, u.Host); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.watchers) == want
	}, fmt.Sprintf("%d registered watchers", want))
	return conns
}

// TestTrackerIdleWatchersDoNotLockOutScalers: more idle watch streams than
// MaxWatchers, opened before the scaler, do not keep the scaler's
// aggregator from the stream, whether they come from another pod or from
// the scaler's own address; and idle watchers opened from another address
// once the scaler watches never push it out.
func TestTrackerIdleWatchersDoNotLockOutScalers(t *testing.T) {
	for name, from := range map[string]string{"another address": "127.0.0.2", "the scaler's address": "127.0.0.1"} {
		t.Run(name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			tr, srv := startTracker(t, "act-0", TrackerOptions{Registerer: reg, Heartbeat: testHeartbeat})
			openIdleWatchers(t, tr, srv.URL, from, 80, 64)
			tr.Add("ml", "chat", 2, 1)
			a, _ := startAggregator(t, StaticSources{srv.URL})
			expectSum(t, a, "chat", 2, 1, 2*time.Second)
			// The last of the 80 may still be arriving: 64 are
			// registered as soon as the first 64 are.
			waitFor(t, 5*time.Second, func() bool { return testutil.ToFloat64(tr.m.evicted) >= 16 },
				"at least 16 watchers evicted")
			if from == "127.0.0.1" {
				return
			}
			openIdleWatchers(t, tr, srv.URL, from, 64, 64)
			tr.Add("ml", "chat", 1, 0)
			expectSum(t, a, "chat", 3, 1, time.Second)
			for _, reason := range []string{"ended", "status", "read", "silent"} {
				if n := testutil.ToFloat64(a.m.errors.WithLabelValues(reason)); n != 0 {
					t.Errorf("the scaler's stream broke (%s: %v) while idle watchers from another address came", reason, n)
				}
			}
		})
	}
}

// TestTrackerNoSnapshotInARequestGap: a closed-loop client ends a request
// and sends its next one a moment later. A snapshot built at the first
// change after a quiet spell would be built in that moment, show one
// request fewer than are in flight almost all the time, and hold that
// number until the next snapshot (a coalescing interval later): with
// clients in step, a quarter of the time at 200 ms per request. The change
// must wait for the interval instead, by when the next request is in.
func TestTrackerNoSnapshotInARequestGap(t *testing.T) {
	const (
		coalesce = 200 * time.Millisecond
		gap      = 20 * time.Millisecond // the client's turnaround, well under coalesce
	)
	tr, srv := startTracker(t, "act-0", TrackerOptions{Coalesce: coalesce, Heartbeat: time.Hour})
	tr.Add("ml", "chat", 7, 0)
	w := openWatch(t, srv.URL)
	sameServices(t, w.next(time.Second).s, svc("ml", "chat", 7, 0))

	for range 4 {
		// Quiet for longer than the coalescing interval, then one request
		// ends and its successor arrives.
		w.none(coalesce + 50*time.Millisecond)
		tr.Add("ml", "chat", -1, 0)
		time.Sleep(gap)
		tr.Add("ml", "chat", 1, 0)
	}
	w.none(coalesce + 50*time.Millisecond)

	// A real drop is still sent, a coalescing interval after it.
	ended := time.Now()
	tr.Add("ml", "chat", -1, 0)
	r := w.next(time.Second)
	sameServices(t, r.s, svc("ml", "chat", 6, 0))
	if lat := r.at.Sub(ended); lat < coalesce*8/10 {
		t.Errorf("a drop was sent %v after it, want about the coalescing interval (%v)", lat, coalesce)
	}
}
