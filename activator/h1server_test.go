package activator

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// These tests talk raw HTTP/1.x to the activator's own connection loop
// (h1server.go): exact request bytes over TCP, responses parsed with
// http.ReadResponse.

// h1Client is a raw client connection.
type h1Client struct {
	t    *testing.T
	nc   net.Conn
	br   *bufio.Reader
	head string // of the last response read, as sent
}

// dialH1 connects to the harness; every read and write of the connection
// must finish within 5 s.
func dialH1(t *testing.T, h *harness) *h1Client {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	return &h1Client{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *h1Client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("writing the request: %v", err)
	}
}

// read reads one response to a request of the given method, and its body.
// The head as sent is kept in c.head (http.ReadResponse drops a
// "Connection: close").
func (c *h1Client) read(method string) (*http.Response, string) {
	c.t.Helper()
	c.head = ""
	for n := 1; n <= 4096; n++ {
		b, err := c.br.Peek(n)
		if err != nil {
			c.t.Fatalf("reading the response head: %v (got %q)", err, b)
		}
		if bytes.HasSuffix(b, []byte("\r\n\r\n")) {
			c.head = string(b)
			break
		}
	}
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("reading the response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.t.Fatalf("reading the response body: %v", err)
	}
	return resp, string(b)
}

// expectClosed checks that the server closed the connection: the next
// read returns EOF, not bytes or a timeout.
func (c *h1Client) expectClosed() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	var b [1]byte
	if n, err := c.br.Read(b[:]); n != 0 || err != io.EOF {
		c.t.Errorf("after the response: read %q, %v; want EOF", b[:n], err)
	}
}

// expectOpen checks that nothing follows the last response and the
// connection is still open, waiting for the next request.
func (c *h1Client) expectOpen() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := c.br.Peek(1)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Errorf("the connection should wait for the next request: %v (%d bytes buffered)", err, c.br.Buffered())
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
}

// echoBackend answers "<method> <uri> <body>", followed by " pad=<length>"
// when the request has an X-Pad header, and counts its requests.
func echoBackend(t *testing.T, calls *atomic.Int64) *httptest.Server {
	t.Helper()
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls != nil {
			calls.Add(1)
		}
		if r.URL.Path == "/slow" {
			time.Sleep(30 * time.Millisecond) // long enough for the client's connection to be watched
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%s %s %s", r.Method, r.RequestURI, b)
		if pad, ok := r.Header["X-Pad"]; ok {
			fmt.Fprintf(w, " pad=%d", len(pad[0]))
		}
	}))
	t.Cleanup(be.Close)
	return be
}

// Pipelined requests written at once are answered in order, and the
// connection serves the next request after them. The first one is slow, so
// that its connection is watched while the others wait, partly still in
// the socket (they are larger than the read buffer).
func TestH1Pipelining(t *testing.T) {
	be := echoBackend(t, nil)
	h := startActivator(t, staticRoute("pipe", hostOf(be)), Options{})
	c := dialH1(t, h)
	pad := strings.Repeat("p", 3000)
	c.send("GET /slow HTTP/1.1\r\nHost: a.test\r\n\r\n" +
		"GET /two HTTP/1.1\r\nHost: a.test\r\nX-Pad: " + pad + "\r\n\r\n" +
		"POST /three HTTP/1.1\r\nHost: a.test\r\nX-Pad: " + pad + "\r\nContent-Length: 5\r\n\r\nthree")
	for _, want := range []string{"GET /slow ", "GET /two  pad=3000", "POST /three three pad=3000"} {
		resp, body := c.read(http.MethodGet)
		if resp.StatusCode != 200 || body != want {
			t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, want)
		}
	}
	c.expectOpen()
	c.send("GET /four HTTP/1.1\r\nHost: a.test\r\n\r\n")
	if resp, body := c.read(http.MethodGet); resp.StatusCode != 200 || body != "GET /four " {
		t.Errorf("after the pipelined requests: %d %q", resp.StatusCode, body)
	}
}

