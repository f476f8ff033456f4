// Command demo shows Nemesis' scaler at work on one machine, with no
// Kubernetes cluster: the real `nemesis scaler` binary, a real Prometheus,
// and KEDA's own external-scaler client code standing in for KEDA.
//
//	go tool task demo                  # builds bin/nemesis, installs Prometheus if missing
//	go run ./e2e/demo --nemesis bin/nemesis [--duration 75s] [--rules examples/rules]
//
// What it does:
//
//  1. Starts a fixture exporter (internal/promtest) serving the gauges of a
//     simulated vLLM model server, vllm:num_requests_waiting and
//     vllm:num_requests_running{namespace="ml", model_name="llama"}, and of an
//     HTTP API with four pods, http_requests_in_flight{namespace="shop",
//     service="api", pod=…}, with the load unevenly spread over the pods.
//  2. Starts Prometheus on loopback, scraping the exporter every second.
//  3. Starts `nemesis scaler --rules examples/rules` as a subprocess and waits
//     for its /readyz. Its log, Prometheus' log and the KEDA client's log go
//     to a temporary directory whose path is printed.
//  4. Acts as KEDA with KEDA's own code (scalers.NewExternalScaler): the
//     ScaledObject ml/llama with an external trigger on rule set vllm-queue,
//     and shop/api with two external triggers, http-inflight and
//     http-busiest-pod. Every 2 s it calls GetMetricsAndActivity for each
//     trigger, as KEDA's polling loop does, and prints one table row: the
//     load it set and, per trigger, the replica count (the metric value,
//     against a target of AverageValue 1) and whether KEDA sees it active.
//     It also opens one StreamIsActive stream (scalers.NewExternalPushScaler,
//     trigger type external-push) for ml/llama and prints the moment it
//     turns true.
//  5. Drives the load through idle, ramp-up, peak, ramp-down and idle again
//     over --duration, then prints a summary (peak replicas, how many
//     Prometheus requests the scaler made for how many KEDA calls) and
//     stops everything: the scaler with SIGTERM (it must exit 0),
//     Prometheus and the exporter. Ctrl-C stops everything too.
//
// The numbers the scaler returns lag the load it was given by a scrape
// interval or two (the exporter is scraped every second, and the scaler
// reuses an evaluation for a second). The demo exits non-zero if anything
// fails: a process that does not start, an RPC error, a scaler that never
// turns active, or a scaler that does not exit cleanly.
package main
