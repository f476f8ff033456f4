package activator

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"golang.org/x/net/websocket"
)

func staticRoute(name string, eps ...string) string {
	return fmt.Sprintf("routes:\n  - name: %s\n    endpoints: [%s]\n", name, quoteList(eps))
}

func quoteList(eps []string) string {
	q := make([]string, len(eps))
	for i, e := range eps {
		q[i] = fmt.Sprintf("%q", e)
	}
	return strings.Join(q, ", ")
}

func TestProxyBasics(t *testing.T) {
	var got http.Header
	var gotHost, gotURI, gotBody string
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		gotHost, gotURI = r.Host, r.RequestURI
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "secret")
		w.WriteHeader(http.StatusTeapot)
		fmt.Fprint(w, "short and stout")
	}))
	defer be.Close()
	h := startActivator(t, staticRoute("basic", hostOf(be)), Options{})

	req, _ := http.NewRequest(http.MethodPost, h.url+"/a/b?c=d%20e", strings.NewReader("payload"))
	req.Host = "svc.example.com"
	req.Header.Set("X-Forwarded-For", "10.0.0.1")
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	req.Header.Set("Connection", "X-Drop")
	req.Header.Set("X-Drop", "1")
	req.Header.Set("Proxy-Authorization", "secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || string(body) != "short and stout" {
		t.Errorf("response %d %q", resp.StatusCode, body)
	}
	if c := resp.Header.Values("Set-Cookie"); len(c) != 2 {
		t.Errorf("Set-Cookie %q", c)
	}
	if resp.Header.Get("X-Hop") != "" {
		t.Errorf("hop-by-hop response header passed on")
	}
	if gotHost != "svc.example.com" || gotURI != "/a/b?c=d%20e" || gotBody != "payload" {
		t.Errorf("backend saw host %q uri %q body %q", gotHost, gotURI, gotBody)
	}
	for k, want := range map[string]string{
		"X-Forwarded-For":     "10.0.0.1, 127.0.0.1",
		"X-Forwarded-Host":    "svc.example.com",
		"X-Forwarded-Proto":   "http",
		"Traceparent":         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"X-Drop":              "",
		"Proxy-Authorization": "",
	} {
		if v := got.Get(k); v != want {
			t.Errorf("backend saw %s %q, want %q", k, v, want)
		}
	}
	if v, _ := metricValue(t, h.reg, "nemesis_activator_requests_total", map[string]string{"route": "basic", "code": "418", "namespace": "", "service": ""}); v != 1 {
		t.Errorf("requests_total{code=418} = %v", v)
	}

	// No route: 404 with a reason.
	h2 := startActivator(t, "routes:\n  - name: only\n    match: {hosts: [only.test]}\n    endpoints: [\""+hostOf(be)+"\"]\n", Options{})
	code, text, hdr := get(t, nil, h2.url+"/x", nil)
	if code != 404 || !strings.HasPrefix(text, "no route for host") || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Errorf("no route: %d %q", code, text)
	}
}

func TestTracing(t *testing.T) {
	var traceparent atomic.Value
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		traceparent.Store(r.Header.Get("Traceparent"))
	}))
	defer be.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	h := startActivator(t, staticRoute("traced", hostOf(be)), Options{TracerProvider: tp, Propagator: propagation.TraceContext{}})
	const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if code, _, _ := get(t, nil, h.url+"/", map[string]string{"Traceparent": incoming}); code != 200 {
		t.Fatalf("status %d", code)
	}
	tpv, _ := traceparent.Load().(string)
	if !strings.HasPrefix(tpv, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || tpv == incoming {
		t.Errorf("backend saw traceparent %q: want the same trace, a new parent span", tpv)
	}
	eventually(t, "two spans", func() bool { return len(rec.Ended()) >= 2 })
	kinds := map[string]bool{}
	for _, s := range rec.Ended() {
		kinds[s.SpanKind().String()] = true
		if s.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("span %q in trace %s", s.Name(), s.SpanContext().TraceID())
		}
	}
	if !kinds["server"] || !kinds["client"] {
		t.Errorf("span kinds %v, want server and client", kinds)
	}
}

// distribution sends n sequential requests and counts answers per backend.
func distribution(t *testing.T, url string, n int) map[string]int {
	counts := map[string]int{}
	for range n {
		code, body, _ := get(t, nil, url, nil)
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		counts[body]++
	}
	return counts
}