func TestH1KeepAlive(t *testing.T) {
	be := echoBackend(t, nil)
	h := startActivator(t, staticRoute("ka", hostOf(be)), Options{})

	t.Run("HTTP/1.1 default", func(t *testing.T) {
		c := dialH1(t, h)
		for _, path := range []string{"/one", "/two"} {
			c.send("GET " + path + " HTTP/1.1\r\nHost: a.test\r\n\r\n")
			resp, body := c.read(http.MethodGet)
			if resp.StatusCode != 200 || body != "GET "+path+" " || resp.Close || resp.Header.Get("Connection") != "" {
				t.Fatalf("%s: %d %q close=%v Connection=%q", path, resp.StatusCode, body, resp.Close, resp.Header.Get("Connection"))
			}
		}
		c.expectOpen()
	})
	t.Run("Connection close", func(t *testing.T) {
		c := dialH1(t, h)
		c.send("GET /bye HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
		resp, body := c.read(http.MethodGet)
		if resp.StatusCode != 200 || body != "GET /bye " || !strings.Contains(c.head, "\r\nConnection: close\r\n") {
			t.Errorf("%d %q, head %q: want Connection: close", resp.StatusCode, body, c.head)
		}
		c.expectClosed()
	})
	t.Run("HTTP/1.0", func(t *testing.T) {
		c := dialH1(t, h)
		c.send("GET /old HTTP/1.0\r\n\r\n")
		resp, body := c.read(http.MethodGet)
		if resp.StatusCode != 200 || body != "GET /old " || !strings.Contains(c.head, "\r\nConnection: close\r\n") {
			t.Errorf("%d %q, head %q: want Connection: close", resp.StatusCode, body, c.head)
		}
		c.expectClosed()
	})
	t.Run("HTTP/1.0 keep-alive", func(t *testing.T) {
		c := dialH1(t, h)
		for _, path := range []string{"/one", "/two"} {
			c.send("GET " + path + " HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
			resp, body := c.read(http.MethodGet)
			if resp.StatusCode != 200 || body != "GET "+path+" " || resp.Header.Get("Connection") != "keep-alive" {
				t.Fatalf("%s: %d %q Connection=%q", path, resp.StatusCode, body, resp.Header.Get("Connection"))
			}
		}
		c.expectOpen()
	})
}

func TestH1RequestBodies(t *testing.T) {
	type seen struct {
		te      []string
		body    string
		trailer http.Header
	}
	got := make(chan seen, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got <- seen{r.TransferEncoding, string(b), r.Trailer.Clone()}
		fmt.Fprintf(w, "got %d bytes", len(b))
	}))
	t.Cleanup(be.Close)
	h := startActivator(t, staticRoute("bodies", hostOf(be)), Options{})
	backendSaw := func(t *testing.T) seen {
		t.Helper()
		select {
		case s := <-got:
			return s
		case <-time.After(5 * time.Second):
			t.Fatal("the backend got no request")
			return seen{}
		}
	}

	t.Run("Content-Length", func(t *testing.T) {
		c := dialH1(t, h)
		payload := "line one\r\nline two\x00\xff"
		c.send(fmt.Sprintf("POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n%s", len(payload), payload))
		resp, body := c.read(http.MethodPost)
		if resp.StatusCode != 200 || body != fmt.Sprintf("got %d bytes", len(payload)) {
			t.Errorf("%d %q", resp.StatusCode, body)
		}
		if s := backendSaw(t); s.body != payload || s.te != nil {
			t.Errorf("backend saw body %q, Transfer-Encoding %v", s.body, s.te)
		}
	})
	t.Run("chunked with trailer", func(t *testing.T) {
		c := dialH1(t, h)
		c.send("POST /up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n" +
			"5\r\nhello\r\n" +
			"7;ext=1\r\n, world\r\n" +
			"0\r\nX-Checksum: abc123\r\n\r\n")
		resp, body := c.read(http.MethodPost)
		if resp.StatusCode != 200 || body != "got 12 bytes" {
			t.Errorf("%d %q", resp.StatusCode, body)
		}
		s := backendSaw(t)
		if s.body != "hello, world" || len(s.te) != 1 || s.te[0] != "chunked" {
			t.Errorf("backend saw body %q, Transfer-Encoding %v", s.body, s.te)
		}
		if v := s.trailer.Get("X-Checksum"); v != "abc123" {
			t.Errorf("backend saw trailers %v, want X-Checksum: abc123", s.trailer)
		}
		// The trailer was consumed as part of the request: the connection
		// serves the next one.
		c.expectOpen()
		c.send("POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\n\r\nok")
		if resp, body := c.read(http.MethodPost); resp.StatusCode != 200 || body != "got 2 bytes" {
			t.Errorf("next request: %d %q", resp.StatusCode, body)
		}
		if s := backendSaw(t); s.body != "ok" {
			t.Errorf("next request: backend saw %q", s.body)
		}
	})
	t.Run("Expect 100-continue", func(t *testing.T) {
		c := dialH1(t, h)
		c.send("POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\n")
		// Nothing of the body is sent before the 100 Continue: without it
		// this read times out.
		_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, _ := c.read(http.MethodPost)
		if resp.StatusCode != http.StatusContinue || resp.Proto != "HTTP/1.1" {
			t.Fatalf("interim response %s %d, want HTTP/1.1 100", resp.Proto, resp.StatusCode)
		}
		c.send("payload")
		resp, body := c.read(http.MethodPost)
		if resp.StatusCode != 200 || body != "got 7 bytes" {
			t.Errorf("final response %d %q", resp.StatusCode, body)
		}
		if s := backendSaw(t); s.body != "payload" {
			t.Errorf("backend saw %q", s.body)
		}
	})
}

