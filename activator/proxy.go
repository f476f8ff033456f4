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
	"net/textproto"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const (
	// MaxAttempts bounds the upstream attempts of one request.
	MaxAttempts = 5
	// RetryBackoff is the wait before the second attempt after a connect
	// failure; it doubles for each further attempt (25, 50, 100, 200 ms).
	RetryBackoff = 25 * time.Millisecond
	// MaxRetryBodyBytes is the largest request body (with a known length)
	// that is buffered so that the request can be sent again when a reused
	// connection turns out to be closed.
	MaxRetryBodyBytes = 64 << 10

	upstreamReadBuffer  = 8 << 10
	upstreamWriteBuffer = 8 << 10
	// maxResponseHeaderBytes bounds an upstream response head.
	maxResponseHeaderBytes = 64 << 10
	// maxInternedHeaders bounds each connection's caches of header names
	// and values.
	maxInternedHeaders = 64
)

// aLongTimeAgo is a deadline in the past, to abort blocked I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// connPool holds the idle HTTP/1.1 connections to one endpoint, most
// recently used first (LIFO keeps few connections warm and lets the rest
// age out).
//
// It also caps the connections to its endpoint, idle and in use: when a
// queue of held requests is released onto a fresh pod, the requests beyond
// the cap wait for a connection instead of opening thousands at once.
type connPool struct {
	addr    string
	a       *Activator
	slots   chan struct{} // one per open connection; its capacity is the cap
	mu      sync.Mutex
	idle    []*upConn
	waiters []chan *upConn // requests waiting for a connection, oldest first
	closed  bool           // the endpoint is gone: returned connections are closed
	noReuse bool           // the endpoint is terminating: nothing goes back idle
	// handedOff, when set (by tests), runs after a connection was handed
	// to a waiter and before the waiter takes it.
	handedOff func()
	// closedIdle and liveIdle learn the backend's keep-alive timeout, in
	// nanoseconds (0: nothing seen yet): the shortest time idle after
	// which it had closed a connection, and the longest after which one
	// was still open. See reuseLimit.
	closedIdle, liveIdle atomic.Int64
}

// reuseLimit is how long a connection may have been idle and still be
// reused. The check before a reuse (usable) catches a connection that the
// backend closed while idle, but not one it closes at the very moment the
// request goes out: a request sent just as the backend's keep-alive timeout
// passes meets its FIN or reset with nothing answered, and a POST cannot be
// sent again (nginx and Go's Transport fail it too). So once the backend
// was seen closing connections idle for d, those idle for more than 3/4 of
// d are not reused but replaced by a new connection, which keeps requests
// out of that window at the cost of a dial now and then.
func (p *connPool) reuseLimit() time.Duration {
	limit := p.a.upstreamIdle
	if d := time.Duration(p.closedIdle.Load()); d > 0 && d*3/4 < limit {
		limit = d * 3 / 4
	}
	return limit
}

// minLearnedIdle is the shortest keep-alive timeout reuseLimit learns.
// Servers' keep-alive timeouts are seconds (uvicorn 5 s, gunicorn 2 s,
// Node.js 5 s, nginx 75 s); a connection closed sooner was closed for
// another reason (a worker restarting, a request limit).
const minLearnedIdle = time.Second

// sawIdle records that a connection idle for d was still open, or, when
// closed, that the backend had closed it. A close after less time idle
// than a connection was seen open (a backend restarting, not timing out),
// or after less than minLearnedIdle, teaches nothing.
func (p *connPool) sawIdle(d time.Duration, closed bool) {
	if !closed {
		for {
			old := p.liveIdle.Load()
			if int64(d) <= old || p.liveIdle.CompareAndSwap(old, int64(d)) {
				return
			}
		}
	}
	if d < minLearnedIdle || int64(d) < p.liveIdle.Load() {
		return
	}
	for {
		old := p.closedIdle.Load()
		if (old != 0 && int64(d) >= old) || p.closedIdle.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

func (a *Activator) newPool(addr string) *connPool {
	return &connPool{addr: addr, a: a, slots: make(chan struct{}, a.maxConns)}
}

// discard closes a connection for good and frees its slot.
func (p *connPool) discard(c *upConn) {
	c.nc.Close()
	<-p.slots
}

// acquire takes a slot for a new connection, or, while the endpoint has as
// many connections as it may, waits until one is freed or handed over by a
// request that finished with it (then returns it). An idle connection is
// closed to make room for a fresh one.
func (p *connPool) acquire(ctx context.Context) (*upConn, error) {
	for {
		select {
		case p.slots <- struct{}{}:
			return nil, nil
		default:
		}
		p.mu.Lock()
		if n := len(p.idle); n > 0 {
			c := p.idle[0] // the oldest
			copy(p.idle, p.idle[1:])
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
			p.mu.Unlock()
			p.discard(c)
			continue
		}
		ch := make(chan *upConn, 1)
		p.waiters = append(p.waiters, ch)
		p.mu.Unlock()
		select {
		case c := <-ch:
			return c, nil
		case p.slots <- struct{}{}:
			if c := p.leave(ch); c != nil {
				// Handed a connection as well: keep that one.
				<-p.slots
				return c, nil
			}
			return nil, nil
		case <-ctx.Done():
			if c := p.leave(ch); c != nil {
				p.put(c)
			}
			return nil, ctx.Err()
		}
	}
}

// leave takes a waiter off the list. It returns the connection handed to
// the waiter before it could leave, if any: put hands over under p.mu, so
// a waiter no longer on the list has its connection in ch already, and
// one that gives up at the moment of the hand-off cannot lose it (with
// its slot, for good).
func (p *connPool) leave(ch chan *upConn) *upConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i := slices.Index(p.waiters, ch); i >= 0 {
		p.waiters = slices.Delete(p.waiters, i, i+1)
		return nil
	}
	return <-ch
}

// get returns an idle connection, or dials a new one.
//
// resendable says the request may be sent again if the connection turns
// out to be closed (see roundTrip): then a connection idle for less than
// minLearnedIdle is reused without the check, which saves a syscall per
// request on busy keep-alive connections. No server's keep-alive timeout is that short, so such a
// connection is closed only by accident (a restart), which the resend
// covers; a POST is always checked.
func (p *connPool) get(ctx context.Context, fresh, resendable bool) (*upConn, error) {
	if !fresh {
		if c := p.takeIdle(resendable); c != nil {
			return c, nil
		}
	}
	c, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	if c != nil {
		if c.usable() {
			c.reused, c.idleFor = true, time.Since(c.idleAt)
			return c, nil
		}
		// Closed by the backend since its last answer: its slot is ours
		// for a new connection.
		c.nc.Close()
	}
	nc, err := p.a.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		<-p.slots
		return nil, err
	}
	c = &upConn{
		nc:    nc,
		pool:  p,
		br:    bufio.NewReaderSize(nc, upstreamReadBuffer),
		bw:    bufio.NewWriterSize(nc, upstreamWriteBuffer),
		abort: func() { _ = nc.SetDeadline(aLongTimeAgo) },
	}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			if check := newIdleCheck(c); check != nil {
				c.rc, c.idleCheck = rc, check
			}
		}
	}
	return c, nil
}

