// Command backtestbench measures `nemesis rules backtest` against a local
// Prometheus holding a week of history, the performance target of issue 11
// (7 days at 15 s steps, 40,320 steps, with 3 queries: under 10 s and under
// 200 MB, of which Prometheus' own time is reported apart):
//
//	go run ./e2e/backtestbench --nemesis bin/nemesis
//
// It writes the week as OpenMetrics (three series at 15 s: a gauge, a
// counter read through rate() and a queue read through max_over_time()),
// backfills it into a temporary TSDB with Debian's `promtool tsdb
// create-blocks-from openmetrics`, starts `prometheus` on that TSDB on
// loopback with a retention longer than the week, and runs the built
// binary's backtest of a rule set of those three queries over the week,
// --rounds times (the first round reads the blocks cold from the page
// cache's point of view, later ones warm). For each round it reports the
// wall time, the time the binary spent waiting on query_range (its own
// report on stderr), the rest, and the binary's peak RSS (wait4's rusage
// Maxrss). It stops Prometheus by its pid at the end, removes the
// directory, and exits non-zero if a round misses a target or the output
// does not hold one JSON line per step.
package main
