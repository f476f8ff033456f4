package main

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are what a model server's autoscaling reads: vLLM's own queue
// gauges, under vLLM's names, so that the rules written for vLLM work here
// unchanged, and the request count and duration.
type metrics struct {
	requests *prometheus.CounterVec
	duration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, model string, q *queue) *metrics {
	labels := prometheus.Labels{"model_name": model}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sampleapp_requests_total",
			Help: "Model requests answered, by HTTP status code (499: the client went away).",
		}, []string{"code"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sampleapp_request_duration_seconds",
			Help:    "Time from a model request's arrival to its last byte, waiting included.",
			Buckets: prometheus.ExponentialBucketsRange(0.005, 60, 16),
		}),
	}
	reg.MustRegister(
		m.requests,
		m.duration,
		// Read from the queue at scrape time, so they can never drift from it.
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "vllm:num_requests_waiting",
			Help:        "Requests waiting for a slot.",
			ConstLabels: labels,
		}, func() float64 { _, w := q.counts(); return float64(w) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "vllm:num_requests_running",
			Help:        "Requests holding a slot.",
			ConstLabels: labels,
		}, func() float64 { r, _ := q.counts(); return float64(r) }),
	)
	return m
}

func (m *metrics) observe(code int, seconds float64) {
	m.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	m.duration.Observe(seconds)
}
