package demand

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Short timeouts, so that death and reconnection show within a test.
const (
	testSilence   = 300 * time.Millisecond
	testHeartbeat = 50 * time.Millisecond
)

// startAggregator runs an aggregator over src until the test ends.
func startAggregator(t testing.TB, src Sources) (*Aggregator, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	a := NewAggregator(src, AggregatorOptions{Logger: slog.New(slog.DiscardHandler), Registerer: reg, Silence: testSilence, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if _, _, known := a.Get("x", "y"); known {
			t.Error("counts still known after Run returned")
		}
	})
	return a, reg
}

// expectSum waits until a's sums for ml/chat are as wanted.
func expectSum(t testing.TB, a *Aggregator, name string, inFlight, queued int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		i, q, known := a.Get("ml", name)
		if known && i == inFlight && q == queued {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ml/%s = (%d, %d, known %v), want (%d, %d) within %v", name, i, q, known, inFlight, queued, within)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestAggregatorTwoActivatorsTwoScalers: two activator replicas, each
// watched by two scaler replicas; every scaler sees the sum of both.
func TestAggregatorTwoActivatorsTwoScalers(t *testing.T) {
	opts := TrackerOptions{Heartbeat: testHeartbeat}
	t1, s1 := startTracker(t, "act-1", opts)
	t2, s2 := startTracker(t, "act-2", opts)
	src := StaticSources{s1.URL, s2.URL}
	a, reg := startAggregator(t, src)
	b, _ := startAggregator(t, src)

	for _, agg := range []*Aggregator{a, b} {
		waitFor(t, 2*time.Second, func() bool { return agg.Activators() == 2 }, "both activators")
		expectSum(t, agg, "chat", 0, 0, time.Second)
	}
	if got := testutil.ToFloat64(a.m.connected); got != 2 {
		t.Errorf("connected_activators = %v, want 2", got)
	}
	if n, err := testutil.GatherAndCount(reg, "nemesis_demand_connected_activators", "nemesis_demand_stream_errors_total"); err != nil || n == 0 {
		t.Errorf("metrics not registered: %d, %v", n, err)
	}

	// A rise from zero fires Changes for that service only.
	chatA, chatB, other := a.Changes("ml", "chat"), b.Changes("ml", "chat"), a.Changes("ml", "other")
	start := time.Now()
	t1.Add("ml", "chat", 0, 1)
	for name, ch := range map[string]<-chan struct{}{"scaler a": chatA, "scaler b": chatB} {
		select {
		case <-ch:
			t.Logf("%s: Changes fired %v after Add", name, time.Since(start))
		case <-time.After(time.Second):
			t.Fatalf("%s: Changes did not fire on a rise from zero", name)
		}
	}
	select {
	case <-other:
		t.Fatal("Changes fired for another service")
	default:
	}
	t2.Add("ml", "chat", 3, 2)
	t1.Add("ml", "chat", 1, 0)
	t2.Add("ml", "embed", 5, 0)
	for _, agg := range []*Aggregator{a, b} {
		expectSum(t, agg, "chat", 4, 3, time.Second)
		expectSum(t, agg, "embed", 5, 0, time.Second)
	}
	// No further rise from zero: a new Changes channel stays open.
	again := a.Changes("ml", "chat")
	t1.Add("ml", "chat", 1, 1)
	expectSum(t, a, "chat", 5, 4, time.Second)
	select {
	case <-again:
		t.Fatal("Changes fired without a rise from zero")
	default:
	}
}

// TestAggregatorActivatorDeath: an activator that dies stops counting after
// the silence timeout, whether its connection breaks or just goes quiet,
// and counts again when it comes back at the same address.
func TestAggregatorActivatorDeath(t *testing.T) {
	opts := TrackerOptions{Heartbeat: testHeartbeat}
	t1, s1 := startTracker(t, "act-1", opts)

	// act-2 runs on a listener the test can reopen at the same address.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	t2 := NewTracker("act-2", opts)
	srv2 := &http.Server{Handler: t2.Handler()}
	go func() { _ = srv2.Serve(lis) }()

	a, _ := startAggregator(t, StaticSources{s1.URL, "http://" + addr})
	t1.Add("ml", "chat", 1, 0)
	t2.Add("ml", "chat", 2, 1)
	expectSum(t, a, "chat", 3, 1, 2*time.Second)

	// act-2 dies: its connections break at once.
	died := time.Now()
	t2.Close()
	srv2.Close()
	// Its counts stay for the silence timeout (a reconnection within it
	// would cause no flap), then drop out.
	time.Sleep(testSilence / 3)
	if i, q, _ := a.Get("ml", "chat"); i != 3 || q != 1 {
		t.Errorf("%v after the break: (%d, %d), want the last counts (3, 1) until the silence timeout", time.Since(died), i, q)
	}
	expectSum(t, a, "chat", 1, 0, 3*testSilence)
	t.Logf("counts of the dead activator dropped out %v after it died (silence timeout %v)", time.Since(died).Round(time.Millisecond), testSilence)
	if got := a.Activators(); got != 1 {
		t.Errorf("activators = %d, want 1", got)
	}

	// It comes back at the same address, as a new process.
	lis, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("reopening %s: %v", addr, err)
	}
	t3 := NewTracker("act-2", opts)
	srv3 := &http.Server{Handler: t3.Handler()}
	go func() { _ = srv3.Serve(lis) }()
	defer func() { t3.Close(); srv3.Close() }()
	t3.Add("ml", "chat", 0, 4)
	back := time.Now()
	expectSum(t, a, "chat", 1, 4, 2*time.Second)
	t.Logf("reconnected %v after the activator came back", time.Since(back).Round(time.Millisecond))
	if got := testutil.ToFloat64(a.m.errors.WithLabelValues("read")) + testutil.ToFloat64(a.m.errors.WithLabelValues("ended")) + testutil.ToFloat64(a.m.errors.WithLabelValues("connect")); got == 0 {
		t.Error("no stream error counted for the dead activator")
	}
}

// TestAggregatorSilentActivator: a stream that stays open but carries
// nothing (a hung process, a lost network path) counts as gone.
func TestAggregatorSilentActivator(t *testing.T) {
	var mu sync.Mutex
	hang := make(chan struct{})
	served := 0
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		served++
		mu.Unlock()
		w.Header().Set("Content-Type", contentType)
		fmt.Fprintln(w, `{"activator":"hung","seq":1,"services":[{"namespace":"ml","service":"chat","inFlight":5,"queued":0}]}`)
		w.(http.Flusher).Flush()
		select { // then nothing, not even heartbeats
		case <-r.Context().Done():
		case <-hang:
		}
	}))
	defer silent.Close()
	defer close(hang)

	a, _ := startAggregator(t, StaticSources{silent.URL})
	expectSum(t, a, "chat", 5, 0, time.Second)
	start := time.Now()
	waitFor(t, 3*testSilence, func() bool { _, _, known := a.Get("ml", "chat"); return !known }, "the silent activator to drop out")
	if d := time.Since(start); d < testSilence/2 {
		t.Errorf("dropped after %v, before the silence timeout %v", d, testSilence)
	}
	waitFor(t, 3*testSilence, func() bool { return testutil.ToFloat64(a.m.errors.WithLabelValues("silent")) > 0 }, "a silent stream error")
	// It reconnects and counts again while the stream carries something.
	expectSum(t, a, "chat", 5, 0, 3*testSilence)
}

