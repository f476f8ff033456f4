// Package chartkit renders and checks the Nemesis Helm chart with Helm's Go
// library, as `helm template` and `helm lint` would, and validates what it
// renders: every object is well formed, built-in kinds decode strictly into
// their Kubernetes types, the pods meet the restricted Pod Security
// Standard, and the components are wired to each other (Services select
// pods, the scaler's --activator-service names a rendered Service port, the
// activator's grace period covers its shutdown). [ConfigFiles] extracts the
// rule files and the activator configuration the pods will read, so that
// the binaries' own parsers can check them.
//
// It lives in its own module (charts/tools) because Helm's Kubernetes
// libraries are newer than the ones the main module pins.
package chartkit
