package rules

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/k8s-nemesis/nemesis/internal/yamlpos"
)

// DefaultStaleAfter is how long onError: hold reuses the last good decision
// when a rule set does not say.
const DefaultStaleAfter = 5 * time.Minute

// ErrorMode says what a rule set does when its queries or expressions fail.
type ErrorMode int

const (
	// Hold reuses the last good decision for StaleAfter, then fails.
	Hold ErrorMode = iota
	// Fail returns the error at once, so KEDA's fallback takes over.
	Fail
	// Fixed returns OnError.Replicas replicas.
	Fixed
)

// OnError is a rule set's error policy.
type OnError struct {
	Mode     ErrorMode
	Replicas int64 // for Fixed
}

// String returns the policy as written in a rule file.
func (o OnError) String() string {
	switch o.Mode {
	case Fail:
		return "fail"
	case Fixed:
		return strconv.FormatInt(o.Replicas, 10)
	default:
		return "hold"
	}
}

// isName reports whether s is a valid rule set name: letters, digits, '-',
// '_' and '.', starting and ending with a letter or digit.
func isName(s string) bool {
	alnum := func(c byte) bool { return isIdentChar(c) && c != '_' }
	if s == "" || !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isIdentChar(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// isIdent reports whether s can be a variable in expressions.
func isIdent(s string) bool {
	if s == "" || !isIdentStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isIdentChar(s[i]) {
			return false
		}
	}
	return true
}

// fileParser collects the problems of one file.
type fileParser struct {
	file  string
	lines []string
	errs  []*Error
}

func (p *fileParser) errorf(n *yaml.Node, ruleSet, field, format string, args ...any) {
	line, col := 1, 1
	if n != nil {
		line, col = n.Line, n.Column
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Column: col, RuleSet: ruleSet, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (p *fileParser) errorAt(n *yaml.Node, value string, offset int, ruleSet, field, msg string) {
	line, col := yamlpos.ValuePos(n, p.lines, value, offset)
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Column: col, RuleSet: ruleSet, Field: field, Msg: msg})
}

// Parse reads the rule sets of one file. file names the file in errors. On
// problems it returns an error that joins one [*Error] per problem.
func Parse(file string, data []byte) ([]*RuleSet, error) {
	p := &fileParser{file: file, lines: strings.Split(string(data), "\n")}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := yamlpos.ErrorLine(err)
		if strings.Contains(msg, "mapping values are not allowed") {
			msg += " (an expression that holds \": \", such as a ? b : c, must be quoted or written as a block scalar after |)"
		}
		return nil, joinErrors([]*Error{{File: file, Line: line, Column: 1, Msg: "invalid YAML: " + msg}})
	}
	if len(doc.Content) == 0 {
		return nil, joinErrors([]*Error{{File: file, Line: 1, Column: 1, Field: "ruleSets", Msg: "the file holds no rule sets"}})
	}
	root := doc.Content[0]
	var sets []*RuleSet
	seen := map[string]bool{}
	for _, kv := range p.mapping(root, "", "") {
		if kv.key != "ruleSets" {
			p.errorf(kv.k, "", kv.key, "unknown field: the top level holds only ruleSets")
			continue
		}
		if kv.v.Kind != yaml.SequenceNode {
			p.errorf(kv.v, "", "ruleSets", "must be a list of rule sets")
			continue
		}
		if len(kv.v.Content) == 0 {
			p.errorf(kv.v, "", "ruleSets", "the list is empty")
		}
		for _, n := range kv.v.Content {
			rs := p.ruleSet(n)
			if rs == nil {
				continue
			}
			if seen[rs.Name] {
				p.errorf(rs.nameNode, rs.Name, "name", "duplicate rule set name")
				continue
			}
			seen[rs.Name] = true
			sets = append(sets, rs)
		}
	}
	if len(p.errs) == 0 && len(sets) == 0 {
		p.errorf(root, "", "ruleSets", "the file holds no rule sets")
	}
	if len(p.errs) > 0 {
		return nil, joinErrors(p.errs)
	}
	return sets, nil
}

type keyValue struct {
	key  string
	k, v *yaml.Node
}

// mapping returns the entries of a mapping node, reporting duplicate keys.
func (p *fileParser) mapping(n *yaml.Node, ruleSet, field string) []keyValue {
	if n.Kind != yaml.MappingNode {
		if field == "" {
			p.errorf(n, ruleSet, field, "must be a mapping")
		} else {
			p.errorf(n, ruleSet, field, "must be a mapping of names to values")
		}
		return nil
	}
	var out []keyValue
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		full := name
		if field != "" {
			full = field + "." + name
		}
		if seen[name] {
			p.errorf(k, ruleSet, full, "duplicate key")
			continue
		}
		seen[name] = true
		out = append(out, keyValue{key: name, k: k, v: v})
	}
	return out
}

// scalar returns the text of a scalar node, reporting any other kind.
func (p *fileParser) scalar(n *yaml.Node, ruleSet, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, ruleSet, field, "must be a single value, not a list or mapping")
		return "", false
	}
	if n.Tag == "!!null" {
		p.errorf(n, ruleSet, field, "must not be empty")
		return "", false
	}
	return n.Value, true
}

func (p *fileParser) integer(n *yaml.Node, ruleSet, field string) (int64, bool) {
	s, ok := p.scalar(n, ruleSet, field)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > math.MaxInt32 {
		p.errorf(n, ruleSet, field, "%q is not a whole number of replicas between 0 and %d", s, math.MaxInt32)
		return 0, false
	}
	return v, true
}

