package dashboards

//lint:file-ignore SA1019 the SDK deprecates its classic dashboard model for dashboardv2, which Grafana imports only with dynamic dashboards switched on

import (
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

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
func scalerDashboard() *dashboard.DashboardBuilder {
	b := newDashboard("nemesis-scaler", "Nemesis / Scaler",
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

	b.WithRow(dashboard.NewRowBuilder("Overview"))
	b.WithPanel(statPanel("ScaledObjects", "ScaledObjects the scaler has answered for recently.", units.Short,
		query{`count(count by (namespace, scaled_object) (nemesis_scaler_desired_replicas{` + scalerObject + `}))`, ""}).
		Span(4).Height(4))
	b.WithPanel(statPanel("Active", "ScaledObjects last reported active to KEDA.", units.Short,
		query{`sum(` + perObject + `(nemesis_scaler_active{` + scalerObject + `}))`, ""}).
		Span(4).Height(4))
	b.WithPanel(statPanel("Holding", "ScaledObjects served their last good decision because evaluation fails (onError: hold).", units.Short,
		query{`sum(` + perObject + `(nemesis_scaler_holding{` + scalerObject + `}))`, ""}, redAbove(1)...).
		Span(4).Height(4))
	b.WithPanel(statPanel("Push streams", "Open StreamIsActive streams from KEDA (trigger type external-push).", units.Short,
		query{`sum(nemesis_scaler_active_streams{` + scalerJob + `})`, ""}).
		Span(4).Height(4))
	b.WithPanel(statPanel("Rule sets", "Rule sets in force.", units.Short,
		query{`max(nemesis_rules_rule_sets{` + scalerJob + `})`, ""}).
		Span(4).Height(4))
	b.WithPanel(statPanel("Rejected rule files", "Scaler replicas serving older rules because the newest rule files were rejected.", units.Short,
		query{`sum(nemesis_rules_last_reload_failed{` + scalerJob + `})`, ""}, redAbove(1)...).
		Span(4).Height(4))

	b.WithRow(dashboard.NewRowBuilder("Decisions"))
	b.WithPanel(steps(graphPanel("Desired replicas", "Replicas last returned to KEDA for each ScaledObject: the scaler's decision. KEDA and the HPA apply it within their tolerance and stabilization windows.", units.Short,
		query{perObject + `(nemesis_scaler_desired_replicas{` + scalerObject + `})`, "{{namespace}}/{{scaled_object}}"})).
		Span(24).Height(9))
	b.WithPanel(timelinePanel("Active", "Whether each ScaledObject was last reported active (KEDA scales it from zero and keeps it above zero while it is).",
		query{perObject + `(nemesis_scaler_active{` + scalerObject + `})`, "{{namespace}}/{{scaled_object}}"},
		state{"inactive", "transparent"}, state{"active", "green"}).
		Span(12).Height(8))
	b.WithPanel(timelinePanel("Holding last good decision", "Whether each ScaledObject is served its last good decision because evaluation fails (onError: hold); staleAfter ends the hold.",
		query{perObject + `(nemesis_scaler_holding{` + scalerObject + `})`, "{{namespace}}/{{scaled_object}}"},
		state{"evaluating", "transparent"}, state{"holding", "red"}).
		Span(12).Height(8))

	b.WithPanel(steps(graphPanel("Shadow rule sets against the live decision", "Replicas each shadow rule set (trigger metadata shadowRuleSets) decided, over the live decision returned to KEDA for the same ScaledObject. Shadows never scale anything: this is how a candidate rule set would have scaled on the same data.", units.Short,
		query{perObject + `(nemesis_scaler_desired_replicas{` + scalerObject + `})`, "live {{namespace}}/{{scaled_object}}"},
		query{`max by (namespace, scaled_object, rule_set) (nemesis_scaler_shadow_desired_replicas{` + scalerObject + `})`, "shadow {{rule_set}} {{namespace}}/{{scaled_object}}"})).
		OverrideByRegexp("^live", fixedColor("green")).
		Span(24).Height(9))
	b.WithPanel(graphPanel("Shadow evaluation errors", "Failed evaluations of shadow rule sets by rule set and reason (template: its queries cannot be rendered for a trigger); they never change the live answer.", units.OpsPerSecond,
		query{`sum by (rule_set, reason) (rate(nemesis_scaler_shadow_evaluation_errors_total{` + scalerJob + `}[$__rate_interval]))`, "{{rule_set}}: {{reason}}"}).
		Span(12).Height(8))
	b.WithPanel(bars(graphPanel("Missing shadow rule sets", "Triggers that name a shadow rule set the scaler does not have (counted once per trigger, with a warning in the log).", units.Short,
		query{`sum by (rule_set) (increase(nemesis_scaler_shadow_rule_sets_missing_total{` + scalerJob + `}[$__rate_interval]))`, "{{rule_set}}"})).
		Span(12).Height(8))

	b.WithRow(dashboard.NewRowBuilder("Evaluations"))
	b.WithPanel(graphPanel("Evaluations", "Evaluations of each rule set (its queries and expressions, once per call or shared within --evaluation-reuse).", units.OpsPerSecond,
		query{`sum by (rule_set) (rate(nemesis_scaler_evaluations_total{` + scalerRules + `}[$__rate_interval]))`, "{{rule_set}}"}).
		Span(8).Height(8))
	b.WithPanel(graphPanel("Evaluation errors", "Failed evaluations by rule set and reason: prometheus, no_data, series, not_finite, demand, scale_target, expression.", units.OpsPerSecond,
		query{`sum by (rule_set, reason) (rate(nemesis_scaler_evaluation_errors_total{` + scalerRules + `}[$__rate_interval]))`, "{{rule_set}}: {{reason}}"}).
		Span(8).Height(8))
	b.WithPanel(graphPanel("Evaluation duration", "Time to evaluate a rule set, its Prometheus queries included.", units.Seconds,
		quantiles(`nemesis_scaler_evaluation_duration_seconds_bucket{`+scalerRules+`}`, []string{"rule_set"}, "{{rule_set}}")...).
		Span(8).Height(8))

	b.WithRow(dashboard.NewRowBuilder("Prometheus queries"))
	b.WithPanel(graphPanel("Requests to Prometheus", "HTTP requests the scaler sent to Prometheus, by outcome.", units.RequestsPerSecond,
		query{`sum by (outcome) (rate(nemesis_prometheus_requests_total{` + scalerJob + `}[$__rate_interval]))`, "{{outcome}}"}).
		OverrideByRegexp("error|timeout", fixedColor("red")).
		Span(8).Height(8))
	b.WithPanel(graphPanel("Queries by source", "Query calls by where the answer came from: prometheus (a request was sent), shared (joined one in flight), cache (within --query-cache-ttl).", units.OpsPerSecond,
		query{`sum by (source) (rate(nemesis_prometheus_queries_total{` + scalerJob + `}[$__rate_interval]))`, "{{source}}"}).
		Span(8).Height(8))
	b.WithPanel(graphPanel("Prometheus latency", "Duration of requests to Prometheus, reading and decoding the answer included.", units.Seconds,
		quantiles(`nemesis_prometheus_request_duration_seconds_bucket{`+scalerJob+`}`, nil, "")...).
		Span(8).Height(8))
	b.WithPanel(graphPanel("Query cache entries", "Query results held in the cache per scaler replica, expired entries not yet swept included.", units.Short,
		query{`sum by (instance) (nemesis_prometheus_cache_entries{` + scalerJob + `})`, "{{instance}}"}).
		Span(8).Height(8))

	b.WithRow(dashboard.NewRowBuilder("Rules, demand and Kubernetes"))
	b.WithPanel(bars(graphPanel("Rule reloads", "Reloads of the rule files after a change, by result. A failed reload keeps the last good rules.", units.Short,
		query{`sum by (result) (increase(nemesis_rules_reloads_total{` + scalerJob + `}[$__rate_interval]))`, "{{result}}"})).
		OverrideByRegexp("failure", fixedColor("red")).
		Span(8).Height(8))
	b.WithPanel(steps(graphPanel("Rules version", "Version of the rules in force per scaler replica (it grows by one on each successful reload), and whether the newest files were rejected.", units.Short,
		query{`max by (instance) (nemesis_rules_version{` + scalerJob + `})`, "version {{instance}}"},
		query{`max by (instance) (nemesis_rules_last_reload_failed{` + scalerJob + `})`, "rejected {{instance}}"})).
		OverrideByRegexp("^rejected", fixedColor("red")).
		Span(8).Height(8))
	b.WithPanel(steps(graphPanel("Push streams", "Open StreamIsActive streams from KEDA per scaler replica.", units.Short,
		query{`sum by (instance) (nemesis_scaler_active_streams{` + scalerJob + `})`, "{{instance}}"})).
		Span(8).Height(8))
	b.WithPanel(steps(graphPanel("Connected activators", "Activator replicas whose demand counts (in flight, queued) are live, per scaler replica.", units.Short,
		query{`sum by (instance) (nemesis_demand_connected_activators{` + scalerJob + `})`, "{{instance}}"})).
		Span(8).Height(8))
	b.WithPanel(graphPanel("Demand stream errors", "Demand watch streams to activators that failed or ended, by reason.", units.OpsPerSecond,
		query{`sum by (reason) (rate(nemesis_demand_stream_errors_total{` + scalerJob + `}[$__rate_interval]))`, "{{reason}}"}).
		Span(8).Height(8))
	b.WithPanel(graphPanel("Scale subresource reads", "Reads of scale subresources from the API server (for the built-ins current and ready), by result.", units.RequestsPerSecond,
		query{`sum by (result) (rate(nemesis_kube_scale_reads_total{` + scalerJob + `}[$__rate_interval]))`, "{{result}}"}).
		OverrideByRegexp("error", fixedColor("red")).
		Span(8).Height(8))
	return b
}
