package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/k8s-nemesis/nemesis/backtest"
	"github.com/k8s-nemesis/nemesis/externalscaler"
	"github.com/k8s-nemesis/nemesis/hpasim"
	"github.com/k8s-nemesis/nemesis/memprom"
	"github.com/k8s-nemesis/nemesis/metrics"
)

const backtestUsage = `usage: nemesis rules backtest --rules PATH --rule-set NAME [--rule-set OTHER]…
    (--prometheus-url URL | --series FILE)
    --namespace NS --name NAME [--metadata 'key: value']…
    [--scaled-object FILE] --start TIME --end TIME [--step 15s]
    [--actual PromQL] [--builtin 'inflight=PromQL']… [--pod-startup 30s]
    [--hpa-sync-period 15s] [--hpa-tolerance 0.1] [--hpa-downscale-stabilization 5m]
    [--output table|csv|json] [--plot FILE.svg]`

// backtestProgressSteps is the window, in steps, from which a terminal
// gets a progress bar: below it a run takes well under a second.
const backtestProgressSteps = 10_000

// backtestFlags is what `nemesis rules backtest` is told.
type backtestFlags struct {
	paths, ruleSets, builtins stringList
	prom                      metrics.ClientConfig
	series                    string
	namespace, name           string
	metadata                  headerMap
	scaledObject              string
	start, end                string
	step, podStartup          time.Duration
	// The HPA controller's flags (kube-controller-manager's
	// --horizontal-pod-autoscaler-*), cluster-wide, not in the manifest.
	hpaSync, hpaDownscale time.Duration
	hpaTolerance          float64
	actual                string
	output, plot          string
}