func TestPolicies(t *testing.T) {
	b1, b2, b3 := backend(t, "b1"), backend(t, "b2"), backend(t, "b3")
	eps := quoteList([]string{hostOf(b1), hostOf(b2), hostOf(b3)})

	t.Run("round-robin", func(t *testing.T) {
		h := startActivator(t, "routes:\n  - name: rr\n    policy: round-robin\n    endpoints: ["+eps+"]\n", Options{})
		c := distribution(t, h.url, 300)
		if c["b1"] != 100 || c["b2"] != 100 || c["b3"] != 100 {
			t.Errorf("round-robin: %v", c)
		}
	})
	t.Run("random", func(t *testing.T) {
		h := startActivator(t, "routes:\n  - name: rnd\n    policy: random\n    endpoints: ["+eps+"]\n", Options{})
		c := distribution(t, h.url, 600)
		for _, b := range []string{"b1", "b2", "b3"} {
			if c[b] < 130 || c[b] > 270 { // 200 expected; > 6 sigma off is a bug
				t.Errorf("random: %v", c)
			}
		}
	})
	t.Run("least-request", func(t *testing.T) {
		// b-slow holds its requests; new ones must go to the idle endpoints.
		release := make(chan struct{})
		var held atomic.Int32
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			held.Add(1)
			<-release
			fmt.Fprint(w, "slow")
		}))
		defer slow.Close()
		h := startActivator(t, "routes:\n  - name: lr\n    endpoints: ["+quoteList([]string{hostOf(slow), hostOf(b1)})+"]\n", Options{})
		// Load the slow endpoint with 4 requests (least-request sends the
		// first to either; the rest follow the counts).
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Get(h.url)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		eventually(t, "requests on the slow endpoint", func() bool { return held.Load() >= 1 })
		time.Sleep(50 * time.Millisecond)
		c := distribution(t, h.url, 100)
		if c["b1"] != 100 {
			t.Errorf("least-request sent to a busy endpoint: %v (held %d)", c, held.Load())
		}
		if n := held.Load(); n > 4 {
			t.Errorf("%d of 8 concurrent requests went to the slow endpoint", n)
		}
		close(release)
		wg.Wait()
	})
	t.Run("metric", func(t *testing.T) {
		q := &fakeQuerier{}
		q.set(map[string]float64{hostOf(b1): 5, hostOf(b2): 1, hostOf(b3): 3})
		h := startActivator(t, "routes:\n  - name: m\n    policy: metric\n    metric: {query: 'vllm_waiting', refresh: 100ms}\n    endpoints: ["+eps+"]\n", Options{Metrics: q})
		eventually(t, "a refresh", func() bool { return q.calls.Load() > 0 })
		time.Sleep(20 * time.Millisecond)
		// value + inflight + sent: between two refreshes the lowest
		// value gets the most, and the others their share as the
		// requests sent since raise its score (no herding).
		ordered := func(c map[string]int, lo, mid, hi string) bool {
			return c[lo] >= c[mid] && c[mid] >= c[hi] && c[lo] > c[hi] && c[lo] < 30
		}
		if c := distribution(t, h.url, 30); !ordered(c, "b2", "b3", "b1") {
			t.Errorf("metric: %v, want most on b2 (lowest value), then b3, then b1, and not all on b2", c)
		}
		q.set(map[string]float64{hostOf(b1): 0, hostOf(b2): 1, hostOf(b3): 3})
		n := q.calls.Load()
		eventually(t, "another refresh", func() bool { return q.calls.Load() > n+1 })
		if c := distribution(t, h.url, 30); !ordered(c, "b1", "b2", "b3") {
			t.Errorf("metric after change: %v, want most on b1, then b2, then b3", c)
		}
		// Equal values: in-flight breaks the tie, and exact ties spread.
		q.set(map[string]float64{hostOf(b1): 0, hostOf(b2): 0, hostOf(b3): 0})
		n = q.calls.Load()
		eventually(t, "another refresh", func() bool { return q.calls.Load() > n+1 })
		if c := distribution(t, h.url, 300); c["b1"] < 50 || c["b2"] < 50 || c["b3"] < 50 {
			t.Errorf("metric ties: %v, want a spread", c)
		}
		// Stale data (the query fails): least-request takes over.
		q.fail.Store(true)
		time.Sleep(400 * time.Millisecond)
		if c := distribution(t, h.url, 300); c["b1"] < 50 || c["b2"] < 50 || c["b3"] < 50 {
			t.Errorf("stale metric: %v, want least-request's spread", c)
		}
		if v, _ := metricValue(t, h.reg, "nemesis_activator_metric_refreshes_total", map[string]string{"route": "m", "result": "failure"}); v < 1 {
			t.Errorf("refresh failures not counted")
		}
	})
}

func TestStreamingFlush(t *testing.T) {
	next := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: token %d\n\n", i)
			w.(http.Flusher).Flush()
			<-next // the client must see this event before the next is written
		}
	}))
	defer be.Close()
	h := startActivator(t, staticRoute("sse", hostOf(be)), Options{})
	resp, err := http.Get(h.url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: token %d\n", i) {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		br.ReadString('\n')
		next <- struct{}{}
	}
}

