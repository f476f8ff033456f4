package yamlpos

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrorLine splits yaml.v3's "yaml: line N: message" into the line and the
// message. An error without a usable line is at line 1.
func ErrorLine(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return 1, msg
	}
	num, text, ok := strings.Cut(rest, ": ")
	line, convErr := strconv.Atoi(num)
	if !ok || convErr != nil || line < 1 {
		return 1, msg
	}
	return line, text
}

// ValuePos turns a byte offset into value, the string value of the scalar
// node n, into the file position (line and column, 1-based) of that byte.
// lines are the file's lines, for the indentation of block scalars.
func ValuePos(n *yaml.Node, lines []string, value string, offset int) (int, int) {
	offset = min(max(offset, 0), len(value))
	before := value[:offset]
	nl := strings.Count(before, "\n")
	col := offset - (strings.LastIndexByte(before, '\n') + 1)
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		line := n.Line + 1 + nl
		indent := 0
		if line-1 < len(lines) {
			l := lines[line-1]
			indent = len(l) - len(strings.TrimLeft(l, " "))
		}
		return line, indent + col + 1
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if nl == 0 {
			return n.Line, n.Column + 1 + col
		}
	default:
		if nl == 0 {
			return n.Line, n.Column + col
		}
	}
	return n.Line + nl, col + 1
}
