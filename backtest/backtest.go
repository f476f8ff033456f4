package backtest

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/k8s-nemesis/nemesis/hpasim"
	"github.com/k8s-nemesis/nemesis/metrics"
	"github.com/k8s-nemesis/nemesis/rules"
)

const (
	// MinStep is the smallest step: below it a replay would only repeat
	// Prometheus' scrape samples, and the HPA and KEDA act no faster.
	MinStep = time.Second
	// MaxSteps bounds a replay, so that a typo in --start cannot start
	// a run of hours: a million steps is 11.5 days at 1 s, 173 days at 15 s.
	MaxSteps = 1_000_000

	// Built-in names the history of which comes from a query.
	inflightName = "inflight"
	queuedName   = "queued"
)

// Source answers range queries, as metrics.Client does against Prometheus
// and memprom.Engine does over a file of series.
type Source interface {
	QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]metrics.Series, error)
}

// Options describe one backtest.
type Options struct {
	// RuleSets are replayed side by side, each with its own last good
	// decision and its own simulated KEDA and HPA.
	RuleSets []*rules.RuleSet
	// Namespace, Name and Metadata are the ScaledObject's, for rendering the
	// queries; Metadata's "service" names the service of the built-ins
	// inflight and queued (default: Name), as in the scaler.
	Namespace, Name string
	Metadata        map[string]string
	// Start, End and Step are the evaluation instants: Start, Start+Step, …
	// up to End. Start and End are truncated to the millisecond, the
	// resolution of Prometheus' timestamps.
	Start, End time.Time
	Step       time.Duration
	// Sim is the simulated ScaledObject and HPA, PodStartup included.
	Sim hpasim.Config
	// Actual, when set, is PromQL for the replicas that really ran.
	Actual string
	// Builtins overrides the queries of the built-ins inflight and queued
	// (by name). By default they are the activator's own gauges for the
	// ScaledObject's service.
	Builtins map[string]string
	// Progress, when set, is told how far the run is: phase "query" counts
	// the range queries, phase "replay" the steps.
	Progress func(phase string, done, total int)
}

// InputError is a backtest that cannot run on what it was given: a bad
// window, a query that fails or returns several series, a window without
// data. Commands report it as bad input.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

func inputErrorf(format string, args ...any) error {
	return &InputError{Err: fmt.Errorf(format, args...)}
}

// Query is one distinct rendered query of the replay.
type Query struct {
	// Text is the rendered PromQL, the key of the query in the JSON output.
	Text string
	// Uses names the rule sets' queries that render to Text, as
	// "ruleSet.query".
	Uses []string
}

// Value is a query's value at one step. OK is false when there is no
// data, or when a query read only through series.NAME returned several
// series (then Values holds them).
type Value struct {
	V  float64
	OK bool
}

// RuleSetStep is what one rule set and its simulation did at one step.
type RuleSetStep struct {
	// Desired is the rule set's answer, valid when DesiredOK: its own
	// decision, the held last good one, or onError's fixed count.
	Desired   int64
	DesiredOK bool
	Holding   bool
	// Active is what KEDA is told (false when it got no answer).
	Active bool
	// Reason labels the evaluation's error as Reason does ("" when none),
	// also when onError answered for it.
	Reason string
	// Replicas and Ready are the simulated target after the step.
	Replicas, Ready int32
	// Event is what the simulated KEDA and HPA changed during the step.
	Event string
}

// Step is one instant of the replay.
type Step struct {
	Time     time.Time
	Values   []Value // one per Result.Queries
	InFlight float64
	Queued   float64
	RuleSets []RuleSetStep // one per Result.RuleSets
	Actual   Value
}

// Result is a finished replay.
type Result struct {
	RuleSets   []string
	Queries    []Query
	Start, End time.Time
	Step       time.Duration
	// BuiltinQueries are the queries that gave inflight and queued.
	BuiltinQueries map[string]string
	// Actual is --actual's query, "" when none.
	Actual string
	// Initial is the replica count every simulation started from: the
	// first value of Actual, else the ScaledObject's minReplicaCount.
	Initial int32
	Steps   []Step
	// QueryTime is the time spent waiting on the Source (Prometheus' own
	// time, network included); QueryCalls counts the calls.
	QueryTime  time.Duration
	QueryCalls int
}