func TestStreamedRequestBody(t *testing.T) {
	got := make(chan string, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- fmt.Sprintf("%d %v %s", r.ContentLength, r.TransferEncoding, b)
	}))
	defer be.Close()
	h := startActivator(t, staticRoute("up", hostOf(be)), Options{})
	pr, pw := io.Pipe()
	go func() {
		for i := range 3 {
			fmt.Fprintf(pw, "part%d;", i)
			time.Sleep(5 * time.Millisecond)
		}
		pw.Close()
	}()
	resp, err := http.Post(h.url, "text/plain", pr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if g := <-got; g != "-1 [chunked] part0;part1;part2;" {
		t.Errorf("backend got %q", g)
	}
	// A large body with a length streams through too.
	big := strings.Repeat("x", 3*MaxRetryBodyBytes)
	resp, err = http.Post(h.url, "text/plain", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if g := <-got; g != fmt.Sprintf("%d [] %s", len(big), big) {
		t.Errorf("backend got %d bytes", len(g))
	}
}

func TestWebSocketEcho(t *testing.T) {
	be := httptest.NewServer(websocket.Handler(func(ws *websocket.Conn) {
		for {
			var msg string
			if err := websocket.Message.Receive(ws, &msg); err != nil {
				return
			}
			if err := websocket.Message.Send(ws, msg); err != nil {
				return
			}
		}
	}))
	defer be.Close()
	h := startActivator(t, staticRoute("ws", hostOf(be)), Options{})
	ws, err := websocket.Dial("ws"+strings.TrimPrefix(h.url, "http")+"/echo", "", "http://localhost/")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for _, msg := range []string{"hello", "world", strings.Repeat("z", 100000)} {
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatal(err)
		}
		var reply string
		if err := websocket.Message.Receive(ws, &reply); err != nil || reply != msg {
			t.Fatalf("echo of %d bytes: %d bytes, %v", len(msg), len(reply), err)
		}
	}
}

