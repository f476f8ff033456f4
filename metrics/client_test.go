package metrics

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"
)

// fakeClock is a settable clock for cache windows.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeProm is a fake Prometheus HTTP API. Its answer for a query is looked up
// in answers by query string; requests counts the query requests received.
type fakeProm struct {
	t        *testing.T
	requests atomic.Int64
	// handle, when set, runs before the answer is written and may write the
	// whole response itself by returning true.
	handle func(w http.ResponseWriter, r *http.Request) bool

	mu      sync.Mutex
	answers map[string]answer
	seen    []*http.Request // clones of the received requests, with their form parsed
}

// answer is a canned HTTP response.
type answer struct {
	status int
	body   string
}

// vectorBody builds a success response with an instant vector.
func vectorBody(samples ...string) string {
	return `{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(samples, ",") + `]}}`
}

func newFakeProm(t *testing.T) *fakeProm {
	t.Helper()
	return &fakeProm{t: t, answers: map[string]answer{}}
}

func (p *fakeProm) set(query string, status int, body string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answers[query] = answer{status: status, body: body}
}

func (p *fakeProm) lastRequest() *http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.seen) == 0 {
		return nil
	}
	return p.seen[len(p.seen)-1]
}

// handler serves the query endpoint under prefix, as Prometheus behind a
// path prefix (e.g. Mimir's /prometheus) would.
func (p *fakeProm) handler(prefix string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(prefix+"/api/v1/query", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p.requests.Add(1)
		p.mu.Lock()
		p.seen = append(p.seen, r.Clone(context.Background()))
		p.mu.Unlock()
		if p.handle != nil && p.handle(w, r) {
			return
		}
		q := r.Form.Get("query")
		p.mu.Lock()
		a, ok := p.answers[q]
		p.mu.Unlock()
		if !ok {
			a = answer{status: http.StatusBadRequest, body: `{"status":"error","errorType":"bad_data","error":"fake: no answer for query"}`}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	})
	return mux
}

// start serves p over plain HTTP under prefix.
func (p *fakeProm) start(prefix string) *httptest.Server {
	srv := httptest.NewServer(p.handler(prefix))
	p.t.Cleanup(srv.Close)
	return srv
}

// newTestClient builds a client on a fresh registry with a fake clock.
func newTestClient(t *testing.T, cfg ClientConfig) (*Client, *prometheus.Registry, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	reg := prometheus.NewRegistry()
	c, err := NewClient(cfg, slog.New(slog.DiscardHandler), reg, noop.NewTracerProvider())
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c, reg, clock
}

// counter reads one series of a client metric.
func counter(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

func TestQueryResults(t *testing.T) {
	const q = "up"
	tests := map[string]struct {
		status     int
		body       string
		want       Result
		wantErr    string // substring; empty means success
		wantOutcom string
	}{
		"vector with several series": {
			status: http.StatusOK,
			body: vectorBody(
				`{"metric":{"__name__":"up","pod":"a"},"value":[1700000000.1,"3"]}`,
				`{"metric":{"pod":"b"},"value":[1700000000.1,"1.5"]}`,
				`{"metric":{},"value":[1700000000.1,"-2"]}`,
			),
			want: Result{
				Values: []float64{3, 1.5, -2},
				Labels: []map[string]string{{"__name__": "up", "pod": "a"}, {"pod": "b"}, {}},
			},
			wantOutcom: outcomeSuccess,
		},
		"scalar": {
			status:     http.StatusOK,
			body:       `{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"42.5"]}}`,
			want:       Result{Scalar: true, Values: []float64{42.5}},
			wantOutcom: outcomeSuccess,
		},
		"empty vector": {
			status:     http.StatusOK,
			body:       vectorBody(),
			want:       Result{Values: []float64{}, Labels: []map[string]string{}},
			wantOutcom: outcomeSuccess,
		},
		"warnings are not errors": {
			status:     http.StatusOK,
			body:       `{"status":"success","warnings":["partial response"],"infos":["hint"],"data":{"resultType":"scalar","result":[1700000000,"1"]}}`,
			want:       Result{Scalar: true, Values: []float64{1}},
			wantOutcom: outcomeSuccess,
		},
		"matrix": {
			status:     http.StatusOK,
			body:       `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"pod":"a"},"values":[[1700000000,"1"],[1700000015,"2"]]}]}}`,
			wantErr:    "query must return an instant vector or a scalar, got matrix",
			wantOutcom: outcomeError,
		},
		"string": {
			status:     http.StatusOK,
			body:       `{"status":"success","data":{"resultType":"string","result":[1700000000,"hello"]}}`,
			wantErr:    "query must return an instant vector or a scalar, got string",
			wantOutcom: outcomeError,
		},
		"native histogram": {
			status:     http.StatusOK,
			body:       vectorBody(`{"metric":{"pod":"a"},"histogram":[1700000000,{"count":"2","sum":"3","buckets":[[0,"0","1","2"]]}]}`),
			wantErr:    "native histogram",
			wantOutcom: outcomeError,
		},
		"bad data": {
			status:     http.StatusBadRequest,
			body:       `{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}`,
			wantErr:    "querying prometheus: bad_data: 1:5: parse error: unexpected end of input",
			wantOutcom: outcomeError,
		},
		"execution error": {
			status:     http.StatusUnprocessableEntity,
			body:       `{"status":"error","errorType":"execution","error":"many-to-many matching not allowed"}`,
			wantErr:    "execution: many-to-many matching not allowed",
			wantOutcom: outcomeError,
		},
		"service unavailable": {
			status:     http.StatusServiceUnavailable,
			body:       "<html>\n  <body>upstream connect error</body>\n</html>",
			wantErr:    "querying prometheus: server_error: server error: 503: <html> <body>upstream connect error</body> </html>",
			wantOutcom: outcomeError,
		},
		"prometheus engine timeout": {
			status:     http.StatusServiceUnavailable,
			body:       `{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}`,
			wantErr:    "timeout: query timed out in expression evaluation",
			wantOutcom: outcomeTimeout,
		},
		"not json": {
			status:     http.StatusOK,
			body:       `this is not json`,
			wantErr:    "querying prometheus: bad_response",
			wantOutcom: outcomeError,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			prom := newFakeProm(t)
			prom.set(q, tc.status, tc.body)
			srv := prom.start("")
			c, _, _ := newTestClient(t, ClientConfig{URL: srv.URL})

			got, err := c.Query(t.Context(), q)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("Query() = %+v, want error containing %q", got, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Query() error = %q, want it to contain %q", err, tc.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "querying prometheus: ") {
					t.Errorf("Query() error = %q, want prefix %q", err, "querying prometheus: ")
				}
			} else {
				if err != nil {
					t.Fatalf("Query() error = %v", err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("Query() = %#v, want %#v", got, tc.want)
				}
			}
			if v := counter(c.metrics.requests.WithLabelValues(tc.wantOutcom)); v != 1 {
				t.Errorf("requests_total{outcome=%q} = %v, want 1", tc.wantOutcom, v)
			}
		})
	}
}

func TestQuerySpecialFloats(t *testing.T) {
	prom := newFakeProm(t)
	prom.set("x", http.StatusOK, vectorBody(
		`{"metric":{"s":"nan"},"value":[1700000000,"NaN"]}`,
		`{"metric":{"s":"inf"},"value":[1700000000,"+Inf"]}`,
		`{"metric":{"s":"-inf"},"value":[1700000000,"-Inf"]}`,
	))
	srv := prom.start("")
	c, _, _ := newTestClient(t, ClientConfig{URL: srv.URL})

	got, err := c.Query(t.Context(), "x")
	if err != nil {
		t.Fatalf("Query() error = %v", err)
	}
	if len(got.Values) != 3 || !math.IsNaN(got.Values[0]) || !math.IsInf(got.Values[1], 1) || !math.IsInf(got.Values[2], -1) {
		t.Errorf("Query() values = %v, want [NaN +Inf -Inf]", got.Values)
	}
}

func TestQueryPathPrefix(t *testing.T) {
	for name, base := range map[string]string{
		"prefix":                "/prometheus",
		"prefix trailing slash": "/prometheus/",
	} {
		t.Run(name, func(t *testing.T) {
			prom := newFakeProm(t)
			prom.set("up", http.StatusOK, vectorBody(`{"metric":{},"value":[1700000000,"1"]}`))
			srv := prom.start("/prometheus")
			c, _, _ := newTestClient(t, ClientConfig{URL: srv.URL + base})
			got, err := c.Query(t.Context(), "up")
			if err != nil {
				t.Fatalf("Query() error = %v", err)
			}
			if len(got.Values) != 1 || got.Values[0] != 1 {
				t.Errorf("Query() = %+v, want one value 1", got)
			}
		})
	}
}

// waitFor polls cond until it holds or the test times out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestQueryDeduplication(t *testing.T) {
	const (
		q       = `sum(rate(http_requests_total{job="api"}[1m]))`
		callers = 50
	)
	prom := newFakeProm(t)
	prom.set(q, http.StatusOK, vectorBody(`{"metric":{"job":"api"},"value":[1700000000,"7"]}`))
	release := make(chan struct{})
	prom.handle = func(http.ResponseWriter, *http.Request) bool {
		<-release
		return false
	}
	srv := prom.start("")
	c, reg, clock := newTestClient(t, ClientConfig{URL: srv.URL, CacheTTL: 2 * time.Second})

	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			res, err := c.Query(context.Background(), q)
			if err == nil && (len(res.Values) != 1 || res.Values[0] != 7) {
				err = fmt.Errorf("got %+v, want one value 7", res)
			}
			errs <- err
		})
	}
	// Hold the answer back until every caller has started or joined the
	// request, so that the cache cannot explain the single request.
	waitFor(t, "all callers to wait on the request", func() bool {
		return counter(c.metrics.queriesUpstream)+counter(c.metrics.queriesShared) == callers
	})
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Query(): %v", err)
		}
	}
	if n := prom.requests.Load(); n != 1 {
		t.Fatalf("%d concurrent identical queries sent %d requests, want 1", callers, n)
	}

	// Within the window: served from the cache.
	clock.Advance(time.Second)
	if _, err := c.Query(t.Context(), q); err != nil {
		t.Fatalf("cached Query(): %v", err)
	}
	if n := prom.requests.Load(); n != 1 {
		t.Fatalf("query within the TTL sent a request: %d requests, want 1", n)
	}

	const want = `