func parseBacktestFlags(args []string, stderr io.Writer) (*backtestFlags, error) {
	c := &backtestFlags{prom: metrics.ClientConfig{Headers: map[string]string{}}, metadata: headerMap{}}
	fs := flag.NewFlagSet("nemesis rules backtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, backtestUsage)
		fmt.Fprintln(stderr, "\nReplays rule sets over past data through the scaler's decision path and a simulated KEDA and HPA.\n\nflags:")
		fs.PrintDefaults()
	}
	fs.Var(&c.paths, "rules", "rule file or directory (repeatable)")
	fs.Var(&c.ruleSets, "rule-set", "a rule set to replay (repeatable: several are replayed side by side)")
	addPrometheusFlags(fs, &c.prom, "Prometheus to read the history from, with one query_range per query (or --series)", 30*time.Second)
	fs.StringVar(&c.series, "series", "", "replay offline over a rules-test file: the input_series (and inflight and queued values) of its first test, from the Unix epoch; now is the file's last sample")
	fs.StringVar(&c.namespace, "namespace", "", "the ScaledObject's namespace ($namespace; required)")
	fs.StringVar(&c.name, "name", "", "the ScaledObject's name ($name; required)")
	fs.Var(c.metadata, "metadata", `trigger metadata "key: value" (repeatable), e.g. "model: llama"; "service" names the service of inflight and queued (default: --name)`)
	fs.StringVar(&c.scaledObject, "scaled-object", "", "the ScaledObject manifest: pollingInterval, cooldownPeriod, min/max/idleReplicaCount and the HPA behavior (default: KEDA's defaults)")
	fs.StringVar(&c.start, "start", "", "start of the window: RFC 3339, now, or relative to now such as -6h (required)")
	fs.StringVar(&c.end, "end", "", "end of the window, as --start (required)")
	fs.DurationVar(&c.step, "step", 15*time.Second, "time between evaluations (at least 1s)")
	fs.StringVar(&c.actual, "actual", "", "PromQL of the replicas that really ran, to compare with")
	fs.Var(&c.builtins, "builtin", `history of a built-in, "inflight=PromQL" or "queued=PromQL" (repeatable); default: the activators' nemesis_activator_requests_in_flight and _queued for the service`)
	fs.DurationVar(&c.podStartup, "pod-startup", 30*time.Second, "how long a new pod takes to become ready (the built-in ready)")
	fs.DurationVar(&c.hpaSync, "hpa-sync-period", hpasim.DefaultSyncPeriod, "the cluster's kube-controller-manager --horizontal-pod-autoscaler-sync-period")
	fs.Float64Var(&c.hpaTolerance, "hpa-tolerance", hpasim.DefaultTolerance, "the cluster's kube-controller-manager --horizontal-pod-autoscaler-tolerance")
	fs.DurationVar(&c.hpaDownscale, "hpa-downscale-stabilization", hpasim.DefaultDownscaleStabilization, "the cluster's kube-controller-manager --horizontal-pod-autoscaler-downscale-stabilization (used when the behavior sets no window)")
	fs.StringVar(&c.output, "output", "table", "table, csv or json (one object per step and line; the summary goes to stderr)")
	fs.StringVar(&c.plot, "plot", "", "also write a standalone SVG chart of load and replicas to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError("%v", err)
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, "unexpected arguments: "+strings.Join(fs.Args(), " "))
	}
	for _, f := range []struct{ name, value string }{{"--rules", strings.Join(c.paths, "")}, {"--rule-set", strings.Join(c.ruleSets, "")},
		{"--namespace", c.namespace}, {"--name", c.name}, {"--start", c.start}, {"--end", c.end}} {
		if f.value == "" {
			problems = append(problems, f.name+" is required")
		}
	}
	if (c.prom.URL == "") == (c.series == "") {
		problems = append(problems, "give one of --prometheus-url and --series")
	}
	if !slices.Contains(backtest.Formats(), c.output) {
		problems = append(problems, fmt.Sprintf("--output %q: want one of %s", c.output, strings.Join(backtest.Formats(), ", ")))
	}
	if c.podStartup < 0 {
		problems = append(problems, "--pod-startup must not be negative")
	}
	if c.hpaSync < time.Second {
		problems = append(problems, "--hpa-sync-period must be at least 1s")
	}
	if c.hpaTolerance < 0 || c.hpaTolerance >= 1 {
		problems = append(problems, "--hpa-tolerance must be in [0, 1)")
	}
	if c.hpaDownscale < 0 {
		problems = append(problems, "--hpa-downscale-stabilization must not be negative")
	}
	if len(problems) > 0 {
		fmt.Fprintln(stderr, backtestUsage)
		return nil, usageError("%s", strings.Join(problems, "; "))
	}
	return c, nil
}

