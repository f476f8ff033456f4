// Package externalscaler is Nemesis' KEDA external scaler: a gRPC server
// that implements KEDA's externalscaler.proto (trigger types external and
// external-push).
//
// For each ScaledObject it finds the rule set named by the trigger metadata
// key ruleSet, renders the rule set's query templates for that object, runs
// them through a [Querier] (the shared, caching Prometheus client), evaluates
// the rule set and answers KEDA with the desired replica count. One
// evaluation serves the GetMetrics and IsActive calls KEDA makes back to back;
// the rule set's onError policy decides what happens when Prometheus or an
// expression fails.
//
// Rule files are loaded by a [RuleStore], which reloads them when they change
// on disk and keeps the last good version when a new one is invalid.
package externalscaler
