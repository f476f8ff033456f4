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
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-nemesis/nemesis/e2e/cluster"
	"github.com/k8s-nemesis/nemesis/e2e/load"
	"github.com/k8s-nemesis/nemesis/e2e/stack"
	"github.com/k8s-nemesis/nemesis/internal/chart"
)

const namespace = "demo"

func main() {
	duration := flag.Duration("duration", 75*time.Second, "how long the scale-out load lasts (three steps)")
	out := flag.String("out", "nemesis-demo.svg", "where to write the chart")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, *duration, *out); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// sample is one row of the live view.
type sample struct {
	t                         time.Duration
	clients                   int
	inflight, queued          float64
	decision                  float64
	spec, ready               int32
	ok, failed                int64
	haveDecision, haveProxied bool
}

func run(ctx context.Context, w io.Writer, duration time.Duration, out string) error {
	if duration < 15*time.Second {
		duration = 15 * time.Second
	}
	repo, err := cluster.RepoRoot()
	if err != nil {
		return err
	}
	cache, err := cluster.DefaultCacheDir()
	if err != nil {
		return err
	}
	logFile, err := os.CreateTemp("", "nemesis-demo-*.log")
	if err != nil {
		return err
	}
	defer logFile.Close()
	logger := slog.New(slog.NewTextHandler(logFile, nil))
	fmt.Fprintf(w, "Starting a local Kubernetes cluster with KEDA and Prometheus (progress in %s)…\n", logFile.Name())
	fmt.Fprintln(w, "The first run builds kube-apiserver, kube-controller-manager and KEDA from source: about 15 minutes on 2 cores.")
	begin := time.Now()
	c, err := (&cluster.Local{Repo: repo, CacheDir: cache, Logger: logger, HPASyncPeriod: 5 * time.Second}).Start(ctx)
	if err != nil {
		return err
	}
	defer c.Stop()
	fmt.Fprintf(w, "Cluster ready in %v (state and logs in %s).\n", time.Since(begin).Round(time.Second), c.Dir)

	applier, err := cluster.NewApplier(c.Config)
	if err != nil {
		return err
	}
	scaler, err := c.ServiceAddress(ctx, "nemesis", "nemesis-scaler", 9400)
	if err != nil {
		return err
	}
	scalerHTTP, err := c.ServiceAddress(ctx, "nemesis", "nemesis-scaler", 8080)
	if err != nil {
		return err
	}
	activator, err := c.ServiceAddress(ctx, "nemesis", "nemesis-activator", 80)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "Installing Nemesis (1 scaler, 2 activators) and a vLLM-like model server (e2e/llmsim) at 0 replicas…")
	if err := stack.InstallNemesis(ctx, c.Client, applier, repo, stack.Nemesis{
		Image: cluster.NemesisImage, PrometheusURL: c.PodPrometheusURL, ActivatorReplicas: 2,
		PushInterval: time.Second, Rules: stack.RuleSet, ActivatorConfig: stack.ActivatorConfig(namespace),
	}); err != nil {
		return err
	}
	// llmsim, the vLLM stand-in: 4 requests in its running batch, the rest
	// waiting; a completion of 16 tokens takes some 270 ms of simulated
	// time (prefill, then a decode step of about 14.5 ms per token, the
	// step model of docs/activator.md's routing benchmark), 200 ms of wall
	// time at --time-scale 0.75.
	if err := stack.InstallApp(ctx, c.Client, applier, stack.App{
		Namespace: namespace, Image: cluster.LLMSimImage, LLMSim: true, TimeScale: 0.75, Concurrency: 4,
		MaxReplicas: 4, PollingInterval: 2, CooldownPeriod: 15,
		ScalerAddress: scaler, RuleSet: "sample",
	}); err != nil {
		return err
	}
	if err := stack.WaitScaling(ctx, c.Client, "http://"+scalerHTTP+"/metrics", namespace); err != nil {
		return err
	}
	fmt.Fprintf(w, "Rule set %q: replicas = max(inflight + queued, running + waiting) / 4, min 0, max 4\n(running and waiting: the pods' vllm:num_requests_running and vllm:num_requests_waiting, from Prometheus).\n\n", "sample")

	g := load.NewGenerator("http://"+activator+"/v1/completions", stack.Host(namespace))
	g.Body = []byte(`{"model": "sample", "prompt": "Say something about autoscaling in one short sentence.", "max_tokens": 16}`)
	var (
		mu      sync.Mutex
		clients int
		rows    []sample
	)
	start := time.Now()
	observe := func() sample {
		s := sample{t: time.Since(start)}
		mu.Lock()
		s.clients = clients
		mu.Unlock()
		match := map[string]string{"route": namespace}
		s.inflight, s.haveProxied = stack.PodsMetric(ctx, c.Client, "nemesis", "app=nemesis-activator", "9091", "nemesis_activator_requests_in_flight", match)
		s.queued, _ = stack.PodsMetric(ctx, c.Client, "nemesis", "app=nemesis-activator", "9091", "nemesis_activator_requests_queued", match)
		s.decision, s.haveDecision = stack.ReadMetric(ctx, "http://"+scalerHTTP+"/metrics", "nemesis_scaler_desired_replicas", map[string]string{"namespace": namespace})
		if d, err := c.Client.AppsV1().Deployments(namespace).Get(ctx, "sample", metav1.GetOptions{}); err == nil {
			s.spec, s.ready = *d.Spec.Replicas, d.Status.ReadyReplicas
		}
		st := g.Stats()
		s.ok, s.failed = st.OK, st.Failed
		return s
	}
	viewCtx, stopView := context.WithCancel(ctx)
	viewDone := make(chan struct{})
	go func() {
		defer close(viewDone)
		fmt.Fprintf(w, "%7s %8s %9s %7s %9s %9s %8s %7s\n", "time", "clients", "in-flight", "queued", "decision", "replicas", "ok", "failed")
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			s := observe()
			mu.Lock()
			rows = append(rows, s)
			mu.Unlock()
			dec := "-"
			if s.haveDecision {
				dec = fmt.Sprint(s.decision)
			}
			fmt.Fprintf(w, "%6.0fs %8d %9.0f %7.0f %9s %6d/%-2d %8d %7d\n", s.t.Seconds(), s.clients, s.inflight, s.queued, dec, s.ready, s.spec, s.ok, s.failed)
			select {
			case <-viewCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	var markers []chart.Marker
	mark := func(label string) {
		markers = append(markers, chart.Marker{T: time.Since(start), Label: label})
		fmt.Fprintf(w, "── %s\n", label)
	}
	setClients := func(n int) { mu.Lock(); clients = n; mu.Unlock() }
	waitReplicas := func(want int32, limit time.Duration) (time.Duration, error) {
		t0 := time.Now()
		for time.Since(t0) < limit {
			d, err := c.Client.AppsV1().Deployments(namespace).Get(ctx, "sample", metav1.GetOptions{})
			if err == nil && *d.Spec.Replicas == want && d.Status.ReadyReplicas == want && d.Status.Replicas == want {
				return time.Since(t0), nil
			}
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		return 0, fmt.Errorf("%d replicas not reached within %v", want, limit)
	}
	var problems []error
	time.Sleep(3 * time.Second)

	// 1. Scale from zero.
	mark("scale from zero: 40 requests at once, 0 replicas")
	setClients(40)
	burstStart := time.Now()
	g.Burst(ctx, 40)
	setClients(0)
	first := g.Stats().FirstResponse
	fromZero := fmt.Sprintf("40 requests at 0 replicas: first answer after %v, all after %v", first.Sub(burstStart).Round(time.Millisecond), time.Since(burstStart).Round(time.Millisecond))
	fmt.Fprintln(w, "── "+fromZero)

	// 2. Scale out.
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var reached []string
	step := duration / 3
	for i, n := range []int{4, 8, 16} {
		add := n
		if i > 0 {
			add = n / 2
		}
		mark(fmt.Sprintf("scale out: %d clients", n))
		setClients(n)
		wg.Add(1)
		go func() { defer wg.Done(); g.Workers(loadCtx, add) }()
		want := int32(n / 4)
		t0 := time.Now()
		if took, err := waitReplicas(want, 2*time.Minute); err != nil {
			problems = append(problems, err)
		} else {
			reached = append(reached, fmt.Sprintf("%d clients → %d ready replicas in %v", n, want, took.Round(100*time.Millisecond)))
		}
		if rest := step - time.Since(t0); rest > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(rest):
			}
		}
	}

	// 3. Scale to zero.
	mark("load stops: scale to zero after the 15 s cooldown")
	stopLoad()
	wg.Wait()
	setClients(0)
	toZero, err := waitReplicas(0, 3*time.Minute)
	if err != nil {
		problems = append(problems, err)
	}
	time.Sleep(2 * time.Second)
	stopView()
	<-viewDone
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}

	st := g.Stats()
	fmt.Fprintf(w, "\nSummary\n  %s\n", fromZero)
	for _, r := range reached {
		fmt.Fprintf(w, "  %s\n", r)
	}
	fmt.Fprintf(w, "  load stopped → 0 replicas in %v\n  requests: %s\n", toZero.Round(100*time.Millisecond), st)
	if st.Failed > 0 {
		problems = append(problems, fmt.Errorf("%d requests failed", st.Failed))
	}

	mu.Lock()
	drawn := chartOf(rows, markers)
	mu.Unlock()
	if abs, err := filepath.Abs(out); err == nil {
		out = abs
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := drawn.WriteSVG(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(w, "  chart: %s\n", out)
	return errors.Join(problems...)
}

func chartOf(rows []sample, markers []chart.Marker) *chart.Chart {
	series := []chart.Series{
		{Name: "clients", Unit: "requests", Axis: chart.Left},
		{Name: "in flight at the activators", Unit: "requests", Axis: chart.Left},
		{Name: "queued at the activators", Unit: "requests", Axis: chart.Left},
		{Name: "scaler decision", Unit: "replicas", Axis: chart.Right, Step: true},
		{Name: "ready replicas", Unit: "replicas", Axis: chart.Right, Step: true},
	}
	for _, r := range rows {
		series[0].Points = append(series[0].Points, chart.Point{T: r.t, V: float64(r.clients)})
		if r.haveProxied {
			series[1].Points = append(series[1].Points, chart.Point{T: r.t, V: r.inflight})
			series[2].Points = append(series[2].Points, chart.Point{T: r.t, V: r.queued})
		}
		if r.haveDecision {
			series[3].Points = append(series[3].Points, chart.Point{T: r.t, V: r.decision})
		}
		series[4].Points = append(series[4].Points, chart.Point{T: r.t, V: float64(r.ready)})
	}
	return &chart.Chart{Title: "Nemesis demo: scale from zero, scale out, scale to zero", Series: series, Markers: markers}
}
