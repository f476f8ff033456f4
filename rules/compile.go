package rules

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/file"
	exprparser "github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"
)

const (
	// maxNodes bounds the size of one expression.
	maxNodes = 500
	// memoryBudget bounds what one evaluation may allocate (in expr's units:
	// array elements, map entries, string bytes), so that a rule such as
	// map(1..1e9, #) fails fast instead of exhausting the scaler.
	memoryBudget = 100_000

	seriesVar   = "series"
	replicasVar = "replicas"
	// The built-in variables, whose values come from the caller: a query
	// of the same name, or a let of the same name in an expression, shadows
	// them. inflight and queued are the activators' demand; current and
	// ready describe the ScaledObject's scale target.
	inflightVar = "inflight"
	queuedVar   = "queued"
	currentVar  = "current"
	readyVar    = "ready"
)

// builtinNames lists the built-in variables, in the order of their
// fast-path slots and of the fields of BuiltinValues.
var builtinNames = [...]string{inflightVar, queuedVar, currentVar, readyVar}

// isDemandBuiltin tells the activators' built-ins from the scale target's.
func isDemandBuiltin(name string) bool { return name == inflightVar || name == queuedVar }

// reservedName says why name cannot name a query, or returns "".
func reservedName(name string) string {
	switch name {
	case seriesVar, replicasVar:
		return "is a built-in variable"
	case "true", "false", "nil", "in", "not", "and", "or", "matches", "contains", "startsWith", "endsWith", "let", "if", "else":
		return "is an expr keyword"
	}
	if slices.Contains(builtin.Names, name) {
		return "is an expr built-in function"
	}
	return ""
}

// Query is one named PromQL template of a rule set.
type Query struct {
	// Name is the query's variable in expressions.
	Name string
	// Template is the query as written, with $variables.
	Template string
	// Bare is true when an expression uses the query as a number, which needs
	// a result of exactly one sample or a scalar.
	Bare bool
	// Series is true when an expression uses series.<name>, the list of the
	// values of every series.
	Series bool

	tmpl template
}

// Keys returns the template variables the query uses, in order.
func (q *Query) Keys() []string { return q.tmpl.keys() }

// RuleSet is a compiled rule set, ready to render and evaluate. It is
// immutable and safe for concurrent use.
type RuleSet struct {
	Name        string
	Description string
	Queries     []*Query
	// Min and Max bound the replica count.
	Min, Max   int64
	OnError    OnError
	StaleAfter time.Duration
	// Replicas and Active are the expressions as written; Active is empty
	// when the default (replicas > 0) applies.
	Replicas, Active string
	// Builtins lists the built-in variables (inflight, queued, current,
	// ready) the expressions use, in that order; one shadowed by a query
	// (or, in an expression, by a let) of the same name is not listed. The
	// caller supplies their values to EvaluateWith; UsesDemand and
	// UsesScaleTarget say which sources it needs to read.
	Builtins []string
	// File, Line and Column locate the rule set in its file.
	File         string
	Line, Column int

	nameNode     *yaml.Node
	badQueryName bool
	replicas     *vm.Program
	active       *vm.Program // nil: replicas > 0
	pool         sync.Pool   // *evaluator

	// The same expressions as closures over float64, or nil where they use
	// more than the fast path knows (see fastpath.go).
	fastReplicas numFn
	fastActive   boolFn

	// The sub-terms of Replicas for Explain, compiled on first use.
	explainOnce sync.Once
	explain     *explainer
}

// UsesDemand reports whether the expressions use inflight or queued, whose
// values come from the activators.
func (rs *RuleSet) UsesDemand() bool { return slices.ContainsFunc(rs.Builtins, isDemandBuiltin) }

// UsesScaleTarget reports whether the expressions use current or ready,
// whose values come from the ScaledObject's scale target.
func (rs *RuleSet) UsesScaleTarget() bool {
	return slices.ContainsFunc(rs.Builtins, func(b string) bool { return !isDemandBuiltin(b) })
}

