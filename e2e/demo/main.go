package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/k8s-nemesis/nemesis/internal/promtest"
)

const (
	pollInterval   = 2 * time.Second // KEDA's default pollingInterval is 30s; the demo is in a hurry
	loadTick       = 250 * time.Millisecond
	scrapeInterval = time.Second
	minDuration    = 20 * time.Second
)

// errInterrupted is returned when Ctrl-C or SIGTERM ends the demo early.
var errInterrupted = errors.New("interrupted")

type options struct {
	nemesis  string
	rules    string
	duration time.Duration
}

func main() {
	var opts options
	flag.StringVar(&opts.nemesis, "nemesis", "bin/nemesis", "the nemesis binary (`go tool task build` makes bin/nemesis)")
	flag.StringVar(&opts.rules, "rules", "examples/rules", "rule file or directory for the scaler; it must hold vllm-queue, http-inflight and http-busiest-pod")
	flag.DurationVar(&opts.duration, "duration", 75*time.Second, "length of the simulated load curve (at least 20s)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./e2e/demo [--nemesis bin/nemesis] [--duration 75s] [--rules examples/rules]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "demo: unexpected arguments: %s\n", strings.Join(flag.Args(), " "))
		os.Exit(2)
	}
	if opts.duration < minDuration {
		fmt.Fprintf(os.Stderr, "demo: --duration %v is too short: the load curve needs at least %v\n", opts.duration, minDuration)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, a second one kills the demo at once; its
		// children die with it (see sysProcAttr).
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, opts, &printer{w: os.Stdout})
	stop()
	switch {
	case errors.Is(err, errInterrupted):
		if err != errInterrupted { // a cleanup failed too
			fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		}
		fmt.Fprintln(os.Stderr, "demo: interrupted; everything it started is stopped")
		os.Exit(130)
	case err != nil:
		fmt.Fprintf(os.Stderr, "demo: FAILED: %v\n", err)
		os.Exit(1)
	}
}

// printer serializes output from the poll loop and the push stream.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

// cleanups runs its functions last in, first out, and joins their errors.
type cleanups []func() error

func (c *cleanups) add(f func() error) { *c = append(*c, f) }

func (c *cleanups) run() error {
	var errs []error
	for i := len(*c) - 1; i >= 0; i-- {
		errs = append(errs, (*c)[i]())
	}
	*c = nil
	return errors.Join(errs...)
}

func run(ctx context.Context, opts options, out *printer) (err error) {
	if _, err := os.Stat(opts.nemesis); err != nil {
		return fmt.Errorf("the nemesis binary %s: %w (build it with `go tool task build`)", opts.nemesis, err)
	}
	if _, err := os.Stat(opts.rules); err != nil {
		return fmt.Errorf("the rules %s: %w (run the demo from the repository's root)", opts.rules, err)
	}
	dir, err := os.MkdirTemp("", "nemesis-demo-")
	if err != nil {
		return err
	}

	// Everything started below is stopped on every way out: success,
	// failure and Ctrl-C.
	var stack cleanups
	defer func() {
		if cerr := stack.run(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	check := func(err error) error {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}

	out.printf("Nemesis demo: KEDA's client code → nemesis scaler → Prometheus, with simulated load\n")
	out.printf("  load (%v): %s\n", opts.duration, describeCurve(opts.duration))
	out.printf("  logs: %s (scaler.log, prometheus.log, keda.log)\n\n", dir)

	kedaLog, err := os.Create(filepath.Join(dir, "keda.log"))
	if err != nil {
		return err
	}
	stack.add(kedaLog.Close)
	ctrllog.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(kedaLog, nil)))

	// 1. The fixture exporter: the "model server" and the "API".
	exp, err := promtest.NewExporter()
	if err != nil {
		return err
	}
	stack.add(exp.Close)
	drv := newDriver(exp, opts.duration)
	out.printf("[1/4] exporter    http://%s/metrics (vLLM gauges of %s/%s; %s/%s, %d pods)\n",
		exp.Addr(), modelNamespace, modelName, apiNamespace, apiService, len(podShare))

	// 2. Prometheus, scraping the exporter.
	promLog, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		return err
	}
	stack.add(promLog.Close)
	t0 := time.Now()
	prom, err := promtest.Start(ctx, promtest.Options{
		ScrapeTargets:  []string{exp.Addr()},
		ScrapeInterval: scrapeInterval,
		Stdout:         promLog,
		Stderr:         promLog,
	})
	if err != nil {
		return check(fmt.Errorf("starting Prometheus (install it with `go tool task deps:prometheus`): %w", err))
	}
	stack.add(prom.Stop)
	out.printf("[2/4] prometheus  %s, scraping every %v (ready in %.1fs)\n", prom.URL(), scrapeInterval, time.Since(t0).Seconds())

	// 3. The scaler.
	t0 = time.Now()
	sc, err := startScaler(opts.nemesis, []string{opts.rules}, prom.URL(), filepath.Join(dir, "scaler.log"))
	if err != nil {
		return err
	}
	stack.add(sc.stop)
	if err := sc.waitReady(ctx); err != nil {
		return check(err)
	}
	out.printf("[3/4] scaler      pid %d, gRPC %s, HTTP %s (ready in %.1fs)\n",
		sc.pid(), sc.grpcAddr, sc.httpAddr, time.Since(t0).Seconds())
	out.printf("                  %s scaler --rules %s --prometheus-url %s …\n", opts.nemesis, opts.rules, prom.URL())

	// 4. KEDA: the triggers of two ScaledObjects, and one push stream.
	triggers := demoTriggers()
	for _, t := range triggers {
		stack.add(t.close)
		if err := t.connect(ctx, sc.grpcAddr); err != nil {
			return check(err)
		}
	}
	out.printf("[4/4] KEDA        the triggers, and the metric each one's GetMetricSpec gave:\n")
	for _, t := range triggers {
		out.printf("      %-9s %-13s %-17s %-12s → %s, %s\n", t.object(), "external", t.ruleSet, t.metaKey+"="+t.metaValue, t.metricName, t.target)
	}
	pushCtx, stopPush := context.WithCancel(ctx)
	defer stopPush()
	llama := triggers[0]
	events, closePush, err := startPush(pushCtx, llama, sc.grpcAddr)
	if err != nil {
		return err
	}
	stack.add(closePush)
	out.printf("      %-9s %-13s %-17s %-12s → StreamIsActive stream\n\n", llama.object(), "external-push", llama.ruleSet, llama.metaKey+"="+llama.metaValue)

	// The push stream's reader prints the moment the stream turns true.
	var push pushResult
	pushDone := make(chan struct{})
	go func() {
		defer close(pushDone)
		push.watch(events, drv, llama.object(), out)
	}()

	// The load and the polls.
	res, err := pollLoop(ctx, opts.duration, drv, triggers, out)
	stopPush()
	<-pushDone
	if err != nil {
		return err
	}

	// The summary, from the polls and the scaler's own metrics.
	page, err := sc.metrics(ctx)
	if err != nil {
		return check(err)
	}
	if err := summarize(out, opts.duration, triggers, res, &push, drv, page); err != nil {
		return err
	}

	// Stop the scaler here, not only in the cleanups, to report its exit.
	out.printf("\nStopping: scaler (SIGTERM) ")
	if err := sc.stop(); err != nil {
		return err
	}
	out.printf("exited 0; Prometheus and the exporter stop next. Logs stay in %s\n", dir)
	return nil
}

