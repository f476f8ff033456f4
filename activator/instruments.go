package activator

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

const metricsNamespace = "nemesis"

// instruments are the activator's metrics. Per-route series are resolved
// once per route (routeInstruments), so the hot path never hashes label
// values.
type instruments struct {
	inFlight        *prometheus.GaugeVec
	queued          *prometheus.GaugeVec
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	queueWait       *prometheus.HistogramVec
	endpointFlight  *prometheus.GaugeVec
	endpoints       *prometheus.GaugeVec
	retries         *prometheus.CounterVec
	metricRefreshes *prometheus.CounterVec
	unmatched       prometheus.Counter
	reloads         *prometheus.CounterVec
	reloadFailed    prometheus.Gauge
	reloadSuccess   prometheus.Gauge
	routes          prometheus.Gauge
	connsRefused    prometheus.Counter
	scrapeErrors    *prometheus.CounterVec
	endpointScore   *prometheus.GaugeVec
}

func newInstruments(reg prometheus.Registerer) *instruments {
	route := []string{"route", "namespace", "service"}
	m := &instruments{
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Subsystem: "activator", Name: "requests_in_flight",
			Help: "Requests proxied to an endpoint and not yet finished, by route.",
		}, route),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Subsystem: "activator", Name: "requests_queued",
			Help: "Requests held because the route has no ready endpoint, by route.",
		}, route),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: "activator", Name: "requests_total",
			Help: "Requests answered, by route and status code (including the activator's own 502, 503 and 504).",
		}, append(route[:3:3], "code")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Subsystem: "activator", Name: "request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its response, queueing included, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, route),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Subsystem: "activator", Name: "queue_wait_seconds",
			Help:    "Time held requests waited for a ready endpoint (the cold start seen by clients), by route.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300},
		}, route),
		endpointFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Subsystem: "activator", Name: "endpoint_requests_in_flight",
			Help: "Requests proxied to one endpoint (ip:port) and not yet finished, by route.",
		}, append(route[:3:3], "endpoint")),
		endpoints: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Subsystem: "activator", Name: "endpoints",
			Help: "Endpoints known for a route, by state (ready, terminating).",
		}, append(route[:3:3], "state")),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: "activator", Name: "upstream_retries_total",
			Help: "Upstream attempts repeated after a connection failed before any response byte, by route.",
		}, route),
		metricRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: "activator", Name: "metric_refreshes_total",
			Help: "Refreshes of a metric policy's query, by route and result (success, failure).",
		}, append(route[:3:3], "result")),
		unmatched: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: "activator", Name: "unmatched_requests_total",
			Help: "Requests that matched no route (answered 404).",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: "activator", Name: "config_reloads_total",
			Help: "Reloads of the configuration after a change, by result (success, failure). A failed reload keeps the running configuration.",
		}, []string{"result"}),
		reloadFailed: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Subsystem: "activator", Name: "config_last_reload_failed",
			Help: "1 when the newest configuration file was rejected and an older version is serving, else 0.",
		}),
		reloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Subsystem: "activator", Name: "config_last_reload_success_timestamp_seconds",
			Help: "When the configuration in force was loaded.",
		}),
		routes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Subsystem: "activator", Name: "routes",
			Help: "Routes in force.",
		}),
		connsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: "activator", Name: "connections_refused_total",
			Help: "Client connections closed as soon as accepted because --max-connections were open.",
		}),
		scrapeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: "activator", Name: "scrape_errors_total",
			Help: "Failed scrapes of a score route's pods, by route, endpoint and reason (timeout, too_large, parse, missing, http); the pod is scored on its requests in flight until a good scrape.",
		}, []string{"route", "endpoint", "reason"}),
		endpointScore: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Subsystem: "activator", Name: "endpoint_score",
			Help: "A score route's score of each ready endpoint after its last scrape (lower wins; requests in flight alone while its data is stale or failing), by route and endpoint.",
		}, []string{"route", "endpoint"}),
	}
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	reg.MustRegister(m.inFlight, m.queued, m.requests, m.duration, m.queueWait, m.endpointFlight, m.endpoints,
		m.retries, m.metricRefreshes, m.unmatched, m.reloads, m.reloadFailed, m.reloadSuccess, m.routes,
		m.connsRefused, m.scrapeErrors, m.endpointScore)
	return m
}

