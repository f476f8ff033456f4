package rulestest

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/k8s-nemesis/nemesis/internal/yamlpos"
	"github.com/k8s-nemesis/nemesis/memprom"
	"github.com/k8s-nemesis/nemesis/rules"
)

// DefaultEvaluationInterval is a test file's evaluation_interval when it
// gives none, as promtool's.
const DefaultEvaluationInterval = time.Minute

// builtinNames are the built-ins a test may give values for, as the
// scaler knows them (rules.BuiltinValues).
var builtinNames = [...]string{"inflight", "queued", "current", "ready"}

// File is one loaded test file, with the rule sets it tests. It is
// immutable once loaded: Run only reads it.
type File struct {
	// Path is the file as named to Load.
	Path string
	// RuleFiles are the rule files read, globs expanded, in order.
	RuleFiles []string
	// EvaluationInterval is the default interval of the tests' series, and
	// the step of a subquery that gives none, as in promtool.
	EvaluationInterval time.Duration
	// FuzzyCompare lets a promql_expr_test value differ from the one
	// expected by one float step, as promtool's fuzzy_compare.
	FuzzyCompare bool
	Tests        []*Test

	sets map[string]*rules.RuleSet
}

// Test is one entry of tests.
type Test struct {
	Name string
	// Line and Column locate the test in its file.
	Line, Column int
	// Interval is the step between two values of a series.
	Interval     time.Duration
	InputSeries  []InputSeries
	ScaledObject ScaledObject
	// Builtins are the values strings given for built-ins, by name.
	Builtins     map[string]string
	RuleSetTests []*RuleSetTest
	ExprTests    []*ExprTest

	index int // in the file, from 0
	// series holds the input series and builtins the built-ins (one
	// series named after each), both loaded from the epoch at Interval.
	series, builtins *memprom.Storage
}

// InputSeries is one series of a test, in promtool's notation.
type InputSeries struct {
	Series, Values string
}

// ScaledObject is the ScaledObject a test evaluates rule sets for: the
// values of $namespace, $name and the $<key> of its trigger metadata.
type ScaledObject struct {
	Namespace, Name string
	Metadata        map[string]string
}

// RuleSetTest is one expected answer of a rule set at one time.
type RuleSetTest struct {
	// EvalTime counts from the Unix epoch, where the series start.
	EvalTime time.Duration
	RuleSet  string
	// ExpReplicas and ExpActive are nil when not given.
	ExpReplicas *int64
	ExpActive   *bool
	ExpHolding  bool
	// ExpError is the reason (rules.Reason) of the error expected, or "".
	ExpError     string
	Line, Column int

	rs       *rules.RuleSet
	queries  []string // rendered for the test's ScaledObject
	evalNode *yaml.Node
}

// ExprTest is one promql_expr_test: a PromQL expression and the samples it
// must give at one time.
type ExprTest struct {
	Expr         string
	EvalTime     time.Duration
	ExpSamples   []memprom.ExprSample
	Line, Column int
}

// Load reads a test file and the rule files it names, and checks both. On
// problems it returns an error joining one [*rules.Error] per problem,
// each with file:line:column.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading rules test file: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load with the test file's content given. path names the file in
// errors and locates its rule_files, which are read from disk.
func Parse(path string, data []byte) (*File, error) {
	p := &loader{file: path}
	f := p.file_(data)
	if len(p.errs) > 0 {
		return nil, joinErrors(p.errs)
	}
	return f, nil
}

// loader collects the problems of one test file.
type loader struct {
	file string
	errs []*rules.Error
	// badRules is set when a rule file failed to load: a rule set missing
	// then is most likely in it, and is not reported again.
	badRules bool
}

func (p *loader) errorf(n *yaml.Node, field, format string, args ...any) {
	p.errorAt(n, -1, field, fmt.Sprintf(format, args...))
}

// errorAt reports a problem at a byte offset of the string value of n, or
// at n itself when offset is negative.
func (p *loader) errorAt(n *yaml.Node, offset int, field, msg string) {
	line, col := position(n, offset)
	p.errs = append(p.errs, &rules.Error{File: p.file, Line: line, Column: col, Field: field, Msg: msg})
}

