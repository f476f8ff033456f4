package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"
)

// The targets of issue 11.
const (
	wallTarget = 10 * time.Second
	rssTarget  = 200 << 20
)

const benchRules = `ruleSets:
  - name: bench
    description: Three queries over a week, as the performance target asks.
    queries:
      load: sum(bench_load{namespace="$namespace"})
      rps: sum(rate(bench_requests_total{namespace="$namespace"}[5m]))
      queue: max(max_over_time(bench_queue{namespace="$namespace"}[1m]))
    replicas: max(load / 50, rps / 20, queue / 4)
    active: load > 0 || queue > 0
    max: 40
`

type options struct {
	nemesis, prometheus, promtool string
	days                          int
	step                          time.Duration
	rounds                        int
	keep                          bool
}

func main() {
	var o options
	flag.StringVar(&o.nemesis, "nemesis", "bin/nemesis", "the nemesis binary to measure")
	flag.StringVar(&o.prometheus, "prometheus", "prometheus", "the Prometheus binary")
	flag.StringVar(&o.promtool, "promtool", "promtool", "the promtool binary, for the backfill")
	flag.IntVar(&o.days, "days", 7, "days of history")
	flag.DurationVar(&o.step, "step", 15*time.Second, "the step of the series and of the backtest")
	flag.IntVar(&o.rounds, "rounds", 3, "backtests to run")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "backtestbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (err error) {
	nemesis, err := filepath.Abs(o.nemesis)
	if err != nil {
		return err
	}
	if _, err := os.Stat(nemesis); err != nil {
		return fmt.Errorf("the nemesis binary: %w (build it first: go tool task build)", err)
	}
	dir, err := os.MkdirTemp("", "backtestbench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Println("directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	// The week ends a few minutes ago, on the step grid: exactly
	// days × 24h / step steps.
	steps := int(time.Duration(o.days) * 24 * time.Hour / o.step)
	end := time.Now().UTC().Add(-5 * time.Minute).Truncate(o.step)
	start := end.Add(-time.Duration(steps-1) * o.step)

	began := time.Now()
	om := filepath.Join(dir, "week.om")
	if err := writeWeek(om, start, steps, o.step); err != nil {
		return err
	}
	data := filepath.Join(dir, "data")
	backfill := exec.CommandContext(ctx, o.promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", "--max-block-duration=24h", om, data)
	if out, err := backfill.CombinedOutput(); err != nil {
		return fmt.Errorf("promtool backfill: %w\n%s", err, out)
	}
	if err := os.Remove(om); err != nil {
		return err
	}
	fmt.Printf("history: %d steps of %v × 3 series, %s to %s, written and backfilled with promtool in %v\n",
		steps, o.step, start.Format(time.RFC3339), end.Format(time.RFC3339), time.Since(began).Round(time.Millisecond))

	prom, url, err := startPrometheus(ctx, o.prometheus, dir)
	if err != nil {
		return err
	}
	defer func() {
		if stopErr := stopProcess(prom); stopErr != nil && err == nil {
			err = stopErr
		}
	}()

	rulesFile := filepath.Join(dir, "bench.yaml")
	if err := os.WriteFile(rulesFile, []byte(benchRules), 0o644); err != nil {
		return err
	}
	failed := false
	for round := 1; round <= o.rounds; round++ {
		r, err := backtest(ctx, nemesis, rulesFile, url, start, end, o.step, filepath.Join(dir, "out.json"))
		if err != nil {
			return err
		}
		verdict := "ok"
		if r.wall >= wallTarget || r.maxRSS >= rssTarget || r.lines != steps {
			verdict, failed = "MISSED", true
		}
		fmt.Printf("round %d: %d steps in %v wall (target < %v): %v waiting on Prometheus' query_range (%d range queries), %v the rest; peak RSS %.1f MB (target < %d MB): %s\n",
			round, r.lines, r.wall.Round(time.Millisecond), wallTarget, r.prometheus, r.queries, (r.wall - r.prometheus).Round(time.Millisecond),
			float64(r.maxRSS)/(1<<20), rssTarget>>20, verdict)
	}
	if failed {
		return errors.New("a round missed a target, or its output does not hold one line per step")
	}
	return nil
}

// writeWeek writes the history in OpenMetrics: a gauge with a daily cycle,
// a counter whose rate follows it, and a queue that builds up in bursts.
func writeWeek(path string, start time.Time, steps int, step time.Duration) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	load := func(i int) float64 {
		t := start.Add(time.Duration(i) * step)
		hour := float64(t.Hour()) + float64(t.Minute())/60
		return math.Round(400 + 300*math.Sin((hour-9)/24*2*math.Pi) + float64((i*7919)%41))
	}
	ts := func(i int) string {
		return strconv.FormatInt(start.Add(time.Duration(i)*step).Unix(), 10)
	}
	fmt.Fprintln(w, "# TYPE bench_load gauge")
	for i := range steps {
		fmt.Fprintf(w, "bench_load{namespace=\"bench\"} %g %s\n", load(i), ts(i))
	}
	fmt.Fprintln(w, "# TYPE bench_requests counter")
	total := 0.0
	for i := range steps {
		total += load(i) * step.Seconds() / 10
		fmt.Fprintf(w, "bench_requests_total{namespace=\"bench\"} %g %s\n", total, ts(i))
	}
	fmt.Fprintln(w, "# TYPE bench_queue gauge")
	for i := range steps {
		q := 0
		if (i/40)%7 == 0 {
			q = (i % 40) * 3
		}
		fmt.Fprintf(w, "bench_queue{namespace=\"bench\"} %d %s\n", q, ts(i))
	}
	fmt.Fprintln(w, "# EOF")
	return errors.Join(w.Flush(), f.Close())
}

// startPrometheus starts Prometheus on the backfilled TSDB, on a free
// loopback port, in its own process group and killed with this process,
// and waits until it is ready.
func startPrometheus(ctx context.Context, binary, dir string) (*exec.Cmd, string, error) {
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte("global:\n  scrape_interval: 15s\n"), 0o644); err != nil {
		return nil, "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := l.Addr().String()
	l.Close()
	var logs bytes.Buffer
	cmd := exec.Command(binary,
		"--config.file="+config,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		// Longer than the week, so that nothing of it is deleted; and no
		// block longer than the backfilled ones, so that no compaction
		// runs during the measurement.
		"--storage.tsdb.retention.time=30d",
		"--storage.tsdb.max-block-duration=24h",
		"--web.listen-address="+addr,
	)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("starting prometheus: %w", err)
	}
	url := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/-/ready", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd, url, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = stopProcess(cmd)
			return nil, "", fmt.Errorf("prometheus not ready within 60s:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopProcess stops a process by its pid: SIGTERM, then SIGKILL after 10s.
func stopProcess(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return errors.New("prometheus did not stop within 10s of SIGTERM and was killed")
	}
}

// result is one measured backtest.
type result struct {
	wall, prometheus time.Duration
	queries          int
	maxRSS           int64 // bytes
	lines            int
}

// timeLine is the binary's report of its time on stderr.
var timeLine = regexp.MustCompile(`time: \S+ in all: (\S+) waiting on prometheus \((\d+) range queries\)`)

// backtest runs the binary once, its JSON output into out.
func backtest(ctx context.Context, nemesis, rulesFile, url string, start, end time.Time, step time.Duration, out string) (result, error) {
	f, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return result{}, err
	}
	defer f.Close()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, nemesis, "rules", "backtest", "--rules", rulesFile, "--rule-set", "bench",
		"--prometheus-url", url, "--namespace", "bench", "--name", "bench",
		"--start", start.Format(time.RFC3339), "--end", end.Format(time.RFC3339), "--step", step.String(), "--output", "json")
	cmd.Stdout, cmd.Stderr = f, &stderr
	began := time.Now()
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("nemesis rules backtest: %w\n%s", err, stderr.String())
	}
	r := result{wall: time.Since(began)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss * 1024 // kilobytes on Linux
	}
	m := timeLine.FindStringSubmatch(stderr.String())
	if m == nil {
		return result{}, fmt.Errorf("no time report on stderr:\n%s", stderr.String())
	}
	if r.prometheus, err = time.ParseDuration(m[1]); err != nil {
		return result{}, err
	}
	r.queries, _ = strconv.Atoi(m[2])
	if _, err := f.Seek(0, 0); err != nil {
		return result{}, err
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		r.lines++
	}
	return r, sc.Err()
}
