package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/k8s-nemesis/nemesis/e2e/internal/childproc"
)

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "routingbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, o, os.Stdout, os.Stderr)
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = errors.New("interrupted; every process it started is stopped")
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "routingbench:", err)
		os.Exit(1)
	}
}

// options are the command line's settings.
type options struct {
	nemesis, llmsim string
	policies        []string
	workloads       []workload
	loads           []float64
	requests        int
	warmup          int
	seed            uint64

	pods                int
	slowdown, timeScale float64
	maxNumSeqs          int
	kvBlocks            int
	maxWaiting          int

	capacityTime        time.Duration
	capacityConcurrency int
	capacityPolicy      string
	requestTimeout      time.Duration

	svg  string
	doc  bool
	keep bool
}

// parseFlags reads the command line and checks every setting, reporting
// every problem at once.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var (
		o                         options
		pols, works, loads        string
		quick                     bool
		requests, warmup          int
		capacityTime              time.Duration
		capacityTimeSet, reqsSet  bool
		warmupSet, loadsSet       bool
		defaultSVG                = filepath.Join(os.TempDir(), "routingbench.svg")
		fs                        = flag.NewFlagSet("routingbench", flag.ContinueOnError)
		seed                      int64
		maxNumSeqs, kvBlocks, mxw int
	)
	fs.SetOutput(stderr)
	fs.StringVar(&o.nemesis, "nemesis", "bin/nemesis", "the nemesis binary (go tool task build)")
	fs.StringVar(&o.llmsim, "llmsim", "", "a built llmsim binary; empty: build ./e2e/llmsim into the temporary directory")
	fs.StringVar(&pols, "policies", strings.Join(policies(), ","), "policies to compare, comma-separated; round-robin is the baseline of the ratios")
	fs.StringVar(&works, "workloads", string(mixed)+","+string(sharedPrefix), "workloads, comma-separated")
	fs.StringVar(&loads, "loads", "0.5,0.8,0.95", "offered loads as fractions of the measured capacity, comma-separated")
	fs.IntVar(&requests, "requests", 240, "measured requests per cell (workload, load, policy)")
	fs.IntVar(&warmup, "warmup", 24, "requests sent before the measured ones in each cell, not counted")
	fs.Int64Var(&seed, "seed", 1, "seed of the request sequences; the same seed gives the same requests and arrival times")
	fs.IntVar(&o.pods, "pods", 4, "llmsim pods; the last one runs --slowdown times slower")
	fs.Float64Var(&o.slowdown, "slowdown", 2, "the slow pod's --slowdown (1: all pods alike)")
	fs.Float64Var(&o.timeScale, "time-scale", 0.25, "llmsim's --time-scale: wall time per simulated second; latencies and tokens per second are reported in simulated time")
	fs.IntVar(&maxNumSeqs, "max-num-seqs", 16, "llmsim's --max-num-seqs")
	fs.IntVar(&kvBlocks, "kv-blocks", 704, "llmsim's --kv-blocks (16-token blocks): with 704 the 16 shared prefixes (2,000 blocks) need 71 % of the four pods' KV cache, like llm-d's shared-prefix benchmark (73 %)")
	fs.IntVar(&mxw, "max-waiting", 1000, "llmsim's --max-waiting")
	fs.DurationVar(&capacityTime, "capacity-time", 20*time.Second, "length of each workload's closed-loop capacity run (wall time; the first quarter is warm-up)")
	fs.IntVar(&o.capacityConcurrency, "capacity-concurrency", 0, "clients of the capacity run; 0: twice the pods' batch slots (2 × pods × max-num-seqs)")
	fs.StringVar(&o.capacityPolicy, "capacity-policy", leastRequest, "policy of the capacity run: least-request fills every pod (the cluster's capacity); round-robin is bounded by the slow pod (what a plain Service carries)")
	fs.DurationVar(&o.requestTimeout, "request-timeout", 5*time.Minute, "give up on one request after this long (wall time)")
	fs.StringVar(&o.svg, "svg", defaultSVG, "where to write the chart of TTFT distributions")
	fs.BoolVar(&o.doc, "doc", false, "write the chart to docs/routing.svg instead of --svg (run from the repository's root)")
	fs.BoolVar(&quick, "quick", false, "smoke test: one load (0.8), 40 requests and 8 warm-up per cell, 6 s capacity runs; explicit flags win")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (process logs, activator config)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "requests":
			reqsSet = true
		case "warmup":
			warmupSet = true
		case "loads":
			loadsSet = true
		case "capacity-time":
			capacityTimeSet = true
		}
	})
	if quick {
		if !reqsSet {
			requests = 40
		}
		if !warmupSet {
			warmup = 8
		}
		if !loadsSet {
			loads = "0.8"
		}
		if !capacityTimeSet {
			capacityTime = 6 * time.Second
		}
	}
	o.requests, o.warmup, o.capacityTime = requests, warmup, capacityTime
	o.seed = uint64(seed)
	o.maxNumSeqs, o.kvBlocks, o.maxWaiting = maxNumSeqs, kvBlocks, mxw
	if o.doc {
		o.svg = filepath.Join("docs", "routing.svg")
	}

	var errs []error
	for _, p := range splitList(pols) {
		if !slices.Contains(policies(), p) {
			errs = append(errs, fmt.Errorf("--policies: %q is not one of %s", p, strings.Join(policies(), ", ")))
		} else if !slices.Contains(o.policies, p) {
			o.policies = append(o.policies, p)
		}
	}
	if len(o.policies) == 0 {
		errs = append(errs, errors.New("--policies: none given"))
	}
	for _, w := range splitList(works) {
		if w != string(mixed) && w != string(sharedPrefix) {
			errs = append(errs, fmt.Errorf("--workloads: %q is not %s or %s", w, mixed, sharedPrefix))
		} else if !slices.Contains(o.workloads, workload(w)) {
			o.workloads = append(o.workloads, workload(w))
		}
	}
	if len(o.workloads) == 0 {
		errs = append(errs, errors.New("--workloads: none given"))
	}
	for _, l := range splitList(loads) {
		v, err := strconv.ParseFloat(l, 64)
		if err != nil || !(v > 0 && v <= 2) {
			errs = append(errs, fmt.Errorf("--loads: %q is not a fraction in (0, 2]", l))
			continue
		}
		o.loads = append(o.loads, v)
	}
	if len(o.loads) == 0 {
		errs = append(errs, errors.New("--loads: none given"))
	}
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	check(o.requests >= 1, "--requests %d: need at least 1", o.requests)
	check(o.warmup >= 0, "--warmup %d: must not be negative", o.warmup)
	check(o.pods >= 1 && o.pods <= 64, "--pods %d: need 1 to 64", o.pods)
	check(o.slowdown >= 1, "--slowdown %g: need at least 1", o.slowdown)
	check(o.timeScale > 0 && o.timeScale <= 100, "--time-scale %g: need (0, 100]", o.timeScale)
	check(o.maxNumSeqs >= 1, "--max-num-seqs %d: need at least 1", o.maxNumSeqs)
	check(o.kvBlocks >= 1, "--kv-blocks %d: need at least 1", o.kvBlocks)
	check(o.maxWaiting >= 1, "--max-waiting %d: need at least 1", o.maxWaiting)
	check(o.capacityTime >= time.Second, "--capacity-time %v: need at least 1s", o.capacityTime)
	check(o.capacityPolicy == roundRobin || o.capacityPolicy == leastRequest, "--capacity-policy %q: need round-robin or least-request", o.capacityPolicy)
	check(o.capacityConcurrency >= 0, "--capacity-concurrency %d: must not be negative", o.capacityConcurrency)
	check(o.requestTimeout > 0, "--request-timeout %v: must be positive", o.requestTimeout)
	check(o.svg != "", "--svg: empty path")
	if o.capacityConcurrency == 0 {
		o.capacityConcurrency = 2 * o.pods * o.maxNumSeqs
	}
	return o, errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// model is the model name the pods serve and the requests ask for.
