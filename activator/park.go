package activator

import (
	"bytes"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// Parking: a request for a route without a ready endpoint waits in the
// route's queue with no goroutine at all. Its connection's goroutine
// returns; a timer covers the queue timeout and the server's connWatcher
// (epoll) notices the client going away; whichever of release, timeout or
// client gone comes first decides, and a new goroutine resumes the
// connection. A held request then costs its connection's state (a few
// KiB), not a goroutine stack and buffers.
//
// Requests that cannot park wait in waitReady on their own goroutine:
// with tracing on (the server span covers the wait), a request body not
// read yet, bytes of a next request already read, or no connWatcher on
// this platform.

// Outcomes of a parked request.
const (
	parkNone    int32 = iota // not parked
	parkWaiting              // in the queue
	parkReleased
	parkTimedOut
	parkGone
	parkRouteGone // released because a reload removed the route
)

// parking is a serverConn's state while parked; reused by each request.
type parking struct {
	w       waiter
	rt      *route
	start   time.Time
	outcome atomic.Int32
	// refs counts what must happen before the connection resumes: the
	// parking goroutine leaving, and an outcome.
	refs      atomic.Int32
	timer     *time.Timer // made once per connection
	watchID   uint64      // in the connWatcher; 0: not watched
	releaseFn func()      // c.parkRelease, made once
}

// tryPark parks the request just read if its route has no ready endpoint.
// It reports whether it did: the calling goroutine must then leave the
// connection alone.
func (c *serverConn) tryPark() bool {
	s := c.s
	a := s.a
	if s.watcher == nil || a.tracer != nil {
		return false
	}
	rt := a.table.Load().router.match(c.req.Host, c.req.URL.Path, c.req.Header)
	if rt == nil || rt.cfg.Queue.Size == 0 || rt.mayGo(rt.readyEndpoints()) {
		return false
	}
	c.body.timeout = rt.cfg.Timeouts.Request
	if !c.bodyDone.Load() && !c.readBodyToPark() {
		return false
	}
	// From here no watch may read the connection: parked, it is the
	// connWatcher's.
	c.stopWatch()
	if c.cr.hasByte || c.br.Buffered() > 0 || c.bw != nil {
		c.armWatch()
		return false
	}
	p := &c.park
	if p.releaseFn == nil {
		p.releaseFn = c.parkRelease
		p.timer = time.AfterFunc(time.Hour, c.parkTimeout)
		p.timer.Stop()
	}
	rt.mu.Lock()
	if rt.closed || rt.queue.n >= rt.cfg.Queue.Size || rt.mayGoLocked(rt.readyEndpoints(), false) {
		rt.mu.Unlock()
		c.armWatch()
		return false
	}
	p.rt = rt
	p.start = time.Now()
	c.heldSince = p.start
	p.outcome.Store(parkWaiting)
	p.refs.Store(2)
	p.w = waiter{wake: p.releaseFn, since: p.start}
	rt.queue.push(&p.w)
	rt.mu.Unlock()

	rt.m.queued.Inc()
	a.demand.Add(rt.ns, rt.svc, 0, 1)
	p.timer.Reset(rt.cfg.Queue.Timeout)
	p.watchID = s.watcher.add(c)
	s.pools.putReader(c.br)
	c.br = nil
	return true
}

// parkLeft is the parking goroutine's last act.
func (c *serverConn) parkLeft() {
	if c.park.refs.Add(-1) == 0 {
		c.resume()
	}
}

// parkRelease is the waiter's wake: an endpoint is ready (or the route
// is gone). Called with the route's lock held: it must not block.
func (c *serverConn) parkRelease() {
	if c.park.outcome.CompareAndSwap(parkWaiting, parkReleased) && c.park.refs.Add(-1) == 0 {
		go c.resume()
	}
}

func (c *serverConn) parkTimeout() { c.parkEnd(parkTimedOut) }

// parkGone is the connWatcher's report: the client closed or reset.
func (c *serverConn) parkGone() { c.parkEnd(parkGone) }

func (c *serverConn) parkEnd(outcome int32) {
	p := &c.park
	if !p.outcome.CompareAndSwap(parkWaiting, outcome) {
		return
	}
	if p.rt.givingUp != nil {
		p.rt.givingUp()
	}
	p.rt.mu.Lock()
	p.rt.leaveQueueLocked(&p.w)
	p.rt.mu.Unlock()
	if p.refs.Add(-1) == 0 {
		go c.resume()
	}
}

// resume carries on with a parked request on a new goroutine.
func (c *serverConn) resume() {
	p := &c.park
	p.timer.Stop()
	if p.watchID != 0 {
		c.s.watcher.remove(c, p.watchID)
		p.watchID = 0
	}
	rt := p.rt
	p.rt = nil
	rt.m.queued.Dec()
	rt.a.demand.Add(rt.ns, rt.svc, 0, -1)
	rt.m.queueWait.Observe(time.Since(p.start).Seconds())
	outcome := p.outcome.Swap(parkNone)
	c.br = c.s.pools.reader(&c.cr)
	c.run(outcome, rt)
}

// answerParked answers a parked request that timed out or whose client
// went away, as the handler would have.
func (c *serverConn) answerParked(outcome int32, rt *route) {
	code := statusClientGone
	switch outcome {
	case parkTimedOut:
		c.resp.reset()
		code = rt.fail(&c.resp, http.StatusGatewayTimeout, "no endpoint became ready in time", nil)
	case parkRouteGone:
		c.resp.reset()
		code = rt.fail(&c.resp, http.StatusServiceUnavailable, "the route was removed", nil)
	}
	rt.m.code(code).Inc()
	rt.m.duration.Observe(time.Since(c.heldSince).Seconds())
}

// routeGone reports whether a reload removed rt without a route that now
// takes its requests (as the handler decides for held requests).
func (c *serverConn) routeGone(rt *route) bool {
	rt.mu.Lock()
	closed := rt.closed
	rt.mu.Unlock()
	if !closed {
		return false
	}
	next := c.s.a.table.Load().router.match(c.req.Host, c.req.URL.Path, c.req.Header)
	return next == nil || next == rt
}

// readBodyToPark reads a request body of known length up to
// MaxRetryBodyBytes (an LLM prompt, say) into memory, so that the request
// can park and its client be watched; the proxy would buffer it anyway.
// It reports whether the body is read.
func (c *serverConn) readBodyToPark() bool {
	r := c.req
	if r.ContentLength <= 0 || r.ContentLength > MaxRetryBodyBytes || r.Body != &c.body {
		return false
	}
	b := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(&c.body, b); err != nil {
		return false // the handler sees the same error on its own read
	}
	if !c.body.eof() {
		return false
	}
	c.parkedBody.Reset(b)
	r.Body = &c.parkedBody
	if c.bw != nil && c.bw.Buffered() == 0 {
		// Only a 100 Continue went out.
		c.s.pools.putWriter(c.bw)
		c.bw = nil
	}
	return true
}

// parkedBody is a request body read before parking.
type parkedBody struct{ bytes.Reader }

func (*parkedBody) Close() error { return nil }
