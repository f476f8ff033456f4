package rules

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/prometheus/promql/parser"
)

// A template is a PromQL query with $variables. Variables may only stand
// inside double- or single-quoted PromQL strings, so a substituted value is
// always string content and can never change the shape of the query.
type template struct {
	src   string
	parts []part
	size  int // bytes of literal text, to size the output
}

// part is either literal text or a reference to a variable.
type part struct {
	lit   string
	key   string // variable name; empty for literal text
	quote byte   // the quote of the string the variable stands in
	regex bool   // ${key:regex}: regexp metacharacters in the value are escaped too
}

// templateError is a problem at a byte offset of a template.
type templateError struct {
	offset int
	msg    string
}

func isIdentStart(c byte) bool {
	return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || ('0' <= c && c <= '9') }

// parseTemplate splits src into literal text and variable references and
// checks that every reference stands inside a quoted string. It also returns
// src with each reference replaced by as many 'x' characters as it is long,
// which keeps byte offsets so that PromQL parse errors point into src.
func parseTemplate(src string) (template, string, []templateError) {
	var (
		t       = template{src: src}
		errs    []templateError
		lit     strings.Builder
		check   = []byte(src)
		inQuote byte // '"', '\'', '`' or 0
		comment bool
	)
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, part{lit: lit.String()})
			t.size += lit.Len()
			lit.Reset()
		}
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case comment:
			if c == '\n' {
				comment = false
			}
		case inQuote == 0:
			switch c {
			case '"', '\'', '`':
				inQuote = c
			case '#':
				comment = true
			}
		case c == '\\' && inQuote != '`':
			// An escape: copy both bytes, so an escaped quote does not end the string.
			if i+1 < len(src) {
				lit.WriteByte(c)
				i++
				c = src[i]
			}
		case c == inQuote:
			inQuote = 0
		}
		if c != '$' || comment || i+1 >= len(src) {
			lit.WriteByte(c)
			continue
		}
		next := src[i+1]
		if inQuote != 0 && inQuote != '`' && next == '$' {
			lit.WriteByte('$') // $$ is a literal dollar
			check[i+1] = 'x'
			i++
			continue
		}
		if !isIdentStart(next) && next != '{' {
			lit.WriteByte(c) // a lone $, e.g. a regexp anchor
			continue
		}
		ref, key, regex, msg := scanReference(src[i:])
		if msg == "" {
			switch inQuote {
			case 0:
				msg = fmt.Sprintf("variable %s stands outside a quoted string: variables may only appear inside \"...\" or '...' PromQL strings", ref)
			case '`':
				msg = fmt.Sprintf("variable %s stands inside a raw `...` string, where its value could not be escaped: use \"...\" or '...'", ref)
			}
		}
		if msg != "" {
			errs = append(errs, templateError{offset: i, msg: msg})
			lit.WriteString(ref)
			i += len(ref) - 1
			continue
		}
		flush()
		t.parts = append(t.parts, part{key: key, quote: inQuote, regex: regex})
		for j := i; j < i+len(ref); j++ {
			check[j] = 'x'
		}
		i += len(ref) - 1
	}
	flush()
	return t, string(check), errs
}

// scanReference reads "$name", "${name}" or "${name:regex}" at the start of s.
func scanReference(s string) (ref, key string, regex bool, msg string) {
	if s[1] != '{' {
		n := 1
		for n < len(s) && isIdentChar(s[n]) {
			n++
		}
		return s[:n], s[1:n], false, ""
	}
	end := strings.IndexByte(s, '}')
	if end < 0 {
		return s, "", false, "unterminated ${: want ${name} or ${name:regex}"
	}
	ref = s[:end+1]
	key, mod, hasMod := strings.Cut(s[2:end], ":")
	if key == "" || !isIdentStart(key[0]) || strings.IndexFunc(key, func(r rune) bool { return r > 127 || !isIdentChar(byte(r)) }) >= 0 {
		return ref, "", false, fmt.Sprintf("%s: %q is not a variable name", ref, key)
	}
	if hasMod && mod != "regex" {
		return ref, "", false, fmt.Sprintf("%s: unknown modifier %q: the only one is \"regex\"", ref, mod)
	}
	return ref, key, hasMod, ""
}

// keys returns the variables the template uses, in order of first use.
func (t *template) keys() []string {
	var keys []string
	for _, p := range t.parts {
		if p.key != "" && !slices.Contains(keys, p.key) {
			keys = append(keys, p.key)
		}
	}
	return keys
}

// render substitutes values, escaped as content of the string each variable
// stands in.
func (t *template) render(lookup func(key string) (string, bool)) (string, error) {
	if len(t.parts) == 1 && t.parts[0].key == "" {
		return t.parts[0].lit, nil
	}
	var b strings.Builder
	b.Grow(t.size + 32)
	for _, p := range t.parts {
		if p.key == "" {
			b.WriteString(p.lit)
			continue
		}
		v, ok := lookup(p.key)
		if !ok {
			return "", fmt.Errorf("variable $%s is not set: add %q to the trigger metadata", p.key, p.key)
		}
		if !utf8.ValidString(v) {
			return "", fmt.Errorf("variable $%s: value is not valid UTF-8", p.key)
		}
		if p.regex {
			v = regexp.QuoteMeta(v)
		}
		escapeString(&b, v, p.quote)
	}
	return b.String(), nil
}

// escapeString writes v as the content of a PromQL string quoted with quote.
// PromQL strings take Go's escapes; the quote itself and the backslash are
// escaped, control characters are written as \x escapes.
func escapeString(b *strings.Builder, v string, quote byte) {
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' || c == quote:
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c < 0x20 || c == 0x7f:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(c)>>4, 16))
			b.WriteString(strconv.FormatUint(uint64(c)&0xf, 16))
		default:
			b.WriteByte(c)
		}
	}
}

// checkPromQL parses the template with variables replaced by placeholders and
// checks that it yields an instant vector or a scalar.
func checkPromQL(check string) *templateError {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(check)
	if err != nil {
		if perrs, ok := err.(parser.ParseErrors); ok && len(perrs) > 0 {
			return &templateError{offset: int(perrs[0].PositionRange.Start), msg: "invalid PromQL: " + perrs[0].Err.Error()}
		}
		return &templateError{msg: "invalid PromQL: " + err.Error()}
	}
	switch t := e.Type(); t {
	case parser.ValueTypeVector, parser.ValueTypeScalar:
		return nil
	default:
		return &templateError{msg: fmt.Sprintf("query returns a %s: it must return an instant vector or a scalar", t)}
	}
}
