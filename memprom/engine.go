package memprom

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/k8s-nemesis/nemesis/metrics"
)

// Options configure an [Engine]. Zero fields take Prometheus' defaults.
type Options struct {
	// LookbackDelta is how far back an instant selector looks for a
	// sample; default 5m, as Prometheus and promtool.
	LookbackDelta time.Duration
	// Timeout bounds one query; default 2m, Prometheus' --query.timeout.
	Timeout time.Duration
	// MaxSamples bounds the samples one query may hold in memory; default
	// 50,000,000, Prometheus' --query.max-samples. (promtool uses 10,000,
	// too few for a week-long backtest.)
	MaxSamples int
	// SubqueryInterval is the step of a subquery that gives none, such as
	// `max_over_time(rate(x[1m])[10m:])`; default 1m, Prometheus' global
	// evaluation_interval. promtool uses the test file's
	// evaluation_interval: pass it to get promtool's answers.
	SubqueryInterval time.Duration
}

// Engine evaluates PromQL with Prometheus' own engine over a
// storage.Queryable, usually a [Storage]. It is safe for concurrent use.
type Engine struct {
	engine *promql.Engine
	q      storage.Queryable
}

// NewEngine returns an engine over q. The engine has the features that
// Prometheus enables by default (the @ modifier, negative offsets) and no
// experimental ones, as promtool; it registers no metrics and logs nothing.
func NewEngine(q storage.Queryable, opts Options) *Engine {
	if opts.LookbackDelta <= 0 {
		opts.LookbackDelta = 5 * time.Minute
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	if opts.MaxSamples <= 0 {
		opts.MaxSamples = 50_000_000
	}
	if opts.SubqueryInterval <= 0 {
		opts.SubqueryInterval = time.Minute
	}
	subquery := opts.SubqueryInterval.Milliseconds()
	return &Engine{
		q: q,
		engine: promql.NewEngine(promql.EngineOpts{
			MaxSamples:               opts.MaxSamples,
			Timeout:                  opts.Timeout,
			LookbackDelta:            opts.LookbackDelta,
			NoStepSubqueryIntervalFn: func(int64) int64 { return subquery },
			EnableAtModifier:         true,
			EnableNegativeOffset:     true,
		}),
	}
}

// Epoch is the instant that promtool's test series start at and that its
// eval_time offsets count from: the Unix epoch. Query at Epoch().Add(d)
// for a promtool eval_time of d.
func Epoch() time.Time { return time.Unix(0, 0).UTC() }

// Query evaluates an instant query at t and reduces the answer as
// metrics.Client does for a real Prometheus: an instant vector or a
// scalar, floats only.
func (e *Engine) Query(ctx context.Context, query string, t time.Time) (metrics.Result, error) {
	q, err := e.engine.NewInstantQuery(ctx, e.q, nil, query, t)
	if err != nil {
		return metrics.Result{}, fmt.Errorf("evaluating %q: %w", query, err)
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return metrics.Result{}, fmt.Errorf("evaluating %q: %w", query, res.Err)
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		// Non-nil even when empty, as metrics.Client: no series is an
		// answer, not an error.
		out := metrics.Result{
			Values: make([]float64, len(v)),
			Labels: make([]map[string]string, len(v)),
		}
		for i, s := range v {
			if s.H != nil {
				return metrics.Result{}, fmt.Errorf("evaluating %q: series %s has a native histogram value, rules need floats", query, s.Metric)
			}
			out.Values[i] = s.F
			out.Labels[i] = s.Metric.Map()
		}
		return out, nil
	case promql.Scalar:
		return metrics.Result{Scalar: true, Values: []float64{v.V}}, nil
	case nil:
		return metrics.Result{}, fmt.Errorf("evaluating %q: no result", query)
	default:
		return metrics.Result{}, fmt.Errorf("evaluating %q: query must return an instant vector or a scalar, got %s", query, v.Type())
	}
}

// QueryRange evaluates a range query from start to end (both included) at
// step, as Prometheus' query_range does. A scalar query gives one series
// with no labels.
func (e *Engine) QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]metrics.Series, error) {
	if step <= 0 {
		return nil, fmt.Errorf("evaluating %q: step %s: must be positive", query, step)
	}
	if end.Before(start) {
		return nil, fmt.Errorf("evaluating %q: end %s is before start %s", query, end.Format(time.RFC3339), start.Format(time.RFC3339))
	}
	q, err := e.engine.NewRangeQuery(ctx, e.q, nil, query, start, end, step)
	if err != nil {
		return nil, fmt.Errorf("evaluating %q: %w", query, err)
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, fmt.Errorf("evaluating %q: %w", query, res.Err)
	}
	m, ok := res.Value.(promql.Matrix)
	if !ok {
		if res.Value == nil {
			return nil, fmt.Errorf("evaluating %q: no result", query)
		}
		return nil, fmt.Errorf("evaluating %q: range query gave %s, want a matrix", query, res.Value.Type())
	}
	out := make([]metrics.Series, len(m))
	for i, s := range m {
		if len(s.Histograms) > 0 {
			return nil, fmt.Errorf("evaluating %q: series %s has native histogram values, rules need floats", query, s.Metric)
		}
		pts := make([]metrics.Point, len(s.Floats))
		for j, p := range s.Floats {
			pts[j] = metrics.Point{T: time.UnixMilli(p.T).UTC(), V: p.F}
		}
		out[i] = metrics.Series{Labels: s.Metric.Map(), Points: pts}
	}
	return out, nil
}
