// Package rules holds Nemesis rule sets: the file format, the load-time
// compilation of their expr expressions and query templates, and their
// evaluation over query results.
//
// The package is pure: it does no I/O and imports no other Nemesis package.
// The scaler reads rule files, renders a rule set's query templates for one
// ScaledObject with [RuleSet.Render], sends the rendered PromQL to Prometheus
// itself, and hands the results back to [RuleSet.Evaluate].
//
// Everything that can be checked without data is checked when a file is
// parsed: YAML structure, unknown fields, PromQL syntax of every template,
// where template variables may appear, expression syntax, variable names and
// result types. Every problem is reported at once, each as an [*Error] that
// names the file, line and column, the rule set and the field.
package rules
