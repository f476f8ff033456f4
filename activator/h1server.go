package activator

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves the proxy: HTTP/1.1 with its own connection loop, and h2c
// (HTTP/2 without TLS, prior knowledge), whose connections are handed to a
// net/http server. Get one from [Activator.Server]; stop it with
// [Activator.Shutdown].
//
// The HTTP/1.1 loop exists for what net/http's server spends per request
// and per waiting request: a request, header map, context, response and
// 2 KiB buffer each time, a goroutine per request to notice a client going
// away, and 8 KiB of buffers per connection for its whole life. Here a
// connection reuses one request, header map and response, interns repeated
// header names and values, watches for the client going away only once a
// request has run for a while, and gives its buffers back while the
// request waits in a queue, so that a held request costs a parked
// goroutine and a few hundred bytes.
//
// Differences from net/http a handler may notice: a response without
// Content-Type gets none (no sniffing); r.Context() is the connection's
// context, cancelled when the client goes away (not when the handler
// returns); the request and its header map are reused by the next request
// on the connection, so a handler must not keep them once it returns.
type Server struct {
	a                 *Activator
	handler           http.Handler
	logger            *slog.Logger
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int
	maxConns          int // 0: no cap

	h2      *http.Server // serves the h2c connections, started with the first
	h2l     *handoffListener
	h2Start sync.Once

	watcher    *connWatcher // nil where connections cannot be watched without a goroutine
	inShutdown atomic.Bool
	date       atomic.Pointer[dateLine]
	pools      bufferPools

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
}

// Server returns the proxy's server with the limits of the options.
func (a *Activator) Server() *Server {
	var h2only http.Protocols
	h2only.SetUnencryptedHTTP2(true)
	s := &Server{
		a:                 a,
		handler:           a.Handler(),
		logger:            a.logger,
		readHeaderTimeout: a.opts.ReadHeaderTimeout,
		idleTimeout:       a.opts.IdleTimeout,
		maxHeaderBytes:    a.opts.MaxHeaderBytes,
		maxConns:          a.opts.MaxConnections,
		h2l:               newHandoffListener(),
		watcher:           newConnWatcher(a.logger),
		listeners:         map[net.Listener]struct{}{},
		conns:             map[*serverConn]struct{}{},
	}
	s.h2 = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: a.opts.ReadHeaderTimeout,
		IdleTimeout:       a.opts.IdleTimeout,
		MaxHeaderBytes:    a.opts.MaxHeaderBytes,
		Protocols:         &h2only,
		ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelDebug),
	}
	return s
}

// Serve accepts connections on l until Shutdown or Close, and then returns
// http.ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.inShutdown.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait and try again, as
			// net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.logger.Warn("accepting a connection failed; retrying", "err", err, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c, err := s.newConn(nc)
		if errors.Is(err, errTooManyConns) {
			// Closed at once rather than left in the backlog: the client
			// learns now, and a flood of them costs a descriptor for a
			// moment, not a goroutine and buffers each.
			nc.Close()
			s.a.m.connsRefused.Inc()
			continue
		}
		if err != nil {
			nc.Close()
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

// serveConn serves one connection on the calling goroutine (tests, fuzzing).
func (s *Server) serveConn(nc net.Conn) {
	if c, err := s.newConn(nc); err == nil {
		c.serve()
	} else {
		nc.Close()
	}
}

// Shutdown stops accepting, closes idle connections, lets every request
// finish (a connection closes after its response) and waits until no
// connection is left or ctx ends. Upgraded connections are the Activator's
// to wait for (see [Activator.Shutdown]).
func (s *Server) Shutdown(ctx context.Context) error {
	s.inShutdown.Store(true)
	s.closeListeners()
	h2err := make(chan error, 1)
	go func() { h2err <- s.h2.Shutdown(ctx) }()
	wait := time.Millisecond
	for !s.closeIdle() {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
	s.watcher.close()
	return <-h2err
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.inShutdown.Store(true)
	s.closeListeners()
	err := s.h2.Close()
	s.mu.Lock()
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		c.state.Store(connClosed)
		c.nc.Close()
		conns = append(conns, c)
	}
	s.mu.Unlock()
	// A parked request's descriptor left the epoll set as it closed,
	// without an event: end it here.
	for _, c := range conns {
		c.parkGone()
	}
	s.watcher.close()
	return err
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	s.h2l.Close()
}

// closeIdle closes the connections waiting for a request and reports
// whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(connIdle, connClosed) {
			c.nc.Close()
		}
	}
	return len(s.conns) == 0
}

// errTooManyConns is a connection beyond MaxConnections.
var errTooManyConns = errors.New("too many connections")

// newConn sets up a connection's state; it fails with http.ErrServerClosed
// in shutdown and errTooManyConns when MaxConnections are open.
func (s *Server) newConn(nc net.Conn) (*serverConn, error) {
	if s.maxConns > 0 {
		s.mu.Lock()
		full := len(s.conns) >= s.maxConns
		s.mu.Unlock()
		if full {
			return nil, errTooManyConns
		}
	}
	c := &serverConn{s: s, nc: nc, remote: nc.RemoteAddr().String()}
	c.ctx, c.cancel = context.WithCancel(context.WithValue(context.Background(), serverConnKey{}, c))
	c.cr.c = c
	c.resp.c = c
	c.req = (&http.Request{}).WithContext(c.ctx)
	c.header = http.Header{}
	c.resp.header = http.Header{}
	c.stopRead = func() { _ = c.nc.SetReadDeadline(aLongTimeAgo) }
	c.wakeFn = c.wake
	c.watchTimer = time.AfterFunc(time.Hour, c.startWatch)
	c.watchTimer.Stop()
	c.state.Store(connIdle)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inShutdown.Load() {
		return nil, http.ErrServerClosed
	}
	s.conns[c] = struct{}{}
	return c, nil
}

