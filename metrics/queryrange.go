package metrics

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

const (
	// MaxPointsPerSeries is the most points Prometheus' query_range returns
	// per series: it refuses a request whose (end-start)/step exceeds
	// 11,000 ("exceeded maximum resolution of 11,000 points per
	// timeseries"). QueryRange splits longer windows into requests of at
	// most this many points.
	MaxPointsPerSeries = 11000

	rangeSpanName = "prometheus.query_range"
)

// RangeChunk is one query_range request of a window that QueryRange splits.
type RangeChunk struct {
	Start, End time.Time
}

// RangeChunks splits the evaluation instants start, start+step, … up to end
// into consecutive windows of at most MaxPointsPerSeries instants each. The
// first window starts at start, each next one a step after the previous
// one's end, so that together they hold every instant of the step grid
// exactly once: no overlap, no gap. It returns nil when end is before start
// or step is not positive.
func RangeChunks(start, end time.Time, step time.Duration) []RangeChunk {
	if step <= 0 || end.Before(start) {
		return nil
	}
	// The last instant on the grid, which is end itself only when the
	// window is a whole number of steps.
	n := int64(end.Sub(start) / step)
	span := time.Duration(MaxPointsPerSeries-1) * step
	chunks := make([]RangeChunk, 0, n/MaxPointsPerSeries+1)
	for first := int64(0); first <= n; first += MaxPointsPerSeries {
		s := start.Add(time.Duration(first) * step)
		e := s.Add(span)
		if last := start.Add(time.Duration(n) * step); e.After(last) {
			e = last
		}
		chunks = append(chunks, RangeChunk{Start: s, End: e})
	}
	return chunks
}

// QueryRange runs a range query from start to end at step, as Prometheus'
// query_range evaluates it: at start, start+step, … up to end. A window of
// more than MaxPointsPerSeries instants is sent as several consecutive
// requests (see RangeChunks), never one per step, and their series are
// joined by label set, in the order Prometheus first returned them. A scalar
// query answers with one series without labels.
//
// Every request carries the client's credentials and headers and runs
// under ClientConfig.Timeout of its own, within ctx. Range queries bypass
// the instant-query cache: a backtest asks for each window once. Errors
// start with "querying prometheus", as Query's.
func (c *Client) QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]Series, error) {
	if step <= 0 {
		return nil, fmt.Errorf("querying prometheus: step %s must be positive", step)
	}
	if end.Before(start) {
		return nil, fmt.Errorf("querying prometheus: end %s is before start %s", end.Format(time.RFC3339Nano), start.Format(time.RFC3339Nano))
	}
	var (
		out   []Series
		index = map[string]int{}
	)
	for _, ch := range RangeChunks(start, end, step) {
		m, err := c.fetchRange(ctx, query, v1.Range{Start: ch.Start, End: ch.End, Step: step})
		if err != nil {
			return nil, err
		}
		for _, s := range m {
			key := s.Metric.String()
			i, ok := index[key]
			if !ok {
				i = len(out)
				index[key] = i
				labels := make(map[string]string, len(s.Metric))
				for name, val := range s.Metric {
					labels[string(name)] = string(val)
				}
				out = append(out, Series{Labels: labels})
			}
			points := out[i].Points
			if points == nil {
				points = make([]Point, 0, len(s.Values))
			}
			for _, p := range s.Values {
				points = append(points, Point{T: p.Timestamp.Time().UTC(), V: float64(p.Value)})
			}
			out[i].Points = points
		}
	}
	return out, nil
}

// fetchRange sends one query_range request.
func (c *Client) fetchRange(ctx context.Context, query string, r v1.Range) (model.Matrix, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ctx, span := c.tracer.Start(ctx, rangeSpanName,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("db.query.text", query),
			attribute.String("nemesis.range.start", r.Start.Format(time.RFC3339Nano)),
			attribute.String("nemesis.range.end", r.End.Format(time.RFC3339Nano)),
			attribute.Float64("nemesis.range.step_seconds", r.Step.Seconds()),
		),
	)
	defer span.End()

	began := time.Now()
	value, warnings, err := c.api.QueryRange(ctx, query, r)
	c.metrics.duration.Observe(time.Since(began).Seconds())
	if len(warnings) > 0 {
		c.logger.DebugContext(ctx, "prometheus returned warnings", "query", query, "warnings", []string(warnings))
	}

	var m model.Matrix
	outcome := outcomeSuccess
	if err != nil {
		outcome, err = c.wrapError(err)
	} else if m, err = toMatrix(value); err != nil {
		err = fmt.Errorf("querying prometheus: %w", err)
		outcome = outcomeError
	}
	c.metrics.request(outcome).Inc()
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return nil, err
	}
	return m, nil
}

// toMatrix checks a range query's answer: a matrix of float samples.
func toMatrix(value model.Value) (model.Matrix, error) {
	switch v := value.(type) {
	case model.Matrix:
		for _, s := range v {
			if len(s.Histograms) > 0 {
				return nil, fmt.Errorf("series %s has native histogram values, rules need floats (use e.g. histogram_quantile or histogram_count)", s.Metric)
			}
		}
		return v, nil
	case nil:
		return nil, fmt.Errorf("prometheus returned no result")
	default:
		return nil, fmt.Errorf("range query must return a matrix, got %s", strings.ToLower(value.Type().String()))
	}
}
