package rules

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/expr-lang/expr/vm"
)

// Errors of an evaluation. Each comes wrapped with the query or expression
// it concerns; errors.Is tells them apart, e.g. to label a metric.
var (
	// ErrNoData: a query used as a number returned no series.
	ErrNoData = errors.New("no data")
	// ErrSeries: a query used as a number returned several series.
	ErrSeries = errors.New("several series")
	// ErrNotFinite: a query returned NaN or ±Inf, or an expression computed it.
	ErrNotFinite = errors.New("not a finite number")
	// ErrExpression: an expression failed at run time.
	ErrExpression = errors.New("expression failed")
	// ErrNoDemand: the expressions use inflight or queued, and the caller
	// has no values for them.
	ErrNoDemand = errors.New("no demand data")
	// ErrNoScaleTarget: the expressions use current or ready, and the
	// caller has no values for them.
	ErrNoScaleTarget = errors.New("no scale target data")
)

// BuiltinValues are the values of the built-in variables, which come from
// the caller rather than from a query. Only those listed in
// RuleSet.Builtins are read.
type BuiltinValues struct {
	// InFlight is inflight: requests of the ScaledObject's service that
	// the activators are proxying now, summed over all activators.
	InFlight float64
	// Queued is queued: requests of that service the activators hold
	// while it has no ready pod.
	Queued float64
	// Current is current: the replicas of the ScaledObject's scale target
	// (spec.replicas of its scale subresource).
	Current float64
	// Ready is ready: the ready pods of that scale target.
	Ready float64
}

// Set sets the built-in variable name to v, and reports whether name is
// one.
func (b *BuiltinValues) Set(name string, v float64) bool {
	switch name {
	case inflightVar:
		b.InFlight = v
	case queuedVar:
		b.Queued = v
	case currentVar:
		b.Current = v
	case readyVar:
		b.Ready = v
	default:
		return false
	}
	return true
}

// Result is the value of one query: one value per series of an instant
// vector, or a scalar's value. Evaluate treats its slice as read-only.
type Result struct {
	Scalar bool
	Values []float64
}

// Decision is what a rule set computed.
type Decision struct {
	// Replicas is the desired replica count: the replicas expression rounded
	// up, then clamped to min..max.
	Replicas int64
	// Raw is the value of the replicas expression before rounding and clamping.
	Raw float64
	// Active is the value of the active expression (default: Replicas > 0).
	Active bool
}

// evaluator holds what one evaluation needs, reused across evaluations.
type evaluator struct {
	vm     vm.VM
	env    map[string]any
	series map[string][]float64
	frame  frame
}

func (rs *RuleSet) newEvaluator() *evaluator {
	e := &evaluator{
		env:    make(map[string]any, len(rs.Queries)+2),
		series: make(map[string][]float64, len(rs.Queries)),
		frame:  make(frame, len(rs.Queries)+1+len(builtinNames)),
	}
	e.env[seriesVar] = e.series
	return e
}

// roundingSlack absorbs floating-point error before rounding up, so that a
// computed 4.000000000001 asks for 4 replicas, not 5.
const roundingSlack = 1e-9

// Evaluate computes the decision from the results of the rule set's queries,
// given in the order of rs.Queries. It never returns a decision computed from
// missing or non-finite data: those are errors for the caller's onError
// policy. A rule set that uses built-in variables needs EvaluateWith.
func (rs *RuleSet) Evaluate(results []Result) (Decision, error) {
	return rs.EvaluateWith(results, nil)
}

