package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	metricsNamespace = "nemesis"
	metricsSubsystem = "prometheus"

	// Values of the outcome label of requests_total.
	outcomeSuccess = "success"
	outcomeError   = "error"
	outcomeTimeout = "timeout"

	// Values of the source label of queries_total.
	sourcePrometheus = "prometheus"
	sourceShared     = "shared"
	sourceCache      = "cache"
)

// instruments holds the client's Prometheus metrics. They live in a struct
// rather than in package variables so that every Client (and every test)
// registers its own set on the Registerer it is given.
type instruments struct {
	requests     *prometheus.CounterVec
	duration     prometheus.Histogram
	queries      *prometheus.CounterVec
	cacheEntries prometheus.Gauge

	// The label children are resolved once up front: the cache-hit path
	// then increments a counter without hashing label values or allocating.
	requestsSuccess  prometheus.Counter
	requestsError    prometheus.Counter
	requestsTimeout  prometheus.Counter
	queriesUpstream  prometheus.Counter
	queriesShared    prometheus.Counter
	queriesFromCache prometheus.Counter
}

// newInstruments creates the client's metrics and registers them on reg.
// It fails rather than panics when a collector is already registered, so a
// misconfigured program reports the problem through NewClient's error.
func newInstruments(reg prometheus.Registerer) (*instruments, error) {
	m := &instruments{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Subsystem: metricsSubsystem,
			Name:      "requests_total",
			Help:      "HTTP requests sent to Prometheus, by outcome (success, error, timeout).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace,
			Subsystem: metricsSubsystem,
			Name:      "request_duration_seconds",
			Help:      "Duration of HTTP requests sent to Prometheus, including reading and decoding the answer.",
			// From a warm local Prometheus (about a millisecond) up to the
			// longest sensible query timeout.
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Subsystem: metricsSubsystem,
			Name:      "queries_total",
			Help:      "Query calls, by where the answer came from: prometheus (this call sent the request), shared (joined an in-flight request), cache (served from the cache window).",
		}, []string{"source"}),
		cacheEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace,
			Subsystem: metricsSubsystem,
			Name:      "cache_entries",
			Help:      "Query results currently held in the cache, including expired entries not yet swept.",
		}),
	}
	// Touching every label value makes all series visible at zero from the
	// start, so rate() and absence alerts work before the first event.
	m.requestsSuccess = m.requests.WithLabelValues(outcomeSuccess)
	m.requestsError = m.requests.WithLabelValues(outcomeError)
	m.requestsTimeout = m.requests.WithLabelValues(outcomeTimeout)
	m.queriesUpstream = m.queries.WithLabelValues(sourcePrometheus)
	m.queriesShared = m.queries.WithLabelValues(sourceShared)
	m.queriesFromCache = m.queries.WithLabelValues(sourceCache)

	collectors := []prometheus.Collector{m.requests, m.duration, m.queries, m.cacheEntries}
	for i, c := range collectors {
		if err := reg.Register(c); err != nil {
			// Leave reg as it was, so that a retry does not trip over the
			// collectors this attempt did register.
			for _, done := range collectors[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("registering prometheus client metrics: %w", err)
		}
	}
	return m, nil
}

// request returns the requests_total child for an outcome.
func (m *instruments) request(outcome string) prometheus.Counter {
	switch outcome {
	case outcomeSuccess:
		return m.requestsSuccess
	case outcomeTimeout:
		return m.requestsTimeout
	default:
		return m.requestsError
	}
}
