package activator

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/k8s-nemesis/nemesis/metrics"
)

// Policy chooses the endpoint of a new request. Pick is called with a
// non-empty ready set, concurrently, on the hot path: it must not block or
// allocate.
type Policy interface {
	Pick(ready []*Endpoint) *Endpoint
}

// MetricQuerier runs instant PromQL queries; *metrics.Client implements it.
type MetricQuerier interface {
	Query(ctx context.Context, query string) (metrics.Result, error)
}

var (
	_ Policy        = (*roundRobin)(nil)
	_ Policy        = (*leastRequest)(nil)
	_ Policy        = (*randomPolicy)(nil)
	_ Policy        = (*metricPolicy)(nil)
	_ MetricQuerier = (*metrics.Client)(nil)
)

// roundRobin takes the ready endpoints in turn.
type roundRobin struct{ next atomic.Uint64 }

func (p *roundRobin) Pick(ready []*Endpoint) *Endpoint {
	return ready[(p.next.Add(1)-1)%uint64(len(ready))]
}

// leastRequest is the power of two choices on live in-flight counts: two
// endpoints at random, the one with fewer requests wins. It balances
// uneven, long requests almost as well as a full scan, without herding
// every request onto the one endpoint that looked idle.
type leastRequest struct{}

func (leastRequest) Pick(ready []*Endpoint) *Endpoint {
	n := uint32(len(ready))
	if n == 1 {
		return ready[0]
	}
	i := rand.Uint32N(n)
	j := rand.Uint32N(n - 1)
	if j >= i {
		j++
	}
	a, b := ready[i], ready[j]
	if b.inFlight.Load() < a.inFlight.Load() {
		return b
	}
	return a
}

// randomPolicy picks uniformly.
type randomPolicy struct{}

func (randomPolicy) Pick(ready []*Endpoint) *Endpoint {
	return ready[rand.IntN(len(ready))]
}

// metricValues is one refresh of a metric policy's query: value by
// endpoint address, and each endpoint's started count when the query was
// sent (the base of sent).
type metricValues struct {
	at     time.Time
	values map[string]float64
	base   map[string]int64
}

// metricPolicy scores each ready endpoint as value + inflight + sent: the
// per-pod value of its query, this activator's requests in flight there,
// and the requests it sent there since the query ran (which the value
// cannot show yet). The lowest wins, ties broken at random, so that a
// burst between two refreshes spreads instead of herding onto the pod
// that looked idle. While its data is stale (older than three refreshes)
// it scores on inflight alone, as least-request.
type metricPolicy struct {
	spec    MetricSpec
	querier MetricQuerier
	pods    PodNamer // may be nil
	ns      string   // namespace for pods
	values  atomic.Pointer[metricValues]
	now     func() time.Time
}

func (p *metricPolicy) Pick(ready []*Endpoint) *Endpoint {
	mv := p.values.Load()
	if mv != nil && p.now().Sub(mv.at) > 3*p.spec.Refresh {
		mv = nil
	}
	var best *Endpoint
	var bestS float64
	var ties uint32
	for _, ep := range ready {
		s := float64(ep.inFlight.Load())
		if mv != nil {
			// An endpoint that joined since the refresh has no data yet.
			if b, ok := mv.base[ep.addr]; ok {
				s += mv.values[ep.addr] + float64(ep.started.Load()-b)
			}
		}
		best, bestS, ties = lowest(ep, s, true, best, bestS, ties)
	}
	return best
}

// run refreshes the values every spec.Refresh until ctx ends.
func (p *metricPolicy) run(ctx context.Context, r *route) {
	t := time.NewTicker(p.spec.Refresh)
	defer t.Stop()
	for {
		if err := p.refresh(ctx, r.readyEndpoints()); err != nil {
			if ctx.Err() != nil {
				return
			}
			r.m.refreshX.Inc()
			r.a.logger.Warn("refreshing metric policy", "route", r.cfg.Name, "err", err)
		} else {
			r.m.refreshOK.Inc()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refresh runs the query once and maps its series to endpoints.
func (p *metricPolicy) refresh(ctx context.Context, ready []*Endpoint) error {
	qctx, cancel := context.WithTimeout(ctx, max(p.spec.Refresh, time.Second))
	defer cancel()
	base := make(map[string]int64, len(ready))
	for _, ep := range ready {
		base[ep.addr] = ep.started.Load()
	}
	res, err := p.querier.Query(qctx, p.spec.Query)
	if err != nil {
		return err
	}
	if res.Scalar {
		return fmt.Errorf("query %q gives a scalar, not one series per pod", p.spec.Query)
	}
	// Keys a series may carry, each naming one endpoint address.
	index := make(map[string]string, 3*len(ready))
	for _, ep := range ready {
		index["addr\x00"+ep.addr] = ep.addr
		index["ip\x00"+ep.ip] = ep.addr
		if p.pods != nil {
			if pod, ok := p.pods.PodName(p.ns, ep.addr); ok {
				index["pod\x00"+pod] = ep.addr
			}
		}
	}
	values := make(map[string]float64, len(ready))
	for i, v := range res.Values {
		if math.IsNaN(v) {
			continue
		}
		addr := seriesEndpoint(index, res.Labels[i])
		if addr == "" {
			continue
		}
		if old, ok := values[addr]; !ok || v > old {
			values[addr] = v
		}
	}
	p.values.Store(&metricValues{at: p.now(), values: values, base: base})
	return nil
}

// seriesEndpoint returns the address of the endpoint a series belongs to.
func seriesEndpoint(index map[string]string, labels map[string]string) string {
	if inst := labels["instance"]; inst != "" {
		if a := index["addr\x00"+inst]; a != "" {
			return a
		}
		if a := index["ip\x00"+inst]; a != "" {
			return a
		}
	}
	for _, l := range []string{"pod_ip", "ip"} {
		if v := labels[l]; v != "" {
			if a := index["ip\x00"+v]; a != "" {
				return a
			}
		}
	}
	if pod := labels["pod"]; pod != "" {
		return index["pod\x00"+pod]
	}
	return ""
}

// newPolicy builds the policy a route names.
func newPolicy(rc *Route, q MetricQuerier, pods PodNamer, m *routeInstruments, scrapeClient *http.Client, logger *slog.Logger) Policy {
	switch rc.Policy {
	case PolicyScore:
		return newScorePolicy(rc, m, scrapeClient, logger)
	case PolicyRoundRobin:
		return &roundRobin{}
	case PolicyRandom:
		return randomPolicy{}
	case PolicyMetric:
		mp := &metricPolicy{spec: *rc.Metric, querier: q, pods: pods, now: time.Now}
		if rc.Service != nil {
			mp.ns = rc.Service.Namespace
		}
		return mp
	default:
		return leastRequest{}
	}
}
