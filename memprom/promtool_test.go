package memprom

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/k8s-nemesis/nemesis/internal/promtest"
)

// inputSeries are the series every comparison loads, at a 1m interval
// from the epoch: counters with a reset and a gap, a gauge that ends in a
// staleness marker and one that just stops, a classic histogram, and a
// gauge of decimals with `_` gaps (sums of decimals are where two
// implementations of one function part in the last bits).
var inputSeries = [][2]string{
	{`http_requests_total{job="api", instance="a"}`, "0+10x10 5+15x10"},
	{`http_requests_total{job="api", instance="b"}`, "0+7x5 _ _ 60+3x12"},
	{`queue_depth{namespace="ml", model="llama"}`, "0 0 4 12 20x3 stale"},
	{`queue_depth{namespace="ml", model="qwen"}`, "3 1 4 1 5 9 2 6"},
	{`latency_seconds_bucket{le="0.1"}`, "0+3x20"},
	{`latency_seconds_bucket{le="0.5"}`, "0+7x20"},
	{`latency_seconds_bucket{le="1"}`, "0+9x10 90+13x10"},
	{`latency_seconds_bucket{le="+Inf"}`, "0+10x10 100+14x10"},
	{`temperature{room="x"}`, "20.1 20.3 19.9 _ 21.7 22.2 _x3 18.4 0.1 0.2 0.7 _ 23.9 17.3 22.2 19.8 21.1"},
}

// comparison is one PromQL expression evaluated at eval times, given as
// promtool's eval_time offsets from the epoch.
type comparison struct {
	expr  string
	times []time.Duration
}

// offPoints are eval times that fall between the 1m samples, where
// Prometheus 2.42 and 3 agree.
var offPoints = []time.Duration{
	90 * time.Second, 150 * time.Second, 330 * time.Second, 450 * time.Second,
	510 * time.Second, 570 * time.Second, 690 * time.Second, 750 * time.Second,
	1050 * time.Second, 1170 * time.Second, 1350 * time.Second,
}

// agreeing are the expressions memprom and promtool 2.42 must answer alike.
var agreeing = map[string]comparison{
	"rate":               {`rate(http_requests_total[5m])`, offPoints},
	"increase":           {`increase(http_requests_total[5m])`, offPoints},
	"sum of rate by job": {`sum by (job) (rate(http_requests_total[2m]))`, offPoints},
	// Two samples a window: a mean that both of the ways below get exact
	// (see "avg_over_time, last bits" in differing).
	"avg_over_time":             {`avg_over_time(http_requests_total[2m])`, offPoints},
	"avg_over_time of a gauge":  {`avg_over_time(queue_depth[2m])`, offPoints},
	"max_over_time":             {`max_over_time(queue_depth{namespace="ml"}[2m])`, offPoints},
	"quantile of a rate":        {`histogram_quantile(0.9, sum by (le) (rate(latency_seconds_bucket[5m])))`, offPoints},
	"quantile of the counts":    {`histogram_quantile(0.5, latency_seconds_bucket)`, offPoints},
	"absent of a missing model": {`absent(queue_depth{model="mistral", namespace="ml"})`, offPoints},
	"absent of a stale series":  {`absent(queue_depth{model="llama"})`, offPoints},
	"or vector(0)":              {`sum(queue_depth{model="mistral"}) or vector(0)`, offPoints},
	"or vector(0), present":     {`sum(queue_depth{model="qwen"}) or vector(0)`, offPoints},
	"offset":                    {`queue_depth offset 2m`, offPoints},
	"staleness and lookback":    {`queue_depth`, offPoints},
	"gaps keep the last value":  {`temperature`, offPoints},
	"count_over_time over gaps": {`count_over_time(temperature[4m])`, offPoints},
	"time":                      {`time()`, offPoints},
	"last sample's timestamp":   {`timestamp(queue_depth)`, offPoints},
	"deriv":                     {`deriv(temperature[5m])`, offPoints},
	"quantile_over_time":        {`quantile_over_time(0.75, temperature[6m])`, offPoints},
	"stddev_over_time":          {`stddev_over_time(temperature[5m])`, offPoints},
	"changes and resets":        {`changes(http_requests_total[6m]) + resets(http_requests_total[6m])`, offPoints},
	"irate":                     {`irate(http_requests_total[3m])`, offPoints},
	"delta":                     {`delta(queue_depth[4m])`, offPoints},
	"arithmetic and comparison": {`queue_depth > 3`, offPoints},
	"topk":                      {`topk(1, http_requests_total)`, offPoints},
	"sum_over_time":             {`sum_over_time(temperature[7m])`, offPoints},
	"last_over_time":            {`last_over_time(queue_depth[10m])`, offPoints},
	"predict_linear":            {`predict_linear(temperature[5m], 600)`, offPoints},
	"quantile of gauges":        {`quantile(0.3, temperature / 3 or queue_depth / 7)`, offPoints},
	"label_replace":             {`label_replace(queue_depth, "m", "$1", "model", "(l.*)")`, offPoints},
	"regex on the name":         {`{__name__=~"queue.*", model!="qwen"}`, offPoints},
	"sum of integers":           {`sum(http_requests_total)`, offPoints},
}