// ruleSet reads one rule set; it returns nil when the set is unusable.
func (p *fileParser) ruleSet(n *yaml.Node) *RuleSet {
	rs := &RuleSet{File: p.file, StaleAfter: DefaultStaleAfter, Line: n.Line, Column: n.Column}
	entries := p.mapping(n, "", "")
	if entries == nil {
		return nil
	}
	// The name first, so that every other problem can name the rule set.
	for _, kv := range entries {
		if kv.key == "name" {
			if s, ok := p.scalar(kv.v, "", "name"); ok {
				if !isName(s) {
					p.errorf(kv.v, "", "name", "%q is not a valid name: use letters, digits, '-', '_' and '.', starting and ending with a letter or digit", s)
				}
				rs.Name, rs.nameNode = s, kv.v
			}
		}
	}
	if rs.nameNode == nil {
		p.errorf(n, "", "name", "required")
		rs.nameNode = n
	}
	name := rs.Name
	var replicas, active, maxNode, onErrorNode *yaml.Node
	var haveMax bool
	var errsBefore = len(p.errs)
	for _, kv := range entries {
		switch kv.key {
		case "name":
		case "description":
			if s, ok := p.scalar(kv.v, name, kv.key); ok {
				rs.Description = s
			}
		case "queries":
			if kv.v.Tag == "!!null" {
				continue
			}
			for _, q := range p.mapping(kv.v, name, "queries") {
				p.query(rs, q)
			}
		case "replicas":
			if _, ok := p.scalar(kv.v, name, kv.key); ok {
				replicas = kv.v
			}
		case "active":
			if _, ok := p.scalar(kv.v, name, kv.key); ok {
				active = kv.v
			}
		case "min":
			rs.Min, _ = p.integer(kv.v, name, kv.key)
		case "max":
			rs.Max, haveMax = p.integer(kv.v, name, kv.key)
			maxNode = kv.v
			if !haveMax {
				haveMax = true // reported already; do not also say it is missing
				rs.Max = math.MaxInt32
			}
		case "onError":
			if s, ok := p.scalar(kv.v, name, kv.key); ok {
				switch s {
				case "hold":
					rs.OnError = OnError{Mode: Hold}
				case "fail":
					rs.OnError = OnError{Mode: Fail}
				default:
					v, err := strconv.ParseInt(s, 10, 64)
					if err != nil || v < 0 || v > math.MaxInt32 {
						p.errorf(kv.v, name, kv.key, "%q is not hold, fail or a whole number of replicas", s)
						continue
					}
					rs.OnError = OnError{Mode: Fixed, Replicas: v}
					onErrorNode = kv.v
				}
			}
		case "staleAfter":
			if s, ok := p.scalar(kv.v, name, kv.key); ok {
				d, err := model.ParseDuration(s)
				if err != nil || d <= 0 {
					p.errorf(kv.v, name, kv.key, "%q is not a positive duration such as 30s, 5m or 1h", s)
				}
				rs.StaleAfter = time.Duration(d)
			}
		default:
			p.errorf(kv.k, name, kv.key, "unknown field: a rule set has name, description, queries, replicas, active, min, max, onError and staleAfter")
		}
	}
	if replicas == nil {
		p.errorf(n, name, "replicas", "required: an expression for the desired number of replicas")
	}
	if !haveMax {
		p.errorf(n, name, "max", "required: an upper bound on replicas, so that a wrong query cannot scale without limit")
	}
	if haveMax && rs.Max < rs.Min {
		p.errorf(maxNode, name, "max", "%d is below min %d", rs.Max, rs.Min)
	} else if onErrorNode != nil && (rs.OnError.Replicas < rs.Min || rs.OnError.Replicas > rs.Max) {
		p.errorf(onErrorNode, name, "onError", "%d replicas is outside min..max (%d..%d)", rs.OnError.Replicas, rs.Min, rs.Max)
	}
	// Compile the expressions even after other problems, so that all are
	// reported at once; but a query whose name was refused is missing from
	// the environment, and every use of it would be reported again.
	if replicas != nil && !rs.badQueryName {
		p.compile(rs, replicas, active)
	}
	if len(p.errs) > errsBefore {
		return nil
	}
	return rs
}

// query reads and checks one query template.
func (p *fileParser) query(rs *RuleSet, kv keyValue) {
	field := "queries." + kv.key
	if !isIdent(kv.key) {
		p.errorf(kv.k, rs.Name, field, "%q is not a valid query name: it is a variable in expressions, so use letters, digits and '_', not starting with a digit", kv.key)
		rs.badQueryName = true
		return
	}
	if reason := reservedName(kv.key); reason != "" {
		p.errorf(kv.k, rs.Name, field, "%q %s: choose another query name", kv.key, reason)
		rs.badQueryName = true
		return
	}
	src, ok := p.scalar(kv.v, rs.Name, field)
	if !ok {
		return
	}
	t, check, terrs := parseTemplate(src)
	for _, e := range terrs {
		p.errorAt(kv.v, src, e.offset, rs.Name, field, e.msg)
	}
	if len(terrs) == 0 {
		if e := checkPromQL(check); e != nil {
			p.errorAt(kv.v, src, e.offset, rs.Name, field, e.msg)
		}
	}
	rs.Queries = append(rs.Queries, &Query{Name: kv.key, Template: src, tmpl: t})
}