// compileEnv returns the typed environment an expression is checked
// against. lets names the variables the expression declares with let:
// expr refuses to redeclare a name of the environment, so a built-in of
// that name is left out, and the let shadows it.
func compileEnv(rs *RuleSet, withReplicas bool, lets []string) map[string]any {
	env := make(map[string]any, len(rs.Queries)+2+len(builtinNames))
	for _, q := range rs.Queries {
		env[q.Name] = float64(0)
	}
	env[seriesVar] = map[string][]float64{}
	for _, b := range builtinNames {
		if _, shadowed := env[b]; !shadowed && !slices.Contains(lets, b) {
			env[b] = float64(0)
		}
	}
	if withReplicas {
		env[replicasVar] = float64(0)
	}
	return env
}

// compile compiles the replicas and active expressions of rs and records
// how each query is used.
func (p *fileParser) compile(rs *RuleSet, replicas, active *yaml.Node) {
	rs.Replicas = replicas.Value
	var lets []string
	rs.replicas, lets = p.compileExpr(rs, replicas, "replicas", false, expr.AsFloat64())
	if rs.replicas != nil {
		rs.fastReplicas = newFastCompiler(rs, false, lets).num(rs.replicas.Node())
	}
	if active != nil {
		rs.Active = active.Value
		rs.active, lets = p.compileExpr(rs, active, "active", true, expr.AsBool())
		if rs.active != nil {
			rs.fastActive = newFastCompiler(rs, true, lets).bool(rs.active.Node())
		}
	}
}

// compileExpr compiles one expression, and returns it with the names it
// declares with let.
func (p *fileParser) compileExpr(rs *RuleSet, n *yaml.Node, field string, withReplicas bool, opts ...expr.Option) (*vm.Program, []string) {
	src := n.Value
	var lets letNames
	parsed, parseErr := exprparser.Parse(src)
	if parseErr == nil {
		ast.Walk(&parsed.Node, &lets)
	}
	opts = append(opts, expr.Env(compileEnv(rs, withReplicas, lets)), expr.MaxNodes(maxNodes))
	for _, name := range disabledBuiltinNames() {
		opts = append(opts, expr.DisableBuiltin(name))
	}
	// Name a disabled built-in as such, rather than as an unknown name.
	if calls := disabledCalls(src); len(calls) > 0 {
		for _, c := range calls {
			p.errorAt(n, src, c.Offset, rs.Name, field, c.Msg)
		}
		return nil, nil
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			p.errorAt(n, src, lineColumnOffset(src, fe.Line, fe.Column), rs.Name, field, typeMessage(fe.Message))
		} else {
			p.errorf(n, rs.Name, field, "%s", typeMessage(err.Error()))
		}
		return nil, nil
	}
	// The checker accepts any key of the series map; make series.x name a query.
	tree, err := exprparser.Parse(src)
	if err != nil {
		p.errorf(n, rs.Name, field, "%v", err)
		return nil, nil
	}
	u := &usage{rs: rs, lets: lets}
	ast.Walk(&tree.Node, u)
	sandbox := &sandboxCheck{}
	checked := prog.Node()
	ast.Walk(&checked, sandbox)
	u.errs = append(u.errs, sandbox.errs...)
	if len(sandbox.errs) == 0 && len(sandbox.guardAdds) > 0 {
		// Compile again, with those + checked at run time.
		opts = append(opts, expr.Function(guardedAdd, addNumbers, new(func(any, any) any)), expr.Patch(addGuard{at: sandbox.guardAdds}))
		if prog, err = expr.Compile(src, opts...); err != nil {
			p.errorf(n, rs.Name, field, "%s", typeMessage(err.Error()))
			return nil, nil
		}
	}
	for _, id := range u.seriesIdents {
		if !slices.Contains(u.memberIdents, id) {
			u.errs = append(u.errs, exprError{id.Location().From, "series must be followed by the name of a query, as in series.pods"})
		}
	}
	seen := map[exprError]bool{}
	for _, e := range u.errs {
		if !seen[e] { // nested loops are seen from each enclosing loop
			seen[e] = true
			p.errorAt(n, src, runeOffset(src, e.from), rs.Name, field, e.msg)
		}
	}
	if len(u.errs) > 0 {
		return nil, nil
	}
	return prog, lets
}

