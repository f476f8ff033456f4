//go:build unix

package externalscaler

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/k8s-nemesis/nemesis/metrics"
)

// benchObject is one ScaledObject of the scale benchmark.
type benchObject struct {
	trigger         *kedaTrigger
	namespace, name string
	ruleSet         int
	model           string
	replicas        float64 // expected
	active          bool    // expected
}

// BenchmarkScaleOut1000 polls 1,000 ScaledObjects as KEDA does, over real
// gRPC through KEDA's client, against a real Prometheus: each iteration is
// one polling round in which every object makes its GetMetrics+IsActive
// pair, 32 at a time. The objects spread over 10 rule sets of 2 queries
// each, templated on $namespace and $model, 20 namespaces and 2 models, so
// that fewer distinct queries are rendered than objects poll. The clock of
// the scaler and its Prometheus client moves by KEDA's polling interval
// before each round: every round finds its caches expired and really
// queries, once per distinct query.
//
// Reported: prom-requests/round (Prometheus' own count of query requests),
// nemesis-requests/round (nemesis_prometheus_requests_total), distinct-queries,
// evals/round, p99-GetMetrics-ms (one GetMetricsAndActivity, as KEDA sees
// it) and cpu-us/eval (CPU of this whole process, KEDA's client side
// included, per evaluation) and requests-vs-per-trigger (Prometheus requests
// as a fraction of those a scaler without sharing would send).
func BenchmarkScaleOut1000(b *testing.B) {
	const (
		objects    = 1000
		ruleSets   = 10
		namespaces = 20
		models     = 2
		workers    = 32               // concurrent calls, like KEDA's operator and metrics adapter
		poll       = 30 * time.Second // KEDA's default pollingInterval
	)
	prom, exp := sharedProm(b) // a missing Prometheus fails, never skips

	var rulesYAML strings.Builder
	rulesYAML.WriteString("ruleSets:\n")
	for k := range ruleSets {
		fmt.Fprintf(&rulesYAML, `  - name: bench-%d
    queries:
      waiting: sum(bench_waiting{rule_set="%d", namespace="$namespace", model_name="$model"}) or vector(0)
      running: sum(bench_running{rule_set="%d", namespace="$namespace", model_name="$model"}) or vector(0)
    replicas: max(waiting / 4, running / 8)
    active: waiting > 0 || running > 0
    max: 100
    onError: fail
`, k, k, k)
	}
	clock := newFakeClock()
	env := startScaler(b, envConfig{
		rules:    rulesYAML.String(),
		promURL:  prom.URL(),
		reuseFor: time.Second,             // the scaler's default
		cacheTTL: metrics.DefaultCacheTTL, // the client's default
		clock:    clock,
	})

	// The series: one per rule set, namespace, model and metric.
	var wantWaiting float64
	for k := range ruleSets {
		for n := range namespaces {
			for m := range models {
				w, r := benchValues(k, n, m)
				labels := map[string]string{"rule_set": fmt.Sprint(k), "namespace": fmt.Sprintf("ns-%d", n), "model_name": fmt.Sprintf("m%d", m)}
				exp.Set("bench_waiting", labels, w)
				exp.Set("bench_running", labels, r)
				wantWaiting += w
			}
		}
	}
	waitProm(b, prom, "count(bench_waiting)", ruleSets*namespaces*models)
	waitProm(b, prom, "count(bench_running)", ruleSets*namespaces*models)
	waitProm(b, prom, "sum(bench_waiting)", wantWaiting)

	cat := env.store.Current()
	distinct := map[string]bool{}
	objs := make([]*benchObject, objects)
	for i := range objs {
		k, n, m := i%ruleSets, (i/ruleSets)%namespaces, (i/(ruleSets*namespaces))%models
		o := &benchObject{namespace: fmt.Sprintf("ns-%d", n), name: fmt.Sprintf("so-%d", i), ruleSet: k, model: fmt.Sprintf("m%d", m)}
		meta := map[string]string{"ruleSet": fmt.Sprintf("bench-%d", k), "model": o.model}
		rs, ok := cat.RuleSet(meta["ruleSet"])
		if !ok {
			b.Fatalf("no rule set %s", meta["ruleSet"])
		}
		qs, err := rs.Render(o.namespace, o.name, meta)
		if err != nil {
			b.Fatal(err)
		}
		for _, q := range qs {
			distinct[q] = true
		}
		w, r := benchValues(k, n, m)
		o.replicas = math.Min(100, math.Ceil(math.Max(w/4, r/8)))
		o.active = w > 0 || r > 0
		o.trigger = env.trigger(b, o.namespace, o.name, meta)
		o.trigger.metricName() // GetMetricSpec, as KEDA does when it builds the HPA
		objs[i] = o
	}

	var (
		latencies []time.Duration
		failures  atomic.Int64
		firstErr  sync.Once
	)
	round := func() {
		clock.Add(poll)
		lat := make([]time.Duration, objects)
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= objects {
						return
					}
					o := objs[i]
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					start := time.Now()
					vals, active, err := o.trigger.scaler.GetMetricsAndActivity(ctx, o.trigger.metric)
					lat[i] = time.Since(start)
					cancel()
					if err == nil && (len(vals) != 1 || vals[0].Value.AsApproximateFloat64() != o.replicas || active != o.active) {
						err = fmt.Errorf("got %v, active %v; want %v replicas, active %v", vals, active, o.replicas, o.active)
					}
					if err != nil {
						failures.Add(1)
						firstErr.Do(func() { b.Errorf("%s/%s: %v", o.namespace, o.name, err) })
					}
				}
			})
		}
		wg.Wait()
		latencies = append(latencies, lat...)
	}

	// One untimed round: connections up, every answer checked once.
	round()
	if failures.Load() > 0 {
		b.Fatalf("%d of %d objects got a wrong answer or an error", failures.Load(), objects)
	}
	latencies = latencies[:0]

	ctx := context.Background()
	promBefore, err := prom.QueryRequests(ctx)
	if err != nil {
		b.Fatal(err)
	}
	requests := func() float64 { return gatherSum(b, env.reg, "nemesis_prometheus_requests_total", nil) }
	evaluations := func() float64 { return gatherSum(b, env.reg, "nemesis_scaler_evaluations_total", nil) }
	nemBefore, evalBefore := requests(), evaluations()
	cpuBefore := processCPU(b)

	rounds := 0
	for b.Loop() {
		round()
		rounds++
	}

	cpu := processCPU(b) - cpuBefore
	nem, evals := requests()-nemBefore, evaluations()-evalBefore
	// Prometheus counts a request just after answering it.
	var promReqs float64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		after, err := prom.QueryRequests(ctx)
		if err != nil {
			b.Fatal(err)
		}
		promReqs = after - promBefore
		if promReqs >= nem || time.Now().After(deadline) {
			break
		}
	}
	if failures.Load() > 0 {
		b.Fatalf("%d GetMetricsAndActivity calls got a wrong answer or an error", failures.Load())
	}
	// Every round queried, and only once per distinct query.
	if want := float64(rounds * len(distinct)); nem != want || promReqs != want {
		b.Errorf("Prometheus requests: %v counted by the scaler, %v by Prometheus; want %d rounds × %d distinct queries = %v",
			nem, promReqs, rounds, len(distinct), want)
	}
	if want := float64(rounds * objects); evals != want {
		b.Errorf("evaluations = %v, want one per object per round, %v", evals, want)
	}

	slices.Sort(latencies)
	p99 := latencies[min(len(latencies)-1, int(math.Ceil(0.99*float64(len(latencies))))-1)]
	b.ReportMetric(promReqs/float64(rounds), "prom-requests/round")
	b.ReportMetric(nem/float64(rounds), "nemesis-requests/round")
	b.ReportMetric(float64(len(distinct)), "distinct-queries")
	b.ReportMetric(evals/float64(rounds), "evals/round")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-GetMetrics-ms")
	b.ReportMetric(float64(cpu.Microseconds())/evals, "cpu-us/eval")
	// Side by side with a scaler that sends every trigger's queries itself,
	// as KEDA's Prometheus scaler does: objects × 2 queries per round.
	b.ReportMetric(promReqs/float64(rounds)/float64(objects*2), "requests-vs-per-trigger")
}

// benchValues are the series values of rule set k, namespace n, model m: a
// mix of idle and busy objects.
func benchValues(k, n, m int) (waiting, running float64) {
	return float64((k + 3*n + 5*m) % 11), float64((k*n + m) % 23)
}

// processCPU is the user and system CPU time used by this process so far.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
