// Package rulestest runs unit tests of rule sets: `nemesis rules test`.
//
// A test file has the shape of promtool's rule test files, so that anyone
// who has written `promtool test rules` files can write one, and
// input_series blocks paste across unchanged:
//
//	rule_files: [queue.yaml]   # relative to the test file; globs allowed
//	evaluation_interval: 1m    # default 1m
//	fuzzy_compare: false       # promql_expr_test values may differ by one float step
//	tests:
//	  - name: queue builds up
//	    interval: 15s          # default: evaluation_interval
//	    input_series:          # promtool's notation: 0+10x5, 4x3, _, stale
//	      - series: 'queue_depth{namespace="ml", model="llama"}'
//	        values: '0 0 4 12 20x3 stale'
//	    scaled_object: {namespace: ml, name: llama, metadata: {model: llama}}
//	    builtins:              # inflight, queued, current, ready; same notation
//	      queued: '0 3 0x10'
//	    rule_set_tests:
//	      - {eval_time: 1m, rule_set: queue, exp_replicas: 5, exp_active: true}
//	    promql_expr_test:
//	      - expr: max_over_time(queue_depth{namespace="ml"}[1m])
//	        eval_time: 1m30s
//	        exp_samples: [{labels: '{model="llama", namespace="ml"}', value: 20}]
//
// Series, and built-ins, start at the Unix epoch, as promtool's; an
// eval_time counts from there. Queries run on Prometheus' own PromQL engine
// over the test's series (package memprom), so that a value is the one
// Prometheus computes: lookback 5m, staleness markers, `_` gaps, time().
// Where Prometheus 3 changed the semantics since promtool 2.42 (range
// selectors and the lookback are left-open since 3.0), an eval_time on a
// sample's timestamp can give another answer than Debian's promtool; the
// memprom package documents every difference.
//
// A rule_set_tests entry goes through the scaler's own steps, not a copy
// of them: the rule set's queries rendered for scaled_object
// (rules.RuleSet.Render), each run at eval_time, the built-ins read at
// eval_time, rules.RuleSet.EvaluateWith, rules.RuleSet.Decide (onError and
// staleAfter with the last good decision) and rules.Outcome.Active (the
// queued override). Within a test, rule_set_tests run in the order written,
// their eval times must not decrease, and each rule set keeps its own last
// good decision from one to the next, as the scaler keeps it from one poll
// to the next; every test starts afresh.
//
// A built-in's value at eval_time is read as PromQL reads a series: the
// latest sample at or before it within the 5m lookback, none after a
// stale. A rule set that uses a built-in without a value then fails as the
// scaler does without its source: reason demand (inflight, queued) or
// scale_target (current, ready). queued, when it has a value above 0,
// makes the answer active whatever the rule set says.
//
// The expectations of a rule_set_tests entry:
//
//   - exp_error given: the answer must be an error (KEDA's fallback
//     applies) whose reason, as in nemesis_scaler_evaluation_errors_total
//     (rules.Reason), is exp_error. exp_replicas and exp_holding may not be
//     given with it; exp_active may, and is compared with the activity
//     KEDA is told (an error is inactive unless queued wakes it).
//   - otherwise the answer must not be an error, and exp_replicas is
//     required and compared with its replicas; exp_active, when given, with
//     its activity (the queued override included); exp_holding (default
//     false) always with whether it is the last good decision held by
//     onError: hold.
//
// A promql_expr_test compares as promtool's: labels parsed with
// Prometheus' parser, the order of samples ignored, values equal (one
// float step apart with fuzzy_compare).
//
// Every problem of a test file, or of a rule file it names, is reported
// at once with file:line:column: unknown fields, bad notation, an unknown
// rule set or built-in, decreasing eval times, an exp_error that is not a
// reason. A failed expectation names the file, the test, the eval time and
// the rule set, with expected against got and every rendered query's value
// at that time.
package rulestest
