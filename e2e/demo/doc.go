// Command demo shows Nemesis on a real local Kubernetes cluster: scale from
// zero, scale out on rules and scale back to zero, narrated in the terminal,
// ending with a chart of load, in-flight requests and replicas.
//
//	go tool task demo                      # as root, Linux
//	go run ./e2e/demo [--duration 75s] [--out nemesis-demo.svg]
//
// What it does:
//
//  1. Starts the e2e suite's local cluster (e2e/cluster): etcd, a
//     kube-apiserver and kube-controller-manager, KEDA's operator and metrics
//     adapter, Prometheus, and a node agent that runs pods as processes in
//     network namespaces. The first run builds the pinned control plane and
//     KEDA from source (about 15 minutes on 2 cores); later runs start in
//     under a minute.
//  2. Installs Nemesis (scaler, two activators) and a vLLM-like model
//     server (e2e/llmsim: 4 requests in its running batch, the rest
//     waiting; a 16-token completion in about 200 ms) at zero replicas,
//     with a ScaledObject on the rule set "one replica per 4 requests",
//     counted by the activators or by the pods' vllm: metrics.
//  3. Scale from zero: 40 completions arrive at once. The activators hold
//     them, the scaler's push stream wakes KEDA, a pod starts, the held
//     requests are served.
//  4. Scale out: 4, then 8, then 16 clients send requests back to back over
//     --duration; the rule asks for 1, 2, then 4 replicas and KEDA, the HPA
//     and the Deployment follow.
//  5. Scale to zero: the load stops; after the ScaledObject's cooldown the
//     app is back at zero replicas.
//
// Every second it prints one row: clients, requests in flight and queued at
// the activators, the scaler's decision, and the Deployment's replicas. At
// the end it writes the chart (SVG, drawn by internal/chart) and a summary,
// and exits non-zero if a request failed or a step did not happen.
package main
