// Package activator is Nemesis' HTTP reverse proxy and load balancer. It
// routes requests to the endpoints of a Kubernetes Service (or a static
// list), balances them by a per-route policy, counts in-flight and queued
// requests per route and service, holds requests in a bounded queue while a
// service has no ready endpoint (scale from zero), and releases them the
// moment an endpoint turns ready.
//
// # Configuration
//
// A configuration file holds a list of routes:
//
//	routes:
//	  - name: chat                       # unique; the route label of every metric
//	    match:
//	      hosts: [chat.example.com, "*.chat.example.com"]
//	      pathPrefix: /v1/
//	      headers: {x-model: llama}
//	    service: {namespace: ml, name: chat-llm, port: 8000}   # or:
//	    endpoints: ["127.0.0.1:9001", "127.0.0.1:9002"]
//	    policy: least-request            # round-robin | least-request | random | metric
//	    metric:                          # only for policy: metric
//	      query: sum by (pod) (vllm:num_requests_waiting{namespace="ml"})
//	      refresh: 1s
//	    queue: {size: 1000, timeout: 2m}
//	    endpointConcurrency: 0           # most requests in flight per endpoint; 0: no cap
//	    timeouts: {request: 10m, responseHeader: 5m}
//
// [ParseConfig] checks everything at once and reports every problem with its
// file:line:column; unknown fields are errors. Durations are written as in
// Prometheus (500ms, 30s, 2m, 1h30m).
//
// Defaults, for fields left out:
//
//   - policy: least-request (power of two choices on in-flight counts,
//     Knative's choice for unlimited concurrency).
//   - metric.refresh: 1s ([DefaultMetricRefresh]). The data is stale, and
//     the route falls back to least-request, when the last successful
//     refresh is older than three refresh intervals.
//   - queue.size: 1000 ([DefaultQueueSize]); 0 disables holding (503 at
//     once when no endpoint is ready). Upper limit 1,000,000.
//   - queue.timeout: 2m ([DefaultQueueTimeout]), long enough for a model
//     server to start; a held request that waits longer gets 504.
//   - endpointConcurrency: 0, no cap. With N, an endpoint has at most N
//     requests in flight from this activator (Knative's
//     containerConcurrency); requests beyond wait in the queue, and each
//     freed slot goes to the oldest held request.
//   - timeouts.request: 10m ([DefaultRequestTimeout]): from the moment an
//     endpoint is picked to the end of the response body; 0 means none.
//   - timeouts.responseHeader: 5m ([DefaultResponseHeaderTimeout]): from
//     the end of the request to the response head; 0 means none.
//
// # Matching
//
// A request goes to the first route that matches, trying routes in this
// order: routes naming the request's host exactly, then routes with a
// wildcard host "*.example.com" (which matches one or more labels in front
// of example.com, longest wildcard first), then routes without hosts. Within
// each group the longest pathPrefix wins, then the route with more headers,
// then the route written first. Hosts are matched case-insensitively and
// without the port. A pathPrefix matches whole path segments: /v1 matches
// /v1 and /v1/chat but not /v10; a prefix ending in '/' matches every path
// that starts with it. Headers match when the request has the header with
// exactly the given value. A request that matches no route gets 404 with a
// one-line plain-text reason. Two routes with the same host, pathPrefix and
// headers are a configuration error: the second could never match.
//
// # Endpoints
//
// A route's endpoints come through an [EndpointSource]: static routes use
// their list (always ready); service routes subscribe to the
// [ServiceEndpoints] given in [Options]. Ready endpoints get new requests;
// terminating ones finish what they have and get nothing new. An endpoint
// that leaves both sets is kept, with its in-flight count and connections,
// until its requests have finished, so a pod whose readiness flaps comes
// back counted as busy as it is; a reload that rebuilds a route hands its
// endpoints to the new route likewise. A request whose client took long
// to send its body goes to an endpoint still ready, not to one that
// left the ready set meanwhile (terminating, or not ready), and waits for a free slot under the route
// now in force if a reload replaced its own. Without a ServiceEndpoints, a
// service route is a configuration error.
//
// The activator keeps at most [Options].MaxConnsPerEndpoint connections to
// one endpoint (default 1024, idle and in use); requests beyond it wait for a
// connection, which a finishing request hands over. So a queue of thousands
// of held requests released onto a fresh pod does not open thousands of
// connections at once.
//
// # Metric policy
//
// policy: metric runs the route's PromQL query every refresh interval in the
// background and sends each request to the ready endpoint with the lowest
// value, in-flight count breaking ties. A series belongs to an endpoint when
// its instance label is the endpoint's address (ip:port) or ip, or its
// pod_ip or ip label is the endpoint's ip, or its pod label names the pod
// behind the endpoint as told by the source's optional [PodNamer]. Where
// several series map to one endpoint, the highest value counts. An endpoint
// without a series counts as 0 (a pod not scraped yet is most likely idle).
//
// # Queueing
//
// With no ready endpoint, requests wait in a bounded FIFO queue per route.
// A full queue answers 503 with Retry-After ([RetryAfterSeconds]); a request
// that waits longer than queue.timeout gets 504; a client that goes away is
// removed from the queue. An endpoint update that brings a ready endpoint
// releases the whole queue at once, each request picking through the policy.
//
// A held request served by [Server] parks: no goroutine waits for it. Its
// connection's state stays in the queue, a timer covers the queue timeout,
// and one epoll set per server (Linux) notices clients that close or reset;
// the first of release, timeout and client gone resumes the connection on a
// new goroutine. With tracing on, with a request body not read yet, or on
// other systems, a held request waits on its own goroutine instead.
//
// # Serving
//
// [Server] serves HTTP/1.1 with its own connection loop and hands h2c
// connections (HTTP/2 prior knowledge) to net/http. A connection reuses one
// request, header map and response, interns repeated header names and
// values, borrows its write buffer only while it answers, gives its read
// buffer back while a request is held, and watches for the client going
// away only once a request has run for a while, so that a keep-alive
// request costs no allocation in the server.
//
// # Proxying
//
// The hot path avoids net/http's Transport and httputil.ReverseProxy: each
// endpoint has its own pool of HTTP/1.1 connections that the handler
// goroutine writes the request to and reads the response from directly,
// without the Transport's per-connection goroutines and channel hand-offs.
// Request and response heads are written and parsed straight from the
// connection buffers. Supported: keep-alive, h2c (prior knowledge) towards
// the activator, WebSocket and other upgrades (101, then a bidirectional
// copy), streamed request and response bodies (a response without a length
// is flushed whenever no more bytes are waiting, so each SSE event reaches
// the client at once), trailers, X-Forwarded-For (appended), X-Forwarded-Host
// and X-Forwarded-Proto (kept if the client sent them, else set).
//
// A connection that fails before any byte of a response is read is retried,
// with a short backoff ([RetryBackoff] doubling, up to [MaxAttempts]
// attempts) on another ready endpoint if there is one: connect failures
// (refused, unreachable: a fresh pod whose server is not listening yet)
// always, and failures of a reused idle connection when the request body can
// be sent again (no body, or a body of at most [MaxRetryBodyBytes] that is
// buffered for the purpose) and, if it went out whole, the request is
// idempotent. An idle connection the backend closed is not reused: each
// is checked first. A timeout is never retried.
//
// # Tracing
//
// With a tracer provider in [Options], every request gets an otelhttp
// server span and a client span around the upstream exchange, and the W3C
// traceparent of the client span goes upstream. Without one, nothing is
// instrumented and the client's own traceparent is passed through unchanged.
//
// # Demand
//
// Every transition of a request (queued, dequeued, started, finished) is
// reported to the [DemandRecorder] in [Options] as a delta, so that the
// scaler learns of demand without waiting for a scrape.
//
// # Status
//
// [Activator.Status] is a snapshot for people: the configuration in force
// (its version and file, and why the newest file was refused, if it was),
// and per route its settings, held requests and their oldest wait, and its
// endpoints with their state (ready, terminating, draining), requests in
// flight and, on score routes, score and scrape age.
// [Activator.RegisterAPI] serves it as JSON at GET /api/v1/status. It
// costs the request path nothing: it reads what the requests count anyway,
// under each route's lock for the time it takes to copy its endpoint set.
package activator