// differing are the documented differences (doc.go): each makes
// promtool 2.42 fail when expecting memprom's answer, which proves the
// difference is real and that the harness can fail.
var differing = map[string]comparison{
	// Range selectors are left-open since 3.0: at 5m, [5m] leaves out
	// the sample at 0 that 2.42 takes in.
	"range selector on a sample's time": {`count_over_time(temperature[5m])`, []time.Duration{5 * time.Minute}},
	// The lookback delta is left-open too: 5m after the last sample the
	// series is gone in 3, still there in 2.42.
	"lookback ends on a sample's time": {`queue_depth{model="qwen"}`, []time.Duration{12 * time.Minute}},
	// A subquery's inner evaluations fall on its steps, 1m here: on the
	// samples, so its inner range selectors differ even between samples.
	"subquery over sample times": {`max_over_time(count_over_time(temperature[2m])[5m:1m])`, []time.Duration{330 * time.Second}},
	// avg_over_time sums with Kahan compensation and divides once (since
	// 3.5); 2.42 kept an incremental mean. Three samples of decimals part
	// in the last bit: 20.8 here, 20.799999999999997 in 2.42.
	"avg_over_time, last bits": {`avg_over_time(temperature[5m])`, []time.Duration{1050 * time.Second}},
	// The aggregations too: sum (Kahan summation since 2.54) and avg (2.55,
	// one division since 3.5).
	"sum, last bits": {`sum(temperature / 3 or queue_depth / 7 or rate(http_requests_total[3m]))`, []time.Duration{510 * time.Second}},
	"avg, last bits": {`avg(temperature / 3 or queue_depth / 7)`, []time.Duration{90 * time.Second}},
	// The same for integers: (12 + 20 + 20) / 3.
	"avg_over_time of integers, last bits": {`avg_over_time(queue_depth{model="llama"}[3m])`, []time.Duration{330 * time.Second}},
}

// promtoolFile is the shape of a promtool test file, as much as this
// test writes.
type promtoolFile struct {
	RuleFiles          []string        `yaml:"rule_files"`
	EvaluationInterval string          `yaml:"evaluation_interval"`
	Tests              []promtoolGroup `yaml:"tests"`
}

type promtoolGroup struct {
	Name        string         `yaml:"name"`
	Interval    string         `yaml:"interval"`
	InputSeries []promtoolIn   `yaml:"input_series"`
	ExprTests   []promtoolExpr `yaml:"promql_expr_test"`
}

type promtoolIn struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

type promtoolExpr struct {
	Expr       string           `yaml:"expr"`
	EvalTime   string           `yaml:"eval_time"`
	ExpSamples []promtoolSample `yaml:"exp_samples"`
}

type promtoolSample struct {
	Labels string  `yaml:"labels"`
	Value  float64 `yaml:"value"` // yaml.v3 writes the shortest form that parses back to the same float
}

