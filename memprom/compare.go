package memprom

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/k8s-nemesis/nemesis/metrics"
)

// ExprSample is one sample of a promql_expr_test, expected or got: what
// promtool compares.
type ExprSample struct {
	Labels map[string]string // with __name__ when the series keeps its name
	Value  float64
}

// ParseLabels parses the labels string of an exp_samples entry, such as
// `{model="llama", namespace="ml"}` or `queue_depth{model="llama"}`, with
// Prometheus' parser as promtool does (ParseMetric): a metric name becomes
// __name__. A NotationError's Offset points into s.
func ParseLabels(s string) (map[string]string, error) {
	lset, err := parser.NewParser(parser.Options{}).ParseMetric(s)
	if err != nil {
		ne := notationError(err, len(s)).(*NotationError)
		ne.Field = "labels"
		return nil, ne
	}
	return lset.Map(), nil
}

// Samples turns an instant query's answer into the samples promtool
// compares: one per series, and a scalar as one sample with no labels.
func Samples(r metrics.Result) []ExprSample {
	out := make([]ExprSample, len(r.Values))
	for i, v := range r.Values {
		out[i].Value = v
		if !r.Scalar && i < len(r.Labels) {
			out[i].Labels = r.Labels[i]
		}
		if out[i].Labels == nil {
			out[i].Labels = map[string]string{}
		}
	}
	return out
}

// EqualSamples compares expected and got samples as promtool's
// promql_expr_test does: the order does not matter (both are sorted by
// labels), labels must be equal, and values exactly equal, or, with fuzzy
// (promtool's fuzzy_compare, from v3.5), at most one float step apart.
// Unlike promtool, NaN equals NaN, so that a test can expect one.
func EqualSamples(exp, got []ExprSample, fuzzy bool) bool {
	if len(exp) != len(got) {
		return false
	}
	e, g := sortedSamples(exp), sortedSamples(got)
	for i := range e {
		if !labels.Equal(e[i].lset, g[i].lset) || !equalValue(e[i].v, g[i].v, fuzzy) {
			return false
		}
	}
	return true
}

func equalValue(x, y float64, fuzzy bool) bool {
	switch {
	case x == y, math.IsNaN(x) && math.IsNaN(y):
		return true
	case fuzzy:
		return math.Nextafter(x, math.Inf(-1)) == y || math.Nextafter(x, math.Inf(1)) == y
	}
	return false
}

type labeled struct {
	lset labels.Labels
	v    float64
}

func sortedSamples(s []ExprSample) []labeled {
	out := make([]labeled, len(s))
	for i, x := range s {
		out[i] = labeled{labels.FromMap(x.Labels), x.Value}
	}
	slices.SortStableFunc(out, func(a, b labeled) int { return labels.Compare(a.lset, b.lset) })
	return out
}

// FormatSamples renders samples sorted by labels as promtool prints them in
// a failure, `{__name__="x", a="b"} 1.5E+00, …`, or "nil" for none.
func FormatSamples(s []ExprSample) string {
	if len(s) == 0 {
		return "nil"
	}
	parts := make([]string, 0, len(s))
	for _, x := range sortedSamples(s) {
		parts = append(parts, x.lset.String()+" "+strconv.FormatFloat(x.v, 'E', -1, 64))
	}
	return strings.Join(parts, ", ")
}
