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
	"os"
	"strings"
	"sync/atomic"
	"time"

	oklog "github.com/oklog/run"
	"k8s.io/client-go/kubernetes"

	"github.com/k8s-nemesis/nemesis/activator"
	"github.com/k8s-nemesis/nemesis/demand"
	"github.com/k8s-nemesis/nemesis/internal/statuspage"
	"github.com/k8s-nemesis/nemesis/kube"
	"github.com/k8s-nemesis/nemesis/metrics"
)

// activatorConfig is everything `nemesis activator` is told on its command
// line.
type activatorConfig struct {
	config            string
	httpAddress       string
	adminAddress      string
	drainTimeout      time.Duration
	shutdownDelay     time.Duration
	configResync      time.Duration
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int
	maxConns          int
	maxConnections    int
	kubeconfig        string
	id                string
	prom              metrics.ClientConfig
	logLevel          slog.Level
}

func parseActivatorFlags(args []string, stderr io.Writer) (*activatorConfig, error) {
	// The metric policy refreshes each route's query on its own schedule
	// (refresh, which may be under the scaler's 2 s default cache): no
	// result cache, so that every refresh reads Prometheus. Concurrent
	// identical queries are still sent once.
	c := &activatorConfig{prom: metrics.ClientConfig{Headers: map[string]string{}, CacheTTL: -1}}
	fs := flag.NewFlagSet("nemesis activator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.config, "config", "", "activator configuration file (routes); reloaded on change (required)")
	fs.StringVar(&c.httpAddress, "http-address", ":8080", "address of the proxy (HTTP/1.1 and h2c)")
	fs.StringVar(&c.adminAddress, "admin-address", ":9090", "address serving the status page (/), /metrics, /healthz, /readyz, the demand stream /demand/watch and the status /api/v1/status; unauthenticated: keep it cluster-internal")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 30*time.Second, "on shutdown, how long in-flight and held requests may finish")
	fs.DurationVar(&c.shutdownDelay, "shutdown-delay", 5*time.Second, "on shutdown, how long /readyz fails before the proxy stops accepting, so that load balancers move away")
	fs.DurationVar(&c.configResync, "config-resync", 30*time.Second, "re-read the configuration this often even without a file event")
	fs.DurationVar(&c.readHeaderTimeout, "read-header-timeout", activator.DefaultReadHeaderTimeout, "how long a client may take to send a request head")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", activator.DefaultIdleTimeout, "how long an idle client keep-alive connection stays open")
	fs.IntVar(&c.maxHeaderBytes, "max-header-bytes", activator.DefaultMaxHeaderBytes, "largest request head; larger ones get 431")
	fs.IntVar(&c.maxConns, "max-conns-per-endpoint", activator.DefaultMaxConnsPerEndpoint, "most connections to one endpoint, idle and in use; requests beyond wait for one (a released queue does not flood a fresh pod)")
	fs.IntVar(&c.maxConnections, "max-connections", activator.DefaultMaxConnections, "most client connections served at once, held requests included; more are closed at once and counted (0: no cap)")
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig for service routes; in a cluster the pod's service account is used")
	hostname, _ := os.Hostname()
	fs.StringVar(&c.id, "id", hostname, "this replica's name in the demand stream scalers read from /demand/watch (default: the host name, which is the pod name)")
	fs.StringVar(&c.prom.URL, "prometheus-url", "", "Prometheus base URL, for routes with policy: metric")
	fs.StringVar(&c.prom.BearerTokenFile, "prometheus-bearer-token-file", "", "file holding a bearer token for Prometheus, re-read on every request")
	fs.Var(headerMap(c.prom.Headers), "prometheus-header", `extra header on every Prometheus request, "Name: value" (repeatable)`)
	fs.DurationVar(&c.prom.Timeout, "prometheus-timeout", metrics.DefaultTimeout, "timeout of one Prometheus query")
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
	if c.config == "" {
		problems = append(problems, "--config is required")
	}
	for name, d := range map[string]time.Duration{"--drain-timeout": c.drainTimeout, "--read-header-timeout": c.readHeaderTimeout, "--idle-timeout": c.idleTimeout} {
		if d <= 0 {
			problems = append(problems, name+" must be positive")
		}
	}
	if c.shutdownDelay < 0 || c.configResync < 0 {
		problems = append(problems, "--shutdown-delay and --config-resync must not be negative")
	}
	if c.maxHeaderBytes <= 0 {
		problems = append(problems, "--max-header-bytes must be positive")
	}
	if c.maxConns <= 0 {
		problems = append(problems, "--max-conns-per-endpoint must be positive")
	}
	if c.maxConnections < 0 {
		problems = append(problems, "--max-connections must not be negative")
	}
	if len(problems) > 0 {
		return nil, usageError("%s", strings.Join(problems, "; "))
	}
	return c, nil
}

