package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// policies are the policies the benchmark knows, in report order.
func policies() []string {
	return []string{roundRobin, leastRequest, score, scoreAffinity}
}

// scoreBlock is the score policy's configuration: INFERENCE.md's
// endpoint-picker numbers (scrape every 50 ms, stale after 2 s, filter
// waiting < 5 and KV < 0.8), a queue term weighted above KV, and the
// activator's own in-flight count between scrapes.
const scoreBlock = `    score:
      scrape: {path: /metrics, interval: 50ms, timeout: 40ms, staleAfter: 2s}
      metrics: {waiting: vllm:num_requests_waiting, running: vllm:num_requests_running, kv: vllm:kv_cache_usage_perc}
      filter: waiting < 5 && kv < 0.8
      expression: 2 * waiting + 20 * kv + inflight
`

// affinityBlock hashes the first 2 KiB of the body: the model and the
// start of the first message, so requests with one system prompt share
// a key; bounded load (2× the mean, as docs/activator.md advises for
// model servers) spills hot keys.
const affinityBlock = `    affinity: {key: body-prefix, prefixBytes: 2048, loadFactor: 2}
`

// activatorConfig returns the activator's configuration: one route per
// policy, told apart by the policy header, all to the same static
// endpoints. Queues and timeouts are wide so that the activator never
// turns a request away: overload shows as latency at the pods.
func activatorConfig(pols, endpoints []string) (string, error) {
	var b strings.Builder
	b.WriteString("routes:\n")
	quoted := make([]string, len(endpoints))
	for i, e := range endpoints {
		quoted[i] = strconv.Quote(e)
	}
	for _, p := range pols {
		if !slices.Contains(policies(), p) {
			return "", fmt.Errorf("unknown policy %q (known: %s)", p, strings.Join(policies(), ", "))
		}
		name := strings.ReplaceAll(p, "+", "-")
		fmt.Fprintf(&b, "  - name: %s\n", name)
		fmt.Fprintf(&b, "    match: {headers: {%s: %q}}\n", strings.ToLower(policyHeader), p)
		fmt.Fprintf(&b, "    endpoints: [%s]\n", strings.Join(quoted, ", "))
		b.WriteString("    queue: {size: 100000, timeout: 10m}\n")
		b.WriteString("    timeouts: {request: 30m, responseHeader: 30m}\n")
		switch p {
		case roundRobin, leastRequest:
			fmt.Fprintf(&b, "    policy: %s\n", p)
		case score:
			b.WriteString("    policy: score\n" + scoreBlock)
		case scoreAffinity:
			b.WriteString("    policy: score\n" + scoreBlock + affinityBlock)
		}
	}
	return b.String(), nil
}
