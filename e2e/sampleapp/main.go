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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/k8s-nemesis/nemesis/e2e/internal/command"
)

func main() { command.Main("sampleapp", run) }

// config is everything sampleapp is told on its command line.
type config struct {
	address       string
	model         string
	latency       time.Duration
	jitter        float64
	concurrency   int
	maxWaiting    int
	startupDelay  time.Duration
	shutdownGrace time.Duration
	idleTimeout   time.Duration
}

// parseFlags reads args and reports every problem at once.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("sampleapp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.address, "address", ":8000", "address to listen on")
	fs.StringVar(&c.model, "model", "sample", "model name, the model_name label of the vllm: gauges")
	fs.DurationVar(&c.latency, "latency", 200*time.Millisecond, "mean time to serve one request once it holds a slot")
	fs.Float64Var(&c.jitter, "jitter", 0.1, "latency varies uniformly within ± this fraction of --latency (0 to 1)")
	fs.IntVar(&c.concurrency, "concurrency", 4, "requests served at once; more wait in a FIFO queue")
	fs.IntVar(&c.maxWaiting, "max-waiting", 1000, "requests that may wait for a slot; more get 503")
	fs.DurationVar(&c.startupDelay, "startup-delay", 2*time.Second, "/ready fails this long after start, as while a model loads")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 30*time.Second, "on SIGTERM, how long running and waiting requests may take to finish")
	// uvicorn, which serves vLLM and most Python model servers, closes a
	// keep-alive connection idle for its timeout_keep_alive, 5 s by default.
	// A proxy in front of such a server must cope with connections it
	// pooled being closed under it; the suite's stand-in does the same so
	// that it finds out.
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 5*time.Second, "close a keep-alive connection idle this long, as uvicorn's timeout_keep_alive (default 5s) does; 0: never")
	if err := command.Parse(fs, args); err != nil {
		return c, err
	}
	var problems []error
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Errorf("unexpected arguments: %q", fs.Args()))
	}
	if c.address == "" {
		problems = append(problems, errors.New("--address must not be empty"))
	}
	if strings.TrimSpace(c.model) == "" {
		problems = append(problems, fmt.Errorf("--model %q must not be blank", c.model))
	}
	if c.jitter < 0 || c.jitter > 1 {
		problems = append(problems, fmt.Errorf("--jitter %q must be between 0 and 1", fmt.Sprint(c.jitter)))
	}
	if c.concurrency < 1 {
		problems = append(problems, fmt.Errorf("--concurrency %q must be at least 1", fmt.Sprint(c.concurrency)))
	}
	if c.maxWaiting < 0 {
		problems = append(problems, fmt.Errorf("--max-waiting %q must not be negative", fmt.Sprint(c.maxWaiting)))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--latency", c.latency}, {"--startup-delay", c.startupDelay}, {"--shutdown-grace", c.shutdownGrace}, {"--idle-timeout", c.idleTimeout}} {
		if d.v < 0 {
			problems = append(problems, fmt.Errorf("%s %q must not be negative", d.name, d.v))
		}
	}
	return c, command.Usage(errors.Join(problems...))
}

// run serves until ctx ends, then drains: see the package documentation.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	pod := os.Getenv("POD_NAME")
	if pod == "" {
		if pod, err = os.Hostname(); err != nil {
			return fmt.Errorf("naming the pod: POD_NAME is unset and %w", err)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := newServer(cfg, pod, reg)
	ln, err := net.Listen("tcp", cfg.address)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	// With no ReadTimeout, an IdleTimeout of zero is no idle timeout at all.
	srv := &http.Server{Handler: s.handler(reg), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: cfg.idleTimeout}
	logger.Info("sampleapp started",
		"address", ln.Addr().String(), "pod", pod, "model", cfg.model,
		"latency", cfg.latency.String(), "jitter", cfg.jitter,
		"concurrency", cfg.concurrency, "max_waiting", cfg.maxWaiting,
		"startup_delay", cfg.startupDelay.String(), "shutdown_grace", cfg.shutdownGrace.String(),
		"idle_timeout", cfg.idleTimeout.String())

	// One component, so no lifecycle group: serve until a signal, then drain.
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}

	// Readiness fails at once so that the endpoint is removed, but the
	// listener stays open until the queue is empty: requests still routed
	// here meanwhile are served rather than refused. Shutdown then waits for
	// the connections still busy, within what is left of the grace.
	began := time.Now()
	s.draining.Store(true)
	graceCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownGrace)
	defer cancel()
	s.wait(graceCtx)
	shutdownErr := srv.Shutdown(graceCtx)
	running, waiting := s.q.counts()
	if shutdownErr != nil {
		srv.Close() // drops the connections still open; their handlers see their contexts end
	}
	<-served // http.ErrServerClosed, now that Shutdown or Close has run
	logger.Info("sampleapp stopped",
		"served", s.served.Load(), "rejected", s.rejected.Load(), "abandoned", s.abandoned.Load(),
		"graceful", shutdownErr == nil, "drain", time.Since(began).Round(time.Millisecond).String())
	if shutdownErr != nil {
		return fmt.Errorf("shutting down: grace of %s exceeded with %d requests running and %d waiting: %w",
			cfg.shutdownGrace, running, waiting, shutdownErr)
	}
	return nil
}
