package dashboards

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// scrapeLabels are the labels Prometheus attaches to every scraped series.
var scrapeLabels = []string{"instance", "job"}

// grafanaVar matches Grafana's variable syntaxes: $name, ${name},
// ${name:format} and [[name]].
var grafanaVar = regexp.MustCompile(`\$(\w+)|\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]`)

// builtinDurations are the values Grafana's interval variables are
// replaced with: any valid duration does.
var builtinDurations = map[string]string{
	"__rate_interval": "1m",
	"__interval":      "1m",
	"__range":         "1h",
}

// expand replaces the Grafana variables of s the way Grafana would before
// sending it to Prometheus: interval variables by a duration, the
// dashboard's variables by a value. It fails on a variable the dashboard
// does not define. used collects the variables seen.
func expand(s string, defined []string, used map[string]bool) (string, error) {
	var errs []string
	out := grafanaVar.ReplaceAllStringFunc(s, func(m string) string {
		sub := grafanaVar.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		if d, ok := builtinDurations[name]; ok {
			return d
		}
		if !slices.Contains(defined, name) {
			errs = append(errs, fmt.Sprintf("undefined variable %q", m))
			return m
		}
		used[name] = true
		// A value that is also a valid regular expression, as Grafana
		// sends for =~ with All or several values.
		return "value"
	})
	if len(errs) > 0 {
		return "", fmt.Errorf("%s", strings.Join(errs, ", "))
	}
	if strings.Contains(out, "$") {
		return "", fmt.Errorf("a $ is left after replacing the variables: %q", out)
	}
	return out, nil
}

// labelValuesQuery matches Grafana's label_values(selector, label).
var labelValuesQuery = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// checker holds PromQL expressions to the series a binary exports.
type checker struct {
	series map[string]family // by series name (a histogram's _bucket, _sum, _count)
	parser parser.Parser
}

func newChecker(fams map[string]family) *checker {
	c := &checker{series: map[string]family{}, parser: parser.NewParser(parser.Options{})}
	for _, f := range fams {
		for _, s := range f.series() {
			c.series[s] = f
		}
	}
	return c
}

// labelSet is a set of label names.
type labelSet map[string]bool

func setOf(names ...string) labelSet {
	s := labelSet{}
	for _, n := range names {
		s[n] = true
	}
	return s
}

func (s labelSet) String() string { return "[" + strings.Join(slices.Sorted(maps.Keys(s)), " ") + "]" }

// expr parses e and checks every metric and label it names. It returns
// the labels of its result, for legends.
func (c *checker) expr(e string) (labelSet, error) {
	ast, err := c.parser.ParseExpr(e)
	if err != nil {
		return nil, fmt.Errorf("parsing: %w", err)
	}
	return c.labels(ast)
}

// labelValues checks Grafana's label_values(selector, label) query.
func (c *checker) labelValues(q string) error {
	m := labelValuesQuery.FindStringSubmatch(q)
	if m == nil {
		return fmt.Errorf("not label_values(selector, label)")
	}
	ast, err := c.parser.ParseExpr(m[1])
	if err != nil {
		return fmt.Errorf("parsing the selector: %w", err)
	}
	vs, ok := ast.(*parser.VectorSelector)
	if !ok {
		return fmt.Errorf("%s is not a series selector", m[1])
	}
	ls, err := c.labels(vs)
	if err != nil {
		return err
	}
	if !ls[m[2]] {
		return fmt.Errorf("label %q is not a label of %s %s", m[2], vs.Name, ls)
	}
	return nil
}

