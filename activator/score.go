package activator

import (
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
)

// podScrape is the last scrape of a pod by a score policy.
type podScrape struct {
	owner *scorePolicy
	// at is when the scrape began, in nanoseconds since owner.epoch.
	at int64
	// sentBase is the endpoint's started count when the scrape began:
	// requests started since are not in the pod's numbers yet.
	sentBase int64
	// vals are the metrics' values in the order of the spec; nil when
	// the scrape failed.
	vals []float64
}

// endpointFollower is a policy that follows its route's ready set (to
// scrape its pods, or to place them on a hash ring). setReady is called
// under the route's lock after every endpoint update; stop when the route
// closes.
type endpointFollower interface {
	setReady(ready []*Endpoint)
	stop()
}

// keyedPolicy picks with an affinity key.
type keyedPolicy interface {
	PickKeyed(ready []*Endpoint, key uint64) *Endpoint
}

var (
	_ Policy           = (*scorePolicy)(nil)
	_ keyedPolicy      = (*scorePolicy)(nil)
	_ endpointFollower = (*scorePolicy)(nil)
)

// scorePolicy scores each ready pod with an expression over what the pod
// reports on its metrics endpoint (scraped every interval by this
// activator, never on the request path) and this activator's own live
// counts, and sends the request to the lowest score, ties broken at
// random. With affinity, a request with a key goes to the key's pod on a
// hash ring unless that pod carries more than its bounded share.
type scorePolicy struct {
	route    string
	spec     *ScoreSpec
	aff      *AffinitySpec
	nMetrics int
	stale    int64 // spec.Scrape.StaleAfter in nanoseconds
	epoch    time.Time
	frames   sync.Pool // *[]float64 of nMetrics + len(scoreBuiltins())
	ring     atomic.Pointer[hashRing]
	scr      *scraper
}

func newScorePolicy(rc *Route, m *routeInstruments, client *http.Client, logger *slog.Logger) *scorePolicy {
	p := &scorePolicy{
		route:    rc.Name,
		spec:     rc.Score,
		aff:      rc.Affinity,
		nMetrics: len(rc.Score.Metrics),
		stale:    int64(rc.Score.Scrape.StaleAfter),
		epoch:    time.Now(),
	}
	n := p.nMetrics + len(scoreBuiltins())
	p.frames.New = func() any { f := make([]float64, n); return &f }
	p.scr = newScraper(p, m, client, logger)
	return p
}

// now returns the time since the policy's epoch, on the monotonic clock.
func (p *scorePolicy) now() int64 { return int64(time.Since(p.epoch)) }

// rate reads ep's counters and last scrape once and returns it as a
// candidate: its load (requests in flight, and sent since the scrape
// began) and, if withScore, its score; and whether it passes the filter.
// A pod without a recent good scrape is scored on its requests in flight
// alone and passes the filter. vals is scratch space for the variables.
func (p *scorePolicy) rate(ep *Endpoint, vals []float64, now int64, withScore bool) (c pickBest, eligible bool) {
	inflight := ep.inFlight.Load()
	c = pickBest{ep: ep, score: float64(inflight), load: inflight}
	sc := ep.scrape.Load()
	if sc == nil {
		return c, true
	}
	sent := ep.started.Load() - sc.sentBase
	c.load += sent
	if sc.owner != p || sc.vals == nil || now-sc.at > p.stale {
		return c, true
	}
	copy(vals, sc.vals)
	k := p.nMetrics
	vals[k] = float64(inflight)
	vals[k+1] = float64(sent)
	vals[k+2] = float64(now-sc.at) / 1e9
	eligible = p.spec.filter == nil || p.spec.filter.Condition(vals)
	if withScore {
		c.score = p.spec.expression.Number(vals)
		if math.IsNaN(c.score) {
			c.score = math.Inf(1)
		}
	}
	return c, eligible
}

// Pick implements Policy: the lowest score among the pods that pass the
// filter (all pods if none does). Equal scores go to the pod with the
// fewest requests in flight and sent since its scrape, then at random:
// so a burst between two scrapes spreads even when the expression leaves
// out inflight and sent.
func (p *scorePolicy) Pick(ready []*Endpoint) *Endpoint {
	if len(ready) == 1 {
		return ready[0]
	}
	fp := p.frames.Get().(*[]float64)
	vals := *fp
	now := p.now()
	var best, bestAll pickBest
	for _, ep := range ready {
		c, ok := p.rate(ep, vals, now, true)
		if ok {
			best.fold(c)
		}
		bestAll.fold(c)
	}
	p.frames.Put(fp)
	if best.ep != nil {
		return best.ep
	}
	return bestAll.ep
}

// pickBest is the best pod so far of a pick.
type pickBest struct {
	ep    *Endpoint
	score float64
	load  int64
	ties  uint32
}