const model = "bench-llama"

// bench is a running setup: the pods and the activator.
type bench struct {
	o         options
	dir       string
	llmsim    string
	podAddrs  []string
	podNames  []string
	pods      []*childproc.Process
	activator *childproc.Process
	client    *client
	log       io.Writer
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) (err error) {
	began := time.Now()
	nemesis, err := filepath.Abs(o.nemesis)
	if err != nil {
		return err
	}
	if _, err := os.Stat(nemesis); err != nil {
		return fmt.Errorf("the nemesis binary: %w (build it first: go tool task build)", err)
	}
	dir, err := os.MkdirTemp("", "nemesis-routingbench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(stderr, "logs and configuration in", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	b := &bench{o: o, dir: dir, log: stderr, llmsim: o.llmsim}
	if b.llmsim == "" {
		b.llmsim = filepath.Join(dir, "llmsim")
		build := exec.CommandContext(ctx, "go", "build", "-o", b.llmsim, "./e2e/llmsim")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("building llmsim (run from the repository's root): %w\n%s", err, out)
		}
	}
	addrs, err := freeAddrs(o.pods + 2)
	if err != nil {
		return err
	}
	b.podAddrs = addrs[:o.pods]
	for i := range o.pods {
		name := fmt.Sprintf("p%d", i+1)
		if i == o.pods-1 && o.slowdown != 1 {
			name += "-slow"
		}
		b.podNames = append(b.podNames, name)
	}
	defer b.stopPods()
	if err := b.startPods(ctx); err != nil {
		return err
	}

	routes := o.policies
	if !slices.Contains(routes, o.capacityPolicy) {
		routes = append(slices.Clone(routes), o.capacityPolicy)
	}
	cfg, err := activatorConfig(routes, b.podAddrs)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "activator.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	proxy, admin := addrs[o.pods], addrs[o.pods+1]
	b.activator, err = childproc.Start(dir, "activator", nemesis, "activator", "--config", cfgPath,
		"--http-address", proxy, "--admin-address", admin, "--log-level", "warn", "--shutdown-delay", "0s", "--drain-timeout", "1s")
	if err != nil {
		return err
	}
	defer b.activator.Stop(5 * time.Second)
	if err := waitHTTP(ctx, b.activator, "http://"+admin+"/readyz", 15*time.Second); err != nil {
		return fmt.Errorf("the activator: %w", err)
	}
	b.client = newClient(proxy, model, o.requestTimeout)
	defer b.client.close()

	fmt.Fprintf(stdout, "%d llmsim pods (%s; %s %g× slower), max-num-seqs %d, kv-blocks %d, time-scale %g; one activator, one route per policy\n",
		o.pods, strings.Join(b.podNames, ", "), b.podNames[len(b.podNames)-1], o.slowdown, o.maxNumSeqs, o.kvBlocks, o.timeScale)
	fmt.Fprintf(stdout, "%d measured requests per cell after %d warm-up, Poisson arrivals, seed %d; latencies and tok/s in simulated time (wall / %g)\n\n",
		o.requests, o.warmup, o.seed, o.timeScale)

	var cells []cell
	for wi, w := range o.workloads {
		reqs, err := generate(w, defaultShape(), o.warmup+o.requests, o.seed+uint64(wi))
		if err != nil {
			return err
		}
		bodies := make([][]byte, len(reqs))
		for i, r := range reqs {
			if bodies[i], err = b.client.body(r); err != nil {
				return err
			}
		}
		capacity, err := b.capacity(ctx, stdout, w, reqs, bodies)
		if err != nil {
			return err
		}
		for _, load := range o.loads {
			rate := load * capacity
			timed := atRate(reqs, rate)
			for _, p := range o.policies {
				c, err := b.cell(ctx, w, load, rate, p, timed, bodies)
				if err != nil {
					return err
				}
				fmt.Fprintf(stderr, "%s %3.0f%% %-14s %d/%d ok, TTFT p90 %s, hit %s, took %v\n", w, 100*load, p,
					c.requests-c.failures, c.requests, formatDuration(c.ttft90), formatPercent(c.hitRate), c.wall.Round(100*time.Millisecond))
				cells = append(cells, c)
			}
		}
	}

	if err := writeTable(stdout, cells, b.podNames); err != nil {
		return err
	}
	for _, c := range cells {
		if c.firstErr != nil {
			fmt.Fprintf(stdout, "%s %.0f%% %s: %d failed, e.g. %v\n", c.workload, 100*c.load, c.policy, c.failures, c.firstErr)
		}
	}
	fmt.Fprintln(stdout)
	if err := writeAims(stdout, judge(cells)); err != nil {
		return err
	}
	f, err := os.Create(o.svg)
	if err != nil {
		return fmt.Errorf("writing the chart: %w", err)
	}
	if err := writeChart(f, cells, o.policies); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing the chart: %w", err)
	}
	fmt.Fprintf(stdout, "\nchart of the TTFT distributions: %s\nwall time %v\n", o.svg, time.Since(began).Round(time.Second))
	return nil
}