func TestRetries(t *testing.T) {
	// A port nobody listens on: connections are refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()
	good := backend(t, "good")

	t.Run("another endpoint", func(t *testing.T) {
		h := startActivator(t, "routes:\n  - name: r\n    policy: round-robin\n    endpoints: ["+quoteList([]string{refused, hostOf(good)})+"]\n", Options{})
		for range 10 {
			if code, body, _ := get(t, nil, h.url, nil); code != 200 || body != "good" {
				t.Fatalf("%d %q", code, body)
			}
		}
		if v, _ := metricValue(t, h.reg, "nemesis_activator_upstream_retries_total", map[string]string{"route": "r"}); v < 5 {
			t.Errorf("retries_total = %v", v)
		}
	})
	t.Run("same endpoint starting up", func(t *testing.T) {
		// The only endpoint starts listening 60 ms after the request.
		h := startActivator(t, staticRoute("fresh", refused), Options{})
		go func() {
			time.Sleep(60 * time.Millisecond)
			l, err := net.Listen("tcp", refused)
			if err != nil {
				t.Error(err)
				return
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "up") })}
			go srv.Serve(l)
			t.Cleanup(func() { srv.Close() })
		}()
		req, _ := http.NewRequest(http.MethodPost, h.url, strings.NewReader("small body"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "up" {
			t.Errorf("%d %q", resp.StatusCode, b)
		}
	})
	t.Run("stale idle connection", func(t *testing.T) {
		// The backend closes each connection after answering, without
		// saying so: the activator's pooled connection is dead on reuse.
		var n atomic.Int32
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					br := bufio.NewReader(c)
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					n.Add(1)
					fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}()
			}
		}()
		h := startActivator(t, staticRoute("stale", l.Addr().String()), Options{})
		for i := range 5 {
			req, _ := http.NewRequest(http.MethodPut, h.url, strings.NewReader("body"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "ok" {
				t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("all refused", func(t *testing.T) {
		h := startActivator(t, staticRoute("down", refused), Options{})
		code, body, _ := get(t, nil, h.url, nil)
		if code != 502 || !strings.Contains(body, "connect") {
			t.Errorf("%d %q", code, body)
		}
	})
}

func TestLimits(t *testing.T) {
	be := backend(t, "b")
	h := startActivator(t, staticRoute("limits", hostOf(be)), Options{MaxHeaderBytes: 1024})
	code, _, _ := get(t, nil, h.url, map[string]string{"X-Big": strings.Repeat("a", 8192)})
	if code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized header: %d, want 431", code)
	}
	if code, body, _ := get(t, nil, h.url, map[string]string{"X-Small": "a"}); code != 200 || body != "b" {
		t.Errorf("normal request: %d %q", code, body)
	}
}

func TestH2C(t *testing.T) {
	var proto atomic.Value
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %s", b)
	}))
	defer be.Close()
	h := startActivator(t, staticRoute("h2c", hostOf(be)), Options{})
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protocols, TLSClientConfig: &tls.Config{}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	resp, err := c.Post(h.url+"/x", "text/plain", strings.NewReader("over h2c"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(b) != "got over h2c" || proto.Load() != "HTTP/1.1" {
		t.Errorf("%s %d %q (backend saw %v)", resp.Proto, resp.StatusCode, b, proto.Load())
	}
}

func TestGracefulDrain(t *testing.T) {
	entered := make(chan struct{}, 4)
	release := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		fmt.Fprint(w, "finished")
	}))
	defer be.Close()
	h := startActivator(t, staticRoute("drain", hostOf(be)), Options{})
	results := make(chan string, 2)
	for range 2 {
		go func() {
			code, body, _ := get(t, nil, h.url, nil)
			results <- fmt.Sprintf("%d %s", code, body)
		}()
	}
	<-entered
	<-entered
	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdown <- h.a.Shutdown(ctx, h.srv)
	}()
	// New connections are refused once draining has begun.
	eventually(t, "listener closed", func() bool {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(h.url, "http://"), 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-shutdown:
		t.Fatalf("shutdown returned (%v) with requests in flight", err)
	default:
	}
	close(release)
	for range 2 {
		if r := <-results; r != "200 finished" {
			t.Errorf("in-flight request: %s", r)
		}
	}
	if err := <-shutdown; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// fakeQuerier answers the metric policy's query with one series per
// instance.
type fakeQuerier struct {
	mu     sync.Mutex
	values map[string]float64
	calls  atomic.Int64
	fail   atomic.Bool
}

func (q *fakeQuerier) set(v map[string]float64) {
	q.mu.Lock()
	q.values = v
	q.mu.Unlock()
}

// Bodies of every size around the buffered-body limit reach the backend
// whole (a 32–64 KiB body once overran the pooled buffer).
func TestProxyBodySizes(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d %x", len(b), sha256.Sum256(b))
	}))
	defer be.Close()
	h := startActivator(t, staticRoute("sizes", hostOf(be)), Options{})
	for _, n := range []int{1, 32 << 10, 32<<10 + 1, 40000, MaxRetryBodyBytes - 1, MaxRetryBodyBytes, MaxRetryBodyBytes + 1, 200000} {
		body := bytes.Repeat([]byte{byte(n)}, n)
		req, _ := http.NewRequest(http.MethodPost, h.url+"/", bytes.NewReader(body))
		req.Host = "svc.example.com"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := fmt.Sprintf("%d %x", n, sha256.Sum256(body))
		if resp.StatusCode != http.StatusOK || string(got) != want {
			t.Errorf("%d bytes: %d %q, want %q", n, resp.StatusCode, got, want)
		}
	}
}

// A reused upstream connection that closes after the whole request went out
// and before any answer is retried for idempotent requests only: a POST
// (an LLM generation) is not run twice.
func TestProxyRetryOnlyIdempotent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	seen := map[string]int{} // method + path → requests received
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for n := 1; ; n++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					mu.Lock()
					seen[req.Method+" "+req.URL.Path]++
					mu.Unlock()
					if n == 2 { // the second request on a connection: close unanswered
						return
					}
					fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	h := startActivator(t, staticRoute("retry", ln.Addr().String()), Options{})
	do := func(method, path string, header map[string]string) int {
		req, _ := http.NewRequest(method, h.url+path, strings.NewReader("prompt"))
		req.Host = "svc.example.com"
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		method, path string
		header       map[string]string
		wantCode     int
		wantSeen     int
	}{
		{http.MethodPut, "/put", nil, http.StatusOK, 2},
		{http.MethodPost, "/post", nil, http.StatusBadGateway, 1},
		{http.MethodPost, "/keyed", map[string]string{"Idempotency-Key": "k1"}, http.StatusOK, 2},
	} {
		// Each case starts with a warm-up on a fresh connection, so that
		// its request goes out on a reused one, which then closes.
		if code := do(http.MethodGet, "/warm", nil); code != http.StatusOK {
			t.Fatalf("warm-up: %d", code)
		}
		if code := do(tc.method, tc.path, tc.header); code != tc.wantCode {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, code, tc.wantCode)
		}
		mu.Lock()
		got := seen[tc.method+" "+tc.path]
		mu.Unlock()
		if got != tc.wantSeen {
			t.Errorf("%s %s reached the backend %d times, want %d", tc.method, tc.path, got, tc.wantSeen)
		}
	}
}