// Requests that cannot be served get the right status and a closed
// connection, and never reach the backend.
func TestH1BadRequests(t *testing.T) {
	var calls atomic.Int64
	be := echoBackend(t, &calls)
	h := startActivator(t, staticRoute("bad", hostOf(be)), Options{})
	for _, tc := range []struct {
		name, req string
		code      int
	}{
		{"malformed request line", "GARBAGE\r\n\r\n", 400},
		{"request line without version", "GET /\r\nHost: a.test\r\n\r\n", 400},
		{"header without colon", "GET / HTTP/1.1\r\nHost: a.test\r\nNoColonHere\r\n\r\n", 400},
		{"space in header name", "GET / HTTP/1.1\r\nHost: a.test\r\nBad Name: v\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost: a.test\r\nX-Name : v\r\n\r\n", 400},
		{"obsolete line folding", "GET / HTTP/1.1\r\nHost: a.test\r\nX-A: a\r\n folded\r\n\r\n", 400},
		{"control character in value", "GET / HTTP/1.1\r\nHost: a.test\r\nX-A: a\x01b\r\n\r\n", 400},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: a.test\r\nX-A: a\x00b\r\n\r\n", 400},
		{"missing Host", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400},
		{"two Host headers", "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", 400},
		{"Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"Transfer-Encoding and Content-Length", "POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
		{"Transfer-Encoding gzip", "POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"Transfer-Encoding gzip, chunked", "POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
		{"HTTP/3.0", "GET / HTTP/3.0\r\nHost: a.test\r\n\r\n", 505},
		{"conflicting Content-Length", "POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"Content-Length list", "POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3, 4\r\n\r\nabcd", 400},
		{"negative Content-Length", "POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: -1\r\n\r\n", 400},
		{"CR in the target", "GET /a\rX:y HTTP/1.1\r\nHost: a.test\r\n\r\n", 400},
		{"control character in the target", "GET /a\x01b HTTP/1.1\r\nHost: a.test\r\n\r\n", 400},
		{"NUL in the target", "GET /a\x00b HTTP/1.1\r\nHost: a.test\r\n\r\n", 400},
		{"version with extra words", "GET / HTTP/1.1 extra\r\nHost: a.test\r\n\r\n", 400},
		{"version HTTP/1.10", "GET / HTTP/1.10\r\nHost: a.test\r\n\r\n", 400},
		{"forbidden trailer declared", "POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length, Host\r\n\r\n1\r\na\r\n0\r\nContent-Length: 5\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialH1(t, h)
			c.send(tc.req)
			resp, body := c.read(http.MethodGet)
			if resp.StatusCode != tc.code {
				t.Errorf("status %d (%q), want %d", resp.StatusCode, body, tc.code)
			}
			c.expectClosed()
		})
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the backend got %d bad requests", n)
	}
	// The count is real: a good request gets through (a repeated
	// Content-Length of the same value is allowed, RFC 9110, 8.6).
	c := dialH1(t, h)
	c.send("POST /fine HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc")
	if resp, body := c.read(http.MethodPost); resp.StatusCode != 200 || body != "POST /fine abc" || calls.Load() != 1 {
		t.Errorf("good request: %d %q, %d backend calls", resp.StatusCode, body, calls.Load())
	}
}

func TestH1Head(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "11")
		fmt.Fprint(w, "hello world")
	}))
	t.Cleanup(be.Close)
	h := startActivator(t, staticRoute("head", hostOf(be)), Options{})
	c := dialH1(t, h)
	c.send("HEAD /h HTTP/1.1\r\nHost: a.test\r\n\r\n")
	resp, body := c.read(http.MethodHead)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Length") != "11" || body != "" {
		t.Errorf("HEAD: %d Content-Length=%q body %q", resp.StatusCode, resp.Header.Get("Content-Length"), body)
	}
	c.expectOpen() // no body bytes follow the head
	c.send("GET /h HTTP/1.1\r\nHost: a.test\r\n\r\n")
	if resp, body := c.read(http.MethodGet); resp.StatusCode != 200 || body != "hello world" {
		t.Errorf("GET after HEAD: %d %q", resp.StatusCode, body)
	}
}