// startPods starts the llmsim pods, cold, and waits for their /health.
func (b *bench) startPods(ctx context.Context) error {
	for i, addr := range b.podAddrs {
		slowdown := 1.0
		if i == len(b.podAddrs)-1 {
			slowdown = b.o.slowdown
		}
		p, err := childproc.Start(b.dir, b.podNames[i], b.llmsim,
			"--address", addr, "--name", b.podNames[i], "--model", model,
			"--slowdown", strconv.FormatFloat(slowdown, 'g', -1, 64),
			"--time-scale", strconv.FormatFloat(b.o.timeScale, 'g', -1, 64),
			"--max-num-seqs", strconv.Itoa(b.o.maxNumSeqs), "--kv-blocks", strconv.Itoa(b.o.kvBlocks),
			"--max-waiting", strconv.Itoa(b.o.maxWaiting))
		if err != nil {
			return err
		}
		b.pods = append(b.pods, p)
	}
	for i, p := range b.pods {
		if err := waitHTTP(ctx, p, "http://"+b.podAddrs[i]+"/health", 15*time.Second); err != nil {
			return fmt.Errorf("llmsim pod %s: %w", p.Name(), err)
		}
	}
	return nil
}

// stopPods stops every pod by its pid.
func (b *bench) stopPods() {
	for _, p := range b.pods {
		p.Stop(5 * time.Second)
	}
	b.pods = nil
}

