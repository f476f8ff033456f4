package dashboards

//lint:file-ignore SA1019 the SDK deprecates its classic dashboard model for dashboardv2, which Grafana imports only with dynamic dashboards switched on

import (
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// Selectors of the activator dashboard. The per-route metrics carry the
// route's name and its Service's namespace and name; the configuration
// metrics carry neither.
const (
	activatorJob   = `job=~"$job"`
	activatorRoute = `job=~"$job", namespace=~"$namespace", route=~"$route"`
)

// activatorDashboard is the dashboard of `nemesis activator`.
func activatorDashboard() *dashboard.DashboardBuilder {
	b := newDashboard("nemesis-activator", "Nemesis / Activator",
		"Traffic through the Nemesis activator per route: requests and errors, requests in flight and held, cold-start waits, latency, endpoints and configuration reloads.",
		queryVar("job", "Job", "The scrape job(s) of the activator.",
			`nemesis_activator_routes`, "job"),
		queryVar("namespace", "Namespace", "Namespace of the routes' Services.",
			`nemesis_activator_requests_in_flight{job=~"$job"}`, "namespace"),
		queryVar("route", "Route", "Routes to the selected namespaces.",
			`nemesis_activator_requests_in_flight{job=~"$job", namespace=~"$namespace"}`, "route"),
	)
	requests := `nemesis_activator_requests_total{` + activatorRoute + `}`
	errors5xx := `nemesis_activator_requests_total{` + activatorRoute + `, code=~"5.."}`

	b.WithRow(dashboard.NewRowBuilder("Overview"))
	b.WithPanel(statPanel("Requests", "Requests answered per second over the selected routes.", units.RequestsPerSecond,
		query{`sum(rate(` + requests + `[$__rate_interval]))`, ""}).
		Span(4).Height(4))
	b.WithPanel(statPanel("5xx ratio", "Share of the requests answered with a 5xx status, the activator's own 502, 503 and 504 included.", units.PercentUnit,
		query{`sum(rate(` + errors5xx + `[$__rate_interval])) / sum(rate(` + requests + `[$__rate_interval]))`, ""}, redAbove(0.01)...).
		Span(4).Height(4))
	b.WithPanel(statPanel("In flight", "Requests proxied to an endpoint and not yet finished.", units.Short,
		query{`sum(nemesis_activator_requests_in_flight{` + activatorRoute + `})`, ""}).
		Span(4).Height(4))
	b.WithPanel(statPanel("Queued", "Requests held because their route has no ready endpoint (scale from zero).", units.Short,
		query{`sum(nemesis_activator_requests_queued{` + activatorRoute + `})`, ""}, redAbove(1)...).
		Span(4).Height(4))
	b.WithPanel(statPanel("Routes", "Routes in force.", units.Short,
		query{`max(nemesis_activator_routes{` + activatorJob + `})`, ""}).
		Span(4).Height(4))
	b.WithPanel(statPanel("Rejected configurations", "Activator replicas serving an older configuration because the newest file was rejected.", units.Short,
		query{`sum(nemesis_activator_config_last_reload_failed{` + activatorJob + `})`, ""}, redAbove(1)...).
		Span(4).Height(4))

	b.WithRow(dashboard.NewRowBuilder("Traffic"))
	b.WithPanel(graphPanel("Requests by route", "Requests answered per second, by route.", units.RequestsPerSecond,
		query{`sum by (route) (rate(` + requests + `[$__rate_interval]))`, "{{route}}"}).
		Span(12).Height(8))
	b.WithPanel(graphPanel("5xx by route and code", "Requests answered with a 5xx status, by route and code: the activator's own are 502 (the upstream failed), 503 (queue full, route removed) and 504 (no ready endpoint within the queue timeout, or the upstream did not answer in time).", units.RequestsPerSecond,
		query{`sum by (route, code) (rate(` + errors5xx + `[$__rate_interval]))`, "{{route}} {{code}}"}).
		Span(12).Height(8))
	b.WithPanel(graphPanel("In flight and queued by route", "Requests proxied and not yet finished, and requests held for a ready endpoint, summed over activator replicas: what the scaler's inflight and queued see.", units.Short,
		query{`sum by (route) (nemesis_activator_requests_in_flight{` + activatorRoute + `})`, "in flight {{route}}"},
		query{`sum by (route) (nemesis_activator_requests_queued{` + activatorRoute + `})`, "queued {{route}}"}).
		OverrideByRegexp("^queued", fixedColor("orange")).
		Span(12).Height(8))
	b.WithPanel(graphPanel("Upstream retries", "Upstream attempts repeated after a connection failed before any response byte, by route.", units.OpsPerSecond,
		query{`sum by (route) (rate(nemesis_activator_upstream_retries_total{` + activatorRoute + `}[$__rate_interval]))`, "{{route}}"}).
		Span(12).Height(8))

	b.WithRow(dashboard.NewRowBuilder("Cold starts"))
	b.WithPanel(heatmapPanel("Queue wait", "How long held requests waited for a ready endpoint: the cold start clients see. Each column is the histogram of one interval.", units.Seconds,
		query{`sum by (le) (increase(nemesis_activator_queue_wait_seconds_bucket{` + activatorRoute + `}[$__rate_interval]))`, "{{le}}"}).
		Span(12).Height(9))
	b.WithPanel(graphPanel("Queue wait quantiles", "50th, 90th and 99th percentile of the time held requests waited for a ready endpoint, by route.", units.Seconds,
		quantiles(`nemesis_activator_queue_wait_seconds_bucket{`+activatorRoute+`}`, []string{"route"}, "{{route}}")...).
		Span(12).Height(9))
	b.WithPanel(graphPanel("Released from the queue", "Held requests leaving the queue per second, by route: to a ready endpoint, or answered 504 when none came within the queue timeout, or because the client went away.", units.OpsPerSecond,
		query{`sum by (route) (rate(nemesis_activator_queue_wait_seconds_count{` + activatorRoute + `}[$__rate_interval]))`, "{{route}}"}).
		Span(12).Height(8))
	b.WithPanel(steps(graphPanel("Endpoints by route", "Endpoints the activator knows for each route, by state (ready, terminating).", units.Short,
		query{`max by (route, state) (nemesis_activator_endpoints{` + activatorRoute + `})`, "{{route}} {{state}}"})).
		Span(12).Height(8))

	b.WithRow(dashboard.NewRowBuilder("Latency and endpoints"))
	b.WithPanel(graphPanel("Request duration", "50th, 90th and 99th percentile of the time from a request's arrival to the end of its response, queueing and the upstream included, by route.", units.Seconds,
		quantiles(`nemesis_activator_request_duration_seconds_bucket{`+activatorRoute+`}`, []string{"route"}, "{{route}}")...).
		Span(12).Height(8))
	b.WithPanel(graphPanel("In flight per endpoint", "Requests proxied to each endpoint (ip:port) and not yet finished, summed over activator replicas: how evenly the policy spreads the load.", units.Short,
		query{`sum by (route, endpoint) (nemesis_activator_endpoint_requests_in_flight{` + activatorRoute + `})`, "{{route}} {{endpoint}}"}).
		Span(12).Height(8))

	b.WithRow(dashboard.NewRowBuilder("Configuration and demand"))
	b.WithPanel(bars(graphPanel("Configuration reloads", "Reloads of the configuration after a change, by result. A failed reload keeps the running configuration.", units.Short,
		query{`sum by (result) (increase(nemesis_activator_config_reloads_total{` + activatorJob + `}[$__rate_interval]))`, "{{result}}"})).
		OverrideByRegexp("failure", fixedColor("red")).
		Span(6).Height(8))
	b.WithPanel(graphPanel("Unmatched requests", "Requests that matched no route (answered 404).", units.RequestsPerSecond,
		query{`sum(rate(nemesis_activator_unmatched_requests_total{` + activatorJob + `}[$__rate_interval]))`, "unmatched"}).
		Span(6).Height(8))
	b.WithPanel(graphPanel("Metric policy refreshes", "Refreshes of a metric policy's query, by route and result.", units.OpsPerSecond,
		query{`sum by (route, result) (rate(nemesis_activator_metric_refreshes_total{` + activatorRoute + `}[$__rate_interval]))`, "{{route}} {{result}}"}).
		OverrideByRegexp("failure", fixedColor("red")).
		Span(6).Height(8))
	b.WithPanel(steps(graphPanel("Demand watchers", "Open demand watch streams (one per scaler replica) per activator replica.", units.Short,
		query{`sum by (instance) (nemesis_demand_watchers{` + activatorJob + `})`, "{{instance}}"})).
		Span(6).Height(8))
	return b
}