// position is the file position of a byte offset in the string value of
// n. Where the YAML text and the value part (a multi-line or block
// scalar), it is n's own.
func position(n *yaml.Node, offset int) (int, int) {
	if n == nil {
		return 1, 1
	}
	line, col := max(n.Line, 1), max(n.Column, 1)
	if offset < 0 || strings.Contains(n.Value, "\n") {
		return line, col
	}
	switch n.Style {
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		return line, col + 1 + offset
	case yaml.LiteralStyle, yaml.FoldedStyle:
		return line, col
	}
	return line, col + offset
}

// joinErrors joins errs sorted by file and position, one problem a line.
func joinErrors(errs []*rules.Error) error {
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	sorted := rules.Errors(errors.Join(list...))
	for i, e := range sorted {
		list[i] = e
	}
	return errors.Join(list...)
}

type keyValue struct {
	key  string
	k, v *yaml.Node
}

// fields returns the entries of a mapping node, reporting any other kind,
// duplicate keys and keys not in known.
func (p *loader) fields(n *yaml.Node, field string, known ...string) []keyValue {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, field, "must be a mapping of %s", strings.Join(known, ", "))
		return nil
	}
	var out []keyValue
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := join(field, k.Value)
		switch {
		case seen[k.Value]:
			p.errorf(k, name, "duplicate key")
		case !slices.Contains(known, k.Value):
			p.errorf(k, name, "unknown field: the fields here are %s", strings.Join(known, ", "))
		default:
			seen[k.Value] = true
			out = append(out, keyValue{key: k.Value, k: k, v: v})
		}
	}
	return out
}

func join(field, name string) string {
	if field == "" {
		return name
	}
	return field + "." + name
}

// list returns the items of a sequence node; null is an empty list.
func (p *loader) list(n *yaml.Node, field string) []*yaml.Node {
	if n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, field, "must be a list")
		return nil
	}
	return n.Content
}

// str returns the text of a scalar node.
func (p *loader) str(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, field, "must be a single value, not a list or mapping")
		return "", false
	}
	if n.Tag == "!!null" {
		p.errorf(n, field, "must not be empty")
		return "", false
	}
	return n.Value, true
}

// duration reads a duration in Prometheus' notation (1m30s, 15s, 0).
func (p *loader) duration(n *yaml.Node, field string, positive bool) (time.Duration, bool) {
	s, ok := p.str(n, field)
	if !ok {
		return 0, false
	}
	d, err := model.ParseDuration(s)
	if err != nil || (positive && d <= 0) {
		kind := "a duration"
		if positive {
			kind = "a positive duration"
		}
		p.errorf(n, field, "%q is not %s such as 15s, 1m or 1m30s", s, kind)
		return 0, false
	}
	return time.Duration(d), true
}

func (p *loader) boolean(n *yaml.Node, field string) (bool, bool) {
	s, ok := p.str(n, field)
	if !ok {
		return false, false
	}
	if n.Tag != "!!bool" {
		p.errorf(n, field, "%q is not true or false", s)
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		p.errorf(n, field, "%q is not true or false", s)
		return false, false
	}
	return b, true
}

// file_ reads the whole test file.
func (p *loader) file_(data []byte) *File {
	f := &File{Path: p.file, EvaluationInterval: DefaultEvaluationInterval}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := yamlpos.ErrorLine(err)
		p.errs = append(p.errs, &rules.Error{File: p.file, Line: line, Column: 1, Msg: "invalid YAML: " + msg})
		return nil
	}
	if len(doc.Content) == 0 {
		p.errs = append(p.errs, &rules.Error{File: p.file, Line: 1, Column: 1, Field: "tests", Msg: "the file holds no tests"})
		return nil
	}
	root := doc.Content[0]
	var ruleFiles, tests *yaml.Node
	for _, kv := range p.fields(root, "", "rule_files", "evaluation_interval", "fuzzy_compare", "tests") {
		switch kv.key {
		case "rule_files":
			ruleFiles = kv.v
		case "evaluation_interval":
			if d, ok := p.duration(kv.v, kv.key, true); ok {
				f.EvaluationInterval = d
			}
		case "fuzzy_compare":
			f.FuzzyCompare, _ = p.boolean(kv.v, kv.key)
		case "tests":
			tests = kv.v
		}
	}
	if root.Kind != yaml.MappingNode {
		return nil
	}
	if ruleFiles != nil {
		p.ruleFiles(f, ruleFiles)
	}
	if tests == nil {
		p.errorf(root, "tests", "required: a list of tests")
		return nil
	}
	items := p.list(tests, "tests")
	if len(items) == 0 && tests.Kind == yaml.SequenceNode {
		p.errorf(tests, "tests", "the list is empty")
	}
	for i, n := range items {
		if t := p.test(f, i, n); t != nil {
			f.Tests = append(f.Tests, t)
		}
	}
	return f
}

