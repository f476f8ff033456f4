// Command proxybench measures the activator side by side with a direct
// connection and with nginx, in one run on loopback, with wrk:
//
//	go run ./e2e/proxybench --nemesis bin/nemesis
//
// It starts a small Go backend (this program, re-executed), nginx (Debian's,
// one worker, keep-alive upstream) and `nemesis activator` with a static
// route to the backend, drives each with the same wrk load, --rounds times
// in turn, and prints each run's throughput and latency percentiles and the
// ratio of the medians. Absolute numbers drift between runs and machines;
// the ratios are what to compare.
//
// It also measures the latency each adds at half of the activator's median
// peak: an open-loop load at a fixed rate (raw TCP, latency counted from
// each request's due time, so stalls are not hidden) against the backend
// directly, through nginx and through the activator. The load generator
// shares the two cores with the rest, so this overstates what a separate
// client would see, for nginx as for the activator.
//
// Then it compares the activator's policies, as issue 12 asks that a
// score route's throughput stay within 5 % of least-request's: the same
// wrk load through a least-request route and through a score route to
// the same four backend addresses, each serving vLLM's metric families
// on /metrics (its requests in flight as running, beyond 8 as waiting,
// and KV use in proportion; see appendExposition), scraped every 50 ms
// and scored with 2 * waiting + 20 * kv + inflight. Each run has an
// activator of its own, so that the scrapes cost only the score runs;
// the runs go in pairs, the first of each pair alternating
// (--score-pairs, --score-duration), and it prints each run's req/s,
// latency, the activator's CPU time per request and the score route's
// failed scrapes, and the medians of the pairs' ratios. With --soak it also
// reports the activator's memory over a sustained run. It exits non-zero
// if any request failed.
package main