// routeInstruments are one route's series, resolved up front.
type routeInstruments struct {
	m                   *instruments
	labels              [3]string
	inFlight, queued    prometheus.Gauge
	duration, queueWait prometheus.Observer
	retries             prometheus.Counter
	ready, terminating  prometheus.Gauge
	refreshOK, refreshX prometheus.Counter
	codes               [600]atomic.Pointer[prometheus.Counter] // by status code; resolved on first use
}

func (m *instruments) forRoute(name, namespace, service string) *routeInstruments {
	ri := &routeInstruments{m: m, labels: [3]string{name, namespace, service}}
	l := ri.labels[:]
	ri.inFlight = m.inFlight.WithLabelValues(l...)
	ri.queued = m.queued.WithLabelValues(l...)
	ri.duration = m.duration.WithLabelValues(l...)
	ri.queueWait = m.queueWait.WithLabelValues(l...)
	ri.retries = m.retries.WithLabelValues(l...)
	ri.ready = m.endpoints.WithLabelValues(name, namespace, service, "ready")
	ri.terminating = m.endpoints.WithLabelValues(name, namespace, service, "terminating")
	ri.refreshOK = m.metricRefreshes.WithLabelValues(name, namespace, service, "success")
	ri.refreshX = m.metricRefreshes.WithLabelValues(name, namespace, service, "failure")
	for _, code := range []int{200, 404, 502, 503, 504} {
		ri.code(code)
	}
	return ri
}

// code returns the requests_total child for a status code.
func (ri *routeInstruments) code(code int) prometheus.Counter {
	if code < 100 || code >= len(ri.codes) {
		code = 0
	}
	if c := ri.codes[code].Load(); c != nil {
		return *c
	}
	c := ri.m.requests.WithLabelValues(ri.labels[0], ri.labels[1], ri.labels[2], strconv.Itoa(code))
	ri.codes[code].Store(&c)
	return c
}

func (ri *routeInstruments) endpoint(addr string) prometheus.Gauge {
	return ri.m.endpointFlight.WithLabelValues(ri.labels[0], ri.labels[1], ri.labels[2], addr)
}

func (ri *routeInstruments) forgetEndpoint(addr string) {
	ri.m.endpointFlight.DeleteLabelValues(ri.labels[0], ri.labels[1], ri.labels[2], addr)
	ri.forgetScore(addr)
	ri.m.scrapeErrors.DeletePartialMatch(prometheus.Labels{"route": ri.labels[0], "endpoint": addr})
}

func (ri *routeInstruments) scrapeError(addr, reason string) {
	ri.m.scrapeErrors.WithLabelValues(ri.labels[0], addr, reason).Inc()
}

func (ri *routeInstruments) setScore(addr string, v float64) {
	ri.m.endpointScore.WithLabelValues(ri.labels[0], addr).Set(v)
}

// forgetScore drops the score of an endpoint that is no longer ready; its
// error counts stay until it is forgotten.
func (ri *routeInstruments) forgetScore(addr string) {
	ri.m.endpointScore.DeleteLabelValues(ri.labels[0], addr)
}

// forget drops the route's series once it is gone from the configuration.
func (ri *routeInstruments) forget() {
	l := prometheus.Labels{"route": ri.labels[0], "namespace": ri.labels[1], "service": ri.labels[2]}
	ri.m.inFlight.Delete(l)
	ri.m.queued.Delete(l)
	ri.m.duration.Delete(l)
	ri.m.queueWait.Delete(l)
	ri.m.retries.Delete(l)
	ri.m.requests.DeletePartialMatch(l)
	ri.m.endpointFlight.DeletePartialMatch(l)
	ri.m.endpoints.DeletePartialMatch(l)
	ri.m.metricRefreshes.DeletePartialMatch(l)
	ri.m.scrapeErrors.DeletePartialMatch(prometheus.Labels{"route": ri.labels[0]})
	ri.m.endpointScore.DeletePartialMatch(prometheus.Labels{"route": ri.labels[0]})
}