# HELP nemesis_prometheus_cache_entries Query results currently held in the cache, including expired entries not yet swept.
# TYPE nemesis_prometheus_cache_entries gauge
nemesis_prometheus_cache_entries 1
# HELP nemesis_prometheus_queries_total Query calls, by where the answer came from: prometheus (this call sent the request), shared (joined an in-flight request), cache (served from the cache window).
# TYPE nemesis_prometheus_queries_total counter
nemesis_prometheus_queries_total{source="cache"} 1
nemesis_prometheus_queries_total{source="prometheus"} 1
nemesis_prometheus_queries_total{source="shared"} 49
# HELP nemesis_prometheus_requests_total HTTP requests sent to Prometheus, by outcome (success, error, timeout).
# TYPE nemesis_prometheus_requests_total counter
nemesis_prometheus_requests_total{outcome="error"} 0
nemesis_prometheus_requests_total{outcome="success"} 1
nemesis_prometheus_requests_total{outcome="timeout"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"nemesis_prometheus_cache_entries", "nemesis_prometheus_queries_total", "nemesis_prometheus_requests_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "nemesis_prometheus_request_duration_seconds"); n != 1 {
		t.Errorf("request_duration_seconds series = %d, want 1", n)
	}

	// After the window: a new request.
	clock.Advance(time.Second)
	if _, err := c.Query(t.Context(), q); err != nil {
		t.Fatalf("Query() after TTL: %v", err)
	}
	if n := prom.requests.Load(); n != 2 {
		t.Fatalf("query after the TTL: %d requests, want 2", n)
	}
	if v := counter(c.metrics.queriesUpstream); v != 2 {
		t.Errorf("queries_total{source=prometheus} = %v, want 2", v)
	}
}

