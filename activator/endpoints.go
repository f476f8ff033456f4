package activator

import (
	"net"
	"slices"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// EndpointSource feeds one route its endpoints. Subscribe calls update with
// the complete current sets (addresses host:port) at once if it knows them,
// and again after every change, until cancel is called. Ready endpoints get
// new requests; terminating ones keep the requests they have and get
// nothing new; endpoints in neither set are forgotten. update must not be
// called concurrently with itself for one subscription.
type EndpointSource interface {
	Subscribe(update func(ready, terminating []string)) (cancel func())
}

// ServiceEndpoints tracks the endpoints of Kubernetes Services (package
// kube implements it with EndpointSlice informers). Subscribe follows the
// given port of namespace/name with the contract of [EndpointSource].
type ServiceEndpoints interface {
	Subscribe(namespace, name string, port int32, update func(ready, terminating []string)) (cancel func())
}

// PodNamer may be implemented by a [ServiceEndpoints] to tell which pod is
// behind an endpoint address (ip:port). The metric policy uses it to map
// series with a pod label to endpoints.
type PodNamer interface {
	PodName(namespace, address string) (pod string, ok bool)
}

// StaticEndpoints is an [EndpointSource] whose endpoints are always ready.
type StaticEndpoints []string

// Subscribe implements EndpointSource.
func (s StaticEndpoints) Subscribe(update func(ready, terminating []string)) func() {
	update(slices.Clone(s), nil)
	return func() {}
}

// serviceSource adapts ServiceEndpoints to one route's EndpointSource.
type serviceSource struct {
	svc ServiceEndpoints
	ref ServiceRef
}

func (s serviceSource) Subscribe(update func(ready, terminating []string)) func() {
	return s.svc.Subscribe(s.ref.Namespace, s.ref.Name, s.ref.Port, update)
}

var (
	_ EndpointSource = StaticEndpoints(nil)
	_ EndpointSource = serviceSource{}
)

// Endpoint is one upstream address of a route, with the counters the
// policies read.
//
// An Endpoint lives as long as it has requests in flight: one that leaves
// the ready and terminating sets (a readiness flap) is kept, out of the
// ready set, until they finish, so that if it comes back its count and
// connections are still there; and a reload that rebuilds its route hands
// it over to the new route.
type Endpoint struct {
	addr     string
	ip       string
	inFlight atomic.Int64
	gauge    prometheus.Gauge
	pool     *connPool
	// route counts the endpoint's requests; it changes when a reload hands
	// the endpoint to a new route (under both routes' locks).
	route atomic.Pointer[route]
	// gone says the endpoint left the route's sets with requests in
	// flight; the last of them to finish drops it (see done).
	gone atomic.Bool
	// notReady says the endpoint left the ready set (terminating, or
	// gone), so that a request that picked it from a ready set read
	// earlier backs out (see exchange.start). It is set before gone.
	notReady atomic.Bool
	// started counts the requests started here, for the score policy's
	// sent (the requests since its last scrape).
	started atomic.Int64
	// scrape is a score policy's last scrape of the pod.
	scrape atomic.Pointer[podScrape]
}

// Address returns the endpoint's host:port.
func (e *Endpoint) Address() string { return e.addr }

// InFlight returns the requests proxied to the endpoint and not finished.
func (e *Endpoint) InFlight() int64 { return e.inFlight.Load() }

// tryStart counts a request in flight, unless the endpoint has limit
// requests in flight already (limit 0: no cap).
func (e *Endpoint) tryStart(limit int64) bool {
	if limit <= 0 {
		e.inFlight.Add(1)
	} else {
		for {
			n := e.inFlight.Load()
			if n >= limit {
				return false
			}
			if e.inFlight.CompareAndSwap(n, n+1) {
				break
			}
		}
	}
	e.started.Add(1)
	e.gauge.Inc()
	return true
}

func (e *Endpoint) done() {
	n := e.inFlight.Add(-1)
	e.gauge.Dec()
	r := e.route.Load()
	if r.limit > 0 {
		r.slotFreed()
	}
	if n == 0 && e.gone.Load() {
		r.dropGone(e)
	}
}

// updateEndpoints applies a source update to the route: new ready
// endpoints get a connection pool, terminating ones stay known (their
// requests finish) but leave the ready set, and the rest are dropped once
// they have no request in flight. If any endpoint is ready afterwards, the
// queue is released.
func (r *route) updateEndpoints(ready, terminating []string) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	next := make(map[string]*Endpoint, len(ready)+len(terminating))
	readyList := make([]*Endpoint, 0, len(ready))
	for _, addr := range ready {
		if _, dup := next[addr]; dup {
			continue
		}
		ep := r.all[addr]
		if ep == nil {
			ep = r.newEndpoint(addr)
		} else {
			// Ready again after terminating or not ready: its count
			// and connections carry on.
			ep.gone.Store(false)
			ep.notReady.Store(false)
			ep.pool.reuse()
		}
		next[addr] = ep
		readyList = append(readyList, ep)
	}
	nTerm := 0
	for _, addr := range terminating {
		if _, dup := next[addr]; dup {
			continue
		}
		if ep := r.all[addr]; ep != nil {
			ep.notReady.Store(true)
			ep.gone.Store(false)
			next[addr] = ep
			nTerm++
			// No new requests: idle connections are of no more use.
			ep.pool.closeIdle()
		}
	}
	for addr, ep := range r.all {
		if _, ok := next[addr]; ok {
			continue
		}
		// Not ready (a readiness flap, a failing probe) or deleted. Its
		// requests in flight still count against the cap and for
		// least-request if it comes back: keep it, out of the ready set,
		// until they finish. gone is set before the count is read, so
		// that the last request either is seen here or sees gone (done).
		ep.notReady.Store(true)
		ep.gone.Store(true)
		if ep.inFlight.Load() > 0 {
			next[addr] = ep
			ep.pool.closeIdle()
			continue
		}
		ep.pool.close()
		r.m.forgetEndpoint(addr)
	}
	r.all = next
	slices.SortFunc(readyList, func(a, b *Endpoint) int {
		switch {
		case a.addr < b.addr:
			return -1
		case a.addr > b.addr:
			return 1
		}
		return 0
	})
	r.ready.Store(&readyList)
	if f, ok := r.policy.(endpointFollower); ok {
		f.setReady(readyList)
	}
	r.m.ready.Set(float64(len(readyList)))
	r.m.terminating.Set(float64(nTerm))
	switch {
	case len(readyList) == 0:
	case r.limit <= 0:
		r.queue.releaseAll()
	default:
		// As many as there are free slots; the others follow as
		// requests finish (slotFreed).
		var free int64
		for _, ep := range readyList {
			free += max(0, r.limit-ep.inFlight.Load())
		}
		r.queue.releaseN(free)
	}
	r.mu.Unlock()
	r.a.logger.Debug("endpoints updated", "route", r.cfg.Name, "ready", len(readyList), "terminating", nTerm)
}