func runActivator(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseActivatorFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	proc, err := startProcess(ctx, stderr, cfg.logLevel, "activator")
	if err != nil {
		return err
	}
	defer proc.close()
	logger, reg := proc.logger, proc.reg

	opts := activator.Options{
		Logger:              logger,
		Registerer:          reg,
		TracerProvider:      proc.tp,
		Propagator:          proc.prop,
		ReadHeaderTimeout:   cfg.readHeaderTimeout,
		IdleTimeout:         cfg.idleTimeout,
		MaxHeaderBytes:      cfg.maxHeaderBytes,
		MaxConnsPerEndpoint: cfg.maxConns,
		MaxConnections:      cfg.maxConnections,
	}
	if cfg.prom.URL != "" {
		client, err := metrics.NewClient(cfg.prom, logger, reg, proc.tp)
		if err != nil {
			return usageError("%v", err)
		}
		opts.Metrics = client
	}
	// Demand: every scaler watches every activator's counts on the admin
	// address, so that scale-from-zero does not wait for a scrape.
	tracker := demand.NewTracker(cfg.id, demand.TrackerOptions{Logger: logger, Registerer: reg})
	opts.Demand = tracker
	// Service routes need the EndpointSlices of their Services: from the
	// cluster the activator runs in, or from --kubeconfig. Without either,
	// service routes are refused as configuration errors.
	var services *kube.ServiceEndpoints
	if cfg.kubeconfig != "" || os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		rc, err := kube.RestConfig(cfg.kubeconfig)
		if err != nil {
			return usageError("%v", err)
		}
		client, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return usageError("kubernetes client: %v", err)
		}
		services = kube.NewServiceEndpoints(client, logger, reg)
		opts.Services = services
	}

	// Everything is checked before anything starts: configuration, listeners.
	act := activator.New(opts)
	defer act.Close()
	if _, err := act.Load(cfg.config); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			logger.Error("invalid configuration", "problem", line)
		}
		return &exitError{code: 2, err: fmt.Errorf("invalid configuration:\n%w", err)}
	}
	httpLis, err := net.Listen("tcp", cfg.httpAddress)
	if err != nil {
		return usageError("listening for the proxy: %v", err)
	}
	adminLis, err := net.Listen("tcp", cfg.adminAddress)
	if err != nil {
		httpLis.Close()
		return usageError("listening for the admin server: %v", err)
	}
	var ready atomic.Bool

	var g oklog.Group
	proc.addSignals(&g, ctx, "shutdownDelay", cfg.shutdownDelay.String(), "drainTimeout", cfg.drainTimeout.String())
	// Configuration watcher: needs nothing stopped before it.
	addBackground(&g, func(ctx context.Context) error { return act.Watch(ctx, cfg.config, cfg.configResync) })
	// Proxy: on stop, fail /readyz first and wait --shutdown-delay so that
	// endpoints and load balancers drop this replica, then stop accepting
	// and let in-flight and held requests finish within --drain-timeout.
	{
		srv := act.Server()
		g.Add(func() error {
			ready.Store(true)
			logger.Info("serving activator", "httpAddress", httpLis.Addr().String(), "adminAddress", adminLis.Addr().String(),
				"config", cfg.config, "routes", len(act.Config().Routes))
			if err := srv.Serve(httpLis); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		}, func(error) {
			ready.Store(false)
			if cfg.shutdownDelay > 0 {
				time.Sleep(cfg.shutdownDelay)
			}
			dctx, cancel := context.WithTimeout(context.Background(), cfg.drainTimeout)
			defer cancel()
			if err := act.Shutdown(dctx, srv); err != nil {
				logger.Warn("drain timeout passed; remaining requests were cut off", "err", err)
			} else {
				logger.Info("drained")
			}
		})
	}
	// Admin server for metrics, probes, the demand stream and the status:
	// stops after the proxy, so that /readyz answers 503 throughout the
	// drain.
	{
		mux := proc.adminMux(&ready, func() string { return fmt.Sprintf("%d routes", len(act.Config().Routes)) })
		mux.Handle("GET "+demand.WatchPath, tracker.Handler())
		act.RegisterAPI(mux)
		statuspage.RegisterActivator(mux, act, statuspage.ActivatorOptions{Logger: logger})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		// Shutdown would wait for the open demand streams forever.
		srv.RegisterOnShutdown(tracker.Close)
		addHTTPServer(&g, srv, adminLis)
	}
	// EndpointSlice informers: interrupted after the proxy's drain above
	// (oklog/run interrupts in order), so that held requests still see
	// endpoints turn ready while they drain.
	if services != nil {
		addBackground(&g, services.Run)
	}
	return g.Run()
}

// kube.ServiceEndpoints is the activator's source of Service endpoints, and
// names the pods behind them for the metric policy.
var (
	_ activator.ServiceEndpoints = (*kube.ServiceEndpoints)(nil)
	_ activator.PodNamer         = (*kube.ServiceEndpoints)(nil)
)
