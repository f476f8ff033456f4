package dashboards

// Selectors of the activator dashboard. The per-route metrics carry the
// route's name and its Service's namespace and name; the configuration
// metrics carry neither.
const (
	activatorJob   = `job=~"$job"`
	activatorRoute = `job=~"$job", namespace=~"$namespace", route=~"$route"`
)

// activatorDashboard is the dashboard of `nemesis activator`.
func activatorDashboard() *dashboard {
	b := newBoard("nemesis-activator", "Nemesis / Activator",
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

	b.row("Overview")
	b.add(4, 4, stat("Requests", "Requests answered per second over the selected routes.", "reqps",
		query{`sum(rate(` + requests + `[$__rate_interval]))`, ""}))
	b.add(4, 4, stat("5xx ratio", "Share of the requests answered with a 5xx status, the activator's own 502, 503 and 504 included.", "percentunit",
		query{`sum(rate(` + errors5xx + `[$__rate_interval])) / sum(rate(` + requests + `[$__rate_interval]))`, ""}, redAbove(0.01)...))
	b.add(4, 4, stat("In flight", "Requests proxied to an endpoint and not yet finished.", "short",
		query{`sum(nemesis_activator_requests_in_flight{` + activatorRoute + `})`, ""}))
	b.add(4, 4, stat("Queued", "Requests held because their route has no ready endpoint (scale from zero).", "short",
		query{`sum(nemesis_activator_requests_queued{` + activatorRoute + `})`, ""}, redAbove(1)...))
	b.add(4, 4, stat("Routes", "Routes in force.", "short",
		query{`max(nemesis_activator_routes{` + activatorJob + `})`, ""}))
	b.add(4, 4, stat("Rejected configurations", "Activator replicas serving an older configuration because the newest file was rejected.", "short",
		query{`sum(nemesis_activator_config_last_reload_failed{` + activatorJob + `})`, ""}, redAbove(1)...))

	b.row("Traffic")
	b.add(12, 8, timeseries("Requests by route", "Requests answered per second, by route.", "reqps",
		query{`sum by (route) (rate(` + requests + `[$__rate_interval]))`, "{{route}}"}))
	b.add(12, 8, timeseries("5xx by route and code", "Requests answered with a 5xx status, by route and code: the activator's own are 502 (the upstream failed), 503 (queue full, route removed) and 504 (no ready endpoint within the queue timeout, or the upstream did not answer in time).", "reqps",
		query{`sum by (route, code) (rate(` + errors5xx + `[$__rate_interval]))`, "{{route}} {{code}}"}))
	b.add(12, 8, timeseries("In flight and queued by route", "Requests proxied and not yet finished, and requests held for a ready endpoint, summed over activator replicas: what the scaler's inflight and queued see.", "short",
		query{`sum by (route) (nemesis_activator_requests_in_flight{` + activatorRoute + `})`, "in flight {{route}}"},
		query{`sum by (route) (nemesis_activator_requests_queued{` + activatorRoute + `})`, "queued {{route}}"}).
		color("^queued", "orange"))
	b.add(12, 8, timeseries("Upstream retries", "Upstream attempts repeated after a connection failed before any response byte, by route.", "ops",
		query{`sum by (route) (rate(nemesis_activator_upstream_retries_total{` + activatorRoute + `}[$__rate_interval]))`, "{{route}}"}))

	b.row("Cold starts")
	b.add(12, 9, heatmap("Queue wait", "How long held requests waited for a ready endpoint: the cold start clients see. Each column is the histogram of one interval.", "s",
		query{`sum by (le) (increase(nemesis_activator_queue_wait_seconds_bucket{` + activatorRoute + `}[$__rate_interval]))`, "{{le}}"}))
	b.add(12, 9, timeseries("Queue wait quantiles", "50th, 90th and 99th percentile of the time held requests waited for a ready endpoint, by route.", "s",
		quantiles(`nemesis_activator_queue_wait_seconds_bucket{`+activatorRoute+`}`, []string{"route"}, "{{route}}")...))
	b.add(12, 8, timeseries("Released from the queue", "Held requests leaving the queue per second, by route: to a ready endpoint, or answered 504 when none came within the queue timeout, or because the client went away.", "ops",
		query{`sum by (route) (rate(nemesis_activator_queue_wait_seconds_count{` + activatorRoute + `}[$__rate_interval]))`, "{{route}}"}))
	b.add(12, 8, timeseries("Endpoints by route", "Endpoints the activator knows for each route, by state (ready, terminating).", "short",
		query{`max by (route, state) (nemesis_activator_endpoints{` + activatorRoute + `})`, "{{route}} {{state}}"}).steps())

	b.row("Latency and endpoints")
	b.add(12, 8, timeseries("Request duration", "50th, 90th and 99th percentile of the time from a request's arrival to the end of its response, queueing and the upstream included, by route.", "s",
		quantiles(`nemesis_activator_request_duration_seconds_bucket{`+activatorRoute+`}`, []string{"route"}, "{{route}}")...))
	b.add(12, 8, timeseries("In flight per endpoint", "Requests proxied to each endpoint (ip:port) and not yet finished, summed over activator replicas: how evenly the policy spreads the load.", "short",
		query{`sum by (route, endpoint) (nemesis_activator_endpoint_requests_in_flight{` + activatorRoute + `})`, "{{route}} {{endpoint}}"}))

	b.row("Configuration and demand")
	b.add(6, 8, timeseries("Configuration reloads", "Reloads of the configuration after a change, by result. A failed reload keeps the running configuration.", "short",
		query{`sum by (result) (increase(nemesis_activator_config_reloads_total{` + activatorJob + `}[$__rate_interval]))`, "{{result}}"}).
		bars().color("failure", "red"))
	b.add(6, 8, timeseries("Unmatched requests", "Requests that matched no route (answered 404).", "reqps",
		query{`sum(rate(nemesis_activator_unmatched_requests_total{` + activatorJob + `}[$__rate_interval]))`, "unmatched"}))
	b.add(6, 8, timeseries("Metric policy refreshes", "Refreshes of a metric policy's query, by route and result.", "ops",
		query{`sum by (route, result) (rate(nemesis_activator_metric_refreshes_total{` + activatorRoute + `}[$__rate_interval]))`, "{{route}} {{result}}"}).
		color("failure", "red"))
	b.add(6, 8, timeseries("Demand watchers", "Open demand watch streams (one per scaler replica) per activator replica.", "short",
		query{`sum by (instance) (nemesis_demand_watchers{` + activatorJob + `})`, "{{instance}}"}).steps())
	return b.d
}
