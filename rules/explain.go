package rules

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	exprparser "github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// The explanation of a decision shows the replicas expression with the
// values of its top-level sub-terms, e.g.
//
//	max(waiting / 4 = 4.5, running / 8 = 1.25) = 4.5 → 5 (0..16)
//
// It is worked out only when asked for (a record read, a debug line), never
// on the evaluation's hot path: the sub-terms are compiled on first use and
// run on expr's VM over the same inputs as the evaluation.

// explainer holds the compiled sub-terms of a rule set's replicas
// expression; nil parts mean the plain form `<source> = raw` is used.
type explainer struct {
	// wrappers are the one-argument calls around the annotated node, outermost
	// first, e.g. ["ceil"] for ceil(max(a, b)).
	wrappers []string
	// inner evaluates the annotated node itself, shown when wrapped.
	inner *vm.Program
	// parts alternate literal text and sub-terms: a sub-term is shown as its
	// text followed by " = value".
	parts []explainPart
}

type explainPart struct {
	text string
	prog *vm.Program // nil: text only
}

// newExplainer compiles the sub-terms of src, or returns nil when the
// expression has no shape it can annotate cleanly (a let, closures, a
// sub-term that does not compile on its own).
func (rs *RuleSet) newExplainer(src string) *explainer {
	tree, err := exprparser.Parse(src)
	if err != nil {
		return nil
	}
	if ast.Find(tree.Node, func(n ast.Node) bool {
		switch n.(type) {
		case *ast.VariableDeclaratorNode, *ast.PredicateNode, *ast.PointerNode, *ast.SequenceNode:
			return true
		}
		return false
	}) != nil {
		return nil
	}
	e := &explainer{}
	node := tree.Node
	for {
		b, ok := node.(*ast.BuiltinNode)
		if !ok || len(b.Arguments) != 1 {
			break
		}
		e.wrappers = append(e.wrappers, b.Name)
		node = b.Arguments[0]
	}
	compile := func(n ast.Node) *vm.Program {
		opts := []expr.Option{expr.Env(compileEnv(rs, false, nil)), expr.MaxNodes(maxNodes)}
		for _, name := range disabledBuiltinNames() {
			opts = append(opts, expr.DisableBuiltin(name))
		}
		p, err := expr.Compile(n.String(), opts...)
		if err != nil {
			return nil
		}
		return p
	}
	term := func(n ast.Node) bool {
		switch n.(type) {
		case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NilNode, *ast.StringNode:
			e.parts = append(e.parts, explainPart{text: n.String()})
			return true
		}
		p := compile(n)
		e.parts = append(e.parts, explainPart{text: n.String(), prog: p})
		return p != nil
	}
	text := func(s string) { e.parts = append(e.parts, explainPart{text: s}) }
	ok := true
	switch n := node.(type) {
	case *ast.BuiltinNode:
		text(n.Name + "(")
		for i, a := range n.Arguments {
			if i > 0 {
				text(", ")
			}
			ok = ok && term(a)
		}
		text(")")
	case *ast.BinaryNode:
		text("(")
		ok = term(n.Left)
		text(") " + n.Operator + " (")
		ok = ok && term(n.Right)
		text(")")
	case *ast.ConditionalNode:
		text("(")
		ok = term(n.Cond)
		text(") ? " + n.Exp1.String() + " : " + n.Exp2.String())
	default:
		// A name or a literal: the value after it says it all.
		e.parts = []explainPart{{text: node.String()}}
	}
	if !ok {
		return nil
	}
	if len(e.wrappers) > 0 {
		if e.inner = compile(node); e.inner == nil {
			return nil
		}
	}
	return e
}

// Explain says how the replicas expression reached raw from the given
// inputs, which are those of the evaluation that computed raw (see
// EvaluateWith; b may be nil when the rule set uses no built-ins): the
// expression with the values of its sub-terms where they can be shown, then
// the rounding and the clamp, e.g.
//
//	max(waiting / 4 = 4.5, running / 8 = 1.25) = 4.5 → 5 (0..16)
//
// An expression it cannot annotate (let, closures) is shown as written.
func (rs *RuleSet) Explain(results []Result, b *BuiltinValues, raw float64) string {
	rs.explainOnce.Do(func() { rs.explain = rs.newExplainer(rs.Replicas) })
	var sb strings.Builder
	if e := rs.explain; e != nil {
		env := rs.explainEnv(results, b)
		var m vm.VM
		m.MemoryBudget = memoryBudget
		for _, w := range e.wrappers {
			sb.WriteString(w + "(")
		}
		for _, p := range e.parts {
			sb.WriteString(p.text)
			if p.prog != nil {
				sb.WriteString(" = " + formatValue(m.Run(p.prog, env)))
			}
		}
		if e.inner != nil {
			sb.WriteString(" = " + formatValue(m.Run(e.inner, env)))
		}
		for range e.wrappers {
			sb.WriteString(")")
		}
	} else {
		sb.WriteString(strings.TrimSpace(rs.Replicas))
	}
	sb.WriteString(" = " + FormatNumber(raw) + " → " + strconv.FormatInt(rs.Clamp(raw), 10) + " (" + rs.Bounds() + ")")
	return sb.String()
}

// explainEnv is the expressions' environment for the given inputs, as the
// VM path of EvaluateWith builds it.
func (rs *RuleSet) explainEnv(results []Result, b *BuiltinValues) map[string]any {
	env := make(map[string]any, len(rs.Queries)+1+len(builtinNames))
	series := make(map[string][]float64, len(rs.Queries))
	env[seriesVar] = series
	if b != nil {
		for i, v := range [...]float64{b.InFlight, b.Queued, b.Current, b.Ready} {
			env[builtinNames[i]] = v
		}
	}
	for i, q := range rs.Queries {
		if i >= len(results) {
			break
		}
		series[q.Name] = results[i].Values
		if len(results[i].Values) == 1 {
			env[q.Name] = results[i].Values[0]
		} else {
			env[q.Name] = math.NaN()
		}
	}
	return env
}

// Rounding says how raw became a replica count, e.g. "4.2 → 5, within
// 0..16" or "20.5 → 21, clamped to 16 (0..16)".
func (rs *RuleSet) Rounding(raw float64) string {
	up := math.Ceil(raw-roundingSlack) + 0 // + 0: no "-0"
	n := rs.Clamp(raw)
	if float64(n) == up {
		return FormatNumber(raw) + " → " + strconv.FormatInt(n, 10) + ", within " + rs.Bounds()
	}
	return FormatNumber(raw) + " → " + FormatNumber(up) + ", clamped to " + strconv.FormatInt(n, 10) + " (" + rs.Bounds() + ")"
}

// Bounds is min..max, e.g. "0..16".
func (rs *RuleSet) Bounds() string {
	return strconv.FormatInt(rs.Min, 10) + ".." + strconv.FormatInt(rs.Max, 10)
}

// FormatNumber writes v as the explanations do: at most six significant
// digits, no exponent for everyday sizes.
func FormatNumber(v float64) string {
	return strconv.FormatFloat(v, 'g', 6, 64)
}

func formatValue(v any, err error) string {
	if err != nil {
		return "error"
	}
	switch x := v.(type) {
	case float64:
		return FormatNumber(x)
	case int:
		return strconv.Itoa(x)
	default:
		return fmt.Sprint(x)
	}
}