// EvaluateWith is Evaluate with the values of the built-in variables listed
// in rs.Builtins. b may be nil when there are none: then a rule set that
// uses them fails with ErrNoDemand (inflight, queued) or ErrNoScaleTarget
// (current, ready) rather than reading them as 0.
func (rs *RuleSet) EvaluateWith(results []Result, b *BuiltinValues) (Decision, error) {
	if len(results) != len(rs.Queries) {
		return Decision{}, fmt.Errorf("rule set %q: got %d query results for %d queries", rs.Name, len(results), len(rs.Queries))
	}
	var builtins [len(builtinNames)]float64
	if len(rs.Builtins) > 0 {
		if b == nil {
			return Decision{}, rs.noBuiltins()
		}
		builtins = [...]float64{b.InFlight, b.Queued, b.Current, b.Ready}
		for i, v := range builtins {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return Decision{}, fmt.Errorf("%s is %v: %w", builtinNames[i], v, ErrNotFinite)
			}
		}
	}
	e, _ := rs.pool.Get().(*evaluator)
	if e == nil {
		e = rs.newEvaluator()
	}
	defer rs.pool.Put(e)
	fast := rs.fastReplicas != nil && (rs.active == nil || rs.fastActive != nil)
	for i, q := range rs.Queries {
		r := results[i]
		for _, v := range r.Values {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return Decision{}, fmt.Errorf("query %q returned %v: %w", q.Name, v, ErrNotFinite)
			}
		}
		if q.Series {
			e.series[q.Name] = r.Values
		}
		if q.Bare {
			switch len(r.Values) {
			case 1:
				if fast {
					e.frame[i] = r.Values[0]
				} else {
					e.env[q.Name] = r.Values[0]
				}
			case 0:
				return Decision{}, fmt.Errorf("query %q returned no series (append `or vector(0)` to the query if none means zero): %w", q.Name, ErrNoData)
			default:
				return Decision{}, fmt.Errorf("query %q returned %d series where one number was needed (aggregate it in PromQL, or use series.%s with max(), sum() or mean()): %w", q.Name, len(r.Values), q.Name, ErrSeries)
			}
		}
	}
	if fast {
		copy(e.frame[len(rs.Queries)+1:], builtins[:])
		return rs.evaluateFast(e.frame)
	}
	for _, name := range rs.Builtins {
		e.env[name] = builtins[slices.Index(builtinNames[:], name)]
	}
	e.vm.MemoryBudget = memoryBudget
	out, err := e.vm.Run(rs.replicas, e.env)
	if err != nil {
		return Decision{}, fmt.Errorf("replicas: %w: %w", ErrExpression, err)
	}
	raw := out.(float64) // AsFloat64 at compile time guarantees it
	if math.IsNaN(raw) || math.IsInf(raw, 0) {
		return Decision{}, fmt.Errorf("replicas: the expression computed %v: %w", raw, ErrNotFinite)
	}
	d := Decision{Raw: raw, Replicas: rs.Clamp(raw)}
	if rs.active == nil {
		d.Active = d.Replicas > 0
		return d, nil
	}
	e.env[replicasVar] = float64(d.Replicas)
	out, err = e.vm.Run(rs.active, e.env)
	delete(e.env, replicasVar)
	if err != nil {
		return Decision{}, fmt.Errorf("active: %w: %w", ErrExpression, err)
	}
	d.Active = out.(bool) // AsBool at compile time guarantees it
	return d, nil
}

// noBuiltins is the error of an evaluation that uses built-ins without
// their values.
func (rs *RuleSet) noBuiltins() error {
	names := strings.Join(rs.Builtins, ", ")
	switch demand, target := rs.UsesDemand(), rs.UsesScaleTarget(); {
	case demand && target:
		return fmt.Errorf("%s: %w, %w", names, ErrNoDemand, ErrNoScaleTarget)
	case target:
		return fmt.Errorf("%s: %w", names, ErrNoScaleTarget)
	default:
		return fmt.Errorf("%s: %w", names, ErrNoDemand)
	}
}

// evaluateFast is Evaluate's tail on the fast path: the same steps, without
// the VM.
func (rs *RuleSet) evaluateFast(f frame) (Decision, error) {
	raw := rs.fastReplicas(f)
	if math.IsNaN(raw) || math.IsInf(raw, 0) {
		return Decision{}, fmt.Errorf("replicas: the expression computed %v: %w", raw, ErrNotFinite)
	}
	d := Decision{Raw: raw, Replicas: rs.Clamp(raw)}
	if rs.active == nil {
		d.Active = d.Replicas > 0
		return d, nil
	}
	f[len(rs.Queries)] = float64(d.Replicas)
	d.Active = rs.fastActive(f)
	return d, nil
}

// Clamp rounds v up to a whole number of replicas and bounds it by min..max.
func (rs *RuleSet) Clamp(v float64) int64 {
	c := math.Ceil(v - roundingSlack)
	switch {
	case c <= float64(rs.Min):
		return rs.Min
	case c >= float64(rs.Max):
		return rs.Max
	}
	return int64(c)
}

// Render fills the query templates for one ScaledObject. $namespace and
// $name are the ScaledObject's own and cannot be overridden by metadata;
// other variables come from its trigger metadata. Values are escaped as
// PromQL string content.
func (rs *RuleSet) Render(namespace, name string, metadata map[string]string) ([]string, error) {
	lookup := func(key string) (string, bool) {
		switch key {
		case "namespace":
			return namespace, true
		case "name":
			return name, true
		}
		v, ok := metadata[key]
		return v, ok
	}
	out := make([]string, len(rs.Queries))
	var errs []error
	for i, q := range rs.Queries {
		s, err := q.tmpl.render(lookup)
		if err != nil {
			errs = append(errs, fmt.Errorf("query %q: %w", q.Name, err))
		}
		out[i] = s
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}