func (s *Server) forget(c *serverConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// dateLine is a Date header for one second.
type dateLine struct {
	unix int64
	line []byte // "Date: Mon, 02 Jan 2006 15:04:05 GMT\r\n"
}

func (s *Server) dateHeader(now time.Time) []byte {
	sec := now.Unix()
	if d := s.date.Load(); d != nil && d.unix == sec {
		return d.line
	}
	b := append([]byte("Date: "), now.UTC().AppendFormat(nil, http.TimeFormat)...)
	d := &dateLine{unix: sec, line: append(b, "\r\n"...)}
	s.date.Store(d)
	return d.line
}

// Connection states: idle connections wait for a request and are closed
// by Shutdown; active ones finish their request first.
const (
	connIdle int32 = iota
	connActive
	connClosed
)

const (
	// bufferSize is the read and write buffer of a client connection.
	bufferSize = 4 << 10
	// watchAfter is how long a request runs before its connection is
	// watched for the client going away; faster requests never need it.
	watchAfter = 10 * time.Millisecond
	// maxPostHandlerDiscard is how much of an unread request body is read
	// and dropped to keep the connection; a longer one closes it.
	maxPostHandlerDiscard = 256 << 10
)

// bufferPools hold the connections' buffers, taken while a request is read
// or answered and given back while a connection has nothing to do.
type bufferPools struct {
	readers sync.Pool
	writers sync.Pool
}

func (p *bufferPools) reader(r io.Reader) *bufio.Reader {
	if br, ok := p.readers.Get().(*bufio.Reader); ok {
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, bufferSize)
}

func (p *bufferPools) writer(w io.Writer) *bufio.Writer {
	if bw, ok := p.writers.Get().(*bufio.Writer); ok {
		bw.Reset(w)
		return bw
	}
	return bufio.NewWriterSize(w, bufferSize)
}

func (p *bufferPools) putReader(br *bufio.Reader) { br.Reset(nil); p.readers.Put(br) }
func (p *bufferPools) putWriter(bw *bufio.Writer) { bw.Reset(nil); p.writers.Put(bw) }

// serverConn is one client connection.
type serverConn struct {
	s      *Server
	nc     net.Conn
	remote string
	ctx    context.Context // cancelled when the client goes away
	cancel context.CancelFunc
	state  atomic.Int32
	cr     connReader
	br     *bufio.Reader // nil while idle between requests or held
	bw     *bufio.Writer // nil until a response is written

	req    *http.Request // reused by every request; its context is ctx
	url    url.URL
	header http.Header
	vals   []string // backing array of the header values
	body   requestBody
	resp   response

	// Interned strings: header names and values, and the request target,
	// as last seen on this connection.
	intern     interner
	lastTarget string
	lastHost   string
	served     int // requests read on this connection (before this one, while its head is read)

	// Watching for the client going away while a request runs.
	watchMu    sync.Mutex
	watchTimer *time.Timer
	watching   bool
	aborting   bool
	// watchOff keeps startWatch from starting a watch: set by stopWatch,
	// cleared by armWatch. Whoever takes the connection over (a hijack,
	// hold, parking) stops the watch first, and a timer firing meanwhile
	// must not start another that would read the connection's next byte.
	watchOff atomic.Bool
	// heldUnread says the connWatcher watches the connection for hold
	// (a body still unread), not for parking; see clientGone.
	heldUnread bool
	watchDone  chan struct{}
	stopRead   func()
	bodyDone   atomic.Bool // the request body was read to its end
	park       parking
	parkedBody parkedBody // the body of a parked request, read in full
	heldSince  time.Time  // when the request parked; zero if it did not
	holding    bool       // hold is reading the connection
	wakeFn     func()     // c.wake, made once
	hijacked   bool
	closeAfter bool // the connection closes after this response
}

// connReader reads from the connection, first giving back a byte read
// while the connection was watched.
type connReader struct {
	c       *serverConn
	hasByte bool
	byteBuf [1]byte
}

func (cr *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if cr.hasByte {
		p[0] = cr.byteBuf[0]
		cr.hasByte = false
		return 1, nil
	}
	return cr.c.nc.Read(p)
}

func (c *serverConn) serve() {
	c.br = c.s.pools.reader(&c.cr)
	c.run(parkNone, nil)
}

// run serves requests until the connection closes or a request parks.
// A resumed connection (see resume) passes the outcome of its parked
// request: released, it goes to the handler; timed out, it gets 504; its
// client gone, the connection closes.
func (c *serverConn) run(resumed int32, rt *route) {
	parked := false
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			buf := make([]byte, 16<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.s.logger.Error("panic serving a request", "remote", c.remote, "panic", v, "stack", string(buf))
		}
		if parked {
			c.parkLeft()
			return
		}
		c.stopWatch()
		c.cancel()
		if !c.hijacked {
			c.state.Store(connClosed)
			c.nc.Close()
			if c.br != nil {
				c.s.pools.putReader(c.br)
				c.br = nil
			}
			if c.bw != nil {
				c.s.pools.putWriter(c.bw)
				c.bw = nil
			}
		}
		c.s.forget(c)
	}()
	for {
		switch resumed {
		case parkNone:
			if !c.nextRequest() {
				return
			}
			if c.tryPark() {
				parked = true
				return
			}
			c.s.handler.ServeHTTP(&c.resp, c.req)
		case parkReleased:
			if c.routeGone(rt) {
				c.answerParked(parkRouteGone, rt)
				break
			}
			c.armWatch()
			c.s.handler.ServeHTTP(&c.resp, c.req)
		case parkTimedOut, parkRouteGone:
			c.answerParked(resumed, rt)
		default: // parkGone
			c.answerParked(resumed, rt)
			return
		}
		resumed, rt = parkNone, nil
		if c.hijacked {
			return
		}
		c.stopWatch()
		if !c.finish() {
			return
		}
	}
}