// switchSources is a Sources whose list the test changes.
type switchSources struct {
	mu      sync.Mutex
	addrs   []string
	changed chan struct{}
}

func (s *switchSources) Addresses() ([]string, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs, s.changed
}

func (s *switchSources) set(addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addrs = addrs
	close(s.changed)
	s.changed = make(chan struct{})
}

func TestAggregatorSourcesChange(t *testing.T) {
	opts := TrackerOptions{Heartbeat: testHeartbeat}
	t1, s1 := startTracker(t, "act-1", opts)
	t2, s2 := startTracker(t, "act-2", opts)
	t1.Add("ml", "chat", 1, 0)
	t2.Add("ml", "chat", 10, 0)
	src := &switchSources{addrs: []string{s1.URL}, changed: make(chan struct{})}
	a, _ := startAggregator(t, src)
	expectSum(t, a, "chat", 1, 0, time.Second)
	src.set(s1.URL, s2.URL)
	expectSum(t, a, "chat", 11, 0, time.Second)
	// A removed address drops out at once, not after the silence timeout.
	start := time.Now()
	src.set(s2.URL)
	expectSum(t, a, "chat", 10, 0, time.Second)
	if d := time.Since(start); d > testSilence/2 {
		t.Errorf("removed activator dropped out after %v", d)
	}
	// Two addresses of one activator count once.
	src.set(s2.URL, strings.Replace(s2.URL, "127.0.0.1", "localhost", 1)+"/")
	waitFor(t, time.Second, func() bool {
		a.mu.RLock()
		defer a.mu.RUnlock()
		n := 0
		for _, st := range a.streams {
			if st.live {
				n++
			}
		}
		return n == 2
	}, "two live streams")
	expectSum(t, a, "chat", 10, 0, time.Second)
	if got := a.Activators(); got != 1 {
		t.Errorf("activators = %d, want 1 for two addresses of one activator", got)
	}
}