// takeIdle returns the most recently used idle connection that is still
// usable, closing those idle too long or closed by the backend.
func (p *connPool) takeIdle(resendable bool) *upConn {
	now := time.Now()
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return nil
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		idle := now.Sub(c.idleAt)
		if resendable && idle < minLearnedIdle && idle < p.reuseLimit() && c.br.Buffered() == 0 {
			c.reused, c.idleFor = true, idle
			return c
		}
		if idle < p.reuseLimit() {
			ok := c.usable()
			p.sawIdle(idle, !ok)
			if ok {
				c.reused, c.idleFor = true, idle
				return c
			}
		}
		p.discard(c)
	}
}

// put returns a connection whose last exchange completed cleanly.
func (p *connPool) put(c *upConn) {
	c.idleAt = time.Now()
	p.mu.Lock()
	// The oldest request waiting for a connection takes this one over.
	// The hand-off is made under p.mu, which leave takes too: a waiter
	// that gives up meanwhile finds the connection and puts it back.
	if len(p.waiters) > 0 && !p.closed && !p.noReuse {
		ch := p.waiters[0]
		p.waiters = slices.Delete(p.waiters, 0, 1)
		ch <- c // buffered, and written once
		p.mu.Unlock()
		if p.handedOff != nil {
			p.handedOff()
		}
		return
	}
	if p.closed || p.noReuse || len(p.idle) >= p.a.maxIdle {
		p.mu.Unlock()
		p.discard(c)
		return
	}
	// Connections idle too long sit at the bottom; drop one per put so the
	// pool shrinks after a burst without a sweeper goroutine.
	var old *upConn
	if len(p.idle) > 0 && c.idleAt.Sub(p.idle[0].idleAt) > p.a.upstreamIdle {
		old = p.idle[0]
		copy(p.idle, p.idle[1:])
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
	if old != nil {
		p.discard(old)
	}
}

// closeIdle closes the idle connections and keeps new ones from idling.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	p.noReuse = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		p.discard(c)
	}
}

// reuse lets connections go back idle again (the endpoint is ready).
func (p *connPool) reuse() {
	p.mu.Lock()
	if !p.closed {
		p.noReuse = false
	}
	p.mu.Unlock()
}

// close closes the idle connections; those in use close when returned.
func (p *connPool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.closeIdle()
}

// upConn is one upstream HTTP/1.1 connection.
type upConn struct {
	nc          net.Conn
	br          *bufio.Reader
	bw          *bufio.Writer
	pool        *connPool
	idleAt      time.Time
	reused      bool
	idleFor     time.Duration // how long it was idle before this reuse
	hasDeadline bool
	scratch     [32]byte
	intern      interner
	// abort unblocks the connection's I/O at once; made once per
	// connection so that arming it per request allocates no closure.
	abort func()
	// rc and idleCheck look at the socket before a reuse (nil where the
	// platform has no non-blocking peek); idleCheck sets idleOK.
	rc        syscall.RawConn
	idleCheck func(fd uintptr)
	idleOK    bool
}

// usable reports whether the connection, idle since its last exchange,
// may carry a request: the backend has neither closed it nor written to
// it unasked. A backend closes idle connections after its own keep-alive
// timeout (uvicorn, which serves vLLM, after 5 s; net/http after its
// IdleTimeout), or right after an answer without saying so; a request sent
// on such a connection fails, and one that cannot be sent twice (a POST)
// would fail for the client. The check costs one non-blocking recv per
// reuse and no allocation.
func (c *upConn) usable() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	if c.idleCheck == nil {
		return true
	}
	c.idleOK = false
	if err := c.rc.Control(c.idleCheck); err != nil {
		return false
	}
	return c.idleOK
}

func (c *upConn) setDeadline(t time.Time) {
	if t.IsZero() && !c.hasDeadline {
		return
	}
	c.hasDeadline = !t.IsZero()
	_ = c.nc.SetDeadline(t)
}

// bodyKind says how the request body travels upstream.
type bodyKind uint8