// nextRequest waits for a request and reads its head. It reports false
// when the connection is to close (the error response, if any, written).
func (c *serverConn) nextRequest() bool {
	idle := c.s.idleTimeout
	if c.served == 0 {
		idle = c.s.readHeaderTimeout // the first request
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(idle))
	if c.br == nil {
		c.br = c.s.pools.reader(&c.cr)
	}
	if _, err := c.br.Peek(1); err != nil {
		return false
	}
	if !c.state.CompareAndSwap(connIdle, connActive) {
		return false // closed by Shutdown
	}
	if c.s.inShutdown.Load() {
		c.closeAfter = true
	}
	// The rest of the head gets ReadHeaderTimeout, unless it is here.
	if c.br.Buffered() < 4 || !bytes.Contains(peekBuffered(c.br), []byte("\r\n\r\n")) {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.s.readHeaderTimeout))
	}
	c.heldSince = time.Time{}
	code, msg, h2c := c.readRequest()
	if h2c {
		c.handOffH2C()
		return false
	}
	if code != 0 {
		c.writeError(code, msg)
		return false
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	c.served++
	c.resp.reset()
	c.armWatch()
	return true
}

func peekBuffered(br *bufio.Reader) []byte {
	b, _ := br.Peek(br.Buffered())
	return b
}

// errHeadTooLarge is the head growing past MaxHeaderBytes.
var errHeadTooLarge = errors.New("request head too large")

// readLine reads one line of the head, without its line ending. The slice
// is valid until the next read.
func (c *serverConn) readLine(size *int, scratch *[]byte) ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// A line longer than the buffer (a long cookie or token): gather it.
		*scratch = append((*scratch)[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if *size+len(*scratch) > c.s.maxHeaderBytes {
				return nil, errHeadTooLarge
			}
			line, err = c.br.ReadSlice('\n')
			*scratch = append(*scratch, line...)
		}
		line = *scratch
	}
	*size += len(line)
	if *size > c.s.maxHeaderBytes {
		return nil, errHeadTooLarge
	}
	if err != nil {
		return nil, err
	}
	return trimEOL(line), nil
}

