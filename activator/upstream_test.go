package activator

import (
	"bufio"
	"context"
	"errors"
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
)

// rawBackend is an HTTP/1.1 upstream written by hand, for behaviours
// net/http does not have. serve runs for each accepted connection; the
// connection is closed when it returns. Its cleanup closes the listener
// and the connections still open, and waits for every serve to return.
func rawBackend(t testing.TB, serve func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// waitFor receives from ch, failing the test after 5 s.
func waitFor[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// A backend that has closed an idle keep-alive connection (its FIN, or a
// last answer, arrived before the next request) is never sent a request on
// it: a POST, which the activator must not send twice, gets its answer
// instead of a 502. Each case waits until the backend has closed the
// connection before sending the next request, so that the test is about
// connections closed while idle, not about the race of a close crossing a
// request in flight.
func TestProxyNoRequestOnConnectionClosedByBackend(t *testing.T) {
	// okThen answers one request, then does what the backend does on the
	// idle connection, then reports it done.
	okThen := func(seen *atomic.Int64, closed chan<- struct{}, after func(c net.Conn)) func(net.Conn, *bufio.Reader) {
		return func(c net.Conn, br *bufio.Reader) {
			defer func() { closed <- struct{}{} }()
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			seen.Add(1)
			// No "Connection: close": the activator keeps the connection.
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			after(c)
			c.Close()
		}
	}
	for name, start := range map[string]func(t *testing.T, seen *atomic.Int64, closed chan struct{}) string{
		// net/http with a 1 s IdleTimeout, like uvicorn's 5 s keep-alive
		// timeout in vLLM.
		"net/http idle timeout": func(t *testing.T, seen *atomic.Int64, closed chan struct{}) string {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				seen.Add(1)
				fmt.Fprint(w, "ok")
			}))
			srv.Config.IdleTimeout = time.Second
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateClosed {
					closed <- struct{}{}
				}
			}
			srv.Start()
			t.Cleanup(srv.Close)
			return hostOf(srv)
		},
		"close right after the response": func(t *testing.T, seen *atomic.Int64, closed chan struct{}) string {
			return rawBackend(t, okThen(seen, closed, func(net.Conn) {}))
		},
		"408 then close": func(t *testing.T, seen *atomic.Int64, closed chan struct{}) string {
			return rawBackend(t, okThen(seen, closed, func(c net.Conn) {
				fmt.Fprint(c, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
			}))
		},
		"reset after the response": func(t *testing.T, seen *atomic.Int64, closed chan struct{}) string {
			return rawBackend(t, okThen(seen, closed, func(c net.Conn) {
				_ = c.(*net.TCPConn).SetLinger(0) // close sends RST
			}))
		},
	} {
		t.Run(name, func(t *testing.T) {
			var seen atomic.Int64
			closed := make(chan struct{}, 16)
			addr := start(t, &seen, closed)
			h := startActivator(t, staticRoute("idle", addr), Options{})
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			const posts = 3
			for i := range posts {
				resp, err := client.Post(h.url+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"hi"}`))
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || string(b) != "ok" {
					t.Fatalf("POST %d: %d %q", i+1, resp.StatusCode, b)
				}
				waitFor(t, "the backend to close the connection", closed)
			}
			if n := seen.Load(); n != posts {
				t.Errorf("the backend ran %d POSTs, want %d", n, posts)
			}
		})
	}
}

// A response-header timeout is not a closed connection: the request
// reached the backend, so it is not sent again, even on a reused
// connection, and the client gets its 504 when the timeout passes.
func TestProxyHeaderTimeoutRunsRequestOnce(t *testing.T) {
	var slow atomic.Int64
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			slow.Add(1)
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done(): // the activator gave up
			}
		}
		fmt.Fprint(w, "ok")
	}))
	defer be.Close()
	h := startActivator(t, fmt.Sprintf("routes:\n  - name: slow\n    endpoints: [%q]\n    timeouts: {responseHeader: 1s}\n", hostOf(be)), Options{})
	// A first request leaves an idle connection, which the next reuses.
	if code, body, _ := get(t, nil, h.url+"/fast", nil); code != http.StatusOK || body != "ok" {
		t.Fatalf("warm-up: %d %q", code, body)
	}
	start := time.Now()
	code, _, _ := get(t, nil, h.url+"/slow", nil)
	took := time.Since(start)
	if code != http.StatusGatewayTimeout {
		t.Errorf("status %d, want 504", code)
	}
	if took > 1800*time.Millisecond {
		t.Errorf("504 after %v, want about 1s", took.Round(time.Millisecond))
	}
	if n := slow.Load(); n != 1 {
		t.Errorf("the backend ran the request %d times, want 1", n)
	}
}

// A connection handed over to a waiting request that gives up at that very
// moment goes back to the pool: with one connection allowed, the endpoint
// still serves afterwards. The pool's handedOff hook runs when the waiter
// has been given the connection but has not yet taken it; there the waiter
// gives up and returns.
func TestPoolHandOffToWaiterThatLeft(t *testing.T) {
	addr := rawBackend(t, func(c net.Conn, br *bufio.Reader) { _, _ = io.Copy(io.Discard, br) })
	a := New(Options{MaxConnsPerEndpoint: 1, Logger: testLogger(t)})
	p := a.newPool(addr)
	defer p.close()

	c, err := p.get(context.Background(), false, false)
	if err != nil {
		t.Fatal(err)
	}
	// A second request waits for the only connection.
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		c   *upConn
		err error
	}
	waited := make(chan result, 1)
	go func() {
		c, err := p.get(wctx, false, false)
		waited <- result{c, err}
	}()
	eventually(t, "the request to wait", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.waiters) == 1
	})
	var w result
	p.handedOff = func() {
		cancel()
		w = waitFor(t, "the waiter to give up", waited)
	}
	p.put(c)
	p.handedOff = nil
	switch {
	case w.err == nil:
		// It took the connection after all: that is fine too.
		p.put(w.c)
	case !errors.Is(w.err, context.Canceled):
		t.Fatalf("waiter: %v", w.err)
	}

	ctx, stop := context.WithTimeout(context.Background(), 2*time.Second)
	defer stop()
	c, err = p.get(ctx, false, false)
	if err != nil {
		t.Fatalf("the endpoint no longer serves: %v", err)
	}
	p.put(c)
}

// The check before reusing a connection tells a live connection from one
// the backend closed or wrote to, and allocates nothing.
func TestUpstreamIdleCheck(t *testing.T) {
	for name, tc := range map[string]struct {
		backend func(c net.Conn) // what the backend does to the idle connection
		want    bool
	}{
		"open":   {func(net.Conn) {}, true},
		"closed": {func(c net.Conn) { c.Close() }, false},
		"reset":  {func(c net.Conn) { _ = c.(*net.TCPConn).SetLinger(0); c.Close() }, false},
		"wrote":  {func(c net.Conn) { fmt.Fprint(c, "HTTP/1.1 408 Request Timeout\r\n\r\n") }, false},
	} {
		t.Run(name, func(t *testing.T) {
			conns := make(chan net.Conn, 1)
			addr := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
				conns <- c
				_, _ = io.Copy(io.Discard, br)
			})
			p := New(Options{Logger: testLogger(t)}).newPool(addr)
			defer p.close()
			c, err := p.get(context.Background(), false, false)
			if err != nil {
				t.Fatal(err)
			}
			defer p.discard(c)
			if c.idleCheck == nil {
				t.Skip("no idle check on this platform")
			}
			tc.backend(waitFor(t, "the backend to accept", conns))
			if tc.want {
				if !c.usable() {
					t.Fatal("an open connection is not usable")
				}
				if n := testing.AllocsPerRun(100, func() { c.usable() }); n != 0 {
					t.Errorf("%v allocations per check, want 0", n)
				}
				return
			}
			eventually(t, "the check to see what the backend did", func() bool { return !c.usable() })
		})
	}
}

// BenchmarkUpstreamIdleCheck measures the check made before each reuse of
// an upstream connection: one recv(MSG_PEEK|MSG_DONTWAIT) on an open
// loopback connection.
func BenchmarkUpstreamIdleCheck(b *testing.B) {
	addr := rawBackend(b, func(c net.Conn, br *bufio.Reader) { _, _ = io.Copy(io.Discard, br) })
	p := New(Options{}).newPool(addr)
	defer p.close()
	c, err := p.get(context.Background(), false, false)
	if err != nil {
		b.Fatal(err)
	}
	defer p.discard(c)
	b.ReportAllocs()
	for b.Loop() {
		if !c.usable() {
			b.Fatal("not usable")
		}
	}
}

// A backend's keep-alive timeout that passes just as a request goes out on
// a reused connection closes it under the request: nothing is answered,
// and a POST cannot be sent again (nginx and Go's Transport fail it too).
// After the pool has seen the backend close a connection idle for d, it
// replaces, rather than reuses, connections idle for more than 3/4 of d,
// so the next request idle that long does not meet the same fate, while
// connections idle for less are still reused.
//
// The backend stands for one whose keep-alive timer fires as the request
// arrives: a request on a connection idle for 1.2 s or more is read and
// dropped, the connection closed, as if the timer had won.
func TestPoolLearnsBackendKeepAlive(t *testing.T) {
	const keepAlive = 1200 * time.Millisecond
	var dials atomic.Int64
	addr := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
		dials.Add(1)
		last := time.Now()
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			if time.Since(last) >= keepAlive {
				return // the timer won: closed with no answer
			}
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			last = time.Now()
		}
	})
	h := startActivator(t, staticRoute("ka", addr), Options{})
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	post := func() int {
		resp, err := client.Post(h.url+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"hi"}`))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(); code != http.StatusOK {
		t.Fatalf("first POST: %d", code)
	}
	// The race, once: the connection is still open when the request goes
	// out after 1.4 s idle, and the backend closes it under the request.
	time.Sleep(1400 * time.Millisecond)
	if code := post(); code != http.StatusBadGateway {
		t.Fatalf("POST into the closing connection: %d, want 502 (the race this test is about did not happen)", code)
	}
	if code := post(); code != http.StatusOK {
		t.Fatalf("POST after the race: %d", code)
	}
	// Idle 1.25 s: past 3/4 of the 1.4 s learned, and past the backend's
	// timeout. Reused, it would meet the same fate.
	time.Sleep(1250 * time.Millisecond)
	before := dials.Load()
	if code := post(); code != http.StatusOK {
		t.Errorf("POST after 1.25 s idle: %d, want 200 on a new connection", code)
	}
	if d := dials.Load() - before; d != 1 {
		t.Errorf("POST after 1.25 s idle: %d new connections, want 1", d)
	}
	// Idle less than the limit: the connection is reused.
	time.Sleep(300 * time.Millisecond)
	before = dials.Load()
	if code := post(); code != http.StatusOK {
		t.Errorf("POST after 300 ms idle: %d", code)
	}
	if d := dials.Load() - before; d != 0 {
		t.Errorf("POST after 300 ms idle: %d new connections, want the idle one reused", d)
	}
}
