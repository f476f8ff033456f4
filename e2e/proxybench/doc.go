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
// client would see, for nginx as for the activator. With --soak it also
// reports the activator's memory over a sustained run. It exits non-zero
// if any request failed.
package main
