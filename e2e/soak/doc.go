// Command soak runs the activator under faults for a while and fails if
// any request failed that its client did not cause:
//
//	go tool task soak SOAK_DURATION=2m
//	go run ./e2e/soak --nemesis bin/nemesis --duration 5m [--no-faults]
//
// Everything runs on 127.0.0.1, and every process it starts is stopped by
// its pid, also on failure or a signal. It starts:
//
//   - real HTTP backends with short keep-alives (1 s and 2 s; uvicorn's is
//     5 s) that answer after 5-50 ms, some with streamed answers, and count
//     the requests they serve at once;
//   - the smallest Kubernetes API the activator's informers need (list and
//     watch of one namespace's Services and EndpointSlices, in JSON), so
//     that endpoint readiness flaps through the same code as in a cluster;
//   - `nemesis activator` with two routes: "capped", a service route with
//     endpointConcurrency (4) in front of the flapping backends, and
//     "idle", a static route whose backends get requests only after gaps of
//     about their idle timeout.
//
// Then, for --duration, at the same time:
//
//   - an open-loop load at --rate requests per second on the capped route:
//     GETs, POSTs with bodies, streamed answers, pipelined requests, clients
//     that dribble their body or read slowly, and clients that go away
//     before or during the answer (on purpose: not failures);
//   - POSTs and GETs on the idle route after gaps of 0.8-1.6 times the
//     backends' idle timeout, when the activator's pooled connection is
//     closed or closing;
//   - readiness flaps: every --flap-every one capped backend turns not
//     ready or terminating for 0.2-0.8 s (the backend keeps serving);
//   - configuration reloads: every --reload-every the file is rewritten
//     (atomically, as a ConfigMap is), changing in turn the capped route's
//     match (the route keeps its state), the idle route's policy and the
//     capped route's queue timeout (each route is replaced).
//
// It reports requests sent, answered, gone (client-caused) and failed, by
// kind, code and transport error, with latency percentiles from each
// request's due time; the flaps and reloads done and applied; the most
// requests each backend served at once; what the activator still counts
// in flight or queued after the load; and the activator's RSS at the
// start, its maximum and at the end. It exits non-zero on any failed
// request a client did not cause, a cap overshoot that no departing client
// explains, counts that do not drain to zero, a refused reload, or an
// activator that crashes or does not exit cleanly. --no-faults switches
// every fault off, which checks the harness itself.
package main