// A response without Content-Length goes to an HTTP/1.1 client chunked and
// to an HTTP/1.0 client delimited by the end of the connection.
func TestH1UnknownLengthResponse(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "part1,")
		w.(http.Flusher).Flush()
		fmt.Fprint(w, "part2")
		w.(http.Flusher).Flush()
	}))
	t.Cleanup(be.Close)
	h := startActivator(t, staticRoute("stream", hostOf(be)), Options{})

	t.Run("HTTP/1.1", func(t *testing.T) {
		c := dialH1(t, h)
		for range 2 {
			c.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
			resp, body := c.read(http.MethodGet)
			if resp.StatusCode != 200 || body != "part1,part2" || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" || resp.Close {
				t.Fatalf("%d %q Transfer-Encoding %v close=%v", resp.StatusCode, body, resp.TransferEncoding, resp.Close)
			}
		}
		c.expectOpen()
	})
	for _, req := range []string{
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	} {
		t.Run(strings.TrimSuffix(req, "\r\n\r\n"), func(t *testing.T) {
			c := dialH1(t, h)
			c.send(req)
			// No framing: the body is whatever comes until the connection
			// closes, so chunk sizes would show up in it.
			resp, body := c.read(http.MethodGet)
			if resp.StatusCode != 200 || body != "part1,part2" || resp.TransferEncoding != nil || resp.ContentLength != -1 ||
				!strings.Contains(c.head, "\r\nConnection: close\r\n") {
				t.Errorf("%d %q Transfer-Encoding %v Content-Length %d, head %q",
					resp.StatusCode, body, resp.TransferEncoding, resp.ContentLength, c.head)
			}
			c.expectClosed()
		})
	}
}

// A client that goes away while the upstream works aborts the upstream
// exchange: the backend's request context ends. The client closes (a FIN),
// as client libraries do when they give up.
func TestH1ClientGoneCancelsUpstream(t *testing.T) {
	entered := make(chan struct{}, 1)
	cancelled := make(chan struct{}, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(be.Close)
	h := startActivator(t, staticRoute("gone", hostOf(be)), Options{})
	c := dialH1(t, h)
	c.send("GET /long HTTP/1.1\r\nHost: a.test\r\n\r\n")
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the backend got no request")
	}
	time.Sleep(100 * time.Millisecond) // the connection is watched by now
	c.nc.Close()
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("the backend's request was not cancelled within 2 s of the client going away")
	}
}