func TestAggregatorUnknownWithoutActivators(t *testing.T) {
	a, _ := startAggregator(t, StaticSources{"http://127.0.0.1:1"})
	time.Sleep(50 * time.Millisecond)
	if i, q, known := a.Get("ml", "chat"); known || i != 0 || q != 0 {
		t.Errorf("Get = (%d, %d, %v) with no activator reachable, want unknown", i, q, known)
	}
	waitFor(t, time.Second, func() bool { return testutil.ToFloat64(a.m.errors.WithLabelValues("connect")) >= 2 }, "connection errors and a retry")
}

func TestWatchURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://activator-0.activator:9091":  "http://activator-0.activator:9091/demand/watch",
		"http://10.0.0.1:9091/":              "http://10.0.0.1:9091/demand/watch",
		"https://a:9091/custom/watch":        "https://a:9091/custom/watch",
		"activator-0:9091":                   "",
		"ftp://a:1":                          "",
		"http://":                            "",
		"http://a:1/demand/watch?x=1":        "http://a:1/demand/watch?x=1",
		"http://[::1]:9091":                  "http://[::1]:9091/demand/watch",
		"http://a b":                         "",
		"http://activator.nemesis.svc:9091 ": "",
	} {
		got, err := WatchURL(in)
		if want == "" {
			if err == nil {
				t.Errorf("WatchURL(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("WatchURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// scriptedSources answers Addresses from a script, one list a call, each
// with a channel already closed, so that Run goes through the lists as
// fast as it can; the last list stays.
type scriptedSources struct {
	mu     sync.Mutex
	script [][]string
	closed chan struct{}
	open   chan struct{}
}

func newScriptedSources(script ...[]string) *scriptedSources {
	closed := make(chan struct{})
	close(closed)
	return &scriptedSources{script: script, closed: closed, open: make(chan struct{})}
}

func (s *scriptedSources) Addresses() ([]string, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	addrs := s.script[0]
	if len(s.script) == 1 {
		return addrs, s.open
	}
	s.script = s.script[1:]
	return addrs, s.closed
}

// TestAggregatorAddressRemovedAndReAdded: an address removed and added
// back at once (an EndpointSlice flapping) is watched afresh, and the new
// stream's snapshots count: the old stream's late start or cleanup must not
// unregister it.
func TestAggregatorAddressRemovedAndReAdded(t *testing.T) {
	tr, srv := startTracker(t, "act-1", TrackerOptions{Heartbeat: testHeartbeat})
	for round := range 20 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			src := newScriptedSources([]string{srv.URL}, nil, []string{srv.URL}, nil, []string{srv.URL})
			a, _ := startAggregator(t, src)
			tr.Add("ml", "chat", 1, 0)
			defer tr.Add("ml", "chat", -1, 0)
			// Waiting longer would not help: an unregistered stream's
			// snapshots are dropped until the list changes again.
			expectSum(t, a, "chat", 1, 0, 2*time.Second)
		})
	}
}
