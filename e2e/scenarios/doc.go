// Package scenarios is the end-to-end suite: behind the e2e build tag, its
// tests start a local cluster (e2e/cluster), install Nemesis and the sample
// app (e2e/stack) and drive real KEDA, the real HPA controller and a real
// Prometheus through nine scenarios, each in a namespace of its own:
//
//  1. scale from zero: 200 concurrent requests while the app has 0 replicas
//  2. scale out on rules as load rises
//  3. scale in and to zero, with no failed request while pods terminate
//  4. rules in a ConfigMap: edits change decisions, invalid edits are refused
//  5. Prometheus outage: replicas held, decisions resume
//  6. activator restart under load: no failed request
//  7. the scaler's built-ins current and ready against the real API server
//  8. POSTs after idle gaps longer than the sample app's keep-alive timeout
//     (5 s, uvicorn's), which must all get 200
//  9. a score route to llmsim pods (the vLLM stand-in): scraped from the
//     EndpointSlices' addresses; a pod whose /metrics hangs falls back to
//     least-request; a new pod is scraped and gets traffic
//
// Run it with `go tool task e2e` (root, Linux). Each scenario reports its
// numbers with t.Log and in the summary printed at the end.
package scenarios
