package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	oklog "github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// process is what every long-running command sets up first: JSON logs, a
// registry with the Go and process collectors, and tracing.
type process struct {
	logger      *slog.Logger
	reg         *prometheus.Registry
	tp          trace.TracerProvider
	prop        propagation.TextMapPropagator
	stopTracing func(context.Context) error
}

func startProcess(ctx context.Context, stderr io.Writer, level slog.Level, component string) (*process, error) {
	p := &process{
		logger: slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})).With("component", component),
		reg:    prometheus.NewRegistry(),
	}
	p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var err error
	if p.tp, p.prop, p.stopTracing, err = setupTracing(ctx, "nemesis-"+component); err != nil {
		return nil, usageError("%v", err)
	}
	return p, nil
}

// close flushes the traces still buffered.
func (p *process) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.stopTracing(ctx)
}

// addSignals ends the group on the first SIGINT or SIGTERM (ctx's end).
func (p *process) addSignals(g *oklog.Group, ctx context.Context, attrs ...any) {
	sctx, cancel := context.WithCancel(ctx)
	g.Add(func() error {
		<-sctx.Done()
		if ctx.Err() != nil {
			p.logger.Info("shutting down", attrs...)
		}
		return nil
	}, func(error) { cancel() })
}

// addBackground runs a component until the group stops.
func addBackground(g *oklog.Group, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error { return run(ctx) }, func(error) { cancel() })
}

// adminMux serves /metrics, /healthz, and /readyz, which answers 200 with
// status() while ready is true and 503 otherwise.
func (p *process) adminMux(ready *atomic.Bool, status func() string) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{Registry: p.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok: "+status())
	})
	return mux
}

// addHTTPServer serves srv on lis until the group stops, then shuts it down.
func addHTTPServer(g *oklog.Group, srv *http.Server, lis net.Listener) {
	g.Add(func() error {
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, func(error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
}