type exprError struct {
	from int // rune offset
	msg  string
}

// usage walks an expression: it marks the queries it uses and checks series.x.
type usage struct {
	rs           *RuleSet
	lets         letNames // a let shadows a built-in of the same name
	seriesIdents []ast.Node
	memberIdents []ast.Node
	errs         []exprError
}

// builtin marks the built-in variable name as used, unless a query shadows it.
func (u *usage) builtin(name string) {
	if !slices.Contains(builtinNames[:], name) || u.query(name) != nil || slices.Contains(u.lets, name) || slices.Contains(u.rs.Builtins, name) {
		return
	}
	u.rs.Builtins = append(u.rs.Builtins, name)
	slices.SortFunc(u.rs.Builtins, func(a, b string) int {
		return slices.Index(builtinNames[:], a) - slices.Index(builtinNames[:], b)
	})
}

func (u *usage) query(name string) *Query {
	for _, q := range u.rs.Queries {
		if q.Name == name {
			return q
		}
	}
	return nil
}

// Visit implements ast.Visitor.
func (u *usage) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if n.Value == seriesVar {
			u.seriesIdents = append(u.seriesIdents, n)
		} else if q := u.query(n.Value); q != nil {
			q.Bare = true
		} else {
			u.builtin(n.Value)
		}
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		if !ok || id.Value != seriesVar {
			return
		}
		u.memberIdents = append(u.memberIdents, id)
		prop, ok := n.Property.(*ast.StringNode)
		if !ok {
			u.errs = append(u.errs, exprError{n.Location().From, "series must be followed by the name of a query, as in series.pods"})
			return
		}
		q := u.query(prop.Value)
		if q == nil && slices.Contains(builtinNames[:], prop.Value) {
			u.errs = append(u.errs, exprError{prop.Location().From, fmt.Sprintf("series.%s: %s is a built-in number, not a query: use %s", prop.Value, prop.Value, prop.Value)})
			return
		}
		if q == nil {
			u.errs = append(u.errs, exprError{prop.Location().From, fmt.Sprintf("series.%s: there is no query named %q", prop.Value, prop.Value)})
			return
		}
		q.Series = true
	}
}

// letNames collects the names an expression declares with let.
type letNames []string

// Visit implements ast.Visitor.
func (l *letNames) Visit(node *ast.Node) {
	if n, ok := (*node).(*ast.VariableDeclaratorNode); ok && !slices.Contains(*l, n.Name) {
		*l = append(*l, n.Name)
	}
}

// lineColumnOffset turns expr's 1-based line and 0-based rune column into a
// byte offset in src.
func lineColumnOffset(src string, line, column int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := indexByteFrom(src, off, '\n')
		if i < 0 {
			return len(src)
		}
		off = i + 1
	}
	for ; column > 0 && off < len(src); column-- {
		_, size := utf8.DecodeRuneInString(src[off:])
		off += size
	}
	return off
}

func indexByteFrom(s string, from int, c byte) int {
	for i := from; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// runeOffset turns a rune offset in src into a byte offset.
func runeOffset(src string, runes int) int {
	off := 0
	for ; runes > 0 && off < len(src); runes-- {
		_, size := utf8.DecodeRuneInString(src[off:])
		off += size
	}
	return off
}

// typeMessage rewords expr's result type errors in the terms of rule files.
func typeMessage(msg string) string {
	if got, ok := strings.CutPrefix(msg, "expected float64, but got "); ok {
		return "must compute a number of replicas, but computes a " + got
	}
	if got, ok := strings.CutPrefix(msg, "expected bool, but got "); ok {
		return "must compute true or false, but computes a " + got
	}
	return msg
}

// callNames collects the functions an expression calls, with their offsets.
type callNames []struct {
	name string
	from int
}

// Visit implements ast.Visitor.
func (c *callNames) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BuiltinNode:
		*c = append(*c, struct {
			name string
			from int
		}{n.Name, n.Location().From})
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok {
			*c = append(*c, struct {
				name string
				from int
			}{id.Value, n.Location().From})
		}
	}
}
