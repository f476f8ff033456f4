package activator

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// statusRoute is the status of the route named name.
func statusRoute(t *testing.T, a *Activator, name string) RouteStatus {
	t.Helper()
	for _, rs := range a.Status().Routes {
		if rs.Name == name {
			return rs
		}
	}
	t.Fatalf("no route %q in the status", name)
	return RouteStatus{}
}

// TestStatusHeldRequests: requests held for a route without a ready
// endpoint show as its queue depth and oldest wait, parked or waiting on
// their own goroutine, and leave both at 0 once released; the route's
// settings are those configured.
func TestStatusHeldRequests(t *testing.T) {
	for _, mode := range holdModes() {
		t.Run(mode.name, func(t *testing.T) { testStatusHeldRequests(t, mode.opts, mode.wantWatched) })
	}
}

func testStatusHeldRequests(t *testing.T, opts Options, wantWatched int) {
	be := newFakePod(t, "warm")
	svc := newFakeServices()
	svc.pods[hostOf(be.srv)] = "chat-0"
	opts.Services = svc
	h := startActivator(t, `routes:
  - name: cold
    match:
      hosts: [chat.example.com, "*.chat.example.com"]
      pathPrefix: /v1/
      headers: {x-model: llama}
    service: {namespace: ml, name: chat, port: 8000}
    queue: {size: 10, timeout: 10s}
    endpointConcurrency: 4
    timeouts: {request: 0s}
`, opts)
	const n = 2
	results := make(chan string, n)
	for range n {
		go func() {
			code, body, _ := get(t, nil, h.url+"/v1/chat", map[string]string{"Host": "chat.example.com", "X-Model": "llama"})
			results <- fmt.Sprintf("%d %s", code, body)
		}()
	}
	eventually(t, "requests held", func() bool { return statusRoute(t, h.a, "cold").QueueDepth == n })
	if got := h.srv.watcher.watched(); got != n*wantWatched {
		t.Errorf("%d connections watched by epoll, want %d: not held the way this case is about", got, n*wantWatched)
	}
	const held = 100 * time.Millisecond
	time.Sleep(held)
	rs := statusRoute(t, h.a, "cold")
	if rs.OldestWait < held.Seconds() || rs.OldestWait > 10 {
		t.Errorf("oldest wait %vs after holding %v", rs.OldestWait, held)
	}
	rs.OldestWait = 0
	want := RouteStatus{
		Name:                  "cold",
		Match:                 `hosts: chat.example.com, *.chat.example.com; pathPrefix: /v1/; headers: X-Model="llama"`,
		Policy:                "least-request",
		Service:               "ml/chat:8000",
		QueueSize:             10,
		QueueTimeout:          "10s",
		EndpointConcurrency:   4,
		RequestTimeout:        "0s",
		ResponseHeaderTimeout: "5m",
		QueueDepth:            n,
		Endpoints:             []EndpointStatus{},
	}
	if !reflect.DeepEqual(rs, want) {
		t.Errorf("held:\n got %+v\nwant %+v", rs, want)
	}

	svc.set("ml", "chat", 8000, []string{hostOf(be.srv)}, nil)
	for range n {
		if r := <-results; r != "200 warm" {
			t.Errorf("held request: %s", r)
		}
	}
	rs = statusRoute(t, h.a, "cold")
	if rs.QueueDepth != 0 || rs.OldestWait != 0 || rs.InFlight != 0 {
		t.Errorf("after the release: queue depth %d, oldest wait %v, in flight %d; want 0", rs.QueueDepth, rs.OldestWait, rs.InFlight)
	}
	wantEps := []EndpointStatus{{Address: hostOf(be.srv), Pod: "chat-0", State: EndpointReady}}
	if !reflect.DeepEqual(rs.Endpoints, wantEps) {
		t.Errorf("endpoints %+v, want %+v", rs.Endpoints, wantEps)
	}
}