// readRequest reads a request head into c.req. It returns the status code
// and reason of a bad request, 0 for an I/O failure (nothing to answer,
// code -1 then), or h2c true for an HTTP/2 connection preface.
func (c *serverConn) readRequest() (code int, msg string, h2c bool) {
	var (
		size    int
		scratch []byte
	)
	line, err := c.readLine(&size, &scratch)
	if err != nil {
		return c.headError(err)
	}
	if c.served == 0 && string(line) == "PRI * HTTP/2.0" {
		return 0, "", true // h2c prior knowledge: only as a connection's first bytes
	}
	method, rest, ok1 := bytes.Cut(line, []byte(" "))
	target, proto, ok2 := bytes.Cut(rest, []byte(" "))
	if !ok1 || !ok2 || len(method) == 0 || len(target) == 0 || !validToken(method) || !validTarget(target) {
		return http.StatusBadRequest, "malformed request line", false
	}
	r := c.req
	switch string(proto) {
	case "HTTP/1.1":
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	case "HTTP/1.0":
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.0", 1, 0
	default:
		if len(proto) == 8 && bytes.HasPrefix(proto, []byte("HTTP/")) && isDigit(proto[5]) && proto[6] == '.' && isDigit(proto[7]) {
			return http.StatusHTTPVersionNotSupported, "unsupported protocol version", false
		}
		return http.StatusBadRequest, "malformed HTTP version", false
	}
	r.Method = internMethod(method)
	if string(target) != c.lastTarget {
		c.lastTarget = string(target)
	}
	r.RequestURI = c.lastTarget
	if err := c.parseTarget(r.Method, c.lastTarget); err != nil {
		return http.StatusBadRequest, "malformed request target", false
	}
	r.URL = &c.url

	h := c.header
	clear(h)
	c.vals = c.vals[:0]
	var (
		host           string
		hostCount      int
		contentLength  int64 = -1
		chunked        bool
		te             bool
		connClose      bool
		connKeepAlive  bool
		expectContinue bool
	)
	for {
		line, err := c.readLine(&size, &scratch)
		if err != nil {
			return c.headError(err)
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validToken(line[:colon]) {
			return http.StatusBadRequest, "malformed header line", false
		}
		vb := bytes.Trim(line[colon+1:], " \t")
		if !validValue(vb) {
			return http.StatusBadRequest, "invalid header value", false
		}
		key := c.intern.key(line[:colon], c.served > 0)
		switch key {
		case "Host":
			hostCount++
			if string(vb) != c.lastHost {
				c.lastHost = string(vb)
			}
			host = c.lastHost
			continue
		case "Content-Length":
			n, ok := parseContentLength(vb)
			if !ok || (contentLength >= 0 && n != contentLength) {
				return http.StatusBadRequest, "bad Content-Length", false
			}
			contentLength = n
		case "Transfer-Encoding":
			te = true
			if !bytes.EqualFold(vb, []byte("chunked")) || chunked {
				return http.StatusNotImplemented, "unsupported Transfer-Encoding", false
			}
			chunked = true
		case "Connection":
			for t := range bytes.SplitSeq(vb, []byte(",")) {
				t = bytes.TrimSpace(t)
				switch {
				case bytes.EqualFold(t, []byte("close")):
					connClose = true
				case bytes.EqualFold(t, []byte("keep-alive")):
					connKeepAlive = true
				}
			}
		case "Expect":
			if r.ProtoMinor == 0 {
				continue // HTTP/1.0: ignored (RFC 9110, 10.1.1)
			}
			if !bytes.EqualFold(vb, []byte("100-continue")) {
				return http.StatusExpectationFailed, "unsupported Expect", false
			}
			expectContinue = true
			continue
		}
		v := c.intern.value(key, vb, c.served > 0)
		if old, ok := h[key]; ok {
			h[key] = append(old, v)
			continue
		}
		c.vals = append(c.vals, v)
		n := len(c.vals)
		h[key] = c.vals[n-1 : n : n]
	}
	if hostCount > 1 {
		return http.StatusBadRequest, "more than one Host header", false
	}
	if hostCount == 0 && r.ProtoMinor == 1 {
		return http.StatusBadRequest, "missing Host header", false
	}
	if te && contentLength >= 0 {
		// Both framings at once is how requests are smuggled: refuse.
		return http.StatusBadRequest, "both Transfer-Encoding and Content-Length", false
	}
	if c.url.Host != "" {
		host = c.url.Host // absolute-form target (RFC 9112, 3.2.2)
	}
	r.Host = host
	r.RemoteAddr = c.remote
	r.Close = connClose || (r.ProtoMinor == 0 && !connKeepAlive)
	r.Trailer = nil
	r.TransferEncoding = nil
	r.Form, r.PostForm, r.MultipartForm = nil, nil, nil
	r.GetBody, r.Response, r.TLS, r.Pattern = nil, nil, nil, ""
	r.Header = h
	switch {
	case chunked:
		r.ContentLength = -1
		r.TransferEncoding = []string{"chunked"}
		if decl := h["Trailer"]; decl != nil {
			r.Trailer = http.Header{}
			for _, k := range hopTokens(decl) {
				key := textproto.CanonicalMIMEHeaderKey(k)
				if !validToken([]byte(k)) || forbiddenTrailer(key) {
					return http.StatusBadRequest, "bad trailer name", false
				}
				r.Trailer[key] = nil
			}
			delete(h, "Trailer")
		}
		c.body.reset(c, -1, expectContinue)
		r.Body = &c.body
	case contentLength > 0:
		r.ContentLength = contentLength
		c.body.reset(c, contentLength, expectContinue)
		r.Body = &c.body
	default:
		r.ContentLength = 0
		c.body.reset(c, 0, false)
		r.Body = http.NoBody
	}
	c.closeAfter = c.closeAfter || r.Close
	return 0, "", false
}

func (c *serverConn) headError(err error) (int, string, bool) {
	if errors.Is(err, errHeadTooLarge) {
		return http.StatusRequestHeaderFieldsTooLarge, "request head too large", false
	}
	return -1, "", false
}

// parseTarget sets c.url from a request target: origin-form (/path?query)
// without allocating when it needs no unescaping, else through net/url.
func (c *serverConn) parseTarget(method, target string) error {
	c.url = url.URL{}
	if target[0] == '/' && !containsPercentOrHash(target) {
		path, query, _ := cutByte(target, '?')
		c.url.Path, c.url.RawQuery = path, query
		return nil
	}
	if target == "*" && method == http.MethodOptions {
		c.url.Path = "*"
		return nil
	}
	if method == http.MethodConnect {
		// authority-form: host:port
		if _, _, err := net.SplitHostPort(target); err != nil {
			return err
		}
		c.url.Host = target
		return nil
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return err
	}
	c.url = *u
	return nil
}

func containsPercentOrHash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' || s[i] == '#' {
			return true
		}
	}
	return false
}

func cutByte(s string, b byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func parseContentLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	return n, true
}

// validToken reports whether b is an RFC 9110 token (a method or header
// name).
func validToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, ch := range b {
		if ch <= ' ' || ch >= 0x7f {
			return false
		}
		switch ch {
		case '"', '(', ')', ',', '/', ':', ';', '<', '=', '>', '?', '@', '[', '\\', ']', '{', '}':
			return false
		}
	}
	return true
}

