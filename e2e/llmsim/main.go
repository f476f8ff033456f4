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

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/k8s-nemesis/nemesis/e2e/internal/command"
)

func main() { command.Main("llmsim", runMain) }

// config is everything llmsim is told on its command line.
type config struct {
	address           string
	model             string
	name              string
	maxNumSeqs        int
	maxWaiting        int
	maxModelLen       int
	kvBlocks          int
	maxPrefill        int
	timeScale         float64
	slowdown          float64
	metricsFault      metricsFault
	metricsFaultDelay time.Duration
	idleTimeout       time.Duration
	shutdownGrace     time.Duration
}

// parseFlags reads args and reports every problem at once.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	var fault string
	fs := flag.NewFlagSet("llmsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.address, "address", ":8000", "address to listen on (vLLM's port is 8000)")
	fs.StringVar(&c.model, "model", "llmsim", "model name: the model_name label, /v1/models, and the model requests must name (or leave out)")
	fs.StringVar(&c.name, "name", "", "pod name sent in the x-inference-pod header (default $POD_NAME, else the host name)")
	fs.IntVar(&c.maxNumSeqs, "max-num-seqs", 16, "requests in the running batch at most, vLLM's max_num_seqs")
	fs.IntVar(&c.maxWaiting, "max-waiting", 1000, "requests that may wait beyond the free places in the batch; more are refused with 429")
	fs.IntVar(&c.maxModelLen, "max-model-len", 8192, "context length: prompt plus max_tokens beyond it is refused with 400")
	fs.IntVar(&c.kvBlocks, "kv-blocks", 2048, "KV-cache blocks of 16 tokens, vLLM's num_gpu_blocks")
	fs.IntVar(&c.maxPrefill, "max-prefill-tokens-per-step", 512, "prompt tokens prefilled per engine step at most (chunked prefill)")
	fs.Float64Var(&c.timeScale, "time-scale", 1, "wall time per simulated time: 0.5 runs twice as fast; metrics and usage report simulated seconds")
	fs.Float64Var(&c.slowdown, "slowdown", 1, "multiplies every engine step's time, as a slower GPU would")
	fs.StringVar(&fault, "metrics-fault", "none", "how /metrics misbehaves: none, slow, hang, huge, malformed, missing or error (PUT /sim/metrics-fault changes it)")
	fs.DurationVar(&c.metricsFaultDelay, "metrics-fault-delay", time.Second, "how long /metrics waits under the slow fault (wall time)")
	// uvicorn, which serves vLLM, closes a keep-alive connection idle for
	// its timeout_keep_alive, 5 s by default; a proxy pooling connections
	// to llmsim meets the same races as in production.
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 5*time.Second, "close a keep-alive connection idle this long, as uvicorn's timeout_keep_alive (default 5s) does; 0: never")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 30*time.Second, "on SIGTERM, how long requests in flight may take to finish")
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
	for _, n := range []struct {
		name string
		v    int
	}{{"--max-num-seqs", c.maxNumSeqs}, {"--max-model-len", c.maxModelLen}, {"--kv-blocks", c.kvBlocks}, {"--max-prefill-tokens-per-step", c.maxPrefill}} {
		if n.v < 1 {
			problems = append(problems, fmt.Errorf("%s %q must be at least 1", n.name, fmt.Sprint(n.v)))
		}
	}
	if c.maxWaiting < 0 {
		problems = append(problems, fmt.Errorf("--max-waiting %q must not be negative", fmt.Sprint(c.maxWaiting)))
	}
	if c.kvBlocks >= 1 && c.maxModelLen > c.kvBlocks*blockSize {
		// vLLM refuses to start when one sequence of max_model_len would
		// not fit in the KV cache; here such a request could never run.
		problems = append(problems, fmt.Errorf("--max-model-len %q must fit in the KV cache of --kv-blocks %d × %d = %d tokens",
			fmt.Sprint(c.maxModelLen), c.kvBlocks, blockSize, c.kvBlocks*blockSize))
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"--time-scale", c.timeScale}, {"--slowdown", c.slowdown}} {
		if !(f.v > 0 && f.v < 1e6) {
			problems = append(problems, fmt.Errorf("%s %q must be a number above 0", f.name, fmt.Sprint(f.v)))
		}
	}
	var err error
	if c.metricsFault, err = parseFault(fault); err != nil {
		problems = append(problems, fmt.Errorf("--metrics-fault: %w", err))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--metrics-fault-delay", c.metricsFaultDelay}, {"--idle-timeout", c.idleTimeout}, {"--shutdown-grace", c.shutdownGrace}} {
		if d.v < 0 {
			problems = append(problems, fmt.Errorf("%s %q must not be negative", d.name, d.v))
		}
	}
	return c, command.Usage(errors.Join(problems...))
}