// expectMemprom evaluates the comparisons with memprom and returns a
// promtool test file that expects exactly memprom's answers, one test per
// comparison. nonEmpty counts the comparisons that got at least one
// sample somewhere, so that a broken store cannot pass by answering
// nothing to both.
func expectMemprom(t *testing.T, cases map[string]comparison) (file promtoolFile, nonEmpty int) {
	t.Helper()
	s := New()
	var in []promtoolIn
	for _, d := range inputSeries {
		if err := s.AddSeries(d[0], d[1], Epoch(), time.Minute); err != nil {
			t.Fatal(err)
		}
		in = append(in, promtoolIn{d[0], d[1]})
	}
	// promtool's subquery step is the file's evaluation_interval.
	e := NewEngine(s, Options{SubqueryInterval: time.Minute})
	file = promtoolFile{RuleFiles: []string{}, EvaluationInterval: "1m"}
	for name, c := range cases {
		g := promtoolGroup{Name: name, Interval: "1m", InputSeries: in}
		got := 0
		for _, at := range c.times {
			res, err := e.Query(context.Background(), c.expr, Epoch().Add(at))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			et := promtoolExpr{Expr: c.expr, EvalTime: at.String(), ExpSamples: []promtoolSample{}}
			for _, smp := range Samples(res) {
				et.ExpSamples = append(et.ExpSamples, promtoolSample{Labels: metricString(smp.Labels), Value: smp.Value})
				got++
			}
			g.ExprTests = append(g.ExprTests, et)
		}
		if got > 0 {
			nonEmpty++
		}
		file.Tests = append(file.Tests, g)
	}
	return file, nonEmpty
}

// metricString writes labels as exp_samples wants them: name{a="b"}.
func metricString(m map[string]string) string {
	var b strings.Builder
	b.WriteString(m["__name__"])
	b.WriteString("{")
	first := true
	for _, k := range sortedKeys(m) {
		if k == "__name__" {
			continue
		}
		if !first {
			b.WriteString(", ")
		}
		first = false
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	b.WriteString("}")
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return keys
}

// runPromtool writes file and runs `promtool test rules` on it, returning
// its exit code and output.
func runPromtool(t *testing.T, bin string, file promtoolFile) (int, string) {
	t.Helper()
	b, err := yaml.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "test.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "test", "rules", path)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("promtool did not finish in a minute: %s", out)
	}
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running promtool: %v", err)
		}
		code = ee.ExitCode()
	}
	if code != 0 {
		t.Logf("test file:\n%s", b)
	}
	return code, string(out)
}

// TestAgainstPromtool evaluates each expression with memprom, writes a
// promtool test file that expects memprom's answers, and requires Debian's
// promtool (2.42) to pass it: the two engines give the same samples,
// labels and values bit for bit, at eval times between samples.
func TestAgainstPromtool(t *testing.T) {
	bin := promtest.Promtool(t)
	file, nonEmpty := expectMemprom(t, agreeing)
	if nonEmpty != len(agreeing) {
		t.Errorf("%d of %d expressions got no sample at any eval time: the comparison would prove nothing for them", len(agreeing)-nonEmpty, len(agreeing))
	}
	if code, out := runPromtool(t, bin, file); code != 0 {
		t.Fatalf("promtool exited %d: memprom and promtool disagree:\n%s", code, out)
	}
}

// TestPromtoolCanFail proves the harness: a wrong expectation, and each
// documented difference between Prometheus 3 and 2.42, must make promtool
// fail on that very expression.
func TestPromtoolCanFail(t *testing.T) {
	bin := promtest.Promtool(t)
	wrong, _ := expectMemprom(t, map[string]comparison{"rate": agreeing["rate"]})
	// One value in the last eval time, off by one float step.
	last := &wrong.Tests[0].ExprTests[len(wrong.Tests[0].ExprTests)-1]
	if len(last.ExpSamples) == 0 {
		t.Fatal("rate has no sample at its last eval time to get wrong")
	}
	last.ExpSamples[0].Value = nextUp(last.ExpSamples[0].Value)
	cases := map[string]promtoolFile{"one float step off": wrong}
	for name, c := range differing {
		f, _ := expectMemprom(t, map[string]comparison{name: c})
		cases[name] = f
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			code, out := runPromtool(t, bin, f)
			if code != 1 {
				t.Fatalf("promtool exited %d, want 1 (a failed test):\n%s", code, out)
			}
			if expr := f.Tests[0].ExprTests[0].Expr; !strings.Contains(out, fmt.Sprintf("%q", expr)) {
				t.Errorf("promtool's output does not name %q:\n%s", expr, out)
			}
		})
	}
}