func TestQueryDifferentQueriesAreSeparate(t *testing.T) {
	prom := newFakeProm(t)
	for _, q := range []string{"a", "b", "a "} {
		prom.set(q, http.StatusOK, vectorBody(`{"metric":{},"value":[1700000000,"1"]}`))
	}
	srv := prom.start("")
	c, _, _ := newTestClient(t, ClientConfig{URL: srv.URL})
	for _, q := range []string{"a", "b", "a ", "a", "b"} {
		if _, err := c.Query(t.Context(), q); err != nil {
			t.Fatalf("Query(%q): %v", q, err)
		}
	}
	// The cache key is the exact string: "a " is not "a".
	if n := prom.requests.Load(); n != 3 {
		t.Errorf("3 distinct queries sent %d requests, want 3", n)
	}
	if v := counter(c.metrics.cacheEntries); v != 3 {
		t.Errorf("cache_entries = %v, want 3", v)
	}
}

func TestQueryErrorsAreCached(t *testing.T) {
	prom := newFakeProm(t)
	prom.set("bad(", http.StatusBadRequest, `{"status":"error","errorType":"bad_data","error":"parse error"}`)
	srv := prom.start("")
	c, _, clock := newTestClient(t, ClientConfig{URL: srv.URL})

	_, err1 := c.Query(t.Context(), "bad(")
	_, err2 := c.Query(t.Context(), "bad(")
	if err1 == nil || err2 == nil {
		t.Fatalf("Query() errors = %v, %v; want both non-nil", err1, err2)
	}
	if err1.Error() != err2.Error() {
		t.Errorf("cached error %q differs from original %q", err2, err1)
	}
	if n := prom.requests.Load(); n != 1 {
		t.Errorf("failing query repeated within the TTL sent %d requests, want 1", n)
	}
	if v := counter(c.metrics.queriesFromCache); v != 1 {
		t.Errorf("queries_total{source=cache} = %v, want 1", v)
	}
	clock.Advance(DefaultCacheTTL)
	if _, err := c.Query(t.Context(), "bad("); err == nil {
		t.Fatal("Query() after TTL succeeded, want error")
	}
	if n := prom.requests.Load(); n != 2 {
		t.Errorf("after the TTL: %d requests, want 2", n)
	}
}