const (
	bodyNone     bodyKind = iota
	bodyBuffered          // read in full, may be sent again
	bodyFixed             // known length, streamed
	bodyChunked           // unknown length, streamed chunked
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// errNotSent marks a failure before any byte of the response was read and
// before the request body was consumed beyond what can be replayed.
type retryableError struct {
	err    error
	dial   bool // the connection could not be made
	reused bool // an idle connection turned out to be closed
}

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// exchange is the state of one proxied request.
type exchange struct {
	r        *http.Request
	w        http.ResponseWriter
	rt       *route
	kind     bodyKind
	body     []byte // bodyBuffered
	bodyBuf  *[]byte
	upgrade  string // the Upgrade header, for an upgrade request
	trace    propagation.MapCarrier
	deadline time.Time
	dirty    bool // bytes written to the client since the last flush
	// prefix is the start of a bodyFixed body, read before an endpoint
	// is picked to hash it for affinity; it is sent before the rest.
	prefix []byte
	key    uint64 // the affinity key's hash, if hasKey
	hasKey bool
}

// proxy sends the request to an endpoint of the route and copies the
// answer back. It returns the status code for the metrics.
func (rt *route) proxy(w http.ResponseWriter, r *http.Request, ready []*Endpoint) int {
	a := rt.a
	x := exchange{r: r, w: w, rt: rt}
	if rt.cfg.Timeouts.Request > 0 {
		x.deadline = time.Now().Add(rt.cfg.Timeouts.Request)
	}
	if b, ok := r.Body.(*requestBody); ok {
		b.timeout = rt.cfg.Timeouts.Request
	}
	switch {
	case r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody:
		x.kind = bodyNone
	case r.ContentLength > 0 && r.ContentLength <= MaxRetryBodyBytes:
		x.bodyBuf = bufPool.Get().(*[]byte)
		defer bufPool.Put(x.bodyBuf)
		if int64(cap(*x.bodyBuf)) < r.ContentLength {
			// Pooled buffers are sized for the common case; a larger
			// retryable body gets its own, which the pool then keeps.
			*x.bodyBuf = make([]byte, MaxRetryBodyBytes)
		}
		b := (*x.bodyBuf)[:r.ContentLength]
		if _, err := io.ReadFull(r.Body, b); err != nil {
			code := clientBodyStatus(err)
			http.Error(w, "reading the request body: "+err.Error(), code)
			return code
		}
		x.kind, x.body = bodyBuffered, b
	case r.ContentLength > 0:
		x.kind = bodyFixed
	default:
		x.kind = bodyChunked
	}
	if r.ProtoMajor == 1 && r.Header["Upgrade"] != nil && headerHasToken(r.Header["Connection"], "upgrade") {
		x.upgrade = r.Header.Get("Upgrade")
	}
	if aff := rt.cfg.Affinity; aff != nil {
		if code := x.readAffinityKey(aff); code != 0 {
			return code
		}
	}

	ctx := r.Context()
	var span trace.Span
	if a.tracer != nil {
		ctx, span = a.tracer.Start(ctx, "proxy "+rt.cfg.Name, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("nemesis.route", rt.cfg.Name), attribute.String("http.request.method", r.Method)))
		defer span.End()
		x.trace = propagation.MapCarrier{}
		a.prop.Inject(ctx, x.trace)
	}

	// The route may change below (a reload while the request waits): the
	// counts end where they began.
	m, ns, svc := rt.m, rt.ns, rt.svc
	m.inFlight.Inc()
	a.demand.Add(ns, svc, 1, 0)
	defer func() {
		m.inFlight.Dec()
		a.demand.Add(ns, svc, -1, 0)
	}()

	var (
		failed  *Endpoint
		fresh   bool
		backoff = RetryBackoff
		lastErr error
	)
	for attempt := 1; ; attempt++ {
		ep, code := x.start(ctx, ready, failed)
		rt = x.rt
		if ep == nil {
			return rt.waitFailed(w, code, span)
		}
		if span != nil {
			span.SetAttributes(attribute.String("server.address", ep.addr), attribute.Int("nemesis.attempt", attempt))
		}
		code, err := x.attempt(ctx, ep, fresh)
		if err == nil {
			if span != nil && code >= 500 {
				span.SetStatus(codes.Error, http.StatusText(code))
			}
			return code
		}
		lastErr = err
		var re *retryableError
		if !errors.As(err, &re) || attempt >= MaxAttempts || ctx.Err() != nil {
			break
		}
		rt.m.retries.Inc()
		if re.reused {
			// The endpoint is fine; only its idle connection was stale.
			fresh, failed = true, nil
			a.logger.Debug("retrying on a fresh connection", "route", rt.cfg.Name, "endpoint", ep.addr, "err", err)
			continue
		}
		fresh, failed = false, ep
		a.logger.Debug("retrying after connect failure", "route", rt.cfg.Name, "endpoint", ep.addr, "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		backoff *= 2
		ready = rt.readyEndpoints()
	}
	if span != nil {
		span.RecordError(lastErr)
	}
	if ctx.Err() != nil || errors.Is(lastErr, errClientGone) {
		return statusClientGone
	}
	if errors.Is(lastErr, errResponseStarted) {
		a.logger.Warn("response cut off", "route", rt.cfg.Name, "err", lastErr)
		return statusAborted
	}
	var be *clientBodyError
	if errors.As(lastErr, &be) {
		return rt.fail(w, clientBodyStatus(be.err), be.Error(), span)
	}
	var he *headerTimeoutError
	if errors.As(lastErr, &he) {
		return rt.fail(w, http.StatusGatewayTimeout, "the upstream did not answer in time", span)
	}
	a.logger.Warn("proxying failed", "route", rt.cfg.Name, "err", lastErr)
	return rt.fail(w, http.StatusBadGateway, "the upstream failed: "+lastErr.Error(), span)
}

// errClientGone marks a failure to write to the client.
var errClientGone = errors.New("client went away")

// errResponseStarted marks a failure after the response head was sent:
// nothing can be said to the client any more.
var errResponseStarted = errors.New("upstream failed during the response body")

type headerTimeoutError struct{ err error }

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (e *headerTimeoutError) Error() string { return "waiting for response headers: " + e.err.Error() }
func (e *headerTimeoutError) Unwrap() error { return e.err }

func (rt *route) fail(w http.ResponseWriter, code int, msg string, span trace.Span) int {
	if span != nil {
		span.SetStatus(codes.Error, msg)
	}
	h := w.Header()
	for k := range h {
		delete(h, k)
	}
	if code == http.StatusServiceUnavailable {
		h.Set("Retry-After", RetryAfterSeconds)
	}
	http.Error(w, msg, code)
	return code
}

// start picks an endpoint of ready through the policy (avoiding failed)
// and counts the request in flight there. If none has room, it waits for
// one, first in line. It returns nil and the status code to answer if the
// wait fails.
//
// ready may be stale: read before the request's body (which a client may
// dribble for seconds), or before a backoff. An endpoint that left the
// ready set since is not used: a terminating one gets nothing new, and
// one that left both sets may have been forgotten, a new Endpoint
// counting the address's requests if it comes back, so a request counted
// at the old one would exceed the cap. notReady is read after the count
// is raised, and updateEndpoints sets it before it reads the count (both
// sequentially consistent): either the update keeps the endpoint, seeing
// the request, or the request sees notReady and backs out. That costs one
// atomic load per request.
// A reload that replaced the route meanwhile hands the request to the
// route now in force (x.rt), as it does a held request.
func (x *exchange) start(ctx context.Context, ready []*Endpoint, failed *Endpoint) (*Endpoint, int) {
	for {
		rt := x.rt
		if len(ready) > 0 {
			if ep := rt.pickExcluding(ready, failed, x.key, x.hasKey); ep != nil && ep.tryStart(rt.limit) {
				if !ep.notReady.Load() {
					return ep, 0
				}
				ep.done()
				ready = rt.readyEndpoints()
				continue
			}
		}
		var code int
		if ready, code = rt.waitReady(ctx, true); ready != nil {
			continue
		}
		if code != statusRouteGone {
			return nil, code
		}
		r := x.r
		next := rt.a.table.Load().router.match(r.Host, r.URL.Path, r.Header)
		if next == nil || next == rt {
			return nil, code
		}
		x.rt = next
		ready = next.readyEndpoints()
	}
}

// waitFailed answers a request that waited for an endpoint in vain.
func (rt *route) waitFailed(w http.ResponseWriter, code int, span trace.Span) int {
	switch code {
	case statusClientGone:
		return code
	case statusRouteGone:
		return rt.fail(w, http.StatusServiceUnavailable, "the route was removed", span)
	}
	return rt.fail(w, code, "no ready endpoint", span)
}

// pickExcluding picks through the policy, avoiding one failed endpoint
// when another is ready, and on a capped route picking only among the
// endpoints with a free slot (nil if none has one). hasKey says the
// request has an affinity key, key.
func (rt *route) pickExcluding(ready []*Endpoint, failed *Endpoint, key uint64, hasKey bool) *Endpoint {
	if rt.limit <= 0 && (failed == nil || len(ready) < 2) {
		return rt.pick(ready, key, hasKey)
	}
	if failed == nil && len(ready) > 0 && rt.allHaveRoom(ready) {
		return rt.pick(ready, key, hasKey) // nothing to leave out: no copy
	}
	others := make([]*Endpoint, 0, len(ready))
	var failedHasRoom bool
	for _, ep := range ready {
		if rt.limit > 0 && ep.inFlight.Load() >= rt.limit {
			continue
		}
		if ep == failed {
			failedHasRoom = true
			continue
		}
		others = append(others, ep)
	}
	switch {
	case len(others) > 0:
		return rt.pick(others, key, hasKey)
	case failedHasRoom || (rt.limit <= 0 && failed != nil):
		return failed
	}
	return nil
}

// pick picks through the policy, with the affinity key if the request
// has one and the policy takes it.
func (rt *route) pick(ready []*Endpoint, key uint64, hasKey bool) *Endpoint {
	if hasKey {
		if kp, ok := rt.policy.(keyedPolicy); ok {
			return kp.PickKeyed(ready, key)
		}
	}
	return rt.policy.Pick(ready)
}

// readAffinityKey hashes the request's affinity key. For body-prefix, a
// body of known length that is not buffered whole has its first
// PrefixBytes read now (and sent first, see copyFixedBody); a chunked
// body has no key and streams as it comes. It returns a status code when
// reading the body failed and the client has been answered.
func (x *exchange) readAffinityKey(aff *AffinitySpec) int {
	var prefix []byte
	if aff.Key == AffinityBodyPrefix {
		switch x.kind {
		case bodyBuffered:
			prefix = x.body
		case bodyFixed:
			x.prefix = make([]byte, min(int64(aff.PrefixBytes), x.r.ContentLength))
			if _, err := io.ReadFull(x.r.Body, x.prefix); err != nil {
				code := clientBodyStatus(err)
				http.Error(x.w, "reading the request body: "+err.Error(), code)
				return code
			}
			prefix = x.prefix
		}
	}
	x.key, x.hasKey = affinityKey(aff, x.r.Header, prefix)
	return 0
}

// attempt runs one exchange with ep. It returns the status code sent to
// the client, or an error; a *retryableError means nothing reached the
// client and the request may be sent again.
func (x *exchange) attempt(ctx context.Context, ep *Endpoint, fresh bool) (int, error) {
	// The caller counted the request in flight at ep (tryStart).
	defer ep.done()
	c, err := ep.pool.get(ctx, fresh, x.kind != bodyFixed && x.kind != bodyChunked && idempotent(x.r))
	if err != nil {
		return 0, &retryableError{err: fmt.Errorf("connecting to %s: %w", ep.addr, err), dial: true}
	}
	// A client that goes away aborts the upstream exchange, so that a long
	// generation stops instead of running for nobody.
	stop := context.AfterFunc(ctx, c.abort)
	code, reusable, err := x.roundTrip(c)
	if !stop() {
		reusable = false
		if err == nil && code == 0 {
			err = errClientGone
		}
	}
	if reusable && err == nil {
		c.pool.put(c)
	} else {
		c.pool.discard(c)
	}
	if err != nil && ctx.Err() != nil {
		var re *retryableError
		if !errors.As(err, &re) {
			err = fmt.Errorf("%w: %w", errClientGone, err)
		}
	}
	return code, err
}

// roundTrip writes the request to c and copies the response to the client.
func (x *exchange) roundTrip(c *upConn) (code int, reusable bool, err error) {
	r := x.r
	rt := x.rt
	to := rt.cfg.Timeouts
	// One deadline for writing the request and reading the response head.
	var headDeadline time.Time
	if to.ResponseHeader > 0 {
		headDeadline = time.Now().Add(to.ResponseHeader)
	}
	if !x.deadline.IsZero() && (headDeadline.IsZero() || x.deadline.Before(headDeadline)) {
		headDeadline = x.deadline
	}
	c.setDeadline(headDeadline)

	if err := x.writeRequest(c); err != nil {
		var be *clientBodyError
		switch {
		case errors.As(err, &be):
		case isTimeout(err):
			// The backend stopped reading: it is slow, not gone.
			return 0, false, &headerTimeoutError{err: err}
		case c.reused && x.kind != bodyFixed && x.kind != bodyChunked:
			return 0, false, &retryableError{err: err, reused: true}
		}
		return 0, false, fmt.Errorf("writing the request: %w", err)
	}

	h := x.w.Header()
	var resp responseHead
	for {
		resp, err = c.readResponseHead(h, r.Method == http.MethodHead)
		if err != nil {
			for k := range h {
				delete(h, k)
			}
			// A timeout is no closed connection: the backend has the
			// request and is slow. Sending it again would run it twice
			// and make the client wait twice as long for its 504.
			if isTimeout(err) {
				return 0, false, &headerTimeoutError{err: err}
			}
			// The request went out whole and the connection closed
			// before any answer: a backend closing it as idle at that
			// very moment (its FIN crossed the request; one closed
			// before was caught by usable), but the backend may also
			// have begun the request. Like net/http's Transport and
			// nginx, send it again only when that is safe: idempotent
			// methods, or an idempotency key.
			if resp.nothingRead && c.reused {
				// Most likely the backend's keep-alive timeout passed
				// as the request went out: learn it (see reuseLimit).
				c.pool.sawIdle(c.idleFor, true)
			}
			if resp.nothingRead && c.reused && x.kind != bodyFixed && x.kind != bodyChunked && idempotent(r) {
				return 0, false, &retryableError{err: err, reused: true}
			}
			return 0, false, fmt.Errorf("reading the response: %w", err)
		}
		// Interim answers (100 Continue, 103 Early Hints) are not passed on:
		// the activator sent the whole body already.
		if resp.code >= 100 && resp.code < 200 && resp.code != http.StatusSwitchingProtocols {
			for k := range h {
				delete(h, k)
			}
			continue
		}
		break
	}
	if !x.deadline.Equal(headDeadline) {
		c.setDeadline(x.deadline)
	}
	if resp.code == http.StatusSwitchingProtocols {
		return x.switchProtocols(c, resp)
	}
	x.w.WriteHeader(resp.code)
	reusable, err = x.copyBody(c, resp)
	return resp.code, reusable, err
}

// writeRequest writes the request head and body to c.
func (x *exchange) writeRequest(c *upConn) error {
	r := x.r
	bw := c.bw
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	if uri := r.RequestURI; uri != "" && (uri[0] == '/' || uri == "*") {
		bw.WriteString(uri)
	} else {
		bw.WriteString(r.URL.RequestURI())
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")

	var connTokens []string // names the client's Connection header declared hop-by-hop
	if conn := r.Header["Connection"]; conn != nil {
		connTokens = hopTokens(conn)
	}
	var haveXFHost, haveXFProto bool
	for k, vs := range r.Header {
		switch k {
		case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
			"Trailer", "Transfer-Encoding", "Content-Length", "Expect", "Host", "X-Forwarded-For":
			continue
		case "Upgrade":
			if x.upgrade == "" {
				continue
			}
		case "Te":
			// Only "trailers" may pass a proxy (gRPC needs it).
			if headerHasToken(vs, "trailers") {
				bw.WriteString("Te: trailers\r\n")
			}
			continue
		case "Traceparent", "Tracestate", "Baggage":
			if x.trace != nil {
				continue
			}
		case "X-Forwarded-Host":
			haveXFHost = true
		case "X-Forwarded-Proto":
			haveXFProto = true
		}
		if connTokens != nil && containsFold(connTokens, k) && (k != "Upgrade" || x.upgrade == "") {
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	for k, v := range x.trace {
		bw.WriteString(k)
		bw.WriteString(": ")
		bw.WriteString(v)
		bw.WriteString("\r\n")
	}
	// X-Forwarded-For: the client's chain plus the client itself.
	bw.WriteString("X-Forwarded-For: ")
	if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
		for _, p := range prior {
			bw.WriteString(p)
			bw.WriteString(", ")
		}
	}
	ip := r.RemoteAddr
	if i := strings.LastIndexByte(ip, ':'); i >= 0 {
		ip = ip[:i]
	}
	bw.WriteString(strings.TrimSuffix(strings.TrimPrefix(ip, "["), "]"))
	bw.WriteString("\r\n")
	if !haveXFHost {
		bw.WriteString("X-Forwarded-Host: ")
		bw.WriteString(r.Host)
		bw.WriteString("\r\n")
	}
	if !haveXFProto {
		if r.TLS != nil {
			bw.WriteString("X-Forwarded-Proto: https\r\n")
		} else {
			bw.WriteString("X-Forwarded-Proto: http\r\n")
		}
	}
	if x.upgrade != "" {
		bw.WriteString("Connection: Upgrade\r\n")
	}
	switch x.kind {
	case bodyNone:
		if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
			bw.WriteString("Content-Length: 0\r\n")
		}
	case bodyBuffered, bodyFixed:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(c.scratch[:0], r.ContentLength, 10))
		bw.WriteString("\r\n")
	case bodyChunked:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		if len(r.Trailer) > 0 {
			bw.WriteString("Trailer: ")
			first := true
			for k := range r.Trailer {
				if !first {
					bw.WriteString(", ")
				}
				first = false
				bw.WriteString(k)
			}
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
	switch x.kind {
	case bodyBuffered:
		bw.Write(x.body)
	case bodyFixed:
		if err := x.copyFixedBody(bw); err != nil {
			return err
		}
	case bodyChunked:
		if err := x.copyChunkedBody(c); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// clientBodyStatus is the answer to a request whose body could not be
// read: 408 when it did not arrive within the route's request timeout (as
// nginx answers a client_body_timeout), 400 when it was malformed or cut.
func clientBodyStatus(err error) int {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return http.StatusRequestTimeout
	}
	return http.StatusBadRequest
}

// clientBodyError marks a failure to read the client's request body.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "reading the request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

func (x *exchange) copyFixedBody(bw *bufio.Writer) error {
	n := x.r.ContentLength
	if len(x.prefix) > 0 {
		if _, err := bw.Write(x.prefix); err != nil {
			return err
		}
		n -= int64(len(x.prefix))
	}
	for n > 0 {
		if bw.Available() == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		buf := bw.AvailableBuffer()
		buf = buf[:min(int64(cap(buf)), n)]
		k, err := x.r.Body.Read(buf)
		if k > 0 {
			bw.Write(buf[:k])
			n -= int64(k)
		}
		if err != nil {
			if err == io.EOF && n == 0 {
				break
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return &clientBodyError{err}
		}
	}
	return nil
}

// copyChunkedBody streams a body of unknown length, flushing each piece
// as it arrives.
func (x *exchange) copyChunkedBody(c *upConn) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	bw := c.bw
	for {
		k, err := x.r.Body.Read(buf)
		if k > 0 {
			bw.Write(strconv.AppendInt(c.scratch[:0], int64(k), 16))
			bw.WriteString("\r\n")
			bw.Write(buf[:k])
			bw.WriteString("\r\n")
			if ferr := bw.Flush(); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return &clientBodyError{err}
		}
	}
	bw.WriteString("0\r\n")
	for k, vs := range x.r.Trailer {
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
	return nil
}

// responseHead is what the copy needs to know of a response head.
type responseHead struct {
	code          int
	contentLength int64 // -1: unknown
	chunked       bool
	close         bool // the connection cannot be reused
	noBody        bool
	stream        bool // flush every piece (no length, or text/event-stream)
	nothingRead   bool // the failure came before any byte of the response
}

// commonHeaders interns the canonical names of frequent request and
// response headers.
var commonHeaders = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept-Ranges", "Access-Control-Allow-Origin", "Age", "Cache-Control", "Connection", "Content-Disposition",
		"Content-Encoding", "Content-Language", "Content-Length", "Content-Location", "Content-Range", "Content-Type",
		"Date", "Etag", "Expires", "Keep-Alive", "Last-Modified", "Link", "Location", "Proxy-Connection", "Retry-After",
		"Sec-Websocket-Accept", "Sec-Websocket-Extensions", "Sec-Websocket-Protocol", "Server", "Set-Cookie",
		"Strict-Transport-Security", "Trailer", "Transfer-Encoding", "Upgrade", "Vary", "Via", "Www-Authenticate",
		"X-Content-Type-Options", "X-Frame-Options", "X-Request-Id",
		"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Baggage", "Cookie", "Expect", "Host",
		"Idempotency-Key", "If-Modified-Since", "If-None-Match", "Origin", "Pragma", "Referer", "Sec-Websocket-Key",
		"Sec-Websocket-Version", "Te", "Traceparent", "Tracestate", "User-Agent", "X-Forwarded-For", "X-Forwarded-Host",
		"X-Forwarded-Proto", "X-Idempotency-Key", "X-Real-Ip",
	} {
		m[k] = k
		m[strings.ToLower(k)] = k
	}
	return m
}()

// maxInternedBytes bounds the bytes of the strings an interner keeps
// (names and values): without it, 64 values of up to the head limit each
// would keep megabytes per connection. 4 KiB holds what is worth
// keeping, names and the usual values (a User-Agent, a JWT), and a value
// that does not fit is simply not remembered.
const maxInternedBytes = 4 << 10

// interner turns the header names and values read from one connection
// into strings, allocating only for those not seen before on it. What it
// keeps is bounded by maxInternedHeaders entries and maxInternedBytes.
type interner struct {
	keys   map[string]string // canonical names of the names seen
	values map[string]string // the last value of each header
	bytes  int               // of the strings in keys and values
}

// key returns the canonical name of a header name; cache false keeps it
// from being remembered (a connection's first request).
func (in *interner) key(b []byte, cache bool) string {
	if k, ok := commonHeaders[string(b)]; ok {
		return k
	}
	if k, ok := in.keys[string(b)]; ok {
		return k
	}
	k := textproto.CanonicalMIMEHeaderKey(string(b))
	if !cache || len(in.keys) >= maxInternedHeaders || in.bytes+2*len(b) > maxInternedBytes {
		return k
	}
	if in.keys == nil {
		in.keys = map[string]string{}
	}
	in.keys[string(b)] = k
	in.bytes += 2 * len(b)
	return k
}

// value returns v as a string, reusing the value last seen for the same
// header (Content-Type, Server, a Date within the same second…).
func (in *interner) value(key string, v []byte, cache bool) string {
	old, seen := in.values[key]
	if seen && old == string(v) {
		return old
	}
	s := string(v)
	if !cache {
		return s
	}
	size := in.bytes + len(s)
	if seen {
		size -= len(old)
	} else {
		size += len(key) // shared with the keys, but counted: a bound, not a measure
	}
	if size > maxInternedBytes || !seen && len(in.values) >= maxInternedHeaders {
		return s
	}
	if in.values == nil {
		in.values = map[string]string{}
	}
	in.values[key] = s
	in.bytes = size
	return s
}

type headerPair struct{ k, v string }

// readResponseHead reads a status line and headers, putting the end-to-end
// headers into h.
func (c *upConn) readResponseHead(h http.Header, head bool) (responseHead, error) {
	resp := responseHead{contentLength: -1}
	br := c.br
	line, err := br.ReadSlice('\n')
	if err != nil {
		resp.nothingRead = len(line) == 0
		if errors.Is(err, bufio.ErrBufferFull) {
			err = errors.New("status line too long")
		}
		return resp, err
	}
	// HTTP/1.x NNN reason
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return resp, fmt.Errorf("malformed status line %q", bytes.TrimRight(line, "\r\n"))
	}
	http10 := line[7] == '0'
	code := 0
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return resp, fmt.Errorf("malformed status line %q", bytes.TrimRight(line, "\r\n"))
		}
		code = code*10 + int(d-'0')
	}
	if code < 100 {
		return resp, fmt.Errorf("malformed status code %d", code)
	}
	resp.code = code
	resp.close = http10

	var pairsArr [24]headerPair
	pairs := pairsArr[:0]
	var connTokens []string
	keepAlive10 := false
	size := len(line)
	haveType, haveDate := false, false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				err = errors.New("response header line too long")
			}
			return resp, err
		}
		size += len(line)
		if size > maxResponseHeaderBytes {
			return resp, errors.New("response head too large")
		}
		line = trimEOL(line)
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return resp, fmt.Errorf("malformed header line %q", line)
		}
		kb := line[:colon]
		if kb[len(kb)-1] == ' ' || kb[len(kb)-1] == '\t' {
			return resp, fmt.Errorf("malformed header line %q", line)
		}
		vb := bytes.Trim(line[colon+1:], " \t")
		key := c.intern.key(kb, true)
		switch key {
		case "Content-Length":
			n, perr := strconv.ParseInt(string(vb), 10, 64)
			if perr != nil || n < 0 || (resp.contentLength >= 0 && n != resp.contentLength) {
				return resp, fmt.Errorf("bad Content-Length %q", vb)
			}
			resp.contentLength = n
		case "Transfer-Encoding":
			if !bytes.EqualFold(vb, []byte("chunked")) {
				return resp, fmt.Errorf("unsupported Transfer-Encoding %q", vb)
			}
			resp.chunked = true
			continue
		case "Connection", "Proxy-Connection":
			for _, t := range hopTokens([]string{string(vb)}) {
				switch t {
				case "close":
					resp.close = true
				case "keep-alive":
					keepAlive10 = true
				}
				connTokens = append(connTokens, t)
			}
			continue
		case "Keep-Alive":
			continue
		case "Upgrade":
			if code != http.StatusSwitchingProtocols {
				continue
			}
		case "Content-Type":
			haveType = true
			if bytes.HasPrefix(vb, []byte("text/event-stream")) {
				resp.stream = true
			}
		case "Date":
			haveDate = true
		}
		pairs = append(pairs, headerPair{key, c.intern.value(key, vb, true)})
	}
	if http10 && keepAlive10 {
		resp.close = false
	}
	// One backing array for all values instead of one per header.
	vals := make([]string, len(pairs))
	for i, p := range pairs {
		if connTokens != nil && code != http.StatusSwitchingProtocols && containsFold(connTokens, p.k) {
			continue
		}
		if old, ok := h[p.k]; ok {
			h[p.k] = append(old, p.v)
			continue
		}
		vals[i] = p.v
		h[p.k] = vals[i : i+1 : i+1]
	}
	if resp.chunked {
		resp.contentLength = -1
		delete(h, "Content-Length")
	}
	// Pass the response on as it is: no sniffed Content-Type, no Date the
	// upstream did not send.
	if !haveType {
		h["Content-Type"] = nil
	}
	if !haveDate {
		h["Date"] = nil
	}
	switch {
	case head || code == http.StatusNoContent || code == http.StatusNotModified || code < 200:
		resp.noBody = true
	case !resp.chunked && resp.contentLength < 0:
		// Delimited by the end of the connection.
		resp.close = true
		resp.stream = true
	case resp.chunked:
		resp.stream = true
	}
	return resp, nil
}

