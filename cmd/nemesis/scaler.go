package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	oklog "github.com/oklog/run"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"k8s.io/client-go/kubernetes"

	"github.com/k8s-nemesis/nemesis/demand"
	"github.com/k8s-nemesis/nemesis/externalscaler"
	"github.com/k8s-nemesis/nemesis/internal/statuspage"
	"github.com/k8s-nemesis/nemesis/kube"
	"github.com/k8s-nemesis/nemesis/metrics"
	"github.com/k8s-nemesis/nemesis/rules"
)

// scalerConfig is everything `nemesis scaler` is told on its command line.
type scalerConfig struct {
	rules           stringList
	activators      stringList
	activatorSvc    serviceRef
	kubeconfig      string
	grpcAddress     string
	httpAddress     string
	prom            metrics.ClientConfig
	tls             externalscaler.TLSFiles
	reuseFor        time.Duration
	pushInterval    time.Duration
	rulesResync     time.Duration
	shutdownTimeout time.Duration
	maxTriggers     int
	events          bool
	uiTry           bool
	logLevel        slog.Level
}

func parseScalerFlags(args []string, stderr io.Writer) (*scalerConfig, error) {
	c := &scalerConfig{prom: metrics.ClientConfig{Headers: map[string]string{}}}
	fs := flag.NewFlagSet("nemesis scaler", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&c.rules, "rules", "rule file, or directory of *.yaml rule files (repeatable); reloaded on change")
	fs.Var(&c.activators, "activator", "base URL of one activator replica's admin address to watch for demand, e.g. http://activator-0.activator:9091 (repeatable; each replica once, never a load-balanced Service)")
	fs.Var(&c.activatorSvc, "activator-service", "watch every replica of the activator Service NAMESPACE/NAME:ADMIN_PORT for demand, following its EndpointSlices as replicas come and go")
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig for --activator-service and the built-ins current and ready; in a cluster the pod's service account is used")
	fs.StringVar(&c.grpcAddress, "grpc-address", ":9400", "address of the gRPC server KEDA calls")
	fs.StringVar(&c.httpAddress, "http-address", ":8080", "address serving the status page (/), /metrics, /healthz, /readyz and the JSON API /api/v1/ (decisions, rule sets); unauthenticated: keep it cluster-internal")
	addPrometheusFlags(fs, &c.prom, "Prometheus base URL, e.g. http://prometheus.monitoring:9090 (required)", metrics.DefaultTimeout)
	fs.DurationVar(&c.prom.CacheTTL, "query-cache-ttl", metrics.DefaultCacheTTL, "identical rendered queries within this window are sent to Prometheus once")
	fs.DurationVar(&c.reuseFor, "evaluation-reuse", time.Second, "one evaluation answers all calls for a ScaledObject within this window (KEDA's GetMetrics + IsActive pair)")
	fs.DurationVar(&c.pushInterval, "push-interval", time.Second, "how often open StreamIsActive streams re-evaluate")
	fs.DurationVar(&c.rulesResync, "rules-resync", 30*time.Second, "re-read the rule files this often even without a file event")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long open calls may finish on shutdown")
	fs.IntVar(&c.maxTriggers, "max-scaled-objects", externalscaler.DefaultMaxScaledObjects, "most triggers (ScaledObject and trigger metadata) served at once; beyond, new ones get ResourceExhausted until others go unused for 15m")
	fs.BoolVar(&c.uiTry, "ui-try", false, "serve the status page's \"try a rule set\" form (POST /try, POST /api/v1/try): anyone who reaches --http-address can then run PromQL queries on Prometheus through the scaler; off by default, as the address has no authentication")
	fs.BoolVar(&c.events, "events", true, "record Kubernetes Events on ScaledObjects when a decision or its state changes (needs Kubernetes access and create/patch on events.k8s.io events; docs/operations.md)")
	fs.StringVar(&c.tls.CertFile, "tls-cert-file", "", "serve gRPC over TLS with this certificate (KEDA: enableTLS / caCert)")
	fs.StringVar(&c.tls.KeyFile, "tls-key-file", "", "key of --tls-cert-file")
	fs.StringVar(&c.tls.ClientCAFile, "client-ca-file", "", "require client certificates signed by these CAs (mTLS; KEDA: tlsClientCert / tlsClientKey)")
	fs.TextVar(&c.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError("%v", err)
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	if len(c.rules) == 0 {
		problems = append(problems, "--rules is required")
	}
	if c.prom.URL == "" {
		problems = append(problems, "--prometheus-url is required")
	}
	for _, a := range c.activators {
		if _, err := demand.WatchURL(a); err != nil {
			problems = append(problems, "--activator: "+err.Error())
		}
	}
	if len(c.activators) > 0 && c.activatorSvc.name != "" {
		problems = append(problems, "--activator and --activator-service exclude each other: name the replicas, or the Service that finds them")
	}
	if c.tls.Enabled() && (c.tls.CertFile == "" || c.tls.KeyFile == "") {
		problems = append(problems, "--tls-cert-file and --tls-key-file go together (and --client-ca-file needs both)")
	}
	for name, d := range map[string]time.Duration{"--evaluation-reuse": c.reuseFor, "--push-interval": c.pushInterval, "--rules-resync": c.rulesResync, "--shutdown-timeout": c.shutdownTimeout} {
		if d <= 0 {
			problems = append(problems, name+" must be positive")
		}
	}
	if c.maxTriggers <= 0 {
		problems = append(problems, "--max-scaled-objects must be positive")
	}
	if len(problems) > 0 {
		return nil, usageError("%s", strings.Join(problems, "; "))
	}
	return c, nil
}

func runScaler(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseScalerFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	proc, err := startProcess(ctx, stderr, cfg.logLevel, "scaler")
	if err != nil {
		return err
	}
	defer proc.close()
	logger, reg, tp := proc.logger, proc.reg, proc.tp

	// Everything is checked before anything starts: rules, Prometheus
	// client, TLS files, listeners.
	store, err := externalscaler.NewRuleStore(cfg.rules, logger, reg)
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			logger.Error("invalid rules", "problem", line)
		}
		return &exitError{code: 2, err: fmt.Errorf("invalid rules:\n%w", err)}
	}
	client, err := metrics.NewClient(cfg.prom, logger, reg, tp)
	if err != nil {
		return usageError("%v", err)
	}
	// Kubernetes access: for --activator-service, and for the built-ins
	// current and ready. Without a kubeconfig and outside a cluster there
	// is none, which only rule sets using those built-ins notice.
	rc, kubeErr := kube.RestConfig(cfg.kubeconfig)
	if kubeErr != nil && (cfg.kubeconfig != "" || cfg.activatorSvc.name != "") {
		return usageError("%v", kubeErr)
	}
	var (
		targets *kube.ScaleTargets
		kc      kubernetes.Interface // for --activator-service too
		events  *kube.Events
	)
	if kubeErr == nil {
		// One scale subresource read per ScaledObject per second
		// (ScaleTTL) would exceed client-go's default of 5 requests/s
		// with a handful of ScaledObjects.
		rc.QPS, rc.Burst = 50, 100
		clients, err := kube.NewScaleTargetClients(rc)
		if err != nil {
			return usageError("%v", err)
		}
		kc = clients.Kube
		targets = kube.NewScaleTargets(clients, kube.ScaleTargetsOptions{Logger: logger.With("component", "kube"), Registerer: reg})
		if cfg.events {
			events = kube.NewEvents(kc, kube.EventsOptions{Logger: logger.With("component", "events"), Registerer: reg, Dynamic: clients.Dynamic})
		}
	} else if uses := ruleSetsUsing(store.Current(), (*rules.RuleSet).UsesScaleTarget); len(uses) > 0 {
		logger.Warn("rule sets use current or ready, but the scaler has no Kubernetes access (no --kubeconfig, not in a cluster): they will fail (onError applies)", "ruleSets", uses, "err", kubeErr)
	}
	grpcOpts := []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(proc.prop)))}
	if cfg.tls.Enabled() {
		tlsCfg, err := externalscaler.ServerTLS(cfg.tls)
		if err != nil {
			return usageError("%v", err)
		}
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	grpcLis, err := net.Listen("tcp", cfg.grpcAddress)
	if err != nil {
		return usageError("listening for gRPC: %v", err)
	}
	httpLis, err := net.Listen("tcp", cfg.httpAddress)
	if err != nil {
		grpcLis.Close()
		return usageError("listening for HTTP: %v", err)
	}

	scalerOpts := externalscaler.Options{
		Logger:           logger,
		Registerer:       reg,
		TracerProvider:   tp,
		ReuseFor:         cfg.reuseFor,
		PushInterval:     cfg.pushInterval,
		MaxScaledObjects: cfg.maxTriggers,
	}
	if targets != nil {
		scalerOpts.ScaleTargets = targets
	}
	if events != nil {
		scalerOpts.Events = events
	}
	var (
		agg      *demand.Aggregator
		services *kube.ServiceEndpoints
		sources  demand.Sources
	)
	switch {
	case len(cfg.activators) > 0:
		sources = demand.StaticSources(cfg.activators)
	case cfg.activatorSvc.name != "":
		services = kube.NewServiceEndpoints(kc, logger.With("component", "kube"), reg)
		urls := services.URLs(cfg.activatorSvc.namespace, cfg.activatorSvc.name, cfg.activatorSvc.port, "http")
		defer urls.Close()
		sources = urls
	}
	if sources != nil {
		agg = demand.NewAggregator(sources, demand.AggregatorOptions{Logger: logger.With("component", "demand"), Registerer: reg})
		scalerOpts.Demand = agg
	} else if uses := ruleSetsUsing(store.Current(), (*rules.RuleSet).UsesDemand); len(uses) > 0 {
		logger.Warn("rule sets use inflight or queued, but no --activator is given: they will fail (onError applies)", "ruleSets", uses)
	}
	scaler := externalscaler.New(store, client, scalerOpts)
	grpcServer := grpc.NewServer(grpcOpts...)
	pb.RegisterExternalScalerServer(grpcServer, scaler)
	healthServer := health.NewServer()
	healthpb.RegisterHealthServer(grpcServer, healthServer)
	var ready atomic.Bool

	var g oklog.Group
	proc.addSignals(&g, ctx)
	// gRPC server: stops before everything that feeds its evaluations (the
	// interrupts run in this order, each waiting for the last), so that
	// evaluations during the drain still see demand and scale targets. On
	// stop: NOT_SERVING, so that KEDA and the kubelet move away; then the
	// push streams end, which never do by themselves, so that KEDA
	// reconnects to a replica that serves instead of waiting blind for the
	// shutdown timeout; then open calls finish.
	{
		g.Add(func() error {
			healthServer.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
			ready.Store(true)
			logger.Info("serving KEDA external scaler", "grpcAddress", grpcLis.Addr().String(), "tls", cfg.tls.Enabled(), "mtls", cfg.tls.ClientCAFile != "",
				"ruleSets", store.Current().Names(), "prometheus", cfg.prom.URL, "activators", []string(cfg.activators), "kubernetes", targets != nil, "events", events != nil)
			return grpcServer.Serve(grpcLis)
		}, func(error) {
			ready.Store(false)
			healthServer.Shutdown()
			scaler.Drain()
			done := make(chan struct{})
			go func() { grpcServer.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-time.After(cfg.shutdownTimeout):
				grpcServer.Stop()
			}
		})
	}
	// Rule watcher: needs nothing stopped before it.
	addBackground(&g, func(ctx context.Context) error { return store.Watch(ctx, cfg.rulesResync) })
	// Demand aggregator: watches every activator. Stops after the gRPC
	// server, so that a rise of demand during its drain is still pushed.
	if agg != nil {
		addBackground(&g, agg.Run)
	}
	// EndpointSlice informers that find the activator replicas.
	if services != nil {
		addBackground(&g, services.Run)
	}
	// ScaledObject and pod informers for current and ready. Stop after the
	// gRPC server, for the evaluations of its drain.
	if targets != nil {
		addBackground(&g, targets.Run)
	}
	// Kubernetes Events on ScaledObjects. Stop after the gRPC server, for
	// the changes of its drain; those still queued then are lost.
	if events != nil {
		addBackground(&g, events.Run)
	}
	// Scaler housekeeping (forgets ScaledObjects KEDA no longer asks about).
	addBackground(&g, scaler.Run)
	// HTTP server for metrics, probes and the decisions API: stops last of
	// the servers.
	mux := proc.adminMux(&ready, func() string { return fmt.Sprintf("rules version %d", store.Current().Version) })
	scaler.RegisterAPI(mux)
	statuspage.RegisterScaler(mux, scaler, statuspage.ScalerOptions{Try: cfg.uiTry, Logger: logger})
	addHTTPServer(&g, &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, httpLis)
	return g.Run()
}

// ruleSetsUsing names the rule sets for which uses is true.
func ruleSetsUsing(c *externalscaler.Catalog, uses func(*rules.RuleSet) bool) []string {
	var out []string
	for _, name := range c.Names() {
		if rs, ok := c.RuleSet(name); ok && uses(rs) {
			out = append(out, name)
		}
	}
	return out
}

// kube.ServiceURLs is how --activator-service feeds the aggregator.
var _ demand.Sources = (*kube.ServiceURLs)(nil)

// kube.ScaleTargets gives the scaler current and ready.
var _ externalscaler.ScaleTargets = (*kube.ScaleTargets)(nil)