// Shutdown closes keep-alive connections waiting for a request at once.
func TestH1ShutdownClosesIdle(t *testing.T) {
	be := backend(t, "b")
	h := startActivator(t, staticRoute("idle", hostOf(be)), Options{})
	used := dialH1(t, h)
	used.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
	if resp, body := used.read(http.MethodGet); resp.StatusCode != 200 || body != "b" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	fresh := dialH1(t, h) // connected, never sent anything
	used.expectOpen()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	err := h.srv.Shutdown(ctx)
	if d := time.Since(start); err != nil || d > time.Second {
		t.Errorf("Shutdown = %v after %v, want nil at once", err, d)
	}
	used.expectClosed()
	fresh.expectClosed()
}

// servePipe serves one end of a net.Pipe with s; done is closed when
// serveConn returns.
func servePipe(s *Server) (client net.Conn, done <-chan struct{}) {
	client, server := net.Pipe()
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		s.serveConn(server)
	}()
	return client, ch
}

func waitServed(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("serveConn did not return")
	}
}

// A panicking handler closes its connection without a response (or cuts
// the response it began) and takes nothing else down.
func TestH1HandlerPanic(t *testing.T) {
	s := New(Options{}).Server()
	defer s.Close()
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    string // what the client reads before EOF
	}{
		{"panic", func(http.ResponseWriter, *http.Request) { panic("boom") }, ""},
		{"ErrAbortHandler", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }, ""},
		{"after a flush", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, "partial")
			w.(http.Flusher).Flush()
			panic("boom")
		}, "7\r\npartial\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.handler = tc.handler
			client, done := servePipe(s)
			defer client.Close()
			_ = client.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(client, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			out, err := io.ReadAll(client)
			if err != nil {
				t.Fatalf("reading until the server closes: %v", err)
			}
			if tc.want == "" && len(out) != 0 {
				t.Errorf("got %q, want the connection closed without a response", out)
			}
			if tc.want != "" {
				// The head, then the flushed chunk, and no last chunk: the
				// client can tell the response was cut.
				_, rest, ok := bytes.Cut(out, []byte("\r\n\r\n"))
				if !ok || string(rest) != tc.want {
					t.Errorf("got %q, want a head and %q", out, tc.want)
				}
			}
			waitServed(t, done)
		})
	}
	// The server still serves.
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "fine") })
	client, done := servePipe(s)
	defer client.Close()
	_ = client.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(client)
	for range 2 {
		if _, err := io.WriteString(client, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || string(b) != "fine" {
			t.Fatalf("after the panics: %d %q %v", resp.StatusCode, b, err)
		}
	}
	client.Close()
	waitServed(t, done)
}

// noTimerConn drops deadlines in the future: net.Pipe allocates a timer
// for each, which would hide the server's own allocations. Past deadlines
// (aborting a read) and zero ones pass.
type noTimerConn struct{ net.Conn }

func (c noTimerConn) SetDeadline(t time.Time) error {
	if t.After(time.Now()) {
		return nil
	}
	return c.Conn.SetDeadline(t)
}

func (c noTimerConn) SetReadDeadline(t time.Time) error {
	if t.After(time.Now()) {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

func (c noTimerConn) SetWriteDeadline(t time.Time) error {
	if t.After(time.Now()) {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// A keep-alive request costs the server no allocation: measured on one
// connection (its setup excluded) to a handler writing a fixed body with
// its length.
func TestH1AllocsPerRequest(t *testing.T) {
	s := New(Options{}).Server()
	defer s.Close()
	body := []byte("hello")
	length := []string{"5"}
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Content-Length"] = length
		_, _ = w.Write(body)
	})
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serveConn(noTimerConn{server})
	}()
	defer func() {
		client.Close()
		waitServed(t, done)
	}()
	_ = client.SetDeadline(time.Now().Add(time.Minute))
	req := []byte("GET /v1/models?x=1 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: test/1.0\r\nAccept: */*\r\nX-Request-Id: 1234\r\n\r\n")
	buf := make([]byte, 4096)
	// The first response gives the length of every response (the Date
	// header has a fixed width); the server writes it in one piece.
	if _, err := client.Write(req); err != nil {
		t.Fatal(err)
	}
	n, err := client.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	check := func(raw []byte) {
		t.Helper()
		br := bufio.NewReader(bytes.NewReader(raw))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%v in %q", err, raw)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || string(b) != "hello" || br.Buffered() != 0 {
			t.Fatalf("response %q", raw)
		}
	}
	check(buf[:n])
	var ioErr error
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := client.Write(req); err != nil {
			ioErr = err
			return
		}
		if _, err := io.ReadFull(client, buf[:n]); err != nil {
			ioErr = err
		}
	})
	if ioErr != nil {
		t.Fatal(ioErr)
	}
	check(buf[:n])
	// Measured: 0 (the request, header map, response and buffers are
	// reused, names and values interned, the Date line made once a
	// second). On a bare net.Pipe it is 2, both from the pipe's
	// SetReadDeadline (a timer and its callback). Under -race it averages
	// about 1, as sync.Pool then drops a quarter of the buffers put back:
	// the margin of one allocation is for that, a normal build gets none.
	const measured = 0
	limit := float64(measured)
	if raceEnabled() {
		limit++
	}
	if allocs > limit {
		t.Errorf("%v allocations per keep-alive request, want at most %v", allocs, limit)
	}
	t.Logf("%v allocations per keep-alive request", allocs)
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" {
				return s.Value == "true"
			}
		}
	}
	return false
}

