package backtest

import (
	"math"
	"time"
)

// Summary sums up one rule set's simulated replicas over the window, or
// --actual's (then Name is "actual").
type Summary struct {
	Name string
	// ReplicaHours is the replica count integrated over the window, each
	// step's count held until the next step.
	ReplicaHours float64
	// ScaleEvents counts the steps at which the count differs from the
	// step before (and, for a rule set, from the simulation's start).
	ScaleEvents int
	// Largest is the largest count.
	Largest float64
	// AtZero is the time spent at zero replicas.
	AtZero time.Duration
	// Errors counts the steps at which the rule set gave KEDA no answer
	// (desired null): an evaluation error onError did not answer for.
	Errors int
	// UnderActual and OverActual are the times the rule set ran fewer or
	// more replicas than --actual, counted where --actual has data; valid
	// when HasActual.
	UnderActual, OverActual time.Duration
	HasActual               bool
}

// weight is how long step i's values hold: until the next step, and the
// last one until End.
func (r *Result) weight(i int) time.Duration {
	t := r.Steps[i].Time
	if i+1 < len(r.Steps) {
		return r.Steps[i+1].Time.Sub(t)
	}
	return r.End.Sub(t)
}

// Summaries sums up every rule set, in order, then --actual if given.
func (r *Result) Summaries() []Summary {
	out := make([]Summary, 0, len(r.RuleSets)+1)
	for k, name := range r.RuleSets {
		s := Summary{Name: name, HasActual: r.Actual != ""}
		var hours float64
		prev := math.NaN()
		if len(r.Steps) > 0 {
			// The count the simulation started from is where the first
			// step's change is measured from.
			prev = float64(r.Initial)
		}
		for i, st := range r.Steps {
			rs := st.RuleSets[k]
			w := r.weight(i)
			n := float64(rs.Replicas)
			hours += n * w.Hours()
			if n != prev {
				s.ScaleEvents++
			}
			prev = n
			s.Largest = max(s.Largest, n)
			if n == 0 {
				s.AtZero += w
			}
			if !rs.DesiredOK {
				s.Errors++
			}
			if st.Actual.OK {
				switch {
				case n < st.Actual.V:
					s.UnderActual += w
				case n > st.Actual.V:
					s.OverActual += w
				}
			}
		}
		s.ReplicaHours = hours
		out = append(out, s)
	}
	if r.Actual != "" {
		s := Summary{Name: "actual"}
		prev := math.NaN()
		for i, st := range r.Steps {
			if !st.Actual.OK {
				continue
			}
			w, n := r.weight(i), st.Actual.V
			s.ReplicaHours += n * w.Hours()
			if !math.IsNaN(prev) && n != prev {
				s.ScaleEvents++
			}
			prev = n
			s.Largest = max(s.Largest, n)
			if n == 0 {
				s.AtZero += w
			}
		}
		out = append(out, s)
	}
	return out
}