// validTarget reports whether a request target has no control
// characters (which an upstream might take for a line end).
func validTarget(b []byte) bool {
	for _, ch := range b {
		if ch < '!' || ch == 0x7f {
			return false
		}
	}
	return true
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// forbiddenTrailer reports whether a header may not be sent as a trailer
// (RFC 9110, 6.5.1): framing, routing and connection headers.
func forbiddenTrailer(key string) bool {
	switch key {
	case "Transfer-Encoding", "Content-Length", "Trailer", "Host", "Connection", "Keep-Alive", "Te", "Upgrade",
		"Proxy-Connection", "Content-Type", "Content-Encoding", "Content-Range", "Authorization", "Cookie", "Set-Cookie",
		"Expect", "Max-Forwards", "Cache-Control", "Proxy-Authorization", "Proxy-Authenticate":
		return true
	}
	return false
}

// validValue reports whether b may be a header value: no control
// characters but tab.
func validValue(b []byte) bool {
	for _, ch := range b {
		if (ch < ' ' && ch != '\t') || ch == 0x7f {
			return false
		}
	}
	return true
}

func internMethod(b []byte) string {
	switch string(b) {
	case "GET":
		return http.MethodGet
	case "POST":
		return http.MethodPost
	case "HEAD":
		return http.MethodHead
	case "PUT":
		return http.MethodPut
	case "DELETE":
		return http.MethodDelete
	case "OPTIONS":
		return http.MethodOptions
	case "PATCH":
		return http.MethodPatch
	case "CONNECT":
		return http.MethodConnect
	case "TRACE":
		return http.MethodTrace
	}
	return string(b)
}

// writeError answers a request that cannot be served and closes.
func (c *serverConn) writeError(code int, msg string) {
	if code <= 0 {
		return
	}
	c.s.logger.Debug("bad request", "remote", c.remote, "code", code, "reason", msg)
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c.nc, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n%d %s: %s\n",
		code, http.StatusText(code), code, http.StatusText(code), msg)
}

