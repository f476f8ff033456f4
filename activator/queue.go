package activator

import (
	"context"
	"time"
)

// RetryAfterSeconds is the Retry-After of the 503 a full queue answers:
// long enough for a cold start to make progress, short enough that a
// client does not give up on a service that is about to come up.
const RetryAfterSeconds = "2"

// Outcomes of waiting for an endpoint, used as status codes.
const (
	statusClientGone = 499 // nginx's convention: the client closed the request
	statusRouteGone  = -2  // the route was removed or replaced by a reload
)

// waiter is one request held in a route's queue.
type waiter struct {
	released   chan struct{} // closed when an endpoint is ready or the route is gone; nil for a parked request
	wake       func()        // called after released is closed; may be nil
	since      time.Time     // when the request began to wait, for Status
	prev, next *waiter
	queued     bool
}

// waitQueue is a bounded FIFO of held requests, an intrusive list so that
// a request whose client goes away leaves in O(1). It is guarded by the
// route's mutex.
type waitQueue struct {
	head, tail *waiter
	n          int
}

func (q *waitQueue) push(w *waiter) {
	w.prev, w.next, w.queued = q.tail, nil, true
	if q.tail != nil {
		q.tail.next = w
	} else {
		q.head = w
	}
	q.tail = w
	q.n++
}

func (q *waitQueue) remove(w *waiter) {
	if !w.queued {
		return
	}
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.tail = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
	q.n--
}

// pushFront queues w first: a released request that found no free slot
// keeps its place.
func (q *waitQueue) pushFront(w *waiter) {
	w.prev, w.next, w.queued = nil, q.head, true
	if q.head != nil {
		q.head.prev = w
	} else {
		q.tail = w
	}
	q.head = w
	q.n++
}

// releaseN wakes the n oldest held requests.
func (q *waitQueue) releaseN(n int64) {
	for ; n > 0 && q.head != nil; n-- {
		q.releaseOne()
	}
}

// releaseOne wakes the oldest held request.
func (q *waitQueue) releaseOne() {
	w := q.head
	if w == nil {
		return
	}
	q.remove(w)
	if w.released != nil {
		close(w.released)
	}
	if w.wake != nil {
		w.wake()
	}
}

// releaseAll wakes every held request, oldest first; each then picks an
// endpoint through the route's policy.
func (q *waitQueue) releaseAll() {
	for q.head != nil {
		q.releaseOne()
	}
}

// waitReady holds the request until the route has a ready endpoint. It
// returns the ready set, or nil and the status code to answer: 503 when
// the queue is full, 504 when the queue timeout passed, statusClientGone
// when the client went away, statusRouteGone when a reload removed or
// replaced the route.
func (r *route) waitReady(ctx context.Context, front bool) ([]*Endpoint, int) {
	// A request served by the activator's own server waits on its own
	// goroutine, reading its connection (see serverConn.hold).
	hc, _ := ctx.Value(serverConnKey{}).(*serverConn)
	var start, deadline time.Time
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, statusRouteGone
		}
		if ready := r.readyEndpoints(); r.mayGoLocked(ready, front) {
			r.mu.Unlock()
			return ready, 0
		}
		if r.queue.n >= r.cfg.Queue.Size {
			r.mu.Unlock()
			return nil, 503
		}
		if start.IsZero() {
			start = time.Now()
			deadline = start.Add(r.cfg.Queue.Timeout)
		}
		w := &waiter{released: make(chan struct{}), since: start}
		if hc != nil {
			w.wake = hc.wakeFn
		}
		if front {
			r.queue.pushFront(w)
		} else {
			r.queue.push(w)
		}
		r.mu.Unlock()

		r.m.queued.Inc()
		r.a.demand.Add(r.ns, r.svc, 0, 1)
		code, held := 0, false
		if hc != nil {
			code, held = hc.hold(w.released, deadline)
		}
		if !held {
			code = waitReleased(ctx, w.released, deadline)
		}
		if code != 0 {
			if r.givingUp != nil {
				r.givingUp()
			}
			r.mu.Lock()
			r.leaveQueueLocked(w)
			r.mu.Unlock()
		}
		r.m.queued.Dec()
		r.a.demand.Add(r.ns, r.svc, 0, -1)
		if code != 0 {
			r.m.queueWait.Observe(time.Since(start).Seconds())
			return nil, code
		}
		// Released: the loop finds the ready set, or queues again (first,
		// with what is left of its timeout) if the endpoint went away or
		// its free slot was taken before this request got to it.
		if ready := r.readyEndpoints(); r.hasRoom(ready) {
			r.m.queueWait.Observe(time.Since(start).Seconds())
			return ready, 0
		}
		front = true
		if !time.Now().Before(deadline) {
			r.m.queueWait.Observe(time.Since(start).Seconds())
			return nil, 504
		}
	}
}

// leaveQueueLocked takes a held request that gives up (timeout, client
// gone) off the queue. If it was released meanwhile, on a capped route it
// was handed a free slot it will not use: the next held request gets the
// slot, or nothing would until another request finishes or the endpoints
// change, and under sustained load none might.
func (r *route) leaveQueueLocked(w *waiter) {
	if w.queued {
		r.queue.remove(w)
		return
	}
	r.releaseFreeLocked()
}

// mayGo reports whether a new request may go to one of ready at once: on
// a capped route, only if an endpoint has a free slot and no request is
// held before it.
func (r *route) mayGo(ready []*Endpoint) bool {
	if !r.hasRoom(ready) {
		return false
	}
	if r.limit <= 0 {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mayGoLocked(ready, false)
}

// mayGoLocked is mayGo with the route's lock held; first says the request
// is first in line already (released, or queued at the front).
func (r *route) mayGoLocked(ready []*Endpoint, first bool) bool {
	return r.hasRoom(ready) && (first || r.limit <= 0 || r.queue.n == 0)
}

// waitReleased waits for released, the deadline or ctx: 0, 504 or
// statusClientGone.
func waitReleased(ctx context.Context, released <-chan struct{}, deadline time.Time) int {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-released:
		return 0
	case <-t.C:
		return 504
	case <-ctx.Done():
		return statusClientGone
	}
}