// halfClosedConn is the server end of a net.Pipe whose client can shut
// down its writing side, as on a TCP connection: once closeWrite is called
// (after the client's last Write returned, so all its bytes were read),
// reads return io.EOF.
type halfClosedConn struct {
	net.Conn
	mu  sync.Mutex
	eof bool
}

func (c *halfClosedConn) closeWrite() {
	c.mu.Lock()
	c.eof = true
	_ = c.Conn.SetReadDeadline(aLongTimeAgo)
	c.mu.Unlock()
}

func (c *halfClosedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.mu.Lock()
		eof := c.eof
		c.mu.Unlock()
		if eof {
			return n, io.EOF
		}
	}
	return n, err
}

func (c *halfClosedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.eof {
		t = aLongTimeAgo // nothing more will come
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *halfClosedConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// FuzzServeConn feeds arbitrary bytes to a connection: the server must not
// panic or hang, and what it sends back must be a sequence of well-formed
// responses, one per request the handler saw, then at most one error
// response. A connection handed over to HTTP/2 (h2c preface) must carry
// the preface and everything after it.
func FuzzServeConn(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcHEAD /c HTTP/1.1\r\nHost: a\r\n\r\nGET /d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
		"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5;x=y\r\nhello\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nbody",
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nHEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET http://example.com/x?y HTTP/1.1\r\nHost: b\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\n\r\nCONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 5000) + "\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 3000) + "\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
		"GARBAGE\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nshort",
		"GET / HTTP/3.0\r\n\r\n",
		"\r\n\r\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	a := New(Options{MaxHeaderBytes: 4096, ReadHeaderTimeout: time.Second})
	f.Fuzz(func(t *testing.T, in []byte) { checkServeConn(t, a, in) })
}

// checkServeConn serves in on a connection and checks what comes back.
func checkServeConn(t *testing.T, a *Activator, in []byte) {
	s := a.Server()
	defer s.Close()
	var methods []string // of the requests the handler saw, in order
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		methods = append(methods, r.Method)
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	})
	// Connections handed over to HTTP/2 come here instead of to the h2c
	// server, which TestH2C covers: given fuzzed frames, it waits a
	// second for the client to read its GOAWAY, which stalls fuzzing.
	handed := make(chan []byte, 1)
	s.h2Start.Do(func() {
		go func() {
			for {
				hc, err := s.h2l.Accept()
				if err != nil {
					return
				}
				b, _ := io.ReadAll(hc)
				handed <- b
				hc.Close()
			}
		}()
	})
	client, server := net.Pipe()
	sc := &halfClosedConn{Conn: server}
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.serveConn(sc)
	}()
	_ = client.SetDeadline(time.Now().Add(2 * time.Second))
	go func() {
		_, _ = client.Write(in)
		sc.closeWrite()
	}()
	out, err := io.ReadAll(client)
	client.Close()
	if err != nil {
		t.Fatalf("the server did not close the connection: %v (sent %q, got %q)", err, in, out)
	}
	select {
	case <-served:
	case <-time.After(2 * time.Second):
		t.Fatalf("serveConn did not return (sent %q)", in)
	}
	select {
	case h := <-handed:
		// The preface line (its line ending made CRLF) and all that
		// followed it, nothing lost or repeated.
		rest, ok := bytes.CutPrefix(h, []byte("PRI * HTTP/2.0\r\n"))
		if !ok || !bytes.HasSuffix(in, append([]byte("PRI * HTTP/2.0\r\n"), rest...)) &&
			!bytes.HasSuffix(in, append([]byte("PRI * HTTP/2.0\n"), rest...)) {
			t.Fatalf("handed over to HTTP/2: %q (sent %q)", h, in)
		}
	default:
	}
	br := bufio.NewReader(bytes.NewReader(out))
	final := 0 // final responses to handled requests
	for {
		if _, err := br.Peek(1); err == io.EOF {
			break
		}
		method := http.MethodGet
		if final < len(methods) {
			method = methods[final]
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("response %d: %v (sent %q, got %q)", final, err, in, out)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("response %d body: %v (sent %q, got %q)", final, err, in, out)
		}
		switch code := resp.StatusCode; {
		case code < 100 || code > 599:
			t.Fatalf("status %d (sent %q, got %q)", code, in, out)
		case code < 200:
			continue // 100 Continue
		case final < len(methods):
			want := "ok"
			if method == http.MethodHead {
				want = ""
			}
			if code != 200 || string(b) != want {
				t.Fatalf("response %d to %s: %d %q (sent %q, got %q)", final, method, code, b, in, out)
			}
		default:
			// An error response ends the connection.
			if code < 400 || br.Buffered() > 0 {
				t.Fatalf("response %d: %d with %d bytes after it (sent %q, got %q)", final, code, br.Buffered(), in, out)
			}
		}
		final++
	}
	if final < len(methods) {
		t.Fatalf("%d responses to %d handled requests (sent %q, got %q)", final, len(methods), in, out)
	}
}