// Window checks a backtest window and returns its number of steps.
func Window(start, end time.Time, step time.Duration) (int, error) {
	switch {
	case step < MinStep:
		return 0, inputErrorf("step %v is under %v", step, MinStep)
	case step%time.Millisecond != 0:
		return 0, inputErrorf("step %v is not a whole number of milliseconds, the resolution of Prometheus' timestamps", step)
	case end.Before(start):
		return 0, inputErrorf("end %s is before start %s", end.Format(time.RFC3339), start.Format(time.RFC3339))
	}
	n := end.Sub(start)/step + 1
	if n > MaxSteps || n <= 0 { // n <= 0: the window overflows a Duration
		return 0, inputErrorf("%s to %s at %v is more than %d steps: shorten the window or lengthen the step", start.Format(time.RFC3339), end.Format(time.RFC3339), step, MaxSteps)
	}
	return int(n), nil
}

// DefaultBuiltinQuery is the query of inflight or queued when none is
// given: the activators' own gauge for the ScaledObject's service, summed
// over activator replicas, as the scaler reads it from them live.
func DefaultBuiltinQuery(name, namespace, service string) string {
	metric := "nemesis_activator_requests_in_flight"
	if name == queuedName {
		metric = "nemesis_activator_requests_queued"
	}
	return fmt.Sprintf("sum(%s{namespace=%s, service=%s})", metric, strconv.Quote(namespace), strconv.Quote(service))
}

// grid holds one query's range answer, indexed by step.
type grid struct {
	series [][]float64 // per series, per step; NaN-free presence in ok
	ok     [][]bool
}

// at is the value at step i when exactly one series has a point there.
func (g *grid) at(i int) (Value, int) {
	var v Value
	n := 0
	for s := range g.series {
		if g.ok[s][i] {
			n++
			v = Value{V: g.series[s][i], OK: true}
		}
	}
	if n != 1 {
		return Value{}, n
	}
	return v, 1
}

// values appends the values of every series with a point at step i.
func (g *grid) values(dst []float64, i int) []float64 {
	for s := range g.series {
		if g.ok[s][i] {
			dst = append(dst, g.series[s][i])
		}
	}
	return dst
}

// empty reports whether the answer has no point at all.
func (g *grid) empty() bool {
	for _, ok := range g.ok {
		if slices.Contains(ok, true) {
			return false
		}
	}
	return true
}

// fetcher runs the range queries and times them.
type fetcher struct {
	src        Source
	start, end time.Time
	step       time.Duration
	n          int
	took       time.Duration
	calls      int
}

func (f *fetcher) fetch(ctx context.Context, what, query string) (*grid, error) {
	began := time.Now()
	series, err := f.src.QueryRange(ctx, query, f.start, f.end, f.step)
	f.took += time.Since(began)
	f.calls++
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, inputErrorf("%s: %w", what, err)
	}
	g := &grid{series: make([][]float64, len(series)), ok: make([][]bool, len(series))}
	for s, ser := range series {
		vals, ok := make([]float64, f.n), make([]bool, f.n)
		for _, p := range ser.Points {
			d := p.T.Sub(f.start)
			if d < 0 || d%f.step != 0 {
				continue // off the grid: not an answer to this window
			}
			if i := int(d / f.step); i < f.n {
				vals[i], ok[i] = p.V, true
			}
		}
		g.series[s], g.ok[s] = vals, ok
	}
	return g, nil
}

// number checks a query used as a number over the window: it must have
// data, and never several series at one step.
func (f *fetcher) number(what string, g *grid) error {
	if g.empty() {
		return inputErrorf("%s: no data from %s to %s", what, f.start.Format(time.RFC3339), f.end.Format(time.RFC3339))
	}
	return f.single(what, g)
}

// single refuses an answer with several series at one step.
func (f *fetcher) single(what string, g *grid) error {
	for i := range f.n {
		if _, n := g.at(i); n > 1 {
			return inputErrorf("%s: %d series at %s where one number is needed: aggregate it in PromQL", what, n, f.start.Add(time.Duration(i)*f.step).Format(time.RFC3339))
		}
	}
	return nil
}