// runRulesBacktest replays rule sets over a window of history and prints
// what each would have answered and what KEDA and the HPA would have run.
func runRulesBacktest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	began := time.Now()
	c, err := parseBacktestFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cat, err := externalscaler.LoadCatalog(c.paths)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	opts := backtest.Options{Namespace: c.namespace, Name: c.name, Metadata: c.metadata, Step: c.step, Actual: c.actual, Builtins: map[string]string{}}
	for _, name := range c.ruleSets {
		rs, ok := cat.RuleSet(name)
		if !ok {
			return usageError("no rule set named %q: there are %s", name, strings.Join(cat.Names(), ", "))
		}
		opts.RuleSets = append(opts.RuleSets, rs)
	}
	for _, b := range c.builtins {
		name, query, ok := strings.Cut(b, "=")
		name, query = strings.TrimSpace(name), strings.TrimSpace(query)
		if !ok || name == "" || query == "" {
			return usageError("--builtin %q: want NAME=PromQL, e.g. 'inflight=sum(my_inflight)'", b)
		}
		opts.Builtins[name] = query
	}
	opts.Sim = hpasim.DefaultConfig()
	if c.scaledObject != "" {
		data, err := os.ReadFile(c.scaledObject)
		if err != nil {
			return usageError("--scaled-object: %v", err)
		}
		if opts.Sim, err = hpasim.ParseScaledObject(c.scaledObject, data); err != nil {
			return usageError("%s", strings.ReplaceAll(err.Error(), "\n", "; "))
		}
	}
	opts.Sim.PodStartup = c.podStartup
	opts.Sim.SyncPeriod, opts.Sim.Tolerance, opts.Sim.DownscaleStabilization = c.hpaSync, c.hpaTolerance, c.hpaDownscale

	var src backtest.Source
	now := time.Now()
	if c.series != "" {
		data, err := os.ReadFile(c.series)
		if err != nil {
			return usageError("--series: %v", err)
		}
		sf, err := backtest.LoadSeriesFile(c.series, data)
		if err != nil {
			// Every problem of the file, one per line, as rules test
			// prints them.
			return &exitError{code: 2, err: err}
		}
		src, now = memprom.NewEngine(sf.Storage, memprom.Options{}), sf.Last
		// The test's own history of inflight and queued, unless --builtin
		// gives another.
		for name, query := range sf.Builtins {
			if _, given := opts.Builtins[name]; !given {
				opts.Builtins[name] = query
			}
		}
	} else {
		client, err := metrics.NewClient(c.prom, nil, nil, nil)
		if err != nil {
			return usageError("%v", err)
		}
		src = client
	}
	if opts.Start, err = backtest.ParseTime(c.start, now); err != nil {
		return usageError("--start: %v", err)
	}
	if opts.End, err = backtest.ParseTime(c.end, now); err != nil {
		return usageError("--end: %v", err)
	}
	if n, err := backtest.Window(opts.Start.Truncate(time.Millisecond), opts.End.Truncate(time.Millisecond), c.step); err != nil {
		return &exitError{code: 2, err: err}
	} else if f, ok := stderr.(*os.File); ok && n >= backtestProgressSteps && term.IsTerminal(int(f.Fd())) {
		bar := &progressBar{w: stderr}
		opts.Progress = bar.update
		defer bar.done()
	}

	res, err := backtest.Run(ctx, src, opts)
	if err != nil {
		var ie *backtest.InputError
		if errors.As(err, &ie) {
			return &exitError{code: 2, err: err}
		}
		return err
	}
	replayed := time.Now()
	if c.plot != "" {
		if err := writeFileAtomic(c.plot, func(w io.Writer) error { return res.WriteSVG(w) }); err != nil {
			return fmt.Errorf("writing --plot: %w", err)
		}
	}
	if err := res.Write(stdout, c.output); err != nil {
		return fmt.Errorf("writing the %s output: %w", c.output, err)
	}
	if c.output != "table" {
		if err := res.WriteSummary(stderr); err != nil {
			return err
		}
	}
	source := "prometheus"
	if c.series != "" {
		source = "memprom over " + c.series
	}
	total := time.Since(began)
	fmt.Fprintf(stderr, "time: %v in all: %v waiting on %s (%d range queries), %v for the rest (of which output %v)\n",
		total.Round(time.Millisecond), res.QueryTime.Round(time.Millisecond), source, res.QueryCalls,
		(total - res.QueryTime).Round(time.Millisecond), time.Since(replayed).Round(time.Millisecond))
	return nil
}

// writeFileAtomic writes a file through a temporary file beside it and a
// rename, so that a failed run leaves no partial file behind and an
// existing one stays whole until the new one is complete.
func writeFileAtomic(path string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err = write(f); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// progressBar draws the run's progress on one terminal line.
type progressBar struct {
	w     io.Writer
	shown bool
	last  time.Time
}

func (p *progressBar) update(phase string, done, total int) {
	if now := time.Now(); done < total && now.Sub(p.last) < 100*time.Millisecond {
		return
	} else {
		p.last = now
	}
	const width = 30
	filled := 0
	if total > 0 {
		filled = done * width / total
	}
	what := "range queries"
	if phase == "replay" {
		what = "steps"
	}
	fmt.Fprintf(p.w, "\r\033[K[%s%s] %d/%d %s", strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, total, what)
	p.shown = true
}

func (p *progressBar) done() {
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