func TestQueryCachingDisabled(t *testing.T) {
	prom := newFakeProm(t)
	prom.set("up", http.StatusOK, vectorBody(`{"metric":{},"value":[1700000000,"1"]}`))
	srv := prom.start("")
	c, _, _ := newTestClient(t, ClientConfig{URL: srv.URL, CacheTTL: -1})
	for range 3 {
		if _, err := c.Query(t.Context(), "up"); err != nil {
			t.Fatalf("Query(): %v", err)
		}
	}
	if n := prom.requests.Load(); n != 3 {
		t.Errorf("with caching disabled, 3 queries sent %d requests, want 3", n)
	}
	if v := counter(c.metrics.cacheEntries); v != 0 {
		t.Errorf("cache_entries = %v, want 0", v)
	}
}

// TestQuerySourceMatchesRequests checks under contention that a call is
// counted as source=prometheus exactly when a request was really sent, even
// for calls arriving just as a request finishes.
func TestQuerySourceMatchesRequests(t *testing.T) {
	prom := newFakeProm(t)
	prom.set("up", http.StatusOK, vectorBody())
	srv := prom.start("")
	c, _, _ := newTestClient(t, ClientConfig{URL: srv.URL, CacheTTL: -1})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if _, err := c.Query(context.Background(), "up"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	upstream, shared := counter(c.metrics.queriesUpstream), counter(c.metrics.queriesShared)
	if n := prom.requests.Load(); upstream != float64(n) {
		t.Errorf("queries_total{source=prometheus} = %v, but %d requests were sent", upstream, n)
	}
	if upstream+shared != 8*200 {
		t.Errorf("prometheus+shared = %v, want %d", upstream+shared, 8*200)
	}
	if v := counter(c.metrics.requestsSuccess); v != upstream {
		t.Errorf("requests_total{outcome=success} = %v, want %v", v, upstream)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.inflight) != 0 {
		t.Errorf("inflight = %v after all calls returned, want empty", c.inflight)
	}
}

// TestQueryAfterFinishStartsNewRequest places a call in the window between
// a request recording its answer and singleflight releasing the key. With
// caching disabled that call must send its own request rather than join the
// finished one, and the bookkeeping must say so.
func TestQueryAfterFinishStartsNewRequest(t *testing.T) {
	prom := newFakeProm(t)
	prom.set("up", http.StatusOK, vectorBody())
	srv := prom.start("")
	c, _, _ := newTestClient(t, ClientConfig{URL: srv.URL, CacheTTL: -1})
	var nestedErr error
	var hooked atomic.Bool
	c.afterFinish = func(q string) {
		if hooked.Swap(true) {
			return // the nested call's own request
		}
		// Joining the finished call would wait for this very hook.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, nestedErr = c.Query(ctx, q)
	}
	if _, err := c.Query(t.Context(), "up"); err != nil {
		t.Fatal(err)
	}
	if nestedErr != nil {
		t.Fatalf("query arriving after the first finished: %v", nestedErr)
	}
	if n := prom.requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
	if v := counter(c.metrics.queriesUpstream); v != 2 {
		t.Errorf("queries_total{source=prometheus} = %v, want 2", v)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.inflight) != 0 {
		t.Errorf("inflight = %v after all calls returned, want empty", c.inflight)
	}
}

func TestCacheSweepsExpiredEntries(t *testing.T) {
	prom := newFakeProm(t)
	for i := range 10 {
		prom.set(fmt.Sprint("q", i), http.StatusOK, vectorBody())
	}
	srv := prom.start("")
	c, _, clock := newTestClient(t, ClientConfig{URL: srv.URL, CacheTTL: time.Second})
	for i := range 5 {
		if _, err := c.Query(t.Context(), fmt.Sprint("q", i)); err != nil {
			t.Fatal(err)
		}
	}
	if v := counter(c.metrics.cacheEntries); v != 5 {
		t.Fatalf("cache_entries = %v, want 5", v)
	}
	clock.Advance(time.Second)
	// The next insert sweeps the five expired entries.
	if _, err := c.Query(t.Context(), "q9"); err != nil {
		t.Fatal(err)
	}
	if v := counter(c.metrics.cacheEntries); v != 1 {
		t.Errorf("cache_entries after sweep = %v, want 1", v)
	}
	c.mu.RLock()
	n := len(c.cache)
	c.mu.RUnlock()
	if n != 1 {
		t.Errorf("len(cache) = %d, want 1", n)
	}
}

func TestCallerCancellationDoesNotCancelSharedRequest(t *testing.T) {
	const q = "slow"
	prom := newFakeProm(t)
	prom.set(q, http.StatusOK, vectorBody(`{"metric":{},"value":[1700000000,"5"]}`))
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	prom.handle = func(_ http.ResponseWriter, r *http.Request) bool {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			// The client gave up on the request: the bug under test.
		}
		return false
	}
	srv := prom.start("")
	c, _, _ := newTestClient(t, ClientConfig{URL: srv.URL})

	// The first caller starts the request, then gives up.
	firstCtx, cancelFirst := context.WithCancel(t.Context())
	firstErr := make(chan error, 1)
	go func() {
		_, err := c.Query(firstCtx, q)
		firstErr <- err
	}()
	<-arrived

	// The second caller joins it.
	type outcome struct {
		res Result
		err error
	}
	second := make(chan outcome, 1)
	go func() {
		res, err := c.Query(context.Background(), q)
		second <- outcome{res, err}
	}()
	waitFor(t, "the second caller to join", func() bool { return counter(c.metrics.queriesShared) == 1 })

	cancelFirst()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller got %v, want context.Canceled", err)
	}
	close(release)
	got := <-second
	if got.err != nil {
		t.Fatalf("joined caller got error %v after the first caller was cancelled", got.err)
	}
	if len(got.res.Values) != 1 || got.res.Values[0] != 5 {
		t.Errorf("joined caller got %+v, want one value 5", got.res)
	}
	if n := prom.requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	if v := counter(c.metrics.requestsSuccess); v != 1 {
		t.Errorf("requests_total{outcome=success} = %v, want 1", v)
	}
	// The shared answer was cached despite the cancellation.
	if _, err := c.Query(t.Context(), q); err != nil {
		t.Errorf("cached Query(): %v", err)
	}
	if n := prom.requests.Load(); n != 1 {
		t.Errorf("%d requests after cache hit, want 1", n)
	}
}

