package valuesdoc

import (
	"errors"
	"fmt"
	"strings"
)

// The README's values table sits between these markers.
const (
	BeginMarker = "<!-- values-table:begin (generated from values.yaml: cd charts/tools && go test ./internal/valuesdoc -update) -->"
	EndMarker   = "<!-- values-table:end -->"
)

const tableHeader = "| Key | Type | Default | Description |\n|-----|------|---------|-------------|\n"

// Table renders rows as a Markdown table, one row per key in file order.
func Table(rows []Row) string {
	var b strings.Builder
	b.WriteString(tableHeader)
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", cell(r.Key), cell(r.Type), code(r.Default), cell(r.Description))
	}
	return b.String()
}

// code shows a default as code, unless it was given in prose with
// "# @default --" (which then carries its own backquotes, if any).
func code(def string) string {
	if strings.HasPrefix(def, "`") || !looksLikeValue(def) {
		return cell(def)
	}
	return "`" + cell(def) + "`"
}

// looksLikeValue tells a JSON default from a "# @default --" text.
func looksLikeValue(s string) bool {
	if s == "" {
		return false
	}
	switch s[0] {
	case '"', '{', '[', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return true
	}
	return s == "true" || s == "false" || s == "null"
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// Splice returns readme with the text between the markers replaced by
// table.
func Splice(readme, table string) (string, error) {
	begin, end, err := markers(readme)
	if err != nil {
		return "", err
	}
	return readme[:begin] + "\n" + table + readme[end:], nil
}

// Extract returns the text between the markers, without the blank line
// after the begin marker.
func Extract(readme string) (string, error) {
	begin, end, err := markers(readme)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(readme[begin:end], "\n"), nil
}

// markers returns the offsets just after the begin marker and at the end
// marker.
func markers(readme string) (begin, end int, err error) {
	b := strings.Index(readme, BeginMarker)
	e := strings.Index(readme, EndMarker)
	if b < 0 || e < 0 || e < b {
		return 0, 0, fmt.Errorf("README: no values table between %q and %q", BeginMarker, EndMarker)
	}
	return b + len(BeginMarker), e, nil
}

// Compare checks that the README's table lists exactly the keys of rows,
// with the same defaults, and reports every difference; when keys and
// defaults agree but the text still differs (types, descriptions, order),
// it says so.
func Compare(readmeTable string, rows []Row) error {
	have := map[string]string{}
	var haveOrder []string
	for i, line := range strings.Split(strings.TrimSpace(readmeTable), "\n") {
		if i < 2 { // header and separator
			continue
		}
		cells := splitRow(line)
		if len(cells) != 4 {
			return fmt.Errorf("README: values table row %d is not | key | type | default | description |: %q", i+1, line)
		}
		have[cells[0]] = cells[2]
		haveOrder = append(haveOrder, cells[0])
	}
	var errs []error
	want := map[string]bool{}
	for _, r := range rows {
		want[r.Key] = true
		def, ok := have[r.Key]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("README: values table lacks %s (values.yaml:%d)", r.Key, r.Line))
		case def != code(r.Default):
			errs = append(errs, fmt.Errorf("README: default of %s is %s, values.yaml says %s", r.Key, def, code(r.Default)))
		}
	}
	for _, k := range haveOrder {
		if !want[k] {
			errs = append(errs, fmt.Errorf("README: values table lists %s, which values.yaml does not document", k))
		}
	}
	if len(errs) == 0 && strings.TrimSpace(readmeTable) != strings.TrimSpace(Table(rows)) {
		errs = append(errs, errors.New("README: values table differs from values.yaml in types, descriptions or order"))
	}
	return errors.Join(errs...)
}

// splitRow splits "| a | b \| c | d |" into its trimmed cells, keeping
// escaped pipes.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") {
		return nil
	}
	line = line[1 : len(line)-1]
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteString(`\|`)
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}
