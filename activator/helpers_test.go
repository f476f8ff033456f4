package activator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// testLogger logs to the test output when -v is set.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// harness is an activator serving on a local port.
type harness struct {
	a   *Activator
	reg *prometheus.Registry
	srv *Server
	url string // http://127.0.0.1:port
}

// startActivator parses yamlText, applies it and serves it on 127.0.0.1.
func startActivator(t testing.TB, yamlText string, opts Options) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	a := New(opts)
	cfg, err := ParseConfig("test.yaml", []byte(yamlText))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if err := a.Apply(cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := a.Server()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx, srv)
		a.Close()
	})
	return &harness{a: a, reg: reg, srv: srv, url: "http://" + l.Addr().String()}
}

// backend is a local upstream that answers with its name.
func backend(t testing.TB, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		fmt.Fprint(w, name)
	}))
	t.Cleanup(s.Close)
	return s
}

func hostOf(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// get sends a GET and returns status and body.
func get(t testing.TB, c *http.Client, url string, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// gaugeValue reads one series of a registry.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			return value(m), true
		}
	}
	return 0, false
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// fakeServices is a ServiceEndpoints whose endpoints tests set.
type fakeServices struct {
	mu    sync.Mutex
	subs  map[string][]func(ready, terminating []string)
	state map[string][2][]string
	pods  map[string]string // address → pod
}

func newFakeServices() *fakeServices {
	return &fakeServices{subs: map[string][]func([]string, []string){}, state: map[string][2][]string{}, pods: map[string]string{}}
}

func (f *fakeServices) Subscribe(namespace, name string, port int32, update func(ready, terminating []string)) func() {
	key := fmt.Sprintf("%s/%s:%d", namespace, name, port)
	f.mu.Lock()
	f.subs[key] = append(f.subs[key], update)
	st, ok := f.state[key]
	idx := len(f.subs[key]) - 1
	f.mu.Unlock()
	if ok {
		update(st[0], st[1])
	}
	return func() {
		f.mu.Lock()
		f.subs[key][idx] = nil
		f.mu.Unlock()
	}
}

func (f *fakeServices) PodName(_, address string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pods[address]
	return p, ok
}

// set changes a service's endpoints and tells the subscribers.
func (f *fakeServices) set(namespace, name string, port int32, ready, terminating []string) {
	key := fmt.Sprintf("%s/%s:%d", namespace, name, port)
	f.mu.Lock()
	f.state[key] = [2][]string{ready, terminating}
	subs := append([]func([]string, []string){}, f.subs[key]...)
	f.mu.Unlock()
	for _, s := range subs {
		if s != nil {
			s(ready, terminating)
		}
	}
}

// fakeDemand records the demand deltas.
type fakeDemand struct {
	mu       sync.Mutex
	inFlight map[string]int64
	queued   map[string]int64
	events   int
}

func newFakeDemand() *fakeDemand {
	return &fakeDemand{inFlight: map[string]int64{}, queued: map[string]int64{}}
}

func (d *fakeDemand) Add(namespace, service string, inFlight, queued int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := namespace + "/" + service
	d.inFlight[k] += inFlight
	d.queued[k] += queued
	d.events++
}

func (d *fakeDemand) get(k string) (int64, int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.inFlight[k], d.queued[k]
}

// eventually polls cond for up to 5 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
