package externalscaler

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/k8s-nemesis/nemesis/internal/promtest"
)

// scrapeInterval is the shared Prometheus' scrape interval.
const scrapeInterval = 200 * time.Millisecond

// shared is the one Prometheus of the test binary and the exporter it
// scrapes. Starting Prometheus takes seconds, so it is started on first use
// (unit tests never pay for it) and stopped by TestMain. Tests keep apart by
// using their own label values, and each one resets the exporter when done.
var shared struct {
	once sync.Once
	exp  *promtest.Exporter
	prom *promtest.Server
	err  error
}

func TestMain(m *testing.M) {
	// KEDA's scalers log through controller-runtime; without a logger it
	// complains after 30s with a stack trace.
	logf.SetLogger(logr.Discard())
	code := m.Run()
	if shared.prom != nil {
		if err := shared.prom.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	if shared.exp != nil {
		if err := shared.exp.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// sharedProm returns the shared Prometheus and its exporter, starting them on
// first use. A missing or broken Prometheus fails tb: it is never a skip.
// The exporter is reset when tb ends.
func sharedProm(tb testing.TB) (*promtest.Server, *promtest.Exporter) {
	tb.Helper()
	shared.once.Do(func() {
		exp, err := promtest.NewExporter()
		if err != nil {
			shared.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		prom, err := promtest.Start(ctx, promtest.Options{
			ScrapeTargets:  []string{exp.Addr()},
			ScrapeInterval: scrapeInterval,
		})
		if err != nil {
			_ = exp.Close()
			shared.err = fmt.Errorf("starting the shared Prometheus: %w", err)
			return
		}
		shared.exp, shared.prom = exp, prom
	})
	if shared.err != nil {
		tb.Fatalf("%v", shared.err)
	}
	tb.Cleanup(shared.exp.Reset)
	return shared.prom, shared.exp
}

// needProm is sharedProm for tests: like promtest.StartServer, it skips
// them in -short mode only. Benchmarks call sharedProm and never skip.
func needProm(t *testing.T) (*promtest.Server, *promtest.Exporter) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real Prometheus, which is slow (-short)")
	}
	return sharedProm(t)
}

// waitProm waits until Prometheus answers query with want.
func waitProm(tb testing.TB, prom *promtest.Server, query string, want float64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := prom.WaitForValue(ctx, query, want); err != nil {
		tb.Fatalf("%v", err)
	}
}
