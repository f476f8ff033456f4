package activator

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// These tests cover what a client can do to the activator's own HTTP/1.1
// server: dribble a body, hold connections, half-close, upgrade. Each talks
// raw TCP to a real listener.

// requestsCounted reads nemesis_activator_requests_total for one code.
func requestsCounted(t testing.TB, h *harness, route string, code int) float64 {
	t.Helper()
	v, _ := metricValue(t, h.reg, "nemesis_activator_requests_total", map[string]string{"route": route, "code": fmt.Sprint(code)})
	return v
}

// A client dribbling its request body holds the route's only slot no
// longer than timeouts.request: the body read is cut at the deadline, and
// the next request is served at once after it.
func TestRequestTimeoutBoundsClientBody(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		fmt.Fprintf(w, "%s %d", r.Method, len(b))
	}))
	t.Cleanup(be.Close)
	const timeout = time.Second
	h := startActivator(t, fmt.Sprintf(`routes:
  - name: slow
    endpoints: [%q]
    endpointConcurrency: 1
    queue: {size: 10, timeout: 30s}
    timeouts: {request: %s}
`, hostOf(be), timeout), Options{})

	for name, size := range map[string]int{"streamed": 100_000, "buffered": 1000} {
		t.Run(name, func(t *testing.T) {
			dribbler := dialH1(t, h)
			_ = dribbler.nc.SetDeadline(time.Now().Add(10 * time.Second))
			start := time.Now()
			dribbler.send(fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n", size))
			stop := make(chan struct{})
			dribbled := make(chan struct{})
			go func() {
				defer close(dribbled)
				tick := time.NewTicker(150 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := dribbler.nc.Write([]byte("x")); err != nil {
							return
						}
					}
				}
			}()
			defer func() { close(stop); <-dribbled }()
			time.Sleep(100 * time.Millisecond) // the dribbler has the slot

			next := dialH1(t, h)
			next.send("GET /next HTTP/1.1\r\nHost: a.test\r\n\r\n")
			resp, body := next.read(http.MethodGet)
			took := time.Since(start)
			if resp.StatusCode != 200 || body != "GET 0" {
				t.Errorf("the next request: %d %q", resp.StatusCode, body)
			}
			if took > timeout+time.Second {
				t.Errorf("the next request was answered %v after the dribbler began; timeouts.request is %v", took.Round(time.Millisecond), timeout)
			}
			resp, body = dribbler.read(http.MethodPost)
			if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(body, "request timeout") {
				t.Errorf("the dribbler got %d %q, want 408 naming the request timeout", resp.StatusCode, body)
			}
			// Closed: an EOF, or a reset where a dribbled byte arrived
			// after the activator stopped reading.
			_ = dribbler.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
			if n, err := dribbler.br.Read(make([]byte, 1)); n != 0 || (err != io.EOF && !errors.Is(err, syscall.ECONNRESET)) {
				t.Errorf("after the 408: read %d bytes, %v; want the connection closed", n, err)
			}
		})
	}
	if n := requestsCounted(t, h, "slow", http.StatusRequestTimeout); n != 2 {
		t.Errorf("requests_total{code=\"408\"} = %v, want 2", n)
	}
}

// A connection's header interner keeps a bounded number of bytes, however
// large and varied the header values it sees.
func TestInternerBytesBounded(t *testing.T) {
	var in interner
	big := strings.Repeat("v", 60<<10)
	for i := range 1000 {
		key := in.key([]byte(fmt.Sprintf("X-Header-%d-%s", i, big[:i%200])), true)
		in.value(key, []byte(fmt.Sprintf("%d%s", i, big[:(i*997)%len(big)])), true)
		in.value("Authorization", []byte(fmt.Sprintf("Bearer %d%s", i, big)), true)
	}
	kept := 0
	for k, v := range in.keys {
		kept += len(k) + len(v)
	}
	for k, v := range in.values {
		kept += len(k) + len(v)
	}
	if kept > maxInternedBytes {
		t.Errorf("the interner keeps %d bytes of strings, want at most %d", kept, maxInternedBytes)
	}
	// Small repeated values are still interned: the same string comes back.
	var small interner
	a := small.value("Content-Type", []byte("application/json"), true)
	b := small.value("Content-Type", []byte("application/json"), true)
	if unsafe.StringData(a) != unsafe.StringData(b) {
		t.Error("a small repeated value is not interned")
	}
}