// fold keeps the lower of c and the pickBest so far: the lower score,
// then the lower load, then one of the equals uniformly at random
// (reservoir sampling).
func (b *pickBest) fold(c pickBest) {
	switch {
	case b.ep == nil || c.score < b.score || c.score == b.score && c.load < b.load:
		*b = c
		b.ties = 1
	case c.score == b.score && c.load == b.load:
		b.ties++
		if rand.Uint32N(b.ties) == 0 {
			ties := b.ties
			*b = c
			b.ties = ties
		}
	}
}

// PickKeyed implements keyedPolicy with consistent hashing with bounded
// loads (Mirrokni, Thorup and Zadimoghaddam, 2016): the first pod from
// the key's place on the ring, among those that pass the filter, whose
// requests in flight stay within ⌈loadFactor × average⌉ with this one
// counted; the average is over the eligible pods.
func (p *scorePolicy) PickKeyed(ready []*Endpoint, key uint64) *Endpoint {
	ring := p.ring.Load()
	if ring == nil || len(ring.points) == 0 || len(ready) == 1 {
		return p.Pick(ready)
	}
	fp := p.frames.Get().(*[]float64)
	vals := *fp
	defer p.frames.Put(fp)
	now := p.now()
	var total, n int64
	var allTotal int64
	for _, ep := range ready {
		f := ep.inFlight.Load()
		allTotal += f
		if _, ok := p.rate(ep, vals, now, false); ok {
			total += f
			n++
		}
	}
	filtered := n > 0
	if !filtered {
		total, n = allTotal, int64(len(ready))
	}
	bound := int64(math.Ceil(p.aff.LoadFactor * float64(total+1) / float64(n)))
	same := ring.sameAs(ready)
	i, _ := slices.BinarySearchFunc(ring.points, key, func(pt ringPoint, k uint64) int {
		switch {
		case pt.hash < k:
			return -1
		case pt.hash > k:
			return 1
		}
		return 0
	})
	for k := range ring.points {
		ep := ring.points[(i+k)%len(ring.points)].ep
		if !same && !slices.Contains(ready, ep) {
			continue
		}
		if ep.inFlight.Load() >= bound {
			continue
		}
		if filtered {
			if _, ok := p.rate(ep, vals, now, false); !ok {
				continue
			}
		}
		return ep
	}
	return p.Pick(ready)
}

// ringPoint is one of an endpoint's places on the hash ring.
type ringPoint struct {
	hash uint64
	ep   *Endpoint
}

// hashRing places each ready endpoint at ringReplicas points, hashed from
// its address, so that every activator replica builds the same ring and
// an endpoint joining or leaving moves only the keys of its own arcs.
type hashRing struct {
	points []ringPoint
	eps    []*Endpoint // the ready set it was built from
}

// ringReplicas is the points per endpoint: enough that the arcs of a few
// pods are within a few percent of equal.
const ringReplicas = 160

func newHashRing(ready []*Endpoint) *hashRing {
	r := &hashRing{points: make([]ringPoint, 0, len(ready)*ringReplicas), eps: ready}
	var buf []byte
	for _, ep := range ready {
		for i := range ringReplicas {
			buf = append(buf[:0], ep.addr...)
			buf = append(buf, '#', byte(i>>8), byte(i))
			r.points = append(r.points, ringPoint{hash: xxhash.Sum64(buf), ep: ep})
		}
	}
	slices.SortFunc(r.points, func(a, b ringPoint) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return 0
	})
	return r
}

// sameAs reports whether ready is the set the ring was built from, so
// that membership needs no check.
func (r *hashRing) sameAs(ready []*Endpoint) bool {
	return len(ready) == len(r.eps) && len(ready) > 0 && &ready[0] == &r.eps[0]
}

// setReady implements endpointFollower.
func (p *scorePolicy) setReady(ready []*Endpoint) {
	if p.aff != nil {
		p.ring.Store(newHashRing(ready))
	}
	p.scr.follow(ready)
}

// stop implements endpointFollower.
func (p *scorePolicy) stop() { p.scr.stop() }

// affinityKey hashes a request's affinity key; ok is false when the
// request has none (no such header, no body, or a body of unknown length).
func affinityKey(spec *AffinitySpec, h http.Header, prefix []byte) (key uint64, ok bool) {
	switch spec.Key {
	case AffinityHeader:
		v := h[spec.Header]
		if len(v) == 0 || v[0] == "" {
			return 0, false
		}
		return xxhash.Sum64String(v[0]), true
	case AffinityBodyPrefix:
		if len(prefix) == 0 {
			return 0, false
		}
		return xxhash.Sum64(prefix[:min(len(prefix), spec.PrefixBytes)]), true
	}
	return 0, false
}