func trimEOL(b []byte) []byte {
	b = b[:len(b)-1]
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return b
}

// copyBody copies the response body to the client. It reports whether the
// connection may be reused.
func (x *exchange) copyBody(c *upConn, resp responseHead) (bool, error) {
	if resp.noBody {
		return !resp.close, nil
	}
	var fl http.Flusher
	if resp.stream {
		fl, _ = x.w.(http.Flusher)
	}
	switch {
	case resp.chunked:
		if err := x.copyChunked(c, fl); err != nil {
			return false, err
		}
	case resp.contentLength >= 0:
		if err := x.copyN(c.br, resp.contentLength, fl); err != nil {
			return false, err
		}
	default:
		if err := x.copyN(c.br, -1, fl); err != nil {
			return false, err
		}
		return false, nil
	}
	return !resp.close, nil
}

// copyN copies n bytes (all until EOF when n < 0) from br to the client,
// straight out of the connection buffer.
func (x *exchange) copyN(br *bufio.Reader, n int64, fl http.Flusher) error {
	for n != 0 {
		if br.Buffered() == 0 {
			x.flushIfIdle(br, fl)
			if _, err := br.Peek(1); err != nil {
				if n < 0 && err == io.EOF {
					return nil
				}
				return upstreamBodyError(err)
			}
		}
		k := br.Buffered()
		if n > 0 && int64(k) > n {
			k = int(n)
		}
		b, _ := br.Peek(k)
		if _, err := x.w.Write(b); err != nil {
			return fmt.Errorf("%w: %w", errClientGone, err)
		}
		x.dirty = true
		br.Discard(k)
		if n > 0 {
			n -= int64(k)
		}
	}
	return nil
}

