// Package metrics is Nemesis' client for the Prometheus HTTP query API.
//
// It sends instant PromQL queries and reduces their answers to the plain
// numbers and labels that rules work with; it knows nothing about rules or
// ScaledObjects itself.
//
// Many ScaledObjects render the very same query, and KEDA polls each of them
// on its own schedule. To keep that fan-out from reaching Prometheus, a
// [Client] answers identical query strings from one shared result for a
// short window ([ClientConfig.CacheTTL]), and concurrent identical misses
// wait for a single in-flight HTTP request instead of sending their own.
// Failures are shared and cached the same way, so a struggling Prometheus
// sees one request per query per window rather than one per ScaledObject.
//
// Credentials for Prometheus come only from [ClientConfig], which the
// operator fills from files and flags; nothing a ScaledObject says can
// change where queries go or how they authenticate.
package metrics
