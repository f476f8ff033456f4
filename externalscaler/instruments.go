package externalscaler

import (
	"github.com/prometheus/client_golang/prometheus"
)

// storeMetrics are the rule store's instruments.
type storeMetrics struct {
	reloads     *prometheus.CounterVec
	lastFailure prometheus.Gauge
	lastSuccess prometheus.Gauge
	ruleSets    prometheus.Gauge
	version     prometheus.Gauge
}

func newStoreMetrics(reg prometheus.Registerer) *storeMetrics {
	m := &storeMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "nemesis", Subsystem: "rules", Name: "reloads_total",
			Help: "Reloads of the rule files after a change, by result (success, failure). A failed reload keeps the last good rules.",
		}, []string{"result"}),
		lastFailure: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "nemesis", Subsystem: "rules", Name: "last_reload_failed",
			Help: "1 when the newest version of the rule files was rejected and an older one is serving, else 0.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "nemesis", Subsystem: "rules", Name: "last_reload_success_timestamp_seconds",
			Help: "When the rules in force were loaded.",
		}),
		ruleSets: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "nemesis", Subsystem: "rules", Name: "rule_sets",
			Help: "Rule sets in force.",
		}),
		version: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "nemesis", Subsystem: "rules", Name: "version",
			Help: "Version of the rules in force; it grows by one on each successful reload.",
		}),
	}
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	reg.MustRegister(m.reloads, m.lastFailure, m.lastSuccess, m.ruleSets, m.version)
	return m
}

func (m *storeMetrics) loaded(c *Catalog) {
	m.lastFailure.Set(0)
	m.lastSuccess.SetToCurrentTime()
	m.ruleSets.Set(float64(len(c.sets)))
	m.version.Set(float64(c.Version))
}

// scalerMetrics are the gRPC server's instruments.
type scalerMetrics struct {
	evaluations *prometheus.CounterVec
	errors      *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	desired     *prometheus.GaugeVec
	active      *prometheus.GaugeVec
	holding     *prometheus.GaugeVec
	streams     prometheus.Gauge
	triggers    prometheus.Gauge
	refused     prometheus.Counter

	shadowDesired     *prometheus.GaugeVec
	shadowEvaluations *prometheus.CounterVec
	shadowErrors      *prometheus.CounterVec
	shadowMissing     *prometheus.CounterVec
}

func newScalerMetrics(reg prometheus.Registerer) *scalerMetrics {
	object := []string{"namespace", "scaled_object", "rule_set"}
	m := &scalerMetrics{
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "nemesis", Subsystem: "scaler", Name: "evaluations_total",
			Help: "Evaluations of rule sets (each runs the queries and expressions once), by rule set.",
		}, []string{"rule_set"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "nemesis", Subsystem: "scaler", Name: "evaluation_errors_total",
			Help: "Failed evaluations by rule set and reason (prometheus, no_data, series, not_finite, demand, scale_target, expression).",
		}, []string{"rule_set", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "nemesis", Subsystem: "scaler", Name: "evaluation_duration_seconds",
			Help:    "Time to evaluate a rule set, queries included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"rule_set"}),
		desired: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "nemesis", Subsystem: "scaler", Name: "desired_replicas",
			Help: "Replicas last returned to KEDA for a ScaledObject.",
		}, object),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "nemesis", Subsystem: "scaler", Name: "active",
			Help: "1 when a ScaledObject was last reported active to KEDA, else 0.",
		}, object),
		holding: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "nemesis", Subsystem: "scaler", Name: "holding",
			Help: "1 while a ScaledObject is served its last good decision because evaluation fails (onError: hold), else 0.",
		}, object),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "nemesis", Subsystem: "scaler", Name: "active_streams",
			Help: "Open StreamIsActive streams from KEDA (trigger type external-push).",
		}),
		triggers: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "nemesis", Subsystem: "scaler", Name: "triggers",
			Help: "Triggers (ScaledObject and metadata) whose state the scaler keeps; at --max-scaled-objects new ones are refused.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "nemesis", Subsystem: "scaler", Name: "triggers_refused_total",
			Help: "Calls for a new trigger refused (ResourceExhausted) because --max-scaled-objects triggers were tracked.",
		}),
		shadowDesired: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "nemesis", Subsystem: "scaler", Name: "shadow_desired_replicas",
			Help: "Replicas a shadow rule set (trigger metadata shadowRuleSets) last decided for a ScaledObject; never returned to KEDA.",
		}, object),
		shadowEvaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "nemesis", Subsystem: "scaler", Name: "shadow_evaluations_total",
			Help: "Evaluations of shadow rule sets, by rule set; not counted in nemesis_scaler_evaluations_total.",
		}, []string{"rule_set"}),
		shadowErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "nemesis", Subsystem: "scaler", Name: "shadow_evaluation_errors_total",
			Help: "Failed evaluations of shadow rule sets by rule set and reason (those of evaluation_errors_total, and template); they never change the live answer.",
		}, []string{"rule_set", "reason"}),
		shadowMissing: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "nemesis", Subsystem: "scaler", Name: "shadow_rule_sets_missing_total",
			Help: "Triggers that name a shadow rule set the scaler does not have, by rule set: counted once per trigger, with a warning.",
		}, []string{"rule_set"}),
	}
	reg.MustRegister(m.evaluations, m.errors, m.duration, m.desired, m.active, m.holding, m.streams, m.triggers, m.refused,
		m.shadowDesired, m.shadowEvaluations, m.shadowErrors, m.shadowMissing)
	return m
}

func (m *scalerMetrics) forget(namespace, name, ruleSet string) {
	m.desired.DeleteLabelValues(namespace, name, ruleSet)
	m.active.DeleteLabelValues(namespace, name, ruleSet)
	m.holding.DeleteLabelValues(namespace, name, ruleSet)
}
