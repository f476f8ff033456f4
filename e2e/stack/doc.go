// Package stack installs Nemesis and the sample model server on a cluster,
// and waits for them: the objects the e2e scenarios and the demo run
// against.
//
// Nemesis is installed from the Helm chart, charts/nemesis, rendered with
// the Helm Go library by charts/tools' render command (a module of its own,
// so that Helm's Kubernetes libraries stay out of this one) with
// ci/e2e-values.yaml and the caller's settings on top, then applied with
// server-side apply. The sample app, its Service and its ScaledObject come
// from app.yaml.tmpl, at zero replicas, in a namespace of their own.
package stack
