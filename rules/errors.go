package rules

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Error is one problem found in a rule file. Its message has the form
// "file:line:column: rule set "x": field: message"; parts that do not apply
// are left out.
type Error struct {
	File    string
	Line    int // 1-based
	Column  int // 1-based
	RuleSet string
	Field   string
	Msg     string
}

// Error implements error.
func (e *Error) Error() string {
	s := fmt.Sprintf("%s:%d:%d: ", e.File, e.Line, e.Column)
	if e.RuleSet != "" {
		s += fmt.Sprintf("rule set %q: ", e.RuleSet)
	}
	if e.Field != "" {
		s += e.Field + ": "
	}
	return s + e.Msg
}

// Errors returns the individual problems held by err, which may be a single
// *Error or an errors.Join of them, sorted by file and position.
func Errors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if e, ok := err.(*Error); ok {
			out = append(out, e)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var e *Error
		if errors.As(err, &e) {
			out = append(out, e)
		}
	}
	walk(err)
	sortErrors(out)
	return out
}

func sortErrors(errs []*Error) {
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
}

// joinErrors sorts errs by position and joins them, so that the text of the
// result has one problem per line in file order.
func joinErrors(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	sortErrors(errs)
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	return errors.Join(list...)
}