// ruleFiles reads the rule files named by rule_files, relative to the test
// file; globs are expanded, and a test file a glob finds is passed over as
// a directory listing of the scaler does (rules.IsTestFile).
func (p *loader) ruleFiles(f *File, n *yaml.Node) {
	dir := filepath.Dir(p.file)
	seen := map[string]bool{}
	f.sets = map[string]*rules.RuleSet{}
	for i, item := range p.list(n, "rule_files") {
		field := fmt.Sprintf("rule_files[%d]", i)
		pattern, ok := p.str(item, field)
		if !ok {
			continue
		}
		full := pattern
		if !filepath.IsAbs(full) {
			full = filepath.Join(dir, pattern)
		}
		glob := strings.ContainsAny(pattern, `*?[\`)
		matches, err := filepath.Glob(full)
		if err != nil {
			p.errorf(item, field, "%q is not a valid glob: %v", pattern, err)
			continue
		}
		if len(matches) == 0 {
			p.errorf(item, field, "%q matches no file (it is relative to the test file, in %s)", pattern, dir)
			continue
		}
		found := 0
		for _, m := range matches {
			if seen[m] {
				found++
				continue
			}
			data, err := os.ReadFile(m)
			if err != nil {
				p.errorf(item, field, "reading %s: %v", m, err)
				continue
			}
			if glob && rules.IsTestFile(data) {
				continue
			}
			found++
			seen[m] = true
			f.RuleFiles = append(f.RuleFiles, m)
			sets, err := rules.Parse(m, data)
			if err != nil {
				p.errs = append(p.errs, rules.Errors(err)...)
				p.badRules = true
				continue
			}
			for _, rs := range sets {
				if prev, ok := f.sets[rs.Name]; ok {
					p.errs = append(p.errs, &rules.Error{File: rs.File, Line: rs.Line, Column: rs.Column, RuleSet: rs.Name, Field: "name",
						Msg: fmt.Sprintf("duplicate rule set name: also defined at %s:%d:%d", prev.File, prev.Line, prev.Column)})
					continue
				}
				f.sets[rs.Name] = rs
			}
		}
		if found == 0 {
			p.errorf(item, field, "%q matches only rules test files, no rule file", pattern)
		}
	}
}

// test reads one test; it returns nil when the test is unusable.
func (p *loader) test(f *File, i int, n *yaml.Node) *Test {
	errsBefore := len(p.errs)
	t := &Test{Line: n.Line, Column: n.Column, Interval: f.EvaluationInterval, index: i}
	field := fmt.Sprintf("tests[%d]", i)
	pre := field + "."
	entries := p.fields(n, field, "name", "interval", "input_series", "scaled_object", "builtins", "rule_set_tests", "promql_expr_test")
	// The name first, so that every other problem can name the test.
	for _, kv := range entries {
		if kv.key == "name" {
			if s, ok := p.str(kv.v, field+".name"); ok {
				t.Name = s
				pre = fmt.Sprintf("test %q: ", s)
			}
		}
	}
	var series, builtins, setTests, exprTests *yaml.Node
	for _, kv := range entries {
		switch kv.key {
		case "interval":
			if d, ok := p.duration(kv.v, pre+kv.key, true); ok {
				t.Interval = d
			}
		case "input_series":
			series = kv.v
		case "scaled_object":
			p.scaledObject(t, kv.v, pre+kv.key)
		case "builtins":
			builtins = kv.v
		case "rule_set_tests":
			setTests = kv.v
		case "promql_expr_test":
			exprTests = kv.v
		}
	}
	// The series after the interval, whatever the order of the keys.
	t.series = memprom.New()
	if series != nil {
		for j, s := range p.list(series, pre+"input_series") {
			p.inputSeries(t, s, pre+fmt.Sprintf("input_series[%d]", j))
		}
	}
	t.builtins = memprom.New()
	if builtins != nil {
		for _, kv := range p.fields(builtins, pre+"builtins", builtinNames[:]...) {
			p.builtin(t, kv, pre+"builtins."+kv.key)
		}
	}
	if setTests != nil {
		var last time.Duration
		var lastNode *yaml.Node
		for j, s := range p.list(setTests, pre+"rule_set_tests") {
			rt := p.ruleSetTest(f, t, s, pre+fmt.Sprintf("rule_set_tests[%d]", j))
			if rt == nil {
				continue
			}
			if lastNode != nil && rt.EvalTime < last {
				p.errorf(rt.evalNode, pre+fmt.Sprintf("rule_set_tests[%d].eval_time", j), "%s", fmt.Sprintf("%s is before the eval_time %s of line %d: rule_set_tests run in the order written, and time does not go back",
					model.Duration(rt.EvalTime), model.Duration(last), lastNode.Line))
			}
			last, lastNode = rt.EvalTime, s
			t.RuleSetTests = append(t.RuleSetTests, rt)
		}
	}
	if exprTests != nil {
		for j, s := range p.list(exprTests, pre+"promql_expr_test") {
			if et := p.exprTest(s, pre+fmt.Sprintf("promql_expr_test[%d]", j)); et != nil {
				t.ExprTests = append(t.ExprTests, et)
			}
		}
	}
	if len(p.errs) > errsBefore {
		return nil
	}
	return t
}

func (p *loader) scaledObject(t *Test, n *yaml.Node, field string) {
	for _, kv := range p.fields(n, field, "namespace", "name", "metadata") {
		switch kv.key {
		case "namespace":
			t.ScaledObject.Namespace, _ = p.str(kv.v, join(field, kv.key))
		case "name":
			t.ScaledObject.Name, _ = p.str(kv.v, join(field, kv.key))
		case "metadata":
			if kv.v.Tag == "!!null" {
				continue
			}
			if kv.v.Kind != yaml.MappingNode {
				p.errorf(kv.v, join(field, kv.key), "must be a mapping of keys to values, as a trigger's metadata")
				continue
			}
			t.ScaledObject.Metadata = map[string]string{}
			for i := 0; i+1 < len(kv.v.Content); i += 2 {
				k, v := kv.v.Content[i], kv.v.Content[i+1]
				name := join(field, "metadata."+k.Value)
				if _, dup := t.ScaledObject.Metadata[k.Value]; dup {
					p.errorf(k, name, "duplicate key")
					continue
				}
				if v.Kind != yaml.ScalarNode {
					p.errorf(v, name, "must be a single value, not a list or mapping")
					continue
				}
				t.ScaledObject.Metadata[k.Value] = v.Value // KEDA's metadata is strings; null is ""
			}
		}
	}
}

// notation reports a memprom.NotationError at its place in the file.
func (p *loader) notation(err error, nodes map[string]*yaml.Node, fallback *yaml.Node, field string) {
	var ne *memprom.NotationError
	if errors.As(err, &ne) {
		if n := nodes[ne.Field]; n != nil {
			p.errorAt(n, ne.Offset, join(field, ne.Field), ne.Err.Error())
			return
		}
	}
	p.errorf(fallback, field, "%v", err)
}

func (p *loader) inputSeries(t *Test, n *yaml.Node, field string) {
	var seriesNode, valuesNode *yaml.Node
	var is InputSeries
	for _, kv := range p.fields(n, field, "series", "values") {
		switch kv.key {
		case "series":
			if s, ok := p.str(kv.v, join(field, kv.key)); ok {
				is.Series, seriesNode = s, kv.v
			}
		case "values":
			// promtool reads a missing or empty values as no sample.
			if kv.v.Tag == "!!null" {
				valuesNode = kv.v
				continue
			}
			if s, ok := p.str(kv.v, join(field, kv.key)); ok {
				is.Values, valuesNode = s, kv.v
			}
		}
	}
	if seriesNode == nil {
		if n.Kind == yaml.MappingNode {
			p.errorf(n, join(field, "series"), "required: a series such as 'queue_depth{namespace=\"ml\"}'")
		}
		return
	}
	lset, samples, err := memprom.ParseSeries(is.Series, is.Values, memprom.Epoch(), t.Interval)
	if err != nil {
		p.notation(err, map[string]*yaml.Node{"series": seriesNode, "values": valuesNode}, n, field)
		return
	}
	if err := t.series.Add(lset, samples); err != nil {
		p.errorf(n, field, "%v", err)
		return
	}
	t.InputSeries = append(t.InputSeries, is)
}

func (p *loader) builtin(t *Test, kv keyValue, field string) {
	values, ok := p.str(kv.v, field)
	if !ok {
		return
	}
	// Parsed as the series named after the built-in, so that its value at
	// an eval_time is read by PromQL as any series' (lookback, staleness).
	_, samples, err := memprom.ParseSeries(kv.key, values, memprom.Epoch(), t.Interval)
	if err != nil {
		var ne *memprom.NotationError
		if errors.As(err, &ne) && ne.Field == "values" {
			p.errorAt(kv.v, ne.Offset, field, ne.Err.Error())
		} else {
			p.errorf(kv.v, field, "%v", err)
		}
		return
	}
	if err := t.builtins.Add(labels.FromStrings(model.MetricNameLabel, kv.key), samples); err != nil {
		p.errorf(kv.v, field, "%v", err)
		return
	}
	if t.Builtins == nil {
		t.Builtins = map[string]string{}
	}
	t.Builtins[kv.key] = values
}

func (p *loader) ruleSetTest(f *File, t *Test, n *yaml.Node, field string) *RuleSetTest {
	errsBefore := len(p.errs)
	rt := &RuleSetTest{Line: n.Line, Column: n.Column}
	var evalNode, setNode, replicasNode, holdingNode *yaml.Node
	for _, kv := range p.fields(n, field, "eval_time", "rule_set", "exp_replicas", "exp_active", "exp_holding", "exp_error") {
		name := join(field, kv.key)
		switch kv.key {
		case "eval_time":
			evalNode, rt.evalNode = kv.v, kv.v
			rt.EvalTime, _ = p.duration(kv.v, name, false)
		case "rule_set":
			setNode = kv.v
			rt.RuleSet, _ = p.str(kv.v, name)
		case "exp_replicas":
			replicasNode = kv.v
			if s, ok := p.str(kv.v, name); ok {
				v, err := strconv.ParseInt(s, 10, 64)
				if err != nil || v < 0 || v > math.MaxInt32 {
					p.errorf(kv.v, name, "%q is not a whole number of replicas between 0 and %d", s, math.MaxInt32)
				} else {
					rt.ExpReplicas = &v
				}
			}
		case "exp_active":
			if b, ok := p.boolean(kv.v, name); ok {
				rt.ExpActive = &b
			}
		case "exp_holding":
			holdingNode = kv.v
			rt.ExpHolding, _ = p.boolean(kv.v, name)
		case "exp_error":
			if s, ok := p.str(kv.v, name); ok {
				if !slices.Contains(rules.Reasons(), s) {
					p.errorf(kv.v, name, "%q is not a reason of an evaluation error: use one of %s", s, strings.Join(rules.Reasons(), ", "))
				} else {
					rt.ExpError = s
				}
			}
		}
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	if evalNode == nil {
		p.errorf(n, join(field, "eval_time"), "required: when to evaluate, such as 1m30s (from the start of the series)")
	}
	if setNode == nil {
		p.errorf(n, join(field, "rule_set"), "required: the name of the rule set to evaluate")
	}
	switch {
	case rt.ExpError != "" && replicasNode != nil:
		p.errorf(replicasNode, join(field, "exp_replicas"), "exp_error expects an error, which has no replicas: give one or the other")
	case rt.ExpError != "" && holdingNode != nil:
		p.errorf(holdingNode, join(field, "exp_holding"), "exp_error expects an error, and a holding answer is none: give one or the other")
	case rt.ExpError == "" && replicasNode == nil && len(p.errs) == errsBefore:
		p.errorf(n, join(field, "exp_replicas"), "required unless exp_error is given: the replicas the rule set must answer")
	}
	if setNode != nil && rt.RuleSet != "" {
		rs, ok := f.sets[rt.RuleSet]
		switch {
		case !ok && p.badRules:
			// Reported with the rule file's own problems.
		case !ok && len(f.sets) == 0:
			p.errorf(setNode, join(field, "rule_set"), "no rule set named %q: the test file loads no rule files (rule_files)", rt.RuleSet)
		case !ok:
			p.errorf(setNode, join(field, "rule_set"), "no rule set named %q in the rule files: there are %s", rt.RuleSet, strings.Join(setNames(f.sets), ", "))
		default:
			queries, err := rs.Render(t.ScaledObject.Namespace, t.ScaledObject.Name, t.ScaledObject.Metadata)
			if err != nil {
				p.errorf(setNode, join(field, "rule_set"), "rendering the queries for the test's scaled_object: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
			}
			rt.rs, rt.queries = rs, queries
		}
	}
	if len(p.errs) > errsBefore {
		return nil
	}
	return rt
}

func setNames(sets map[string]*rules.RuleSet) []string {
	names := make([]string, 0, len(sets))
	for n := range sets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (p *loader) exprTest(n *yaml.Node, field string) *ExprTest {
	errsBefore := len(p.errs)
	et := &ExprTest{Line: n.Line, Column: n.Column}
	var exprNode, evalNode *yaml.Node
	for _, kv := range p.fields(n, field, "expr", "eval_time", "exp_samples") {
		name := join(field, kv.key)
		switch kv.key {
		case "expr":
			exprNode = kv.v
			if s, ok := p.str(kv.v, name); ok {
				et.Expr = s
				p.checkExpr(kv.v, s, name)
			}
		case "eval_time":
			evalNode = kv.v
			et.EvalTime, _ = p.duration(kv.v, name, false)
		case "exp_samples":
			for i, s := range p.list(kv.v, name) {
				if sample, ok := p.expSample(s, fmt.Sprintf("%s[%d]", name, i)); ok {
					et.ExpSamples = append(et.ExpSamples, sample)
				}
			}
		}
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	if exprNode == nil {
		p.errorf(n, join(field, "expr"), "required: the PromQL expression to evaluate")
	}
	if evalNode == nil {
		p.errorf(n, join(field, "eval_time"), "required: when to evaluate, such as 1m30s (from the start of the series)")
	}
	if len(p.errs) > errsBefore {
		return nil
	}
	return et
}

// checkExpr parses a promql_expr_test expression, which must give an
// instant vector or a scalar, as promtool's.
func (p *loader) checkExpr(n *yaml.Node, s, field string) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(s)
	if err != nil {
		var perrs parser.ParseErrors
		if errors.As(err, &perrs) && len(perrs) > 0 {
			p.errorAt(n, int(perrs[0].PositionRange.Start), field, "invalid PromQL: "+perrs[0].Err.Error())
			return
		}
		p.errorf(n, field, "invalid PromQL: %v", err)
		return
	}
	if typ := e.Type(); typ != parser.ValueTypeVector && typ != parser.ValueTypeScalar {
		p.errorf(n, field, "the expression gives a %s: it must give an instant vector or a scalar", typ)
	}
}

func (p *loader) expSample(n *yaml.Node, field string) (memprom.ExprSample, bool) {
	sample := memprom.ExprSample{Labels: map[string]string{}}
	ok := true
	var valueNode *yaml.Node
	for _, kv := range p.fields(n, field, "labels", "value") {
		name := join(field, kv.key)
		switch kv.key {
		case "labels":
			s, good := p.str(kv.v, name)
			if !good {
				ok = false
				continue
			}
			lset, err := memprom.ParseLabels(s)
			if err != nil {
				p.notation(err, map[string]*yaml.Node{"labels": kv.v}, kv.v, field)
				ok = false
				continue
			}
			sample.Labels = lset
		case "value":
			valueNode = kv.v
			s, good := p.str(kv.v, name)
			if !good {
				ok = false
				continue
			}
			v, err := parseFloat(kv.v, s)
			if err != nil {
				p.errorf(kv.v, name, "%q is not a number", s)
				ok = false
				continue
			}
			sample.Value = v
		}
	}
	if n.Kind != yaml.MappingNode {
		return sample, false
	}
	if valueNode == nil {
		p.errorf(n, join(field, "value"), "required: the sample's value")
		ok = false
	}
	return sample, ok
}

// parseFloat reads a sample value as YAML (1, 1.5e3, .inf, .nan) or, as
// Prometheus writes them, Inf, +Inf, -Inf and NaN.
func parseFloat(n *yaml.Node, s string) (float64, error) {
	var v float64
	if n.Tag == "!!float" || n.Tag == "!!int" {
		if err := n.Decode(&v); err == nil {
			return v, nil
		}
	}
	return strconv.ParseFloat(s, 64)
}

// label names the test in a failure: its name, or its place in the file.
func (t *Test) label() string {
	if t.Name != "" {
		return t.Name
	}
	return fmt.Sprintf("#%d", t.index+1)
}
