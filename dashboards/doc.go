// Package dashboards produces Nemesis' Grafana dashboards,
// nemesis-scaler.json and nemesis-activator.json, from Go code.
//
// The dashboards are built with Grafana's own typed builders, the Grafana
// Foundation SDK (github.com/grafana/grafana-foundation-sdk/go), so that
// a misspelt option or a value of the wrong kind is a compile error, not
// a setting Grafana silently ignores. panels.go gives the panels of both
// dashboards one look; scaler.go and activator.go say what each panel
// shows and where it goes.
//
// The dashboards are written here rather than exported from a Grafana
// instance so that a test can hold every query to what the binaries
// really export: each expression must parse as PromQL, and each metric,
// label and legend it names must exist in the registry that `nemesis
// scaler` or `nemesis activator` builds. A renamed metric then fails the
// build instead of leaving a blank panel.
//
// Regenerate the JSON files after changing a dashboard:
//
//	go generate ./dashboards
//
// or `go tool task dashboards`, which also runs the checks.
package dashboards

//go:generate go run ./gen