func TestQueryWithDoneContextSendsNothing(t *testing.T) {
	prom := newFakeProm(t)
	srv := prom.start("")
	c, _, _ := newTestClient(t, ClientConfig{URL: srv.URL})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Query(ctx, "up"); !errors.Is(err, context.Canceled) {
		t.Errorf("Query() error = %v, want context.Canceled", err)
	}
	if n := prom.requests.Load(); n != 0 {
		t.Errorf("%d requests, want 0", n)
	}
}

func TestQueryTimeout(t *testing.T) {
	prom := newFakeProm(t)
	prom.set("up", http.StatusOK, vectorBody())
	prom.handle = func(_ http.ResponseWriter, r *http.Request) bool {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return false
	}
	srv := prom.start("")
	c, _, _ := newTestClient(t, ClientConfig{URL: srv.URL, Timeout: 50 * time.Millisecond})

	start := time.Now()
	_, err := c.Query(t.Context(), "up")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Query() error = %v, want context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Errorf("Query() error = %q, want it to name the timeout", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Query() took %v, want about the 50ms timeout", elapsed)
	}
	if v := counter(c.metrics.requestsTimeout); v != 1 {
		t.Errorf("requests_total{outcome=timeout} = %v, want 1", v)
	}
	if v := counter(c.metrics.requestsError); v != 0 {
		t.Errorf("requests_total{outcome=error} = %v, want 0", v)
	}
}

