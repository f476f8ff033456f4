// Command sampleapp stands in for an ML model server such as vLLM: the e2e
// suite runs it as a pod process and the demo scales it.
//
//	go run ./e2e/sampleapp --latency 200ms --concurrency 4
//
// Each request waits for one of --concurrency slots in a FIFO queue (at most
// --max-waiting wait; more get 503), then takes --latency ± --jitter. A
// request whose client goes away leaves the queue at once. Every path
// answers {"pod", "waited_ms", "served_ms"}; POST /v1/completions with
// "stream": true in its JSON body, or with ?stream=1, answers with
// server-sent events instead, one flushed "data:" chunk per token spread
// over the latency, then "data: [DONE]".
//
// /healthz always answers 200. /ready answers 503 until --startup-delay has
// passed (the model "loads") and again from SIGTERM on. /metrics exports
// vLLM's vllm:num_requests_waiting and vllm:num_requests_running gauges with
// label model_name (--model), sampleapp_requests_total{code} and
// sampleapp_request_duration_seconds (the whole request, waiting included),
// plus the Go and process collectors. Code 499 counts requests whose client
// went away, as nginx does.
//
// Like uvicorn, which serves vLLM, it closes a keep-alive connection that
// has been idle for --idle-timeout (5s, uvicorn's default timeout_keep_alive),
// so that a proxy reusing pooled connections meets the same races as in
// production.
//
// On SIGTERM or SIGINT the server keeps accepting until no request is
// running or waiting, so that requests routed here before the endpoint is
// removed still get served; then it stops accepting and lets in-flight
// connections finish. All of this is bounded by --shutdown-grace: it exits 0
// after a graceful shutdown, 1 if the grace ran out, and 2 on bad flags.
package main