// With MaxConnections open, the next connection is closed at once and
// counted; once one closes, connections are accepted again.
func TestMaxConnections(t *testing.T) {
	be := backend(t, "b")
	h := startActivator(t, staticRoute("r", hostOf(be)), Options{MaxConnections: 2})
	refused := func() float64 {
		v, _ := metricValue(t, h.reg, "nemesis_activator_connections_refused_total", nil)
		return v
	}
	served := func(c *h1Client) {
		t.Helper()
		c.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
		if resp, body := c.read(http.MethodGet); resp.StatusCode != 200 || body != "b" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	}
	first, second := dialH1(t, h), dialH1(t, h)
	served(first)
	served(second)

	third := dialH1(t, h)
	_ = third.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	var b [1]byte
	if n, err := third.nc.Read(b[:]); n != 0 || err == nil {
		t.Fatalf("the third connection: read %q, %v; want it closed", b[:n], err)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the third connection was left open")
	}
	eventually(t, "the refusal counted", func() bool { return refused() == 1 })
	served(second) // the others go on

	first.nc.Close()
	eventually(t, "the server to forget the closed connection", func() bool {
		h.srv.mu.Lock()
		defer h.srv.mu.Unlock()
		return len(h.srv.conns) < 2
	})
	served(dialH1(t, h))
	if n := refused(); n != 1 {
		t.Errorf("connections_refused_total = %v, want 1", n)
	}
}

// A client that half-closes after its request is taken for gone, as nginx
// (499) and net/http's server take a FIN: nothing on the wire tells it from
// a client that closed for good, whose upstream work must stop. What it is
// told and what the metrics say agree: no answer is made up for it (it got
// "200" with an empty body before), the request counts once, as 499, and
// the backend's request is cancelled.
func TestHalfClosedClientCountedAsGone(t *testing.T) {
	cancelled := make(chan struct{}, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-time.After(5 * time.Second):
			fmt.Fprint(w, "too late")
		}
	}))
	t.Cleanup(be.Close)
	h := startActivator(t, staticRoute("half", hostOf(be)), Options{})
	c := dialH1(t, h)
	c.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
	if err := c.nc.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cancelled:
	case <-time.After(3 * time.Second):
		t.Fatal("the backend's request was not cancelled after the client's FIN")
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	got, err := io.ReadAll(c.br)
	if len(got) != 0 || err != nil {
		t.Errorf("after a half-close: read %q, %v; want nothing, then EOF", got, err)
	}
	eventually(t, "the request counted as 499", func() bool { return requestsCounted(t, h, "half", statusClientGone) == 1 })
	if n := requestsCounted(t, h, "half", 200); n != 0 {
		t.Errorf("requests_total{code=\"200\"} = %v for a client that got no answer", n)
	}
}

// Upgraded streams arrive whole, whenever their first bytes come: before,
// at or after the moment the client's connection begins to be watched,
// and before or after the 101.
func TestUpgradeStreamIntactAroundWatch(t *testing.T) {
	var delay atomic.Int64
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Duration(delay.Load()))
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer nc.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		_, _ = io.Copy(nc, brw)
	}))
	t.Cleanup(be.Close)
	h := startActivator(t, staticRoute("ws", hostOf(be)), Options{})
	addr := strings.TrimPrefix(h.url, "http://")
	const rounds = 200
	for i := range rounds {
		// The backend answers 6 to 14 ms after the request, the client
		// sends its first bytes 0 to 19 ms after it: around watchAfter.
		delay.Store(int64(6*time.Millisecond + time.Duration(i%9)*time.Millisecond))
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		msg := fmt.Sprintf("hello %d", i)
		if _, err := io.WriteString(nc, "GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i%20) * time.Millisecond)
		if _, err := io.WriteString(nc, msg); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(nc)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			nc.Close()
			t.Fatalf("round %d: %v %v", i, resp, err)
		}
		got := make([]byte, len(msg))
		_, err = io.ReadFull(br, got)
		nc.Close()
		if err != nil || string(got) != msg {
			t.Fatalf("round %d (backend after %v, client bytes after %v): echo %q, %v; want %q",
				i, time.Duration(delay.Load()), time.Duration(i%20)*time.Millisecond, got, err, msg)
		}
	}
}

// Once a connection is being taken over (Hijack, hold and parking stop the
// watch first), a watch timer that fires late, in between, starts no watch
// that would read the connection's next byte.
func TestLateWatchTimerStartsNoWatch(t *testing.T) {
	s := New(Options{}).Server()
	defer s.Close()
	client, server := net.Pipe()
	defer client.Close()
	c, err := s.newConn(server)
	if err != nil {
		t.Fatal(err)
	}
	defer c.nc.Close()
	c.state.Store(connActive)
	c.bodyDone.Store(true)
	c.armWatch()
	c.stopWatch() // what Hijack, hold and tryPark do first
	c.startWatch()
	c.watchMu.Lock()
	watching := c.watching
	c.watchMu.Unlock()
	if watching {
		c.stopWatch()
		t.Fatal("a watch timer firing after stopWatch started a watch")
	}
	// armWatch lets the next request be watched again.
	c.armWatch()
	c.startWatch()
	c.watchMu.Lock()
	watching = c.watching
	c.watchMu.Unlock()
	c.stopWatch()
	if !watching {
		t.Fatal("no watch after armWatch")
	}
}
