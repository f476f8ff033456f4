package rules

import (
	"math"
	"reflect"
	"slices"

	"github.com/expr-lang/expr/ast"
)

// The fast path evaluates the common shape of a rule, arithmetic, comparisons,
// logic, the ternary and a few numeric built-ins over bare query values,
// with closures over float64 instead of expr's VM, which boxes every
// intermediate number. Expressions with anything else (series, lists,
// strings, closures, other built-ins) run on the VM. Both give the same
// results: FuzzFastPath compares them.

// frame holds the inputs of one fast evaluation: the value of each query,
// by index, then replicas, then the built-ins in the order of builtinNames.
type frame []float64

type (
	numFn  func(frame) float64
	boolFn func(frame) bool
)

// fastCompiler turns a checked expr AST into closures.
type fastCompiler struct {
	slots map[string]int
}

// newFastCompiler returns a compiler for one expression of rs; lets names
// the variables it declares with let, which shadow built-ins.
func newFastCompiler(rs *RuleSet, withReplicas bool, lets []string) *fastCompiler {
	c := &fastCompiler{slots: make(map[string]int, len(rs.Queries)+1+len(builtinNames))}
	for i, q := range rs.Queries {
		c.slots[q.Name] = i
	}
	if withReplicas {
		c.slots[replicasVar] = len(rs.Queries)
	}
	for i, b := range builtinNames {
		if _, shadowed := c.slots[b]; !shadowed && !slices.Contains(lets, b) {
			c.slots[b] = len(rs.Queries) + 1 + i
		}
	}
	return c
}

func isNumber(t reflect.Type) bool {
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Float64, reflect.Int:
		return true
	}
	return false
}

func isBool(t reflect.Type) bool { return t != nil && t.Kind() == reflect.Bool }

// num compiles a numeric node, or returns nil when the fast path cannot.
func (c *fastCompiler) num(n ast.Node) numFn {
	if cn, ok := n.(*ast.ConditionalNode); ok {
		// a ? 1 : x has no static type when its branches are an int and a
		// float; it is a number all the same.
		return c.conditionalNum(cn)
	}
	if !isNumber(n.Type()) {
		return nil
	}
	switch n := n.(type) {
	case *ast.IntegerNode:
		v := float64(n.Value)
		return func(frame) float64 { return v }
	case *ast.FloatNode:
		v := n.Value
		return func(frame) float64 { return v }
	case *ast.IdentifierNode:
		i, ok := c.slots[n.Value]
		if !ok {
			return nil
		}
		return func(f frame) float64 { return f[i] }
	case *ast.UnaryNode:
		x := c.num(n.Node)
		if x == nil {
			return nil
		}
		switch n.Operator {
		case "-":
			return func(f frame) float64 { return -x(f) }
		case "+":
			return x
		}
	case *ast.BinaryNode:
		a, b := c.num(n.Left), c.num(n.Right)
		if a == nil || b == nil {
			return nil
		}
		switch n.Operator {
		case "+":
			return func(f frame) float64 { return a(f) + b(f) }
		case "-":
			return func(f frame) float64 { return a(f) - b(f) }
		case "*":
			return func(f frame) float64 { return a(f) * b(f) }
		case "/":
			return func(f frame) float64 { return a(f) / b(f) }
		case "**", "^":
			return func(f frame) float64 { return math.Pow(a(f), b(f)) }
		}
	case *ast.BuiltinNode:
		return c.builtin(n)
	}
	return nil
}

func (c *fastCompiler) conditionalNum(n *ast.ConditionalNode) numFn {
	cond, a, b := c.bool(n.Cond), c.num(n.Exp1), c.num(n.Exp2)
	if cond == nil || a == nil || b == nil {
		return nil
	}
	return func(f frame) float64 {
		if cond(f) {
			return a(f)
		}
		return b(f)
	}
}

func (c *fastCompiler) builtin(n *ast.BuiltinNode) numFn {
	args := make([]numFn, len(n.Arguments))
	for i, a := range n.Arguments {
		if args[i] = c.num(a); args[i] == nil {
			return nil
		}
	}
	if len(args) == 1 {
		x := args[0]
		switch n.Name {
		case "ceil":
			return func(f frame) float64 { return math.Ceil(x(f)) }
		case "floor":
			return func(f frame) float64 { return math.Floor(x(f)) }
		case "round":
			return func(f frame) float64 { return math.Round(x(f)) }
		case "abs":
			return func(f frame) float64 {
				if v := x(f); v < 0 {
					return -v
				} else {
					return v
				}
			}
		}
	}
	if len(args) < 2 {
		return nil
	}
	// expr's max and min keep the first value unless a later one is
	// strictly greater (smaller): the same with NaN.
	switch n.Name {
	case "max":
		return func(f frame) float64 {
			v := args[0](f)
			for _, a := range args[1:] {
				if w := a(f); v < w {
					v = w
				}
			}
			return v
		}
	case "min":
		return func(f frame) float64 {
			v := args[0](f)
			for _, a := range args[1:] {
				if w := a(f); v > w {
					v = w
				}
			}
			return v
		}
	}
	return nil
}

// bool compiles a boolean node, or returns nil when the fast path cannot.
func (c *fastCompiler) bool(n ast.Node) boolFn {
	if !isBool(n.Type()) {
		return nil
	}
	switch n := n.(type) {
	case *ast.BoolNode:
		v := n.Value
		return func(frame) bool { return v }
	case *ast.UnaryNode:
		x := c.bool(n.Node)
		if x == nil || (n.Operator != "!" && n.Operator != "not") {
			return nil
		}
		return func(f frame) bool { return !x(f) }
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and", "||", "or":
			a, b := c.bool(n.Left), c.bool(n.Right)
			if a == nil || b == nil {
				return nil
			}
			if n.Operator == "&&" || n.Operator == "and" {
				return func(f frame) bool { return a(f) && b(f) }
			}
			return func(f frame) bool { return a(f) || b(f) }
		}
		a, b := c.num(n.Left), c.num(n.Right)
		if a == nil || b == nil {
			return nil
		}
		switch n.Operator {
		case "<":
			return func(f frame) bool { return a(f) < b(f) }
		case "<=":
			return func(f frame) bool { return a(f) <= b(f) }
		case ">":
			return func(f frame) bool { return a(f) > b(f) }
		case ">=":
			return func(f frame) bool { return a(f) >= b(f) }
		case "==":
			return func(f frame) bool { return a(f) == b(f) }
		case "!=":
			return func(f frame) bool { return a(f) != b(f) }
		}
	case *ast.ConditionalNode:
		cond, a, b := c.bool(n.Cond), c.bool(n.Exp1), c.bool(n.Exp2)
		if cond == nil || a == nil || b == nil {
			return nil
		}
		return func(f frame) bool {
			if cond(f) {
				return a(f)
			}
			return b(f)
		}
	}
	return nil
}
