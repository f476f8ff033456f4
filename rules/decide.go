package rules

import (
	"errors"
	"fmt"
	"time"
)

// LastGood is what a rule set carries from one evaluation to the next for
// one ScaledObject trigger: its last good decision, which onError: hold
// reuses for StaleAfter. The zero value has none.
type LastGood struct {
	Decision Decision
	At       time.Time
	Valid    bool
}

// Outcome is one evaluation turned into the answer KEDA gets, under the
// rule set's onError policy.
type Outcome struct {
	// Decision is the answer when Err is nil: the evaluation's own, the
	// last good one (Holding), or onError's fixed count (Fixed).
	Decision Decision
	// Holding says Decision is the last good one, reused after EvalErr.
	Holding bool
	// HeldSince is when the held decision was made; it goes stale at
	// HeldSince + StaleAfter.
	HeldSince time.Time
	// Fixed says Decision is onError's fixed replica count.
	Fixed bool
	// EvalErr is the evaluation's error, also when onError answered for it.
	EvalErr error
	// Err is non-nil when the answer is an error, so that KEDA's fallback
	// applies: onError: fail, or hold with no good decision young enough.
	Err error
}

// Decide turns one evaluation (d, or its error err) made at now into the
// answer under the rule set's onError policy, and records a good decision
// in last. It is the one step from an evaluation to an answer that the
// scaler, rules eval, rules test and rules backtest share, so that they
// agree for the same inputs.
func (rs *RuleSet) Decide(last *LastGood, now time.Time, d Decision, err error) Outcome {
	if err == nil {
		*last = LastGood{Decision: d, At: now, Valid: true}
		return Outcome{Decision: d}
	}
	o := Outcome{EvalErr: err}
	switch rs.OnError.Mode {
	case Fixed:
		n := rs.OnError.Replicas
		o.Decision, o.Fixed = Decision{Replicas: n, Raw: float64(n), Active: n > 0}, true
		return o
	case Hold:
		if last.Valid && now.Sub(last.At) <= rs.StaleAfter {
			o.Decision, o.Holding, o.HeldSince = last.Decision, true, last.At
			return o
		}
		if last.Valid {
			err = fmt.Errorf("%w (the last good decision is older than staleAfter %v)", err, rs.StaleAfter)
		} else {
			err = fmt.Errorf("%w (no good decision yet to hold)", err)
		}
	}
	o.Err = err
	return o
}

// Active is what KEDA is told about the trigger's activity: the answer's
// active, or true while requests wait for the service (queued > 0 at the
// activators), whatever the rule set says or whether it could be
// evaluated, so that a waiting request always wakes the service. ok is
// false when there is no answer at all: an error and nothing waiting.
func (o Outcome) Active(waiting bool) (active, ok bool) {
	if waiting {
		return true, true
	}
	if o.Err != nil {
		return false, false
	}
	return o.Decision.Active, true
}

// QueryError is a query that failed: always the Prometheus side's fault,
// as opposed to the data it returned.
type QueryError struct {
	// Query is the name of the query in the rule set.
	Query string
	Err   error
}

func (e *QueryError) Error() string { return fmt.Sprintf("query %q: %v", e.Query, e.Err) }
func (e *QueryError) Unwrap() error { return e.Err }

// Reason labels an evaluation error in a few words, as the label reason of
// nemesis_scaler_evaluation_errors_total and exp_error in rule tests:
// prometheus, scale_target, no_data, series, not_finite, demand or
// expression.
func Reason(err error) string {
	var qe *QueryError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &qe):
		return "prometheus"
	case errors.Is(err, ErrNoScaleTarget):
		return "scale_target"
	case errors.Is(err, ErrNoData):
		return "no_data"
	case errors.Is(err, ErrSeries):
		return "series"
	case errors.Is(err, ErrNotFinite):
		return "not_finite"
	case errors.Is(err, ErrNoDemand):
		return "demand"
	default:
		return "expression"
	}
}

// Reasons are the values Reason returns for an error, in the order of its
// doc comment.
func Reasons() []string {
	return []string{"prometheus", "scale_target", "no_data", "series", "not_finite", "demand", "expression"}
}