// writeFile writes content to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestQueryCredentialsAndHeaders(t *testing.T) {
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "token", "token-1\n")
	passwordFile := writeFile(t, dir, "password", "s3cret\n")

	tests := map[string]struct {
		cfg   ClientConfig
		check func(t *testing.T, r *http.Request)
	}{
		"headers": {
			cfg: ClientConfig{Headers: map[string]string{"X-Scope-OrgID": "tenant-a", "X-Extra": "1"}},
			check: func(t *testing.T, r *http.Request) {
				if got := r.Header.Get("X-Scope-OrgID"); got != "tenant-a" {
					t.Errorf("X-Scope-OrgID = %q, want tenant-a", got)
				}
				if got := r.Header.Get("X-Extra"); got != "1" {
					t.Errorf("X-Extra = %q, want 1", got)
				}
				if got := r.Header.Get("Authorization"); got != "" {
					t.Errorf("Authorization = %q, want none", got)
				}
			},
		},
		"bearer token file": {
			cfg: ClientConfig{BearerTokenFile: tokenFile},
			check: func(t *testing.T, r *http.Request) {
				if got := r.Header.Get("Authorization"); got != "Bearer token-1" {
					t.Errorf("Authorization = %q, want %q", got, "Bearer token-1")
				}
			},
		},
		"basic auth": {
			cfg: ClientConfig{BasicAuthUsername: "nemesis", BasicAuthPasswordFile: passwordFile},
			check: func(t *testing.T, r *http.Request) {
				user, pass, ok := r.BasicAuth()
				if !ok || user != "nemesis" || pass != "s3cret" {
					t.Errorf("BasicAuth() = %q, %q, %v; want nemesis, s3cret, true", user, pass, ok)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			prom := newFakeProm(t)
			prom.set("up", http.StatusOK, vectorBody())
			srv := prom.start("")
			cfg := tc.cfg
			cfg.URL = srv.URL
			c, _, _ := newTestClient(t, cfg)
			if _, err := c.Query(t.Context(), "up"); err != nil {
				t.Fatalf("Query(): %v", err)
			}
			r := prom.lastRequest()
			if r == nil {
				t.Fatal("no request reached the server")
			}
			if got := r.Form.Get("query"); got != "up" {
				t.Errorf("query parameter = %q, want up", got)
			}
			tc.check(t, r)
		})
	}
}

func TestQueryRefusesCrossOriginRedirect(t *testing.T) {
	other := newFakeProm(t)
	other.set("up", http.StatusOK, vectorBody())
	otherSrv := other.start("")
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherSrv.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	tokenFile := writeFile(t, t.TempDir(), "token", "secret-token")
	c, _, _ := newTestClient(t, ClientConfig{URL: redirector.URL, BearerTokenFile: tokenFile})

	_, err := c.Query(t.Context(), "up")
	if err == nil || !strings.Contains(err.Error(), "refusing redirect") {
		t.Fatalf("Query() error = %v, want a refused redirect", err)
	}
	if n := other.requests.Load(); n != 0 {
		t.Errorf("the other origin received %d requests (with the bearer token), want 0", n)
	}
}

func TestBearerTokenRotation(t *testing.T) {
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "token", "old")
	prom := newFakeProm(t)
	prom.set("up", http.StatusOK, vectorBody())
	srv := prom.start("")
	c, _, clock := newTestClient(t, ClientConfig{URL: srv.URL, BearerTokenFile: tokenFile})

	if _, err := c.Query(t.Context(), "up"); err != nil {
		t.Fatal(err)
	}
	if got := prom.lastRequest().Header.Get("Authorization"); got != "Bearer old" {
		t.Fatalf("Authorization = %q, want %q", got, "Bearer old")
	}
	writeFile(t, dir, "token", "new")
	clock.Advance(DefaultCacheTTL)
	if _, err := c.Query(t.Context(), "up"); err != nil {
		t.Fatal(err)
	}
	if got := prom.lastRequest().Header.Get("Authorization"); got != "Bearer new" {
		t.Errorf("after rotation Authorization = %q, want %q", got, "Bearer new")
	}
}

// selfSignedClientCert returns a PEM certificate and key for mTLS tests.
func selfSignedClientCert(t *testing.T) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "nemesis"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), cert
}

