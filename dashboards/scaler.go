package dashboards

// Selectors of the scaler dashboard. Every scaler metric carries job and
// instance from the scrape; the per-ScaledObject gauges also carry the
// ScaledObject's namespace, name and rule set, while the evaluation
// counters and histogram, shared by every object of a rule set, carry the
// rule set only.
const (
	scalerJob    = `job=~"$job"`
	scalerObject = `job=~"$job", namespace=~"$namespace", scaled_object=~"$scaled_object"`
	scalerRules  = `job=~"$job", rule_set=~"$rule_set"`
)

// scalerDashboard is the dashboard of `nemesis scaler`.
func scalerDashboard() *dashboard {
	b := newBoard("nemesis-scaler", "Nemesis / Scaler",
		"Decisions of the Nemesis external scaler per ScaledObject, its rule evaluations, its Prometheus queries and its rule reloads.",
		queryVar("job", "Job", "The scrape job(s) of the scaler.",
			`nemesis_scaler_active_streams`, "job"),
		queryVar("namespace", "Namespace", "Namespace of the ScaledObjects.",
			`nemesis_scaler_desired_replicas{job=~"$job"}`, "namespace"),
		queryVar("scaled_object", "ScaledObject", "ScaledObjects of the selected namespaces.",
			`nemesis_scaler_desired_replicas{job=~"$job", namespace=~"$namespace"}`, "scaled_object"),
		queryVar("rule_set", "Rule set", "Rule sets of the selected ScaledObjects; the evaluation panels are per rule set.",
			`nemesis_scaler_desired_replicas{`+scalerObject+`}`, "rule_set"),
	)
	// Every scaler replica that KEDA asked reports the object: max over
	// replicas is the decision.
	perObject := "max by (namespace, scaled_object) "

	b.row("Overview")
	b.add(4, 4, stat("ScaledObjects", "ScaledObjects the scaler has answered for recently.", "short",
		query{`count(count by (namespace, scaled_object) (nemesis_scaler_desired_replicas{` + scalerObject + `}))`, ""}))
	b.add(4, 4, stat("Active", "ScaledObjects last reported active to KEDA.", "short",
		query{`sum(` + perObject + `(nemesis_scaler_active{` + scalerObject + `}))`, ""}))
	b.add(4, 4, stat("Holding", "ScaledObjects served their last good decision because evaluation fails (onError: hold).", "short",
		query{`sum(` + perObject + `(nemesis_scaler_holding{` + scalerObject + `}))`, ""}, redAbove(1)...))
	b.add(4, 4, stat("Push streams", "Open StreamIsActive streams from KEDA (trigger type external-push).", "short",
		query{`sum(nemesis_scaler_active_streams{` + scalerJob + `})`, ""}))
	b.add(4, 4, stat("Rule sets", "Rule sets in force.", "short",
		query{`max(nemesis_rules_rule_sets{` + scalerJob + `})`, ""}))
	b.add(4, 4, stat("Rejected rule files", "Scaler replicas serving older rules because the newest rule files were rejected.", "short",
		query{`sum(nemesis_rules_last_reload_failed{` + scalerJob + `})`, ""}, redAbove(1)...))

	b.row("Decisions")
	b.add(24, 9, timeseries("Desired replicas", "Replicas last returned to KEDA for each ScaledObject: the scaler's decision. KEDA and the HPA apply it within their tolerance and stabilization windows.", "short",
		query{perObject + `(nemesis_scaler_desired_replicas{` + scalerObject + `})`, "{{namespace}}/{{scaled_object}}"}).steps())
	b.add(12, 8, stateTimeline("Active", "Whether each ScaledObject was last reported active (KEDA scales it from zero and keeps it above zero while it is).",
		query{perObject + `(nemesis_scaler_active{` + scalerObject + `})`, "{{namespace}}/{{scaled_object}}"},
		mappingValue{Text: "inactive", Color: "transparent"}, mappingValue{Text: "active", Color: "green"}))
	b.add(12, 8, stateTimeline("Holding last good decision", "Whether each ScaledObject is served its last good decision because evaluation fails (onError: hold); staleAfter ends the hold.",
		query{perObject + `(nemesis_scaler_holding{` + scalerObject + `})`, "{{namespace}}/{{scaled_object}}"},
		mappingValue{Text: "evaluating", Color: "transparent"}, mappingValue{Text: "holding", Color: "red"}))

	b.add(24, 9, timeseries("Shadow rule sets against the live decision", "Replicas each shadow rule set (trigger metadata shadowRuleSets) decided, over the live decision returned to KEDA for the same ScaledObject. Shadows never scale anything: this is how a candidate rule set would have scaled on the same data.", "short",
		query{perObject + `(nemesis_scaler_desired_replicas{` + scalerObject + `})`, "live {{namespace}}/{{scaled_object}}"},
		query{`max by (namespace, scaled_object, rule_set) (nemesis_scaler_shadow_desired_replicas{` + scalerObject + `})`, "shadow {{rule_set}} {{namespace}}/{{scaled_object}}"}).steps().
		color("^live", "green"))
	b.add(12, 8, timeseries("Shadow evaluation errors", "Failed evaluations of shadow rule sets by rule set and reason (template: its queries cannot be rendered for a trigger); they never change the live answer.", "ops",
		query{`sum by (rule_set, reason) (rate(nemesis_scaler_shadow_evaluation_errors_total{` + scalerJob + `}[$__rate_interval]))`, "{{rule_set}}: {{reason}}"}))
	b.add(12, 8, timeseries("Missing shadow rule sets", "Triggers that name a shadow rule set the scaler does not have (counted once per trigger, with a warning in the log).", "short",
		query{`sum by (rule_set) (increase(nemesis_scaler_shadow_rule_sets_missing_total{` + scalerJob + `}[$__rate_interval]))`, "{{rule_set}}"}).bars())

	b.row("Evaluations")
	b.add(8, 8, timeseries("Evaluations", "Evaluations of each rule set (its queries and expressions, once per call or shared within --evaluation-reuse).", "ops",
		query{`sum by (rule_set) (rate(nemesis_scaler_evaluations_total{` + scalerRules + `}[$__rate_interval]))`, "{{rule_set}}"}))
	b.add(8, 8, timeseries("Evaluation errors", "Failed evaluations by rule set and reason: prometheus, no_data, series, not_finite, demand, scale_target, expression.", "ops",
		query{`sum by (rule_set, reason) (rate(nemesis_scaler_evaluation_errors_total{` + scalerRules + `}[$__rate_interval]))`, "{{rule_set}}: {{reason}}"}))
	b.add(8, 8, timeseries("Evaluation duration", "Time to evaluate a rule set, its Prometheus queries included.", "s",
		quantiles(`nemesis_scaler_evaluation_duration_seconds_bucket{`+scalerRules+`}`, []string{"rule_set"}, "{{rule_set}}")...))

	b.row("Prometheus queries")
	b.add(8, 8, timeseries("Requests to Prometheus", "HTTP requests the scaler sent to Prometheus, by outcome.", "reqps",
		query{`sum by (outcome) (rate(nemesis_prometheus_requests_total{` + scalerJob + `}[$__rate_interval]))`, "{{outcome}}"}).
		color("error|timeout", "red"))
	b.add(8, 8, timeseries("Queries by source", "Query calls by where the answer came from: prometheus (a request was sent), shared (joined one in flight), cache (within --query-cache-ttl).", "ops",
		query{`sum by (source) (rate(nemesis_prometheus_queries_total{` + scalerJob + `}[$__rate_interval]))`, "{{source}}"}))
	b.add(8, 8, timeseries("Prometheus latency", "Duration of requests to Prometheus, reading and decoding the answer included.", "s",
		quantiles(`nemesis_prometheus_request_duration_seconds_bucket{`+scalerJob+`}`, nil, "")...))
	b.add(8, 8, timeseries("Query cache entries", "Query results held in the cache per scaler replica, expired entries not yet swept included.", "short",
		query{`sum by (instance) (nemesis_prometheus_cache_entries{` + scalerJob + `})`, "{{instance}}"}))

	b.row("Rules, demand and Kubernetes")
	b.add(8, 8, timeseries("Rule reloads", "Reloads of the rule files after a change, by result. A failed reload keeps the last good rules.", "short",
		query{`sum by (result) (increase(nemesis_rules_reloads_total{` + scalerJob + `}[$__rate_interval]))`, "{{result}}"}).
		bars().color("failure", "red"))
	b.add(8, 8, timeseries("Rules version", "Version of the rules in force per scaler replica (it grows by one on each successful reload), and whether the newest files were rejected.", "short",
		query{`max by (instance) (nemesis_rules_version{` + scalerJob + `})`, "version {{instance}}"},
		query{`max by (instance) (nemesis_rules_last_reload_failed{` + scalerJob + `})`, "rejected {{instance}}"}).steps().
		color("^rejected", "red"))
	b.add(8, 8, timeseries("Push streams", "Open StreamIsActive streams from KEDA per scaler replica.", "short",
		query{`sum by (instance) (nemesis_scaler_active_streams{` + scalerJob + `})`, "{{instance}}"}).steps())
	b.add(8, 8, timeseries("Connected activators", "Activator replicas whose demand counts (in flight, queued) are live, per scaler replica.", "short",
		query{`sum by (instance) (nemesis_demand_connected_activators{` + scalerJob + `})`, "{{instance}}"}).steps())
	b.add(8, 8, timeseries("Demand stream errors", "Demand watch streams to activators that failed or ended, by reason.", "ops",
		query{`sum by (reason) (rate(nemesis_demand_stream_errors_total{` + scalerJob + `}[$__rate_interval]))`, "{{reason}}"}))
	b.add(8, 8, timeseries("Scale subresource reads", "Reads of scale subresources from the API server (for the built-ins current and ready), by result.", "reqps",
		query{`sum by (result) (rate(nemesis_kube_scale_reads_total{` + scalerJob + `}[$__rate_interval]))`, "{{result}}"}).
		color("error", "red"))
	return b.d
}
