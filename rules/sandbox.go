package rules

import (
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm/runtime"
)

// expr bounds what an evaluation allocates in arrays (the memory budget),
// but not the strings it builds nor the time its loops take: a rule such as
// reduce(1..40, #acc + #acc, "ab") doubles a string forty times, and three
// nested loops over one array of 50,000 numbers never end. Rules compute
// replica counts from numbers, so the sandbox takes away what only serves
// such abuse, and checks it when the rule is loaded:
//
//   - built-ins that build strings or arrays larger than their input, and
//     reduce, the one loop that carries a value from turn to turn;
//   - + on strings: a string + itself doubles with every use. Where the
//     checker cannot tell an operand's type (max(series.x) + 1), the + is
//     compiled as a call to a function that refuses strings at run time;
//   - loops inside loops: inside a closure (the second argument of map,
//     filter, count, all, …) there may be no other closure, no built-in
//     that walks an array (sum, mean, sort, …), no range a..b and no `in` over
//     an array.
//
// With that, no value grows beyond the size of the expression and its
// inputs, and an evaluation does work in proportion to its expression's size
// times its longest array (at most the memory budget, or the series a query
// returned).

// disabledBuiltins names the built-ins rules cannot call, and why.
func disabledBuiltin(name string) (string, bool) {
	switch name {
	case "repeat", "join", "replace", "concat", "flatten", "string", "split", "splitAfter",
		"toJSON", "fromJSON", "toBase64", "fromBase64", "toPairs", "fromPairs":
		return fmt.Sprintf("%s() is not available in rules: it can build values larger than its input", name), true
	case "reduce":
		return "reduce() is not available in rules: use sum(), max(), min(), mean() or count()", true
	}
	return "", false
}

// disabledBuiltinNames lists every disabled built-in, for expr.DisableBuiltin.
func disabledBuiltinNames() []string {
	return []string{"repeat", "join", "replace", "concat", "flatten", "string", "split", "splitAfter",
		"toJSON", "fromJSON", "toBase64", "fromBase64", "toPairs", "fromPairs", "reduce"}
}

// arrayWalkers are built-ins that run through an array when given one.
func walksArray(name string) bool {
	switch name {
	case "sum", "mean", "median", "max", "min", "sort", "sortBy", "uniq", "reverse", "keys", "values",
		"groupBy", "count", "all", "none", "any", "one", "filter", "map", "find", "findIndex",
		"findLast", "findLastIndex", "take":
		return true
	}
	return false
}

func isString(t reflect.Type) bool  { return t != nil && t.Kind() == reflect.String }
func isUnknown(t reflect.Type) bool { return t == nil || t.Kind() == reflect.Interface }

// guardedAdd is the name of the function a + of unknown operand types calls.
const guardedAdd = "__nemesis_add"

// addGuard rewrites the + at the given locations into calls of guardedAdd.
type addGuard struct {
	at []file.Location
}

// Visit implements ast.Visitor.
func (g addGuard) Visit(node *ast.Node) {
	n, ok := (*node).(*ast.BinaryNode)
	if !ok || n.Operator != "+" || !slices.Contains(g.at, n.Location()) {
		return
	}
	call := &ast.CallNode{Callee: &ast.IdentifierNode{Value: guardedAdd}, Arguments: []ast.Node{n.Left, n.Right}}
	call.SetLocation(n.Location())
	ast.Patch(node, call)
}

// addNumbers is + for operands whose type only shows at run time: what expr
// adds, except strings.
func addNumbers(params ...any) (out any, err error) {
	a, b := params[0], params[1]
	if _, ok := a.(string); ok {
		return nil, errors.New("+ on strings is not available in rules")
	}
	if _, ok := b.(string); ok {
		return nil, errors.New("+ on strings is not available in rules")
	}
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("%v", r)
		}
	}()
	return runtime.Add(a, b), nil
}

func isCollection(t reflect.Type) bool {
	if t == nil {
		return true // unknown: assume the worst
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map, reflect.Interface:
		return true
	}
	return false
}

// sandboxCheck walks a checked expression and reports what the sandbox
// refuses.
type sandboxCheck struct {
	errs []exprError
	// guardAdds are the + whose operand types are unknown.
	guardAdds []file.Location
}

// Visit implements ast.Visitor.
func (s *sandboxCheck) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BinaryNode:
		if n.Operator != "+" {
			return
		}
		switch {
		case isString(n.Left.Type()) || isString(n.Right.Type()):
			s.errs = append(s.errs, exprError{n.Location().From, "+ on strings is not available in rules"})
		case isUnknown(n.Left.Type()) || isUnknown(n.Right.Type()):
			s.guardAdds = append(s.guardAdds, n.Location())
		}
	case *ast.PredicateNode:
		inner := &loopCheck{}
		ast.Walk(&n.Node, inner)
		s.errs = append(s.errs, inner.errs...)
	}
}

// loopCheck reports loops inside a closure's body.
type loopCheck struct {
	errs []exprError
}

const nestedLoopHint = "; compute it before the loop with let, e.g. let m = mean(series.x); count(series.x, # > m)"

// Visit implements ast.Visitor.
func (l *loopCheck) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.PredicateNode:
		l.errs = append(l.errs, exprError{n.Location().From, "a loop inside a loop is not available in rules" + nestedLoopHint})
	case *ast.BuiltinNode:
		if !walksArray(n.Name) {
			return
		}
		for _, a := range n.Arguments {
			if _, isPredicate := a.(*ast.PredicateNode); isPredicate {
				return // reported as a loop inside a loop
			}
		}
		for _, a := range n.Arguments {
			if isCollection(a.Type()) {
				l.errs = append(l.errs, exprError{n.Location().From, fmt.Sprintf("%s() over a list inside a loop is not available in rules%s", n.Name, nestedLoopHint)})
				return
			}
		}
	case *ast.BinaryNode:
		switch {
		case n.Operator == "..":
			l.errs = append(l.errs, exprError{n.Location().From, "a range a..b inside a loop is not available in rules" + nestedLoopHint})
		case n.Operator == "in" && n.Right.Type() != nil && n.Right.Type().Kind() != reflect.Map:
			l.errs = append(l.errs, exprError{n.Location().From, "`in` over a list inside a loop is not available in rules" + nestedLoopHint})
		}
	}
}