// TestStatusEndpointStates: requests held open by a slow pod count in
// flight at that endpoint and its route through its life: ready,
// terminating, then gone from the EndpointSlices with the requests still
// running (draining), and forgotten when they finish.
func TestStatusEndpointStates(t *testing.T) {
	release := make(chan struct{})
	slow, fast := newFakePod(t, "slow"), newFakePod(t, "fast")
	slow.hold = release
	addrSlow, addrFast := hostOf(slow.srv), hostOf(fast.srv)
	svc := newFakeServices()
	svc.pods[addrSlow], svc.pods[addrFast] = "chat-slow", "chat-fast"
	svc.set("ml", "chat", 8000, []string{addrSlow}, nil)
	h := startActivator(t, fmt.Sprintf(serviceRoute, 10, "10s"), Options{Services: svc})
	// Before the servers close, even if the test fails early.
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock)

	const n = 2
	results := make(chan string, n)
	for range n {
		go func() {
			code, body, _ := get(t, nil, h.url, nil)
			results <- fmt.Sprintf("%d %s", code, body)
		}()
	}
	eventually(t, "requests held by the slow pod", func() bool { return slow.active.Load() == n })

	check := func(when string, want ...EndpointStatus) {
		t.Helper()
		slices.SortFunc(want, func(a, b EndpointStatus) int { return strings.Compare(a.Address, b.Address) })
		rs := statusRoute(t, h.a, "cold")
		if !reflect.DeepEqual(rs.Endpoints, want) {
			t.Errorf("%s: endpoints\n %+v\nwant\n %+v", when, rs.Endpoints, want)
		}
		total := 0
		for _, ep := range want {
			total += ep.InFlight
		}
		if rs.InFlight != total {
			t.Errorf("%s: route in flight %d, want %d", when, rs.InFlight, total)
		}
	}
	check("ready", EndpointStatus{Address: addrSlow, Pod: "chat-slow", State: EndpointReady, InFlight: n})

	svc.set("ml", "chat", 8000, []string{addrFast}, []string{addrSlow})
	check("terminating",
		EndpointStatus{Address: addrSlow, Pod: "chat-slow", State: EndpointTerminating, InFlight: n},
		EndpointStatus{Address: addrFast, Pod: "chat-fast", State: EndpointReady})

	// The fake source, like the EndpointSlices, no longer names the pod:
	// Status finds no pod name for it.
	svc.mu.Lock()
	delete(svc.pods, addrSlow)
	svc.mu.Unlock()
	svc.set("ml", "chat", 8000, []string{addrFast}, nil)
	check("gone", EndpointStatus{Address: addrSlow, State: EndpointDraining, InFlight: n},
		EndpointStatus{Address: addrFast, Pod: "chat-fast", State: EndpointReady})

	unblock()
	for range n {
		if r := <-results; r != "200 slow" {
			t.Errorf("request held by the slow pod: %s", r)
		}
	}
	eventually(t, "the drained endpoint forgotten", func() bool { return len(statusRoute(t, h.a, "cold").Endpoints) == 1 })
	check("drained", EndpointStatus{Address: addrFast, Pod: "chat-fast", State: EndpointReady})
}

