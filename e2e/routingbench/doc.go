// Command routingbench compares the activator's load-balancing policies
// for LLM inference on simulated vLLM pods, on loopback, in one run:
//
//	go tool task bench:routing
//	go run ./e2e/routingbench --nemesis bin/nemesis [--quick] [--doc]
//
// # Routing benchmark
//
// The benchmark starts four llmsim pods (e2e/llmsim, a vLLM stand-in with
// continuous batching, a KV cache with prefix caching, and vLLM's
// metrics), the last of them twice as slow (--slowdown 2, an older GPU),
// and one `nemesis activator` with one static route per policy, told
// apart by an X-Bench-Policy header: round-robin, least-request, score
// (filter waiting < 5 && kv < 0.8, expression 2 × waiting + 20 × kv +
// inflight over metrics scraped every 50 ms), and score with body-prefix
// affinity (the first 2 KiB of the body, bounded load 2). The client is
// this program: streaming chat completions with include_usage, so that it
// times the first token frame itself and reads cached_tokens from the
// usage frame.
//
// Two workloads, the same requests for every policy and load level:
//
//   - mixed: a prompt of 100 to 1,500 words (uniform; llmsim counts a
//     word as a token), 20 to 300 output tokens (log-uniform: many short
//     answers, a long tail; mean about 100); no two prompts share a
//     prefix.
//   - shared-prefix: one of 16 system prompts of 2,000 words (uniformly
//     chosen) and a question of 20 to 60 words, 20 to 80 output tokens.
//     The 16 prefixes need 2,000 KV blocks of 16 tokens; a pod has 704
//     (--kv-blocks), so the prefixes need 71 % of the four pods' KV cache,
//     as in llm-d's shared-prefix benchmark (73 %): a pod that sees every
//     prefix (round-robin) keeps evicting them, one that sees a quarter
//     of them can keep them.
//
// Each workload first measures capacity: a closed loop through
// least-request with twice as many clients as the pods have batch slots,
// for 20 s, the first quarter not counted. Every pod then runs a full
// batch with a queue behind it, so capacity is the cluster's, the sum of
// the pods' (3.5 fast pods' worth). Round-robin gives the slow pod a
// quarter of the requests for a seventh of the capacity, so from about
// 57 % load on it overloads that pod, as a plain Kubernetes Service
// would. (--capacity-policy round-robin makes capacity what round-robin
// itself sustains instead; the cluster is then at most 4/7 busy, and the
// policies differ much less.) Then, for each load (50 %, 80 %, 95 % of that
// capacity) and each policy, it sends the same seeded sequence of Poisson
// arrivals (24 warm-up requests, then 240 measured ones), open loop:
// latencies count from each request's due time, so a slow answer never
// delays the next request. Every run starts from freshly started pods,
// with empty caches and queues.
//
// It prints, per workload, load and policy: TTFT p50/p90/p99 and
// end-to-end p99, output tokens per second (token frames received while
// the measured requests arrive, so the drain after the last arrival does
// not count), the prefix-cache hit rate (the sum of
// cached_tokens over the sum of prompt_tokens), each pod's share of the
// requests (from x-inference-pod), failures, and the ratios to
// round-robin; then the aims of issue 12, PASS or MISS (they do not fail
// the run), judged at 80 % load:
//
//   - mixed: score's TTFT p90 ≤ 0.5× round-robin's and ≤ 0.8×
//     least-request's, with output tokens per second no more than 2 %
//     below either and no more failures;
//   - shared-prefix: score+affinity's cache hit rate ≥ 2× round-robin's
//     and its TTFT p90 ≤ 0.3× round-robin's, with no more failures.
//
// A chart of the TTFT distributions (one panel per workload and load, one
// CDF per policy, log time axis) goes to --svg, by default
// $TMPDIR/routingbench.svg; --doc writes docs/routing.svg instead.
//
// Times are simulated: llmsim runs --time-scale 0.25, four simulated
// seconds per wall second, and the benchmark reports wall times divided
// by the scale, so the numbers read as on the GPU the step model was
// fitted to (an A100). The client, the activator and the pods share the
// machine's cores, and their own delays are scaled up too: 1 ms of proxy
// time shows as 4 ms. Compare policies within one run; absolute numbers
// move between machines.
//
// A full run (24 cells of 264 requests, two capacity runs) takes about
// 4.5 minutes on two cores, of which it keeps about one busy; --quick
// (one load, 40 requests per cell, 6 s capacity runs) is a smoke test of
// about 40 seconds. Useful flags:
// --policies and --workloads (comma-separated subsets), --loads,
// --requests, --warmup, --seed, --time-scale, --kv-blocks,
// --max-num-seqs, --capacity-time, --keep (keep the pods' and the
// activator's logs).
package main