// ruleSetRun is one rule set's state through the replay.
type ruleSetRun struct {
	rs      *rules.RuleSet
	queries []int // index into the distinct queries, per rs.Queries
	last    rules.LastGood
	sim     *hpasim.Sim
	state   hpasim.State
	results []rules.Result
}

// Run replays the rule sets over the window: at each step it evaluates
// each rule set through the scaler's own decision path (rules.RuleSet's
// Render, EvaluateWith and Decide, and Outcome.Active with the queued
// override) on the range answers of its queries at that instant, and feeds
// the answer to that rule set's simulated KEDA and HPA. Every check of the
// input happens before the replay; its errors are *InputError.
func Run(ctx context.Context, src Source, opts Options) (*Result, error) {
	if len(opts.RuleSets) == 0 {
		return nil, inputErrorf("no rule set to replay")
	}
	start, end := opts.Start.Truncate(time.Millisecond), opts.End.Truncate(time.Millisecond)
	n, err := Window(start, end, opts.Step)
	if err != nil {
		return nil, err
	}
	if err := opts.Sim.WithDefaults().Validate(); err != nil {
		return nil, &InputError{Err: fmt.Errorf("scaled object: %w", err)}
	}
	res := &Result{Start: start, End: end, Step: opts.Step, Actual: opts.Actual, BuiltinQueries: map[string]string{}}

	// Render every rule set's queries; identical texts are asked once.
	index := map[string]int{}
	runs := make([]*ruleSetRun, len(opts.RuleSets))
	for r, rs := range opts.RuleSets {
		if slices.Contains(res.RuleSets, rs.Name) {
			return nil, inputErrorf("rule set %q is given twice", rs.Name)
		}
		res.RuleSets = append(res.RuleSets, rs.Name)
		texts, err := rs.Render(opts.Namespace, opts.Name, opts.Metadata)
		if err != nil {
			return nil, inputErrorf("rule set %q: %w", rs.Name, err)
		}
		run := &ruleSetRun{rs: rs, queries: make([]int, len(texts)), results: make([]rules.Result, len(texts))}
		for i, text := range texts {
			q, ok := index[text]
			if !ok {
				q = len(res.Queries)
				index[text] = q
				res.Queries = append(res.Queries, Query{Text: text})
			}
			res.Queries[q].Uses = append(res.Queries[q].Uses, rs.Name+"."+rs.Queries[i].Name)
			run.queries[i] = q
		}
		runs[r] = run
	}

	service := opts.Name
	if s := opts.Metadata["service"]; s != "" {
		service = s
	}
	for name := range opts.Builtins {
		if name != inflightName && name != queuedName {
			return nil, inputErrorf("built-in %q: only inflight and queued take a query; current and ready come from the simulation", name)
		}
	}

	progress := opts.Progress
	if progress == nil {
		progress = func(string, int, int) {}
	}
	f := &fetcher{src: src, start: start, end: end, step: opts.Step, n: n}
	calls := len(res.Queries) + 2
	if opts.Actual != "" {
		calls++
	}
	progress("query", 0, calls)
	grids := make([]*grid, len(res.Queries))
	for q, query := range res.Queries {
		what := fmt.Sprintf("query %s (%s)", strings.Join(query.Uses, ", "), query.Text)
		g, err := f.fetch(ctx, what, query.Text)
		if err != nil {
			return nil, err
		}
		grids[q] = g
		if g.empty() {
			return nil, inputErrorf("%s: no data from %s to %s", what, start.Format(time.RFC3339), end.Format(time.RFC3339))
		}
		if runsUseBare(runs, q) {
			if err := f.single(what, g); err != nil {
				return nil, err
			}
		}
		progress("query", q+1, calls)
	}

	// The built-ins inflight and queued: the activator's gauges unless
	// overridden. A step without a point counts as 0, as a service the
	// activators report nothing for.
	var builtins [2]*grid
	for b, name := range []string{inflightName, queuedName} {
		query, given := opts.Builtins[name]
		if !given {
			query = DefaultBuiltinQuery(name, opts.Namespace, service)
		}
		res.BuiltinQueries[name] = query
		what := fmt.Sprintf("built-in %s (%s)", name, query)
		g, err := f.fetch(ctx, what, query)
		if err != nil {
			return nil, err
		}
		used := slices.ContainsFunc(opts.RuleSets, func(rs *rules.RuleSet) bool { return slices.Contains(rs.Builtins, name) })
		switch {
		case given || used && !g.empty():
			if err := f.number(what, g); err != nil {
				return nil, err
			}
		case used:
			return nil, inputErrorf("%s: no data from %s to %s, and a rule set uses %s: give its history with --builtin '%s=PromQL'", what, start.Format(time.RFC3339), end.Format(time.RFC3339), name, name)
		default:
			if err := f.single(what, g); err != nil {
				return nil, err
			}
		}
		builtins[b] = g
		progress("query", len(res.Queries)+b+1, calls)
	}

	var actual *grid
	if opts.Actual != "" {
		what := fmt.Sprintf("actual (%s)", opts.Actual)
		if actual, err = f.fetch(ctx, what, opts.Actual); err != nil {
			return nil, err
		}
		if err := f.number(what, actual); err != nil {
			return nil, err
		}
		progress("query", calls, calls)
	}
	res.QueryTime, res.QueryCalls = f.took, f.calls

	// The simulation starts where the target really was, when --actual
	// says so, else at minReplicaCount.
	initial := opts.Sim.MinReplicas
	if actual != nil {
		for i := range n {
			if v, _ := actual.at(i); v.OK {
				initial = int32(max(0, min(math.Round(v.V), float64(opts.Sim.WithDefaults().MaxReplicas))))
				break
			}
		}
	}
	res.Initial = initial
	for _, run := range runs {
		if run.sim, err = hpasim.New(opts.Sim, start, initial); err != nil {
			return nil, &InputError{Err: fmt.Errorf("scaled object: %w", err)}
		}
		run.state = hpasim.State{Replicas: initial, Ready: initial}
	}

	res.Steps = make([]Step, n)
	values := make([]Value, n*len(res.Queries))
	rsSteps := make([]RuleSetStep, n*len(runs))
	var scratch []float64
	for i := range n {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			progress("replay", i, n)
		}
		t := start.Add(time.Duration(i) * opts.Step)
		st := Step{Time: t, Values: values[i*len(res.Queries) : (i+1)*len(res.Queries)], RuleSets: rsSteps[i*len(runs) : (i+1)*len(runs)]}
		for q, g := range grids {
			st.Values[q], _ = g.at(i)
		}
		if v, _ := builtins[0].at(i); v.OK {
			st.InFlight = v.V
		}
		if v, _ := builtins[1].at(i); v.OK {
			st.Queued = v.V
		}
		if actual != nil {
			st.Actual, _ = actual.at(i)
		}
		for r, run := range runs {
			scratch = scratch[:0]
			for j, q := range run.queries {
				from := len(scratch)
				scratch = grids[q].values(scratch, i)
				run.results[j] = rules.Result{Values: scratch[from:len(scratch):len(scratch)]}
			}
			b := rules.BuiltinValues{InFlight: st.InFlight, Queued: st.Queued, Current: float64(run.state.Replicas), Ready: float64(run.state.Ready)}
			d, err := run.rs.EvaluateWith(run.results, &b)
			out := run.rs.Decide(&run.last, t, d, err)
			active, activeOK := out.Active(st.Queued > 0)
			run.state = run.sim.Step(t, hpasim.Input{
				Desired:   float64(out.Decision.Replicas),
				DesiredOK: out.Err == nil,
				Active:    active,
				ActiveOK:  activeOK,
			})
			st.RuleSets[r] = RuleSetStep{
				Desired:   out.Decision.Replicas,
				DesiredOK: out.Err == nil,
				Holding:   out.Holding,
				Active:    active,
				Reason:    rules.Reason(out.EvalErr),
				Replicas:  run.state.Replicas,
				Ready:     run.state.Ready,
				Event:     run.state.Event,
			}
		}
		res.Steps[i] = st
	}
	progress("replay", n, n)
	return res, nil
}

// runsUseBare reports whether some rule set uses distinct query q as a
// number.
func runsUseBare(runs []*ruleSetRun, q int) bool {
	for _, run := range runs {
		for j, idx := range run.queries {
			if idx == q && run.rs.Queries[j].Bare {
				return true
			}
		}
	}
	return false
}