func (r *route) newEndpoint(addr string) *Endpoint {
	ip, _, err := net.SplitHostPort(addr)
	if err != nil {
		ip = addr
	}
	ep := &Endpoint{addr: addr, ip: ip, gauge: r.m.endpoint(addr), pool: r.a.newPool(addr)}
	ep.route.Store(r)
	return ep
}

// dropGone forgets an endpoint that left the route's sets, now that its
// last request has finished, unless it came back meanwhile.
func (r *route) dropGone(e *Endpoint) {
	for {
		r.mu.Lock()
		if cur := e.route.Load(); cur != r {
			// Handed to the route of a reload meanwhile.
			r.mu.Unlock()
			r = cur
			continue
		}
		if !r.closed && e.gone.Load() && e.inFlight.Load() == 0 && r.all[e.addr] == e {
			delete(r.all, e.addr)
			e.pool.close()
			r.m.forgetEndpoint(e.addr)
		}
		r.mu.Unlock()
		return
	}
}

// hasRoom reports whether a request may go to one of ready now: one is
// ready and, on a capped route, has a free slot.
func (r *route) hasRoom(ready []*Endpoint) bool {
	if r.limit <= 0 {
		return len(ready) > 0
	}
	for _, ep := range ready {
		if ep.inFlight.Load() < r.limit {
			return true
		}
	}
	return false
}

// allHaveRoom reports whether every endpoint of ready has a free slot.
func (r *route) allHaveRoom(ready []*Endpoint) bool {
	for _, ep := range ready {
		if ep.inFlight.Load() >= r.limit {
			return false
		}
	}
	return true
}

// slotFreed hands a capped route's freed slot to the oldest held request.
func (r *route) slotFreed() {
	r.mu.Lock()
	r.releaseFreeLocked()
	r.mu.Unlock()
}

// releaseFreeLocked releases the oldest held request of a capped route if
// an endpoint has a free slot.
func (r *route) releaseFreeLocked() {
	if r.limit > 0 && !r.closed && r.queue.n > 0 && r.hasRoom(r.readyEndpoints()) {
		r.queue.releaseOne()
	}
}

// readyEndpoints returns the current ready set; callers must not modify it.
func (r *route) readyEndpoints() []*Endpoint {
	if p := r.ready.Load(); p != nil {
		return *p
	}
	return nil
}
