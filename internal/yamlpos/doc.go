// Package yamlpos reads the position out of a gopkg.in/yaml.v3 syntax
// error, so that every file parser in Nemesis (rules, rules tests,
// activator configuration, ScaledObject manifests) reports it as
// file:line:column the same way, and places an error inside a scalar's
// value (an expression) at its line and column in the file.
package yamlpos