// handOffH2C gives the connection, with what was read of it, to the h2c
// server.
func (c *serverConn) handOffH2C() {
	s := c.s
	s.h2Start.Do(func() {
		go func() { _ = s.h2.Serve(s.h2l) }()
	})
	read := append([]byte("PRI * HTTP/2.0\r\n"), peekBuffered(c.br)...)
	if c.cr.hasByte {
		read = append(read, c.cr.byteBuf[0])
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	if s.h2l.hand(&prefixConn{Conn: c.nc, r: io.MultiReader(bytes.NewReader(read), c.nc)}) {
		c.hijacked = true // the h2c server owns it now
		c.s.pools.putReader(c.br)
		c.br = nil
	}
}

// finish completes the response and reports whether the connection can
// take another request.
func (c *serverConn) finish() bool {
	w := &c.resp
	if !w.wroteHeader && c.ctx.Err() != nil {
		// The client went away and the handler answered nothing (the
		// metrics counted 499): no response is made up for it.
		return false
	}
	if !w.wroteHeader {
		if !w.statusSet {
			w.status = http.StatusOK
		}
		if _, ok := w.header["Content-Length"]; !ok && !w.bodyForbidden() {
			w.header["Content-Length"] = []string{"0"}
		}
		w.writeHead()
	}
	if w.chunked {
		c.bw.WriteString("0\r\n")
		w.writeTrailers()
		c.bw.WriteString("\r\n")
	}
	if w.contentLength >= 0 && w.written < w.contentLength && !w.noBody {
		// A short body cannot be told from a complete one: close.
		c.closeAfter = true
	}
	if err := c.bw.Flush(); err != nil || w.err != nil {
		return false
	}
	c.s.pools.putWriter(c.bw)
	c.bw = nil
	if c.closeAfter || c.ctx.Err() != nil {
		return false
	}
	// Whatever the handler left of the request body, up to a limit, is
	// read and dropped so that the connection can serve the next request.
	if !c.body.drain() {
		return false
	}
	if !c.state.CompareAndSwap(connActive, connIdle) {
		return false
	}
	if c.s.inShutdown.Load() {
		return false
	}
	if c.br.Buffered() == 0 && !c.cr.hasByte {
		// Nothing pipelined: the buffer goes back while the client thinks.
		c.s.pools.putReader(c.br)
		c.br = nil
	}
	return true
}

// startWatch runs once a request has run for watchAfter: a goroutine reads
// the connection so that the client going away cancels the request's
// context (a long request then ends, and its upstream exchange is
// aborted). Only once the request body is read: until then the handler
// reads the connection itself.
func (c *serverConn) startWatch() {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	if c.watching || c.watchOff.Load() || c.hijacked || c.state.Load() != connActive {
		return
	}
	if !c.bodyDone.Load() {
		c.watchTimer.Reset(watchAfter)
		return
	}
	c.watching, c.aborting = true, false
	c.watchDone = make(chan struct{})
	go c.watch(c.watchDone)
}

func (c *serverConn) watch(done chan struct{}) {
	defer close(done)
	n, err := c.nc.Read(c.cr.byteBuf[:])
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	if n == 1 {
		c.cr.hasByte = true // pipelined: the next request's first byte
		return
	}
	// A FIN after a complete request means the client is gone, as nginx
	// (499) and net/http's server take it: a client library that gives up
	// closes its socket, and the upstream work (a long generation) must
	// stop. A client that only half-closed is told apart from one that
	// closed for good by nothing on the wire; it is rare, and gets no
	// answer made up for it (see finish).
	if err != nil && !c.aborting {
		c.cancel()
	}
}

// armWatch lets the connection be watched once the request has run for
// watchAfter.
func (c *serverConn) armWatch() {
	c.watchOff.Store(false)
	c.watchTimer.Reset(watchAfter)
}

// stopWatch stops the watching goroutine, if any, and waits for it; no
// watch starts again until armWatch.
func (c *serverConn) stopWatch() {
	c.watchOff.Store(true)
	c.watchTimer.Stop()
	c.watchMu.Lock()
	if !c.watching {
		c.watchMu.Unlock()
		return
	}
	c.aborting = true
	done := c.watchDone
	c.watchMu.Unlock()
	c.stopRead()
	<-done
	_ = c.nc.SetReadDeadline(time.Time{})
	c.watchMu.Lock()
	c.watching = false
	c.watchMu.Unlock()
}

// serverConnKey is the context key of a request's serverConn.
type serverConnKey struct{}

// hold waits, on the request's own goroutine, until released is closed,
// the deadline passes or the client goes away, returning 0, 504 or
// statusClientGone. It reads the connection for the client going away,
// with its buffers back in their pools meanwhile, and is woken by wake,
// which the queue calls when it releases the request (after closing
// released). A connection that must not be read (a body still unread, a
// pipelined request, a 100 Continue sent) is watched by the connWatcher
// instead. ok is false when neither can be done: the caller then waits
// by other means.
func (c *serverConn) hold(released <-chan struct{}, deadline time.Time) (code int, ok bool) {
	c.stopWatch()
	if c.hijacked {
		return 0, false
	}
	defer func() {
		if ok && code == 0 {
			c.armWatch() // released: the request goes on
		}
	}()
	if c.cr.hasByte || !c.bodyDone.Load() || c.br == nil || c.br.Buffered() > 0 || c.bw != nil {
		return c.holdWatched(released, deadline)
	}
	c.s.pools.putReader(c.br)
	c.br = nil
	c.watchMu.Lock()
	c.holding = true
	c.watchMu.Unlock()
	defer func() {
		c.watchMu.Lock()
		c.holding = false
		_ = c.nc.SetReadDeadline(time.Time{})
		c.watchMu.Unlock()
		c.br = c.s.pools.reader(&c.cr)
	}()
	for {
		// The deadline first, then a look at released: a wake after
		// this point interrupts the read below, and one before it came
		// after released was closed.
		c.watchMu.Lock()
		_ = c.nc.SetReadDeadline(deadline)
		c.watchMu.Unlock()
		select {
		case <-released:
			return 0, true
		default:
		}
		n, err := c.nc.Read(c.cr.byteBuf[:])
		if n == 1 {
			// A pipelined request: keep its byte and wait without
			// watching, as net/http does.
			c.cr.hasByte = true
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			select {
			case <-released:
				return 0, true
			case <-t.C:
				return http.StatusGatewayTimeout, true
			}
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			select {
			case <-released:
				return 0, true
			default:
			}
			if !time.Now().Before(deadline) {
				return http.StatusGatewayTimeout, true
			}
			continue // woken early: look again
		}
		c.cancel()
		return statusClientGone, true
	}
}

// holdWatched is hold for a connection that must not be read: the
// connWatcher reports a FIN or a reset (never bytes, which the body and a
// next request are made of) by cancelling the connection's context. A
// client that leaves halfway through its body is gone, whatever it did.
func (c *serverConn) holdWatched(released <-chan struct{}, deadline time.Time) (int, bool) {
	c.heldUnread = true
	id := c.s.watcher.add(c)
	if id == 0 {
		c.heldUnread = false
		return 0, false
	}
	code := waitReleased(c.ctx, released, deadline)
	c.s.watcher.remove(c, id)
	c.heldUnread = false
	return code, true
}

// clientGone is the connWatcher's report: the client closed or reset.
// Called with the watcher's lock held, while c is watched.
func (c *serverConn) clientGone() {
	if c.heldUnread {
		c.cancel()
		return
	}
	c.parkGone()
}

// wake interrupts hold's read.
func (c *serverConn) wake() {
	c.watchMu.Lock()
	if c.holding {
		c.stopRead()
	}
	c.watchMu.Unlock()
}

// requestBody is a request body: a known length or chunked.
type requestBody struct {
	c         *serverConn
	remaining int64 // bytes left of a known length; -1: chunked
	chunked   io.Reader
	err       error
	expect    bool // send 100 Continue before the first read
	started   bool // read from already
	deadline  bool // the route's request timeout is the connection's read deadline
	// timeout is the route's request timeout, set by whoever reads the
	// body first (proxy, or tryPark), which has the route at hand.
	timeout time.Duration
}

// errBodyTimeout is a request body that did not arrive within the route's
// request timeout.
var errBodyTimeout = fmt.Errorf("the request timeout passed before the whole body arrived: %w", os.ErrDeadlineExceeded)

// start bounds reading the body by the request timeout of its route, so
// that a client sending its body slowly holds an endpoint's slot (and a
// goroutine) no longer than a slow upstream may. The clock starts with
// the first read: right after an endpoint is picked, or before the
// request parks.
func (b *requestBody) start() {
	b.started = true
	if b.timeout <= 0 {
		return
	}
	_ = b.c.nc.SetReadDeadline(time.Now().Add(b.timeout))
	b.deadline = true
}

// readErr is what Read returns for err from the connection.
func (b *requestBody) readErr(err error) error {
	if b.deadline && errors.Is(err, os.ErrDeadlineExceeded) {
		return errBodyTimeout
	}
	return err
}

func (b *requestBody) reset(c *serverConn, n int64, expect bool) {
	*b = requestBody{c: c, remaining: n, expect: expect}
	c.bodyDone.Store(n == 0)
}

// eof reports whether the body was read to its end.
func (b *requestBody) eof() bool { return b.c.bodyDone.Load() }

func (b *requestBody) setEOF() {
	b.c.bodyDone.Store(true)
	if b.deadline {
		// Whoever reads the connection next (the watch, hold, the next
		// request) sets its own deadline, or none.
		_ = b.c.nc.SetReadDeadline(time.Time{})
		b.deadline = false
	}
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.eof() {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	c := b.c
	if c.br == nil {
		return 0, io.ErrClosedPipe
	}
	if !b.started {
		b.start()
	}
	if b.expect {
		b.expect = false
		if !c.resp.wroteHeader {
			c.ensureWriter()
			c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := c.bw.Flush(); err != nil {
				b.err = err
				return 0, err
			}
		}
	}
	if b.remaining < 0 {
		if b.chunked == nil {
			b.chunked = httputil.NewChunkedReader(c.br)
		}
		n, err := b.chunked.Read(p)
		if err == io.EOF {
			if terr := b.readTrailers(); terr != nil {
				b.err = b.readErr(terr)
				return n, b.err
			}
			b.setEOF()
		} else if err != nil {
			err = b.readErr(err)
			b.err = err
		}
		return n, err
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := c.br.Read(p)
	b.remaining -= int64(n)
	if b.remaining == 0 {
		b.setEOF()
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		err = b.readErr(err)
		b.err = err
	}
	return n, err
}

// readTrailers reads the trailer section after the last chunk into the
// request's Trailer, keeping only the declared names.
func (b *requestBody) readTrailers() error {
	c := b.c
	size := 0
	var scratch []byte
	for {
		line, err := c.readLine(&size, &scratch)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if len(line) == 0 {
			return nil
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		v = bytes.Trim(v, " \t")
		if !ok || !validToken(k) || !validValue(v) {
			return errors.New("malformed trailer line")
		}
		key := textproto.CanonicalMIMEHeaderKey(string(k))
		if _, declared := c.req.Trailer[key]; declared {
			c.req.Trailer[key] = append(c.req.Trailer[key], string(v))
		}
	}
}

func (b *requestBody) Close() error { return nil }

// drain reads what is left of the body, up to a limit, and reports
// whether the connection can be reused.
func (b *requestBody) drain() bool {
	if b.eof() {
		return true
	}
	if b.err != nil || b.c.br == nil {
		return false
	}
	if b.expect {
		// The client waits for a 100 Continue that never came: it may or
		// may not send the body.
		return false
	}
	n, err := io.CopyN(io.Discard, b, maxPostHandlerDiscard+1)
	return n <= maxPostHandlerDiscard && (err == io.EOF || (err == nil && b.eof()))
}

func (c *serverConn) ensureWriter() {
	if c.bw == nil {
		c.bw = c.s.pools.writer(c.nc)
	}
}

// response is the http.ResponseWriter of a serverConn, reused by each
// request.
type response struct {
	c             *serverConn
	header        http.Header
	status        int
	statusSet     bool
	wroteHeader   bool
	chunked       bool
	noBody        bool // HEAD, 204, 304: the body is dropped
	contentLength int64
	written       int64
	err           error
	scratch       [20]byte
}

var (
	_ http.ResponseWriter = (*response)(nil)
	_ http.Flusher        = (*response)(nil)
	_ http.Hijacker       = (*response)(nil)
)

func (w *response) reset() {
	clear(w.header)
	w.status, w.statusSet, w.wroteHeader, w.chunked, w.noBody = 0, false, false, false, false
	w.contentLength, w.written, w.err = -1, 0, nil
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.wroteHeader || w.c.hijacked {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// Interim response: out at once, the final one comes later.
		c := w.c
		c.ensureWriter()
		w.writeStatusLine(code)
		w.writeHeaderFields()
		c.bw.WriteString("\r\n")
		if err := c.bw.Flush(); err != nil {
			w.err = err
		}
		return
	}
	if !w.statusSet {
		w.status, w.statusSet = code, true
	}
}

// bodyForbidden reports whether the response may carry no body.
func (w *response) bodyForbidden() bool {
	return w.c.req.Method == http.MethodHead || w.status == http.StatusNoContent ||
		w.status == http.StatusNotModified || (w.status >= 100 && w.status < 200)
}

// writeHead writes the status line and headers and decides the body's
// framing.
func (w *response) writeHead() {
	c := w.c
	w.wroteHeader = true
	if !w.statusSet {
		w.status, w.statusSet = http.StatusOK, true
	}
	c.ensureWriter()
	w.noBody = w.bodyForbidden()
	if v := w.header["Content-Length"]; len(v) > 0 {
		if n, ok := parseContentLength([]byte(v[0])); ok {
			w.contentLength = n
		} else {
			delete(w.header, "Content-Length")
		}
	}
	if cv := w.header["Connection"]; (cv != nil && headerHasToken(cv, "close")) || c.s.inShutdown.Load() {
		c.closeAfter = true
	}
	if !w.noBody && w.contentLength < 0 {
		if c.req.ProtoMinor >= 1 {
			w.chunked = true
		} else {
			c.closeAfter = true // HTTP/1.0: the end of the connection ends the body
		}
	}
	w.writeStatusLine(w.status)
	w.writeHeaderFields()
	if _, ok := w.header["Date"]; !ok {
		c.bw.Write(c.s.dateHeader(time.Now()))
	}
	if w.chunked {
		c.bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case c.closeAfter:
		if w.header["Connection"] == nil {
			c.bw.WriteString("Connection: close\r\n")
		}
	case c.req.ProtoMinor == 0:
		c.bw.WriteString("Connection: keep-alive\r\n")
	}
	c.bw.WriteString("\r\n")
}

func (w *response) writeStatusLine(code int) {
	bw := w.c.bw
	if code == http.StatusOK {
		bw.WriteString("HTTP/1.1 200 OK\r\n")
		return
	}
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(w.scratch[:0], int64(code), 10))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(code))
	bw.WriteString("\r\n")
}

func (w *response) writeHeaderFields() {
	bw := w.c.bw
	for k, vs := range w.header {
		switch {
		case k == "Transfer-Encoding" || k == "Trailer" && w.chunked:
			continue
		case len(k) > len(http.TrailerPrefix) && k[:len(http.TrailerPrefix)] == http.TrailerPrefix:
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			writeSanitized(bw, v)
			bw.WriteString("\r\n")
		}
	}
	if w.chunked {
		if decl := w.header["Trailer"]; decl != nil {
			bw.WriteString("Trailer: ")
			for i, v := range decl {
				if i > 0 {
					bw.WriteString(", ")
				}
				writeSanitized(bw, v)
			}
			bw.WriteString("\r\n")
		}
	}
}

// writeSanitized writes a header value with line breaks replaced by
// spaces, so that a value can never end the head early.
func writeSanitized(bw *bufio.Writer, v string) {
	for i := 0; i < len(v); i++ {
		if v[i] == '\r' || v[i] == '\n' {
			for j := 0; j < len(v); j++ {
				if v[j] == '\r' || v[j] == '\n' {
					bw.WriteByte(' ')
				} else {
					bw.WriteByte(v[j])
				}
			}
			return
		}
	}
	bw.WriteString(v)
}

// writeTrailers writes the trailers of a chunked response: headers named
// in Trailer, and those set with http.TrailerPrefix.
func (w *response) writeTrailers() {
	bw := w.c.bw
	for _, name := range hopTokens(w.header["Trailer"]) {
		key := textproto.CanonicalMIMEHeaderKey(name)
		for _, v := range w.header[key] {
			bw.WriteString(key)
			bw.WriteString(": ")
			writeSanitized(bw, v)
			bw.WriteString("\r\n")
		}
	}
	for k, vs := range w.header {
		if len(k) <= len(http.TrailerPrefix) || k[:len(http.TrailerPrefix)] != http.TrailerPrefix {
			continue
		}
		for _, v := range vs {
			bw.WriteString(k[len(http.TrailerPrefix):])
			bw.WriteString(": ")
			writeSanitized(bw, v)
			bw.WriteString("\r\n")
		}
	}
}

func (w *response) Write(p []byte) (int, error) {
	if w.c.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.writeHead()
	}
	if w.err != nil {
		return 0, w.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if w.noBody {
		if w.c.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	bw := w.c.bw
	var err error
	n := len(p)
	if w.contentLength >= 0 {
		if left := w.contentLength - w.written; int64(n) > left {
			n = int(left)
			err = http.ErrContentLength
		}
		if _, werr := bw.Write(p[:n]); werr != nil {
			w.err = werr
			return 0, werr
		}
		w.written += int64(n)
		return n, err
	}
	if w.chunked {
		bw.Write(strconv.AppendInt(w.scratch[:0], int64(n), 16))
		bw.WriteString("\r\n")
		bw.Write(p)
		if _, werr := bw.WriteString("\r\n"); werr != nil {
			w.err = werr
			return 0, werr
		}
	} else if _, werr := bw.Write(p); werr != nil {
		w.err = werr
		return 0, werr
	}
	w.written += int64(n)
	return n, nil
}

func (w *response) Flush() { _ = w.FlushError() }

// FlushError sends what was written so far (http.ResponseController).
func (w *response) FlushError() error {
	if w.c.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.writeHead()
	}
	if w.err != nil {
		return w.err
	}
	if err := w.c.bw.Flush(); err != nil {
		w.err = err
		return err
	}
	return nil
}

// Hijack hands the connection over (upgrades): the serve loop lets go of
// it when the handler returns.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if c.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.wroteHeader {
		return nil, nil, errors.New("hijacking after the response head was written")
	}
	c.stopWatch()
	c.watchMu.Lock()
	c.hijacked = true
	c.watchMu.Unlock()
	c.state.Store(connClosed)
	if c.br == nil {
		c.br = c.s.pools.reader(&c.cr)
	}
	if c.cr.hasByte {
		// A byte the watch read (the upgraded stream's first) goes into
		// the buffer, where whoever takes the connection looks for what
		// was read of it already.
		_, _ = c.br.Peek(c.br.Buffered() + 1)
	}
	c.ensureWriter()
	_ = c.nc.SetDeadline(time.Time{})
	return c.nc, bufio.NewReadWriter(c.br, c.bw), nil
}

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.nc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// handoffListener is a net.Listener of connections handed over by the
// HTTP/1.1 loop.
type handoffListener struct {
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newHandoffListener() *handoffListener {
	return &handoffListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoffListener) hand(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return handoffAddr{} }

type handoffAddr struct{}

func (handoffAddr) Network() string { return "handoff" }
func (handoffAddr) String() string  { return "handoff" }

// prefixConn is a connection whose first bytes were read already.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }
