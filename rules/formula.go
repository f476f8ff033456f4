package rules

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	exprparser "github.com/expr-lang/expr/parser"
)

// Formula is an expression over named numbers, compiled once into the
// closures of the fast path: evaluating it does not allocate and takes tens
// of nanoseconds. It serves where an expression runs on every request, such
// as the activator's per-pod score. A Formula is safe for concurrent use.
type Formula struct {
	src  string
	vars []string
	num  numFn
	cond boolFn
}

// FormulaError is a problem in a formula's text. Offset is the byte offset
// in the source where it is, for a file:line:column.
type FormulaError struct {
	Offset int
	Msg    string
}

func (e *FormulaError) Error() string { return e.Msg }

// disabledCalls returns a problem for each call of a built-in the sandbox
// takes away, in the order written; none if src does not parse (the
// compiler reports that).
func disabledCalls(src string) []FormulaError {
	parsed, err := exprparser.Parse(src)
	if err != nil {
		return nil
	}
	var calls callNames
	ast.Walk(&parsed.Node, &calls)
	var out []FormulaError
	for _, c := range calls {
		if msg, ok := disabledBuiltin(c.name); ok {
			out = append(out, FormulaError{Offset: runeOffset(src, c.from), Msg: msg})
		}
	}
	return out
}

// CompileNumber compiles src, an expression that computes a number from
// the variables vars (all numbers), with the sandbox of rule files. A
// value for Number gives the variables in the order of vars.
//
// A formula may use what the fast path evaluates: numbers, the variables,
// arithmetic (+ - * / ^ **), comparisons, && || !, the ternary ?: and
// abs, ceil, floor, round, min and max. Anything else (strings, lists,
// closures, let, other built-ins) is refused with a *FormulaError, so
// that evaluation never falls back to expr's VM, which allocates.
func CompileNumber(src string, vars []string) (*Formula, error) {
	return compileFormula(src, vars, false)
}

// CompileCondition compiles src, an expression that computes true or
// false from the variables vars, as CompileNumber does.
func CompileCondition(src string, vars []string) (*Formula, error) {
	return compileFormula(src, vars, true)
}

func compileFormula(src string, vars []string, cond bool) (*Formula, error) {
	env := make(map[string]any, len(vars))
	slots := make(map[string]int, len(vars))
	for i, v := range vars {
		env[v] = float64(0)
		slots[v] = i
	}
	opts := []expr.Option{expr.Env(env), expr.MaxNodes(maxNodes)}
	if cond {
		opts = append(opts, expr.AsBool())
	} else {
		opts = append(opts, expr.AsFloat64())
	}
	for _, name := range disabledBuiltinNames() {
		opts = append(opts, expr.DisableBuiltin(name))
	}
	if calls := disabledCalls(src); len(calls) > 0 {
		return nil, &calls[0]
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, &FormulaError{Offset: lineColumnOffset(src, fe.Line, fe.Column), Msg: formulaMessage(fe.Message, cond)}
		}
		return nil, &FormulaError{Msg: formulaMessage(err.Error(), cond)}
	}
	c := &fastCompiler{slots: slots}
	f := &Formula{src: src, vars: slices.Clone(vars)}
	if cond {
		f.cond = c.bool(prog.Node())
	} else {
		f.num = c.num(prog.Node())
	}
	if f.num == nil && f.cond == nil {
		return nil, &FormulaError{Msg: "only numbers, the variables (" + strings.Join(vars, ", ") +
			"), + - * / ^, comparisons, && || !, ?: and abs, ceil, floor, round, min and max may be used here"}
	}
	return f, nil
}

// formulaMessage rewords expr's result type errors.
func formulaMessage(msg string, cond bool) string {
	if got, ok := strings.CutPrefix(msg, "expected float64, but got "); ok && !cond {
		return "must compute a number, but computes a " + got
	}
	if got, ok := strings.CutPrefix(msg, "expected bool, but got "); ok && cond {
		return "must compute true or false, but computes a " + got
	}
	return msg
}

// String returns the formula's source.
func (f *Formula) String() string { return f.src }

// Number evaluates a formula of CompileNumber. vals holds the variables'
// values in the order they were given at compile time.
func (f *Formula) Number(vals []float64) float64 {
	if len(vals) < len(f.vars) {
		panic(fmt.Sprintf("rules: Formula.Number with %d values for %d variables", len(vals), len(f.vars)))
	}
	return f.num(vals)
}

// Condition evaluates a formula of CompileCondition.
func (f *Formula) Condition(vals []float64) bool {
	if len(vals) < len(f.vars) {
		panic(fmt.Sprintf("rules: Formula.Condition with %d values for %d variables", len(vals), len(f.vars)))
	}
	return f.cond(vals)
}