func TestQueryTLS(t *testing.T) {
	prom := newFakeProm(t)
	prom.set("up", http.StatusOK, vectorBody(`{"metric":{},"value":[1700000000,"1"]}`))

	// One server requires a client certificate, the other does not.
	clientCertPEM, clientKeyPEM, clientCert := selfSignedClientCert(t)
	plain := httptest.NewTLSServer(prom.handler(""))
	t.Cleanup(plain.Close)
	mtls := httptest.NewUnstartedServer(prom.handler(""))
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(clientCert)
	mtls.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs}
	mtls.StartTLS()
	t.Cleanup(mtls.Close)

	dir := t.TempDir()
	caFile := writeFile(t, dir, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: plain.Certificate().Raw})))
	certFile := writeFile(t, dir, "client.pem", string(clientCertPEM))
	keyFile := writeFile(t, dir, "client-key.pem", string(clientKeyPEM))

	tests := map[string]struct {
		cfg     ClientConfig
		wantErr string
	}{
		"ca file":                  {cfg: ClientConfig{URL: plain.URL, CAFile: caFile}},
		"no ca file":               {cfg: ClientConfig{URL: plain.URL}, wantErr: "certificate"},
		"insecure skip verify":     {cfg: ClientConfig{URL: plain.URL, InsecureSkipVerify: true}},
		"client certificate":       {cfg: ClientConfig{URL: mtls.URL, CAFile: caFile, CertFile: certFile, KeyFile: keyFile}},
		"missing client certifica": {cfg: ClientConfig{URL: mtls.URL, CAFile: caFile}, wantErr: "querying prometheus"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, _, _ := newTestClient(t, tc.cfg)
			res, err := c.Query(t.Context(), "up")
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Query(): %v", err)
				}
				if len(res.Values) != 1 {
					t.Errorf("Query() = %+v, want one value", res)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Query() error = %v, want it to contain %q", err, tc.wantErr)
			}
			if v := counter(c.metrics.requestsError); v != 1 {
				t.Errorf("requests_total{outcome=error} = %v, want 1", v)
			}
		})
	}
}

func TestNewClientValidation(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "secret", "x")
	tests := map[string]struct {
		cfg     ClientConfig
		wantErr string
	}{
		"empty url":             {cfg: ClientConfig{}, wantErr: "prometheus url is empty"},
		"relative url":          {cfg: ClientConfig{URL: "prometheus:9090"}, wantErr: "scheme must be http or https"},
		"no scheme":             {cfg: ClientConfig{URL: "/prometheus"}, wantErr: "scheme must be http or https"},
		"ftp":                   {cfg: ClientConfig{URL: "ftp://prometheus"}, wantErr: "scheme must be http or https"},
		"no host":               {cfg: ClientConfig{URL: "http:///api"}, wantErr: "host is missing"},
		"unparsable":            {cfg: ClientConfig{URL: "http://user:pw@[::1"}, wantErr: "parsing prometheus url"},
		"credentials in url":    {cfg: ClientConfig{URL: "http://user:hunter2@prometheus:9090"}, wantErr: "credentials must not be part of the url"},
		"query string":          {cfg: ClientConfig{URL: "http://prometheus:9090/?x=1"}, wantErr: "must not have a query string"},
		"fragment":              {cfg: ClientConfig{URL: "http://prometheus:9090/#x"}, wantErr: "must not have a fragment"},
		"negative timeout":      {cfg: ClientConfig{URL: "http://p", Timeout: -time.Second}, wantErr: "timeout must not be negative"},
		"token and basic auth":  {cfg: ClientConfig{URL: "http://p", BearerTokenFile: file, BasicAuthUsername: "u", BasicAuthPasswordFile: file}, wantErr: "mutually exclusive"},
		"username only":         {cfg: ClientConfig{URL: "http://p", BasicAuthUsername: "u"}, wantErr: "needs both a username and a password file"},
		"password file only":    {cfg: ClientConfig{URL: "http://p", BasicAuthPasswordFile: file}, wantErr: "needs both a username and a password file"},
		"cert without key":      {cfg: ClientConfig{URL: "http://p", CertFile: file}, wantErr: "needs both a cert file and a key file"},
		"missing token file":    {cfg: ClientConfig{URL: "http://p", BearerTokenFile: filepath.Join(dir, "nope")}, wantErr: "checking bearer token file"},
		"token file is dir":     {cfg: ClientConfig{URL: "http://p", BearerTokenFile: dir}, wantErr: "is a directory"},
		"missing ca file":       {cfg: ClientConfig{URL: "http://p", CAFile: filepath.Join(dir, "nope")}, wantErr: "checking ca file"},
		"ca file not pem":       {cfg: ClientConfig{URL: "https://p", CAFile: file}, wantErr: "building prometheus http transport"},
		"bad header name":       {cfg: ClientConfig{URL: "http://p", Headers: map[string]string{"X Bad": "v"}}, wantErr: "invalid header name"},
		"bad header value":      {cfg: ClientConfig{URL: "http://p", Headers: map[string]string{"X-Ok": "a\r\nb"}}, wantErr: "invalid header value"},
		"reserved header":       {cfg: ClientConfig{URL: "http://p", Headers: map[string]string{"authorization": "Bearer x"}}, wantErr: "not allowed"},
		"valid with everything": {cfg: ClientConfig{URL: "https://p/prometheus", BearerTokenFile: file, Headers: map[string]string{"X-Scope-OrgID": "t"}, Timeout: time.Second, CacheTTL: -1}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := NewClient(tc.cfg, nil, prometheus.NewRegistry(), nil)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("NewClient() error = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("NewClient() error = %v, want it to contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), ":pw@") {
				t.Errorf("NewClient() error %q leaks the url password", err)
			}
		})
	}
}

func TestNewClientDefaultsAndRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, err := NewClient(ClientConfig{URL: "http://prometheus:9090"}, nil, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.timeout != DefaultTimeout || c.ttl != DefaultCacheTTL || c.now == nil {
		t.Errorf("defaults: timeout %v, ttl %v, now set %v; want %v, %v, true", c.timeout, c.ttl, c.now != nil, DefaultTimeout, DefaultCacheTTL)
	}
	// A second client on the same registry is a wiring mistake, reported
	// as an error rather than a panic.
	if _, err := NewClient(ClientConfig{URL: "http://prometheus:9090"}, nil, reg, nil); err == nil || !strings.Contains(err.Error(), "registering prometheus client metrics") {
		t.Errorf("second NewClient() on the same registry: error = %v, want a registration error", err)
	}
	// Nil registerer, logger and tracer provider are allowed.
	if _, err := NewClient(ClientConfig{URL: "http://prometheus:9090"}, nil, nil, nil); err != nil {
		t.Errorf("NewClient() with nil dependencies: %v", err)
	}
}

func TestQueryTracing(t *testing.T) {
	prom := newFakeProm(t)
	prom.set("up", http.StatusOK, vectorBody())
	prom.set("bad(", http.StatusBadRequest, `{"status":"error","errorType":"bad_data","error":"parse error"}`)
	srv := prom.start("")
	recorder := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	c, err := NewClient(ClientConfig{URL: srv.URL, Now: newFakeClock().Now}, nil, prometheus.NewRegistry(), tp)
	if err != nil {
		t.Fatal(err)
	}

	// The caller's span is the parent of the request's span.
	ctx, parent := tp.Tracer("test").Start(t.Context(), "reconcile")
	for _, q := range []string{"up", "up", "bad("} {
		_, _ = c.Query(ctx, q)
	}
	parent.End()

	var spans []sdktrace.ReadOnlySpan
	for _, s := range recorder.Ended() {
		if s.Name() == spanName {
			spans = append(spans, s)
		}
	}
	// Three calls, two requests: the cache hit has no span.
	if len(spans) != 2 {
		t.Fatalf("got %d %q spans, want 2", len(spans), spanName)
	}
	tests := map[string]struct {
		span       sdktrace.ReadOnlySpan
		query      string
		wantStatus codes.Code
	}{
		"success": {span: spans[0], query: "up", wantStatus: codes.Unset},
		"error":   {span: spans[1], query: "bad(", wantStatus: codes.Error},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.span.Parent().SpanID(); got != parent.SpanContext().SpanID() {
				t.Errorf("parent span = %v, want the caller's span %v", got, parent.SpanContext().SpanID())
			}
			want := attribute.String("db.query.text", tc.query)
			found := false
			for _, kv := range tc.span.Attributes() {
				found = found || kv == want
			}
			if !found {
				t.Errorf("attributes %v lack %v", tc.span.Attributes(), want)
			}
			if got := tc.span.Status().Code; got != tc.wantStatus {
				t.Errorf("status = %v, want %v", got, tc.wantStatus)
			}
			if tc.wantStatus == codes.Error && len(tc.span.Events()) == 0 {
				t.Error("error span has no recorded exception event")
			}
		})
	}
}

func BenchmarkQueryCached(b *testing.B) {
	prom := &fakeProm{answers: map[string]answer{}}
	prom.set("up", http.StatusOK, vectorBody(`{"metric":{"pod":"a"},"value":[1700000000,"1"]}`))
	srv := httptest.NewServer(prom.handler(""))
	defer srv.Close()
	c, err := NewClient(ClientConfig{URL: srv.URL, CacheTTL: time.Hour}, nil, prometheus.NewRegistry(), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Query(ctx, "up"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Query(ctx, "up"); err != nil {
			b.Fatal(err)
		}
	}
	if n := prom.requests.Load(); n != 1 {
		b.Fatalf("%d requests, want 1", n)
	}
}