// labels checks node and returns the label names of its result. It
// follows what PromQL does to labels closely enough for the dashboards:
// aggregations keep their by labels, histogram_quantile drops le, binary
// operators keep the labels of their vector side.
func (c *checker) labels(node parser.Expr) (labelSet, error) {
	switch n := node.(type) {
	case *parser.VectorSelector:
		return c.selector(n)
	case *parser.MatrixSelector:
		return c.labels(n.VectorSelector)
	case *parser.SubqueryExpr:
		return c.labels(n.Expr)
	case *parser.ParenExpr:
		return c.labels(n.Expr)
	case *parser.UnaryExpr:
		return c.labels(n.Expr)
	case *parser.StepInvariantExpr:
		return c.labels(n.Expr)
	case *parser.NumberLiteral, *parser.StringLiteral:
		return labelSet{}, nil
	case *parser.Call:
		return c.call(n)
	case *parser.AggregateExpr:
		in, err := c.labels(n.Expr)
		if err != nil {
			return nil, err
		}
		if n.Param != nil {
			if _, err := c.labels(n.Param); err != nil {
				return nil, err
			}
		}
		for _, g := range n.Grouping {
			if !in[g] {
				return nil, fmt.Errorf("%s groups by %q, which its input %s does not have", n.Op, g, in)
			}
		}
		switch {
		case n.Op == parser.TOPK || n.Op == parser.BOTTOMK || n.Op == parser.LIMITK || n.Op == parser.LIMIT_RATIO:
			return in, nil
		case n.Without:
			out := maps.Clone(in)
			for _, g := range n.Grouping {
				delete(out, g)
			}
			return out, nil
		default:
			return setOf(n.Grouping...), nil
		}
	case *parser.BinaryExpr:
		return c.binary(n)
	}
	return nil, fmt.Errorf("unexpected %T in %s", node, node)
}

// selector checks that the series sel names is exported and that every
// label it matches on exists.
func (c *checker) selector(sel *parser.VectorSelector) (labelSet, error) {
	name := sel.Name
	for _, m := range sel.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			name = m.Value
		}
	}
	if name == "" {
		return nil, fmt.Errorf("selector %s names no metric", sel)
	}
	f, ok := c.series[name]
	if !ok {
		return nil, fmt.Errorf("no series %q is exported", name)
	}
	ls := setOf(append(slices.Clone(f.labels), scrapeLabels...)...)
	if strings.HasSuffix(name, "_bucket") && name != f.name {
		ls["le"] = true
	}
	for _, m := range sel.LabelMatchers {
		if m.Name != model.MetricNameLabel && !ls[m.Name] {
			return nil, fmt.Errorf("%s matches on label %q, which it does not have %s", name, m.Name, ls)
		}
	}
	return ls, nil
}

// counterFuncs take counters only: on a gauge they give nonsense.
var counterFuncs = []string{"rate", "irate", "increase", "resets"}

func (c *checker) call(n *parser.Call) (labelSet, error) {
	var args []labelSet
	for _, a := range n.Args {
		ls, err := c.labels(a)
		if err != nil {
			return nil, err
		}
		args = append(args, ls)
	}
	name := n.Func.Name
	if slices.Contains(counterFuncs, name) {
		ms, ok := n.Args[0].(*parser.MatrixSelector)
		if !ok {
			return nil, fmt.Errorf("%s of a subquery: use a counter's range selector", name)
		}
		vs := ms.VectorSelector.(*parser.VectorSelector)
		if f := c.series[vs.Name]; f.typ == dto.MetricType_GAUGE {
			return nil, fmt.Errorf("%s of %s, a gauge", name, vs.Name)
		}
	}
	switch name {
	case "histogram_quantile":
		in := args[1]
		if !in["le"] {
			return nil, fmt.Errorf("histogram_quantile of a vector without le %s", in)
		}
		out := maps.Clone(in)
		delete(out, "le")
		return out, nil
	case "label_replace", "label_join":
		out := maps.Clone(args[0])
		out[n.Args[1].(*parser.StringLiteral).Val] = true
		return out, nil
	case "vector", "scalar", "time", "absent", "absent_over_time":
		return labelSet{}, nil
	}
	// Other functions keep the labels of their series argument.
	for i, a := range n.Args {
		if t := a.Type(); t == parser.ValueTypeVector || t == parser.ValueTypeMatrix {
			return args[i], nil
		}
	}
	return labelSet{}, nil
}

func (c *checker) binary(n *parser.BinaryExpr) (labelSet, error) {
	l, err := c.labels(n.LHS)
	if err != nil {
		return nil, err
	}
	r, err := c.labels(n.RHS)
	if err != nil {
		return nil, err
	}
	lv, rv := n.LHS.Type() == parser.ValueTypeVector, n.RHS.Type() == parser.ValueTypeVector
	switch {
	case !lv:
		return r, nil
	case !rv:
		return l, nil
	}
	vm := n.VectorMatching
	if vm != nil && vm.On {
		for _, m := range vm.MatchingLabels {
			if !l[m] || !r[m] {
				return nil, fmt.Errorf("matching on %q, which %s or %s lacks", m, l, r)
			}
		}
	}
	if n.Op == parser.LOR {
		out := maps.Clone(l)
		maps.Copy(out, r)
		return out, nil
	}
	if vm != nil && vm.Card == parser.CardOneToMany {
		out := maps.Clone(r)
		for _, m := range vm.Include {
			if !l[m] {
				return nil, fmt.Errorf("group_right(%s): the left side %s lacks it", m, l)
			}
			out[m] = true
		}
		return out, nil
	}
	out := maps.Clone(l)
	if vm != nil && vm.Card == parser.CardManyToOne {
		for _, m := range vm.Include {
			if !r[m] {
				return nil, fmt.Errorf("group_left(%s): the right side %s lacks it", m, r)
			}
			out[m] = true
		}
	}
	return out, nil
}

