package yamlpos

import (
	"strconv"
	"strings"
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