// TestH1Smuggling: what a client sends cannot reach the upstream as
// something else: a bad trailer value ends the request instead of being
// copied, an HTTP/2 preface after a request is an HTTP/1.1 request (505),
// and an HTTP/1.0 client is not sent 100 Continue.
func TestH1Smuggling(t *testing.T) {
	t.Run("bad trailer value", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		got := make(chan []byte, 1)
		go func() {
			nc, err := l.Accept()
			if err != nil {
				got <- nil
				return
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(2 * time.Second))
			b, _ := io.ReadAll(nc)
			got <- b
		}()
		h := startActivator(t, staticRoute("t", l.Addr().String()), Options{})
		c := dialH1(t, h)
		c.send("POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n1\r\na\r\n0\r\nX-Sum: a\rX-Evil: 1\r\n\r\n")
		resp, _ := c.read(http.MethodPost)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("status %d, want 400", resp.StatusCode)
		}
		if b := <-got; bytes.Contains(b, []byte("X-Evil")) || bytes.Contains(b, []byte("\r\n0\r\n")) {
			t.Errorf("the upstream got the bad trailer or a complete body: %q", b)
		}
	})
	t.Run("preface after a request", func(t *testing.T) {
		h := startActivator(t, staticRoute("t", hostOf(echoBackend(t, nil))), Options{})
		c := dialH1(t, h)
		c.send("GET /first HTTP/1.1\r\nHost: a.test\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
		if resp, body := c.read(http.MethodGet); resp.StatusCode != 200 || body != "GET /first " {
			t.Errorf("first request: %d %q", resp.StatusCode, body)
		}
		if resp, _ := c.read(http.MethodGet); resp.StatusCode != http.StatusHTTPVersionNotSupported {
			t.Errorf("preface after a request: %d, want 505", resp.StatusCode)
		}
		c.expectClosed()
	})
	t.Run("HTTP/1.0 Expect", func(t *testing.T) {
		h := startActivator(t, staticRoute("t", hostOf(echoBackend(t, nil))), Options{})
		c := dialH1(t, h)
		c.send("POST /x HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nok")
		resp, body := c.read(http.MethodPost)
		if resp.StatusCode != 200 || body != "POST /x ok" {
			t.Errorf("%d %q (head %q), want 200 without a 100 Continue first", resp.StatusCode, body, c.head)
		}
	})
}