// pollResult is what the poll loop saw.
type pollResult struct {
	polls       int
	errors      int
	lastActive  []bool
	lastReplica []float64
}

// pollLoop drives the load along its curve and polls every trigger every
// pollInterval, printing a row per poll, until the curve ends.
func pollLoop(ctx context.Context, total time.Duration, drv *driver, triggers []*trigger, out *printer) (pollResult, error) {
	res := pollResult{lastActive: make([]bool, len(triggers)), lastReplica: make([]float64, len(triggers))}
	start := time.Now()
	drv.begin(start)

	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		tick := time.NewTicker(loadTick)
		defer tick.Stop()
		for {
			drv.tick(time.Now())
			select {
			case <-loadCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { stopLoad(); <-loadDone }()

	printHeader(out, triggers)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		elapsed := time.Since(start)
		l, _, _ := drv.snapshot()
		cells := make([]string, len(triggers))
		var problems []string
		for i, t := range triggers {
			replicas, active, err := t.poll(ctx)
			if ctx.Err() != nil {
				return res, errInterrupted
			}
			if err != nil {
				res.errors++
				cells[i] = "ERR"
				problems = append(problems, fmt.Sprintf("  ! %s %s: %v", t.object(), t.ruleSet, err))
				continue
			}
			cells[i] = fmt.Sprintf("%3.0f %-6s", replicas, activeWord(active))
			res.lastActive[i], res.lastReplica[i] = active, replicas
			if active {
				t.activeSeen++
			}
			if replicas > t.peak {
				t.peak, t.peakAt = replicas, elapsed
			}
		}
		res.polls++
		out.printf("%6.1fs  %-9s %4.0f%%  %4d %4d  %-11s | %s\n",
			elapsed.Seconds(), l.phase, l.level*100, l.waiting, l.running, l.podsString(), row(cells))
		for _, p := range problems {
			out.printf("%s\n", p)
		}
		if elapsed >= total {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, errInterrupted
		case <-tick.C:
		}
	}
}

// The table: the load the demo set, then each trigger as KEDA sees it: the
// metric value, which is the replica count since the target is 1 per
// replica, and the activity.
const cellWidth = 14

func printHeader(out *printer, triggers []*trigger) {
	names := make([]string, len(triggers))
	objects := make([]string, len(triggers))
	for i, t := range triggers {
		names[i], objects[i] = t.ruleSet, t.object()
	}
	out.printf("replicas: the metric value KEDA reads (target 1 per replica); active: IsActive.\n")
	out.printf("http-busiest-pod has min: 1, so it never asks for 0 and is always active.\n\n")
	out.printf("                  load set by the demo           | KEDA sees: replicas, active\n")
	out.printf("elapsed  phase      load  wait  run  in-flight   | %s\n", row(names))
	out.printf("                          (vLLM)     per pod     | %s\n", row(objects))
}

// row lays out one cell per trigger.
func row(cells []string) string {
	var b strings.Builder
	for i, c := range cells {
		if i < len(cells)-1 {
			c = fmt.Sprintf("%-*s", cellWidth, c)
		}
		b.WriteString(c)
	}
	return b.String()
}

func activeWord(active bool) string {
	if active {
		return "active"
	}
	return "-"
}

// pushResult records the push stream's transitions.
type pushResult struct {
	mu            sync.Mutex
	messages      int
	trueAfter     time.Duration // since the load began; valid if sawTrue
	sawTrue       bool
	falseAfter    time.Duration // since the load ended; valid if sawFalseAgain
	sawFalseAgain bool
}

func (p *pushResult) watch(events <-chan pushEvent, drv *driver, object string, out *printer) {
	for ev := range events {
		_, began, ended := drv.snapshot()
		p.mu.Lock()
		p.messages++
		switch {
		case ev.active && !p.sawTrue:
			p.sawTrue = true
			if began.IsZero() {
				out.printf("  >> StreamIsActive(%s): true before any load (unexpected)\n", object)
			} else {
				p.trueAfter = ev.at.Sub(began)
				out.printf("  >> StreamIsActive(%s): true after %d ms of load: KEDA scales 0→1 now, not on a poll\n",
					object, p.trueAfter.Milliseconds())
			}
		case !ev.active && p.sawTrue && !p.sawFalseAgain && !ended.IsZero():
			p.sawFalseAgain = true
			p.falseAfter = ev.at.Sub(ended)
			out.printf("  >> StreamIsActive(%s): false %d ms after the load ended (KEDA scales in on its polls)\n",
				object, p.falseAfter.Milliseconds())
		}
		p.mu.Unlock()
	}
}

// summarize prints the summary and returns an error if the run did not show
// what it should have.
func summarize(out *printer, total time.Duration, triggers []*trigger, res pollResult, push *pushResult, drv *driver, page string) error {
	push.mu.Lock()
	defer push.mu.Unlock()
	out.printf("\nSummary of %v of load, %d polls every %v:\n", total, res.polls, pollInterval)
	out.printf("  %-9s %-17s %-18s %s\n", "object", "trigger", "peak replicas", "active in polls")
	for _, t := range triggers {
		out.printf("  %-9s %-17s %3.0f at %6.1fs     %d of %d\n", t.object(), t.ruleSet, t.peak, t.peakAt.Seconds(), t.activeSeen, res.polls)
	}
	switch {
	case push.sawTrue && push.sawFalseAgain:
		out.printf("  push stream: true %d ms after the load began, false %d ms after it ended\n",
			push.trueAfter.Milliseconds(), push.falseAfter.Milliseconds())
	case push.sawTrue:
		out.printf("  push stream: true %d ms after the load began\n", push.trueAfter.Milliseconds())
	default:
		out.printf("  push stream: never turned true (%d messages)\n", push.messages)
	}

	calls := res.polls * len(triggers)
	requests := sumMetric(page, "nemesis_prometheus_requests_total")
	failed := requests - sumMetric(page, "nemesis_prometheus_requests_total", `outcome="success"`)
	evaluations := sumMetric(page, "nemesis_scaler_evaluations_total")
	out.printf("  KEDA → scaler: %d GetMetrics + %d IsActive calls, and 1 StreamIsActive stream\n", calls, calls)
	out.printf("  scaler → Prometheus: %.0f evaluations sent %.0f requests (%.0f failed);\n", evaluations, requests, failed)
	out.printf("    queries: %.0f sent, %.0f shared with a request in flight, %.0f from the cache\n",
		sumMetric(page, "nemesis_prometheus_queries_total", `source="prometheus"`),
		sumMetric(page, "nemesis_prometheus_queries_total", `source="shared"`),
		sumMetric(page, "nemesis_prometheus_queries_total", `source="cache"`))
	if res.lastActive[0] {
		_, _, ended := drv.snapshot()
		out.printf("  note: %s was still active at the last poll, %.1fs after the load ended (the scaler lags the load by a few seconds)\n",
			triggers[0].object(), time.Since(ended).Seconds())
	}

	var problems []string
	if res.errors > 0 {
		problems = append(problems, fmt.Sprintf("%d GetMetricsAndActivity calls failed (see above and the scaler log)", res.errors))
	}
	for _, t := range triggers {
		if t.peak < 2 {
			problems = append(problems, fmt.Sprintf("%s %s never asked for more than %.0f replicas", t.object(), t.ruleSet, t.peak))
		}
	}
	if triggers[0].activeSeen == 0 {
		problems = append(problems, fmt.Sprintf("%s never turned active", triggers[0].object()))
	}
	if !push.sawTrue {
		problems = append(problems, "the StreamIsActive stream never sent true")
	}
	if failed > 0 {
		problems = append(problems, fmt.Sprintf("%.0f Prometheus requests failed (see the scaler log)", failed))
	}
	if len(problems) > 0 {
		return fmt.Errorf("the demo did not go as expected:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}
