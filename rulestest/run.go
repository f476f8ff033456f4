package rulestest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/k8s-nemesis/nemesis/memprom"
	"github.com/k8s-nemesis/nemesis/metrics"
	"github.com/k8s-nemesis/nemesis/rules"
)

// Result is the outcome of one test.
type Result struct {
	Test *Test
	// Failures are the expectations that did not hold, in file order:
	// rule_set_tests first, then promql_expr_test.
	Failures []*Failure
}

// Failure is one expectation that did not hold.
type Failure struct {
	File string
	// Test is the test's name, or "#N" (from 1) for a test without one.
	Test string
	// EvalTime counts from the Unix epoch, where the series start.
	EvalTime time.Duration
	// RuleSet is the rule set of a rule_set_tests entry; Expr the
	// expression of a promql_expr_test one.
	RuleSet, Expr string
	Line          int
	Expected, Got string
	// Details are the values that led to Got: every rendered query's value
	// at EvalTime, and the built-ins'.
	Details []string

	unnamed bool
}

// String renders the failure for people: where, expected against got, and
// the values behind it, one per line.
func (f *Failure) String() string {
	var b strings.Builder
	what := fmt.Sprintf("rule set %s", f.RuleSet)
	if f.RuleSet == "" {
		what = fmt.Sprintf("expr %q", f.Expr)
	}
	test := fmt.Sprintf("%q", f.Test)
	if f.unnamed {
		test = f.Test
	}
	fmt.Fprintf(&b, "%s:%d: test %s: eval_time %s, %s:\n", f.File, f.Line, test, model.Duration(f.EvalTime), what)
	fmt.Fprintf(&b, "    expected: %s\n", f.Expected)
	fmt.Fprintf(&b, "    got:      %s\n", f.Got)
	for _, d := range f.Details {
		fmt.Fprintf(&b, "    %s\n", d)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Run runs the tests of f whose names match (all of them when match is
// nil), each from a fresh state, and returns one result per test run.
func (f *File) Run(ctx context.Context, match func(name string) bool) []*Result {
	var out []*Result
	for _, t := range f.Tests {
		if match != nil && !match(t.Name) {
			continue
		}
		out = append(out, &Result{Test: t, Failures: f.runTest(ctx, t)})
	}
	return out
}

func (f *File) runTest(ctx context.Context, t *Test) []*Failure {
	r := &runner{
		file:   f,
		test:   t,
		series: memprom.NewEngine(t.series, memprom.Options{SubqueryInterval: f.EvaluationInterval}),
	}
	if len(t.Builtins) > 0 {
		r.builtins = memprom.NewEngine(t.builtins, memprom.Options{})
	}
	// One last good decision per rule set, carried from one eval_time to
	// the next as the scaler carries it from one poll to the next.
	last := map[string]*rules.LastGood{}
	var failures []*Failure
	for _, rt := range t.RuleSetTests {
		lg := last[rt.RuleSet]
		if lg == nil {
			lg = &rules.LastGood{}
			last[rt.RuleSet] = lg
		}
		if fl := r.ruleSetTest(ctx, rt, lg); fl != nil {
			failures = append(failures, fl)
		}
	}
	for _, et := range t.ExprTests {
		if fl := r.exprTest(ctx, et); fl != nil {
			failures = append(failures, fl)
		}
	}
	return failures
}

// runner runs one test.
type runner struct {
	file             *File
	test             *Test
	series, builtins *memprom.Engine
}

// ruleSetTest evaluates a rule set at one time through the scaler's own
// steps (rules.RuleSet.EvaluateWith, Decide, Outcome.Active) and checks
// the answer against the expectation.
func (r *runner) ruleSetTest(ctx context.Context, rt *RuleSetTest, last *rules.LastGood) *Failure {
	rs := rt.rs
	at := memprom.Epoch().Add(rt.EvalTime)
	var details []string

	results := make([]rules.Result, len(rt.queries))
	var errs []error
	for i, q := range rt.queries {
		res, err := r.series.Query(ctx, q, at)
		if err != nil {
			errs = append(errs, &rules.QueryError{Query: rs.Queries[i].Name, Err: err})
			details = append(details, fmt.Sprintf("query %s = %s: error: %v", rs.Queries[i].Name, q, err))
			continue
		}
		results[i] = rules.Result{Scalar: res.Scalar, Values: res.Values}
		details = append(details, fmt.Sprintf("query %s = %s: %s", rs.Queries[i].Name, q, formatResult(res)))
	}

	var b rules.BuiltinValues
	have := map[string]bool{}
	for _, name := range builtinNames {
		used := slices.Contains(rs.Builtins, name)
		if _, given := r.test.Builtins[name]; !given {
			if used {
				details = append(details, fmt.Sprintf("built-in %s: not given by the test", name))
			}
			continue
		}
		v, ok, err := r.builtin(ctx, name, at)
		switch {
		case err != nil:
			details = append(details, fmt.Sprintf("built-in %s: error: %v", name, err))
		case !ok:
			details = append(details, fmt.Sprintf("built-in %s: no value at this time (none within the lookback, or stale)", name))
		default:
			b.Set(name, v)
			have[name] = true
			details = append(details, fmt.Sprintf("built-in %s = %s", name, formatFloat(v)))
		}
	}
	// A waiting request wakes the service whatever the rule set answers:
	// the scaler's queued override.
	waiting := have["queued"] && b.Queued > 0

	d, err := evaluate(rs, results, errs, &b, have, rt.EvalTime)
	out := rs.Decide(last, at, d, err)
	active, _ := out.Active(waiting)

	var expected, got []string
	fail := false
	if rt.ExpError != "" {
		expected = append(expected, "error "+rt.ExpError)
		if out.Err == nil {
			fail = true
			got = append(got, decisionText(out, active))
		} else {
			reason := rules.Reason(out.Err)
			fail = reason != rt.ExpError
			got = append(got, fmt.Sprintf("error %s: %v", reason, out.Err))
		}
		if rt.ExpActive != nil {
			expected = append(expected, "active "+strconv.FormatBool(*rt.ExpActive))
			fail = fail || active != *rt.ExpActive
			if out.Err != nil {
				got = append(got, "active "+strconv.FormatBool(active))
			}
		}
	} else {
		expected = append(expected, fmt.Sprintf("replicas %d", *rt.ExpReplicas))
		if rt.ExpActive != nil {
			expected = append(expected, "active "+strconv.FormatBool(*rt.ExpActive))
		}
		expected = append(expected, "holding "+strconv.FormatBool(rt.ExpHolding))
		if out.Err != nil {
			fail = true
			got = append(got, fmt.Sprintf("error %s: %v", rules.Reason(out.Err), out.Err))
		} else {
			fail = out.Decision.Replicas != *rt.ExpReplicas || out.Holding != rt.ExpHolding ||
				(rt.ExpActive != nil && active != *rt.ExpActive)
			got = append(got, decisionText(out, active))
		}
	}
	if !fail {
		return nil
	}
	if out.EvalErr != nil && out.Err == nil {
		details = append(details, fmt.Sprintf("evaluation error (%s): %v", rules.Reason(out.EvalErr), out.EvalErr))
	}
	return &Failure{
		File: r.file.Path, Test: r.test.label(), unnamed: r.test.Name == "", EvalTime: rt.EvalTime, RuleSet: rt.RuleSet, Line: rt.Line,
		Expected: strings.Join(expected, ", "), Got: strings.Join(got, ", "), Details: details,
	}
}

// evaluate is the scaler's evaluation of one poll (externalscaler's
// Server.evaluate) with the test's series for Prometheus and its built-ins
// for the activators and the scale target: query errors and the scale
// target's first, then the demand, then the rule set's expressions.
func evaluate(rs *rules.RuleSet, results []rules.Result, errs []error, b *rules.BuiltinValues, have map[string]bool, at time.Duration) (rules.Decision, error) {
	missing := func(demand bool) []string {
		var names []string
		for _, name := range rs.Builtins {
			if (name == "inflight" || name == "queued") == demand && !have[name] {
				names = append(names, name)
			}
		}
		return names
	}
	if m := missing(false); len(m) > 0 {
		errs = append(errs, fmt.Errorf("%s: the test gives no value at %s: %w", strings.Join(m, ", "), model.Duration(at), rules.ErrNoScaleTarget))
	}
	if err := errors.Join(errs...); err != nil {
		return rules.Decision{}, err
	}
	if len(rs.Builtins) == 0 {
		return rs.Evaluate(results)
	}
	if m := missing(true); len(m) > 0 {
		return rules.Decision{}, fmt.Errorf("%s: the test gives no value at %s: %w", strings.Join(m, ", "), model.Duration(at), rules.ErrNoDemand)
	}
	return rs.EvaluateWith(results, b)
}

// builtin is the value of a built-in at t, read as PromQL reads a series:
// the latest sample within the lookback, none after a staleness marker.
func (r *runner) builtin(ctx context.Context, name string, t time.Time) (float64, bool, error) {
	res, err := r.builtins.Query(ctx, name, t)
	if err != nil || len(res.Values) == 0 {
		return 0, false, err
	}
	return res.Values[0], true, nil
}

func decisionText(o rules.Outcome, active bool) string {
	s := fmt.Sprintf("replicas %d, active %t, holding %t", o.Decision.Replicas, active, o.Holding)
	switch {
	case o.Holding:
		s += fmt.Sprintf(" (the last good decision, of %s)", model.Duration(o.HeldSince.Sub(memprom.Epoch())))
	case o.Fixed:
		s += " (onError's fixed count)"
	default:
		s += fmt.Sprintf(" (expression %s)", formatFloat(o.Decision.Raw))
	}
	return s
}

// exprTest runs one promql_expr_test and compares as promtool does.
func (r *runner) exprTest(ctx context.Context, et *ExprTest) *Failure {
	fl := &Failure{File: r.file.Path, Test: r.test.label(), unnamed: r.test.Name == "", EvalTime: et.EvalTime, Expr: et.Expr, Line: et.Line,
		Expected: memprom.FormatSamples(et.ExpSamples)}
	res, err := r.series.Query(ctx, et.Expr, memprom.Epoch().Add(et.EvalTime))
	if err != nil {
		fl.Got = "error: " + err.Error()
		return fl
	}
	got := memprom.Samples(res)
	if memprom.EqualSamples(et.ExpSamples, got, r.file.FuzzyCompare) {
		return nil
	}
	fl.Got = memprom.FormatSamples(got)
	return fl
}

// formatResult shows a query's answer: a scalar, no series, or each series
// with its labels.
func formatResult(r metrics.Result) string {
	switch {
	case r.Scalar && len(r.Values) == 1:
		return "scalar " + formatFloat(r.Values[0])
	case len(r.Values) == 0:
		return "no series"
	}
	parts := make([]string, len(r.Values))
	for i, v := range r.Values {
		lset := labels.EmptyLabels()
		if i < len(r.Labels) {
			lset = labels.FromMap(r.Labels[i])
		}
		parts[i] = lset.String() + " " + formatFloat(v)
	}
	return strings.Join(parts, ", ")
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