// restartPods gives the next run cold pods: empty caches and queues, as
// every policy should get. Then it waits a little, so that the score
// policy's scrapes, which failed while the pods were down, are fresh
// again.
func (b *bench) restartPods(ctx context.Context) error {
	b.stopPods()
	if err := b.startPods(ctx); err != nil {
		return err
	}
	b.client.close() // connections to the old pods' activator streams are done; start afresh
	select {
	case <-time.After(300 * time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// capacity measures the requests per second (wall time) the pods sustain
// on workload w: a closed loop of many clients, twice the pods' batch
// slots. Through least-request (the default) every pod keeps a full
// batch and a queue behind it, so this is the cluster's capacity, the
// sum of the pods'; at 80 % of it, round-robin, which gives the slow
// pod a quarter of the requests for a seventh of the capacity, overloads
// that pod. Through round-robin the slow pod bounds it: what a plain
// Service carries.
func (b *bench) capacity(ctx context.Context, stdout io.Writer, w workload, reqs []request, bodies [][]byte) (float64, error) {
	if err := b.restartPods(ctx); err != nil {
		return 0, err
	}
	const warm = 0.25
	r := b.client.closedLoop(ctx, b.o.capacityPolicy, reqs, bodies, b.o.capacityConcurrency, b.o.capacityTime, warm)
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	if len(r.ok) == 0 {
		return 0, fmt.Errorf("capacity run of %s: no request succeeded (%d failed, e.g. %v)", w, r.failures, r.err)
	}
	rate := float64(len(r.ok)) / r.window.Seconds()
	tokens := 0
	for _, x := range r.ok {
		tokens += x.completion
	}
	fmt.Fprintf(stdout, "%s: capacity through %s %.2f req/s wall (%.2f req/s, %.0f output tok/s simulated), %d clients, %d requests in %v",
		w, b.o.capacityPolicy, rate, rate*b.o.timeScale, float64(tokens)/r.window.Seconds()*b.o.timeScale, b.o.capacityConcurrency, len(r.ok), r.window.Round(time.Millisecond))
	if r.failures > 0 {
		fmt.Fprintf(stdout, ", %d failed (e.g. %v)", r.failures, r.err)
	}
	fmt.Fprintln(stdout)
	return rate, nil
}

// cell runs one policy on one arrival sequence, from cold pods.
func (b *bench) cell(ctx context.Context, w workload, load, rate float64, policy string, reqs []request, bodies [][]byte) (cell, error) {
	if err := b.restartPods(ctx); err != nil {
		return cell{}, err
	}
	start := time.Now().Add(50 * time.Millisecond)
	results := b.client.openLoop(ctx, policy, reqs, bodies, start)
	if ctx.Err() != nil {
		return cell{}, ctx.Err()
	}
	c := summarize(cell{workload: w, load: load, rate: rate * b.o.timeScale, policy: policy}, results, b.o.warmup, b.podNames, b.o.timeScale)
	c.wall = time.Since(start)
	return c, nil
}