// legendLabel matches a label in a legend format: {{name}}.
var legendLabel = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)

// legend checks that every label the legend format shows is a label of
// the query's result.
func legendLabels(format string, result labelSet) error {
	for _, m := range legendLabel.FindAllStringSubmatch(format, -1) {
		if !result[m[1]] {
			return fmt.Errorf("legend %q shows {{%s}}, which the result %s does not have", format, m[1], result)
		}
	}
	return nil
}

func TestChecker(t *testing.T) {
	chk := newChecker(map[string]family{
		"req_total":    {name: "req_total", typ: dto.MetricType_COUNTER, labels: []string{"code", "route"}},
		"wait_seconds": {name: "wait_seconds", typ: dto.MetricType_HISTOGRAM, labels: []string{"route"}},
		"queued":       {name: "queued", typ: dto.MetricType_GAUGE, labels: []string{"route"}},
	})
	defined := []string{"datasource", "route"}
	cases := map[string]struct {
		expr, legend string
		wantErr      string // "" for none
	}{
		"counter rate by route":     {`sum by (route) (rate(req_total{route=~"$route"}[$__rate_interval]))`, "{{route}}", ""},
		"quantile":                  {`histogram_quantile(0.9, sum by (le, route) (rate(wait_seconds_bucket[5m])))`, "{{route}}", ""},
		"ratio":                     {`sum by (route) (rate(req_total{code=~"5.."}[1m])) / sum by (route) (rate(req_total[1m]))`, "{{route}}", ""},
		"scrape labels":             {`sum by (instance) (queued{job=~"$route"})`, "{{instance}}", ""},
		"syntax error":              {`sum by (route) (rate(req_total[1m])`, "", "parsing"},
		"unknown metric":            {`sum(req_totals)`, "", `no series "req_totals"`},
		"bare histogram":            {`sum(wait_seconds)`, "", `no series "wait_seconds"`},
		"le on a non-bucket series": {`sum by (le) (wait_seconds_count)`, "", `groups by "le"`},
		"unknown label matcher":     {`sum(queued{service="x"})`, "", `label "service"`},
		"grouping by a lost label":  {`sum by (code) (sum by (route) (req_total))`, "", `groups by "code"`},
		"legend of a lost label":    {`sum by (route) (req_total)`, "{{code}}", "legend"},
		"quantile without le":       {`histogram_quantile(0.9, sum by (route) (rate(wait_seconds_bucket[1m])))`, "", "without le"},
		"rate of a gauge":           {`rate(queued[1m])`, "", "a gauge"},
		"undefined variable":        {`sum(queued{route=~"$routes"})`, "", "undefined variable"},
		"matching on a lost label":  {`sum by (route) (queued) / on (code) sum by (route) (req_total)`, "", `matching on "code"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e, err := expand(tc.expr, defined, map[string]bool{})
			if err == nil {
				var ls labelSet
				if ls, err = chk.expr(e); err == nil {
					err = legendLabels(tc.legend, ls)
				}
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Errorf("no error, want one containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("error %q, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestCheckerLabelValues(t *testing.T) {
	chk := newChecker(map[string]family{
		"queued": {name: "queued", typ: dto.MetricType_GAUGE, labels: []string{"route"}},
	})
	cases := map[string]struct {
		query   string
		wantErr bool
	}{
		"label of the metric": {`label_values(queued{job=~"x"}, route)`, false},
		"scrape label":        {`label_values(queued, job)`, false},
		"unknown label":       {`label_values(queued, namespace)`, true},
		"unknown metric":      {`label_values(queue, route)`, true},
		"not label_values":    {`query_result(queued)`, true},
		"not a selector":      {`label_values(sum(queued), route)`, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := chk.labelValues(tc.query)
			if (err != nil) != tc.wantErr {
				t.Errorf("error %v, want an error: %v", err, tc.wantErr)
			}
		})
	}
}
