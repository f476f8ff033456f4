// Command proxybench measures the activator side by side with a direct
// connection and with nginx, in one run on loopback, with wrk:
//
//	go run ./e2e/proxybench --nemesis bin/nemesis
//
// It starts a small Go backend (this program, re-executed), nginx (Debian's,
// one worker, keep-alive upstream) and `nemesis activator` with a static
// route to the backend, drives each with the same wrk load, and prints
// throughput and latency percentiles with their ratios to nginx. Absolute
// numbers drift between runs and machines; the ratios are what to compare.
//
// It also measures the latency the activator adds at half of its peak
// throughput (an open-loop load at a fixed rate, against the backend directly
// and through the activator; the load generator shares the two cores, so
// this overstates what a separate client would see), and with --soak the
// activator's memory over a sustained run.
package main
