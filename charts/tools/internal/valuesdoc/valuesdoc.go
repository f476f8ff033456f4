// Package valuesdoc reads the `# --` comments of a Helm chart's values.yaml,
// in the style of helm-docs, and writes and reads the values table of the
// chart's README.
//
// A key is documented by a comment block right above it whose first
// documenting line starts with "# --"; the lines after it continue the
// description. "# -- (type) text" overrides the type shown, and a line
// "# @default -- text" replaces the default shown (for long or computed
// defaults). Lines above the "# --" line are ordinary comments.
//
//	image:
//	  # -- Image tag (default: the chart's appVersion).
//	  tag: ""
//
// A documented key is one row of the table; its value is its default, and
// keys below it may be documented too (they then get rows of their own) or
// not. A key without a "# --" comment is a group: every key below it must
// be documented, and a scalar, list or empty map without one is an error.
package valuesdoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Row is one documented key.
type Row struct {
	Key         string // dotted path, e.g. "scaler.tls.enabled"
	Type        string // string, int, float, bool, list, object, or the "(type)" given
	Default     string // the default as shown, without backquotes
	Description string
	Line        int // in values.yaml
}

var typeHint = regexp.MustCompile(`^\(([^()\s]+)\)\s+`)

// Parse returns the rows of values.yaml in file order. Keys that are not
// documented, and "# --" comments attached to no key, are errors, all
// reported at once.
func Parse(data []byte) ([]Row, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parsing values: %w", err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("values: the document is not a mapping")
	}
	p := &parser{}
	p.mapping(doc.Content[0], "", false)
	p.strayComments(&doc)
	return p.rows, errors.Join(p.errs...)
}

type parser struct {
	rows []Row
	errs []error
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("values.yaml:%d:%d: %s", n.Line, n.Column, fmt.Sprintf(format, args...)))
}

// mapping walks the keys of m; covered says an ancestor is documented, so
// keys here need no comment of their own.
func (p *parser) mapping(m *yaml.Node, prefix string, covered bool) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		key := k.Value
		if prefix != "" {
			key = prefix + "." + k.Value
		}
		desc, typ, def, documented := comment(k.HeadComment)
		if documented {
			if desc == "" {
				p.errorf(k, "%s: the # -- comment has no text", key)
			}
			if typ == "" {
				typ = typeOf(v)
			}
			if def == "" {
				var err error
				if def, err = defaultOf(v); err != nil {
					p.errorf(v, "%s: %v", key, err)
				}
			}
			p.rows = append(p.rows, Row{Key: key, Type: typ, Default: def, Description: desc, Line: k.Line})
		}
		switch {
		case v.Kind == yaml.MappingNode && len(v.Content) > 0:
			p.mapping(v, key, covered || documented)
		case !documented && !covered:
			p.errorf(k, "%s: not documented: add a # -- comment above it", key)
		}
	}
}

// comment reads a key's head comment block.
func comment(head string) (desc, typ, def string, ok bool) {
	var lines []string
	for _, line := range strings.Split(head, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "# @default --"):
			def = strings.TrimSpace(strings.TrimPrefix(line, "# @default --"))
		case strings.HasPrefix(line, "# --"):
			ok = true
			lines = []string{strings.TrimSpace(strings.TrimPrefix(line, "# --"))}
		case ok && strings.HasPrefix(line, "#"):
			lines = append(lines, strings.TrimSpace(strings.TrimPrefix(line, "#")))
		case ok && line == "":
			// A blank line ends the block above the key; a later
			// "# --" starts a new one.
		}
	}
	desc = strings.Join(lines, " ")
	if m := typeHint.FindStringSubmatch(desc); m != nil {
		typ, desc = m[1], desc[len(m[0]):]
	}
	return strings.TrimSpace(desc), typ, def, ok
}

func typeOf(v *yaml.Node) string {
	switch v.Kind {
	case yaml.MappingNode:
		return "object"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return typeOf(v.Alias)
	}
	switch v.ShortTag() {
	case "!!int":
		return "int"
	case "!!float":
		return "float"
	case "!!bool":
		return "bool"
	case "!!null":
		return "null"
	}
	return "string"
}

// defaultOf renders a value as compact JSON, as helm-docs does.
func defaultOf(v *yaml.Node) (string, error) {
	var x any
	if err := v.Decode(&x); err != nil {
		return "", err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(jsonable(x)); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

// jsonable turns the map[string]any of yaml.v3 (and any other key type)
// into what encoding/json takes.
func jsonable(x any) any {
	switch t := x.(type) {
	case map[string]any:
		for k, v := range t {
			t[k] = jsonable(v)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, v := range t {
			m[fmt.Sprint(k)] = jsonable(v)
		}
		return m
	case []any:
		for i, v := range t {
			t[i] = jsonable(v)
		}
		return t
	}
	return x
}

// strayComments reports "# --" comments that yaml.v3 attached as a line or
// foot comment, where they document nothing.
func (p *parser) strayComments(n *yaml.Node) {
	for _, c := range []string{n.LineComment, n.FootComment} {
		if strings.Contains(c, "# --") {
			p.errorf(n, "a # -- comment here is attached to no key: put it right above the key it documents")
		}
	}
	for _, c := range n.Content {
		p.strayComments(c)
	}
}
