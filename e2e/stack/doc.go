// Package stack installs Nemesis and the sample model server on a cluster
// from the e2e suite's manifests, and waits for them: the objects the e2e
// scenarios and the demo run against.
//
// The manifests are templates embedded from this directory:
// nemesis.yaml.tmpl (scaler, activator, RBAC, rule and route ConfigMaps in
// namespace nemesis) and app.yaml.tmpl (the sample app, its Service and its
// ScaledObject, at zero replicas, in a namespace of its own).
package stack
