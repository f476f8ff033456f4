package activator

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8s-nemesis/nemesis/metrics"
)

func (q *fakeQuerier) Query(ctx context.Context, query string) (metrics.Result, error) {
	q.calls.Add(1)
	if q.fail.Load() {
		return metrics.Result{}, errors.New("prometheus is down")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	var res metrics.Result
	for inst, v := range q.values {
		res.Values = append(res.Values, v)
		res.Labels = append(res.Labels, map[string]string{"instance": inst})
	}
	return res, nil
}

func testEndpoints(addrs ...string) []*Endpoint {
	eps := make([]*Endpoint, len(addrs))
	for i, a := range addrs {
		ip, _, _ := net.SplitHostPort(a)
		eps[i] = &Endpoint{addr: a, ip: ip, gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})}
	}
	return eps
}

func TestLeastRequestPicksLessLoaded(t *testing.T) {
	eps := testEndpoints("10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1", "10.0.0.4:1")
	eps[0].inFlight.Store(10)
	eps[1].inFlight.Store(10)
	eps[2].inFlight.Store(10)
	counts := map[string]int{}
	for range 10000 {
		counts[leastRequest{}.Pick(eps).addr]++
	}
	// The idle endpoint wins every pair it is in: 1 - (3/4 · 2/3) = 1/2.
	if n := counts["10.0.0.4:1"]; n < 4500 || n > 5500 {
		t.Errorf("idle endpoint got %d of 10000 (want about half): %v", n, counts)
	}
	if got := (leastRequest{}).Pick(eps[:1]); got != eps[0] {
		t.Errorf("single endpoint")
	}
}

func TestPoliciesDoNotAllocate(t *testing.T) {
	eps := testEndpoints("10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1")
	mp := &metricPolicy{spec: MetricSpec{Refresh: time.Second}, now: time.Now}
	mp.values.Store(&metricValues{at: time.Now(), values: map[string]float64{"10.0.0.2:1": 1}})
	for name, p := range map[string]Policy{"round-robin": &roundRobin{}, "least-request": leastRequest{}, "random": randomPolicy{}, "metric": mp} {
		if n := testing.AllocsPerRun(100, func() { p.Pick(eps) }); n != 0 {
			t.Errorf("%s: %v allocations per pick", name, n)
		}
	}
}

func TestMetricSeriesMapping(t *testing.T) {
	eps := testEndpoints("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80")
	pods := newFakeServices()
	pods.pods["10.0.0.4:80"] = "chat-abc"
	q := &labelQuerier{res: metrics.Result{
		Values: []float64{1, 2, 3, 4, 9},
		Labels: []map[string]string{
			{"instance": "10.0.0.1:80"},
			{"instance": "10.0.0.2"},
			{"pod_ip": "10.0.0.3"},
			{"pod": "chat-abc"},
			{"pod": "unknown"},
		},
	}}
	mp := &metricPolicy{spec: MetricSpec{Query: "x", Refresh: time.Second}, querier: q, pods: pods, now: time.Now}
	if err := mp.refresh(context.Background(), eps); err != nil {
		t.Fatal(err)
	}
	got := mp.values.Load().values
	want := map[string]float64{"10.0.0.1:80": 1, "10.0.0.2:80": 2, "10.0.0.3:80": 3, "10.0.0.4:80": 4}
	if len(got) != len(want) {
		t.Fatalf("values %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("values %v, want %v", got, want)
		}
	}
	if p := mp.Pick(eps); p.addr != "10.0.0.1:80" {
		t.Errorf("picked %s, want the lowest value", p.addr)
	}
	// Stale: scored on requests in flight alone (the idle one wins).
	mp.now = func() time.Time { return time.Now().Add(4 * time.Second) }
	eps[0].inFlight.Store(100)
	eps[1].inFlight.Store(100)
	eps[2].inFlight.Store(100)
	seen := map[string]int{}
	for range 100 {
		seen[mp.Pick(eps).addr]++
	}
	if seen["10.0.0.4:80"] != 100 {
		t.Errorf("stale data did not fall back to requests in flight: %v", seen)
	}
}

// TestMetricPolicyDoesNotHerd: between two refreshes, the requests sent
// since raise a pod's score, so picks spread in proportion to the gaps
// between the values instead of all going to the lowest.
func TestMetricPolicyDoesNotHerd(t *testing.T) {
	eps := testEndpoints("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")
	mp := &metricPolicy{spec: MetricSpec{Query: "x", Refresh: time.Minute}, now: time.Now}
	mp.values.Store(&metricValues{at: time.Now(),
		values: map[string]float64{"10.0.0.1:80": 5, "10.0.0.2:80": 1, "10.0.0.3:80": 3},
		base:   map[string]int64{"10.0.0.1:80": 0, "10.0.0.2:80": 0, "10.0.0.3:80": 0}})
	got := map[string]int{}
	for range 30 {
		ep := mp.Pick(eps)
		ep.started.Add(1) // as tryStart counts it; the request finishes at once
		got[ep.addr]++
	}
	// 9 + 30 picks spread to a score of 13 each: 8, 12 and 10.
	for addr, want := range map[string]int{"10.0.0.1:80": 8, "10.0.0.2:80": 12, "10.0.0.3:80": 10} {
		if d := got[addr] - want; d < -1 || d > 1 {
			t.Errorf("%s got %d of 30 picks, want %d ± 1 (all: %v)", addr, got[addr], want, got)
		}
	}
}

type labelQuerier struct{ res metrics.Result }

func (q *labelQuerier) Query(context.Context, string) (metrics.Result, error) { return q.res, nil }