// flushIfIdle flushes what was written to the client when a stream is
// about to wait for more bytes from upstream, so each event of a stream
// (an SSE token) goes out at once while bytes that arrive together still
// leave together.
func (x *exchange) flushIfIdle(br *bufio.Reader, fl http.Flusher) {
	if fl != nil && x.dirty && br.Buffered() == 0 {
		fl.Flush()
		x.dirty = false
	}
}

// copyChunked decodes a chunked body and copies it to the client, then
// passes the trailers on.
func (x *exchange) copyChunked(c *upConn, fl http.Flusher) error {
	br := c.br
	for {
		x.flushIfIdle(br, fl)
		line, err := br.ReadSlice('\n')
		if err != nil {
			return upstreamBodyError(err)
		}
		line = trimEOL(line)
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		line = bytes.TrimRight(line, " \t")
		size, err := parseHex(line)
		if err != nil {
			return upstreamBodyError(err)
		}
		if size == 0 {
			break
		}
		if err := x.copyN(br, size, fl); err != nil {
			return err
		}
		x.flushIfIdle(br, fl)
		crlf, err := br.ReadSlice('\n')
		if err != nil || len(trimEOL(crlf)) != 0 {
			return upstreamBodyError(errors.New("malformed chunk end"))
		}
	}
	// Trailers, up to the empty line.
	for {
		x.flushIfIdle(br, fl)
		line, err := br.ReadSlice('\n')
		if err != nil {
			return upstreamBodyError(err)
		}
		line = trimEOL(line)
		if len(line) == 0 {
			return nil
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok {
			x.w.Header()[http.TrailerPrefix+textproto.CanonicalMIMEHeaderKey(string(k))] = []string{string(bytes.Trim(v, " \t"))}
		}
	}
}

func upstreamBodyError(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: %w", errResponseStarted, err)
}

func parseHex(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 15 {
		return 0, fmt.Errorf("bad chunk size %q", b)
	}
	var n int64
	for _, d := range b {
		switch {
		case d >= '0' && d <= '9':
			d -= '0'
		case d >= 'a' && d <= 'f':
			d = d - 'a' + 10
		case d >= 'A' && d <= 'F':
			d = d - 'A' + 10
		default:
			return 0, fmt.Errorf("bad chunk size %q", b)
		}
		n = n<<4 | int64(d)
	}
	return n, nil
}

// switchProtocols completes an upgrade (WebSocket and the like): the 101
// goes to the client over the hijacked connection, then bytes are copied
// both ways until either side closes.
func (x *exchange) switchProtocols(c *upConn, resp responseHead) (int, bool, error) {
	h := x.w.Header()
	if x.upgrade == "" || !strings.EqualFold(h.Get("Upgrade"), x.upgrade) {
		return 0, false, fmt.Errorf("upstream switched protocols to %q, but the client asked for %q", h.Get("Upgrade"), x.upgrade)
	}
	cc, brw, err := http.NewResponseController(x.w).Hijack()
	if err != nil {
		return 0, false, fmt.Errorf("taking over the client connection: %w", err)
	}
	a := x.rt.a
	a.trackHijacked(cc, true)
	defer a.trackHijacked(cc, false)
	defer cc.Close()
	_ = cc.SetDeadline(time.Time{})
	c.setDeadline(time.Time{})
	if !x.deadline.IsZero() {
		// The request timeout bounds the whole upgraded session too.
		_ = cc.SetDeadline(x.deadline)
		c.setDeadline(x.deadline)
	}
	bw := brw.Writer
	bw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	_ = h.Write(bw)
	bw.WriteString("Connection: Upgrade\r\n\r\n")
	if err := bw.Flush(); err != nil {
		return http.StatusSwitchingProtocols, false, nil
	}
	done := make(chan struct{}, 2)
	go func() {
		// Client → upstream, starting with what the client sent early.
		if n := brw.Reader.Buffered(); n > 0 {
			b, _ := brw.Reader.Peek(n)
			_, _ = c.nc.Write(b)
		}
		_, _ = io.Copy(c.nc, cc)
		done <- struct{}{}
	}()
	go func() {
		// Upstream → client, starting with what is buffered already.
		_, _ = c.br.WriteTo(cc)
		done <- struct{}{}
	}()
	<-done
	// One side finished: end the other.
	_ = cc.SetDeadline(aLongTimeAgo)
	_ = c.nc.SetDeadline(aLongTimeAgo)
	<-done
	return http.StatusSwitchingProtocols, false, nil
}

// hopTokens returns the lower-case tokens of Connection header values.
func hopTokens(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, strings.ToLower(t))
			}
		}
	}
	return out
}

// headerHasToken reports whether a comma-separated header holds token.
func headerHasToken(vals []string, token string) bool {
	for _, v := range vals {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, t := range list {
		if strings.EqualFold(t, s) {
			return true
		}
	}
	return false
}

// idempotent reports whether r may be sent twice: its method is
// idempotent (RFC 9110, 9.2.2), or it carries an idempotency key.
func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return r.Header.Get("Idempotency-Key") != "" || r.Header.Get("X-Idempotency-Key") != ""
}
