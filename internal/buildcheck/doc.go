// Package buildcheck holds the tests that keep the repository's two ways
// of building Nemesis, the Taskfile's build task and the Dockerfile, one
// and the same: CI runs `task build`, and the image must be what that
// proves. It also keeps the binary's import graph free of Prometheus'
// promqltest, rules and tsdb packages, which would link the
// service-discovery SDKs. It has no code of its own.
package buildcheck