// TestStatusScore: on a score route each ready pod shows the score the
// policy would give it now (its requests in flight included) and the age
// of its last scrape; a pod whose scrapes fail shows no score.
func TestStatusScore(t *testing.T) {
	release := make(chan struct{})
	a, b := newFakePod(t, "a"), newFakePod(t, "b")
	a.hold = release
	a.set(3, "")  // 2 × 3 + inflight
	b.set(10, "") // 2 × 10 + inflight
	h := startActivator(t, scoreRoute([]string{hostOf(a.srv), hostOf(b.srv)}, ""), Options{})
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock)
	scoredAll(t, h, a, b)
	res := make(chan string, 1)
	go func() {
		code, body, _ := get(t, nil, h.url+"/gen", nil)
		res <- fmt.Sprintf("%d %s", code, body)
	}()
	eventually(t, "a request held by a", func() bool { return a.active.Load() == 1 })

	byAddr := func() map[string]EndpointStatus {
		out := map[string]EndpointStatus{}
		for _, ep := range statusRoute(t, h.a, "s").Endpoints {
			out[ep.Address] = ep
		}
		return out
	}
	eps := byAddr()
	for _, c := range []struct {
		pod       *fakePod
		score     float64
		inFlight  int
		scrapeAge float64 // at most: the interval is 20ms
	}{{a, 7, 1, 1}, {b, 20, 0, 1}} {
		ep := eps[hostOf(c.pod.srv)]
		if ep.Score == nil || *ep.Score != c.score || ep.InFlight != c.inFlight {
			t.Errorf("pod %s: score %v, in flight %d; want %v, %d", c.pod.name, deref(ep.Score), ep.InFlight, c.score, c.inFlight)
		}
		if ep.ScrapeAgeSeconds == nil || *ep.ScrapeAgeSeconds < 0 || *ep.ScrapeAgeSeconds > c.scrapeAge {
			t.Errorf("pod %s: scrape age %v, want 0 to %vs", c.pod.name, deref(ep.ScrapeAgeSeconds), c.scrapeAge)
		}
	}

	b.set(10, "error")
	eventually(t, "b's failed scrape", func() bool {
		ep := byAddr()[hostOf(b.srv)]
		return ep.Score == nil && ep.ScrapeAgeSeconds != nil
	})
	unblock()
	if r := <-res; r != "200 a" {
		t.Errorf("request held by a: %s", r)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestStatusReload: the configuration version rises with each file put in
// force; a refused file leaves it, and the configuration in force, as
// they were, and shows its problems with their file:line:column until a
// later read finds a file in force.
func TestStatusReload(t *testing.T) {
	be := newFakePod(t, "one")
	h := startActivator(t, "routes: []", Options{})
	st := h.a.Status()
	if st.ConfigVersion != 1 || st.LoadedAt == nil || st.LastReloadAt != nil || st.LastReloadError != "" {
		t.Errorf("first configuration, applied: %+v", st)
	}

	path := filepath.Join(t.TempDir(), "activator.yaml")
	load := func(text string) (Status, error) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		before := time.Now()
		_, err := h.a.Load(path)
		st := h.a.Status()
		if st.LastReloadAt == nil || st.LastReloadAt.Before(before) {
			t.Errorf("last reload at %v, want after %v", st.LastReloadAt, before)
		}
		return st, err
	}
	good := staticRoute("r", hostOf(be.srv))
	st, err := load(good)
	if err != nil || st.ConfigVersion != 2 || st.ConfigFile != path || st.LastReloadError != "" || len(st.Routes) != 1 {
		t.Errorf("good file: version %d, file %q, error %q, %d routes (%v)", st.ConfigVersion, st.ConfigFile, st.LastReloadError, len(st.Routes), err)
	}
	if st.LoadedAt == nil {
		t.Fatal("no loadedAt with a configuration in force")
	}
	loadedAt := *st.LoadedAt

	st, err = load("routes:\n  - name: r\n    endpoints: [nope]\n  - name: other\n    policy: fast\n    endpoints: [\"127.0.0.1:1\"]\n")
	if err == nil {
		t.Fatal("a bad file was accepted")
	}
	wantErr := path + `:3:17: route "r": endpoints: "nope" is not host:port` + "\n" +
		path + `:5:13: route "other": policy: "fast" is not round-robin, least-request, random, metric or score`
	if st.LastReloadError != wantErr {
		t.Errorf("last reload error\n %q\nwant\n %q", st.LastReloadError, wantErr)
	}
	if st.ConfigVersion != 2 || !st.LoadedAt.Equal(loadedAt) || len(st.Routes) != 1 || st.Routes[0].Endpoints[0].Address != hostOf(be.srv) {
		t.Errorf("after a refused file: version %d (want 2), loaded at %v (want %v), routes %+v", st.ConfigVersion, st.LoadedAt, loadedAt, st.Routes)
	}
	if code, body, _ := get(t, nil, h.url, nil); code != 200 || body != "one" {
		t.Errorf("after a refused file: %d %q", code, body)
	}

	// Back to the file in force: nothing to apply, nothing refused.
	st, _ = load(good)
	if st.ConfigVersion != 2 || st.LastReloadError != "" {
		t.Errorf("the file in force again: version %d, error %q; want 2, \"\"", st.ConfigVersion, st.LastReloadError)
	}

	if _, err := load("routes:\n  - name: r\n    endpoints: [nope]\n"); err == nil {
		t.Fatal("a bad file was accepted")
	}
	st, err = load(good + "    policy: round-robin\n")
	if err != nil || st.ConfigVersion != 3 || st.LastReloadError != "" || st.Routes[0].Policy != "round-robin" {
		t.Errorf("a new good file after a refused one: version %d (want 3), error %q, routes %+v (%v)", st.ConfigVersion, st.LastReloadError, st.Routes, err)
	}
}