// assemble wires an engine, its real-time runner and the HTTP side, with
// a private metrics registry.
func assemble(cfg config, pod string) (*sim, *server) {
	reg := prometheus.NewRegistry()
	ttft, latency := newHistograms(cfg.model)
	e := newEngine(engineConfig{
		maxNumSeqs: cfg.maxNumSeqs, maxWaiting: cfg.maxWaiting, maxModelLen: cfg.maxModelLen,
		kvBlocks: cfg.kvBlocks, maxPrefill: cfg.maxPrefill, slowdown: cfg.slowdown,
		ttft: ttft, latency: latency,
	})
	s := newSim(e, cfg.timeScale)
	reg.MustRegister(ttft, latency, newEngineCollector(s, cfg.model, cfg.kvBlocks),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return s, newServer(cfg, pod, s, reg)
}

// runMain serves until ctx ends, then shuts down: see the package
// documentation.
func runMain(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	pod := cfg.name
	if pod == "" {
		pod = os.Getenv("POD_NAME")
	}
	if pod == "" {
		if pod, err = os.Hostname(); err != nil {
			return fmt.Errorf("naming the pod: --name and POD_NAME are unset and %w", err)
		}
	}

	s, api := assemble(cfg, pod)

	ln, err := net.Listen("tcp", cfg.address)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	// With no ReadTimeout, an IdleTimeout of zero is no idle timeout at all.
	srv := &http.Server{Handler: api.handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: cfg.idleTimeout}
	srv.RegisterOnShutdown(api.stop)
	logger.Info("llmsim started",
		"address", ln.Addr().String(), "pod", pod, "model", cfg.model,
		"max_num_seqs", cfg.maxNumSeqs, "max_waiting", cfg.maxWaiting, "max_model_len", cfg.maxModelLen,
		"kv_blocks", cfg.kvBlocks, "max_prefill_tokens_per_step", cfg.maxPrefill,
		"time_scale", cfg.timeScale, "slowdown", cfg.slowdown, "metrics_fault", cfg.metricsFault.String())

	var g run.Group
	// The signal: ends the group, which stops the others in the order below.
	{
		sigCtx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			<-sigCtx.Done()
			return nil
		}, func(error) { cancel() })
	}
	// The HTTP server: stops accepting, then lets requests in flight finish
	// within --shutdown-grace. It needs the engine still running, so it is
	// interrupted (and waited for) before the engine.
	var shutdownErr error
	{
		g.Add(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving: %w", err)
			}
			return nil
		}, func(error) {
			graceCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownGrace)
			defer cancel()
			if err := srv.Shutdown(graceCtx); err != nil {
				shutdownErr = fmt.Errorf("shutting down: grace of %s exceeded: %w", cfg.shutdownGrace, err)
				srv.Close() // handlers still running see their contexts end
			}
		})
	}
	// The engine: nothing depends on it once the server is down.
	{
		engineCtx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		g.Add(func() error {
			defer close(done)
			s.run(engineCtx)
			return nil
		}, func(error) {
			cancel()
			<-done
		})
	}
	began := time.Now()
	err = g.Run()
	snap := s.snapshot()
	logger.Info("llmsim stopped",
		"graceful", shutdownErr == nil, "uptime", time.Since(began).Round(time.Millisecond).String(),
		"finished", snap.count.success[reasonLength], "aborted", snap.count.success[reasonAbort],
		"preemptions", snap.count.preemptions)
	return errors.Join(err, shutdownErr)
}
