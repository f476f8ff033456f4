// Package promtest starts a real Prometheus server on loopback, scraping a
// fixture exporter whose series the caller controls, for integration tests,
// benchmarks and demos.
//
// The core API returns errors and does not need a *testing.T:
//
//	exp, err := promtest.NewExporter()
//	// ...
//	defer exp.Close()
//	srv, err := promtest.Start(ctx, promtest.Options{
//		ScrapeTargets:  []string{exp.Addr()},
//		ScrapeInterval: 200 * time.Millisecond,
//	})
//	// ...
//	defer srv.Stop()
//	exp.Set("queue_depth", map[string]string{"queue": "a"}, 42)
//	err = srv.WaitForValue(ctx, `queue_depth{queue="a"}`, 42)
//
// Tests use the thin wrappers [StartExporter] and [StartServer], which fail
// the test on error and register cleanups.
//
// # Prometheus binary
//
// The binary is [Options.Binary], else $NEMESIS_PROMETHEUS_BIN, else
// "prometheus" from $PATH. `go tool task test` installs it (Debian's
// prometheus package). A missing binary is a test failure, not a skip; only
// `go test -short` skips tests that need it.
//
// # Processes
//
// Everything listens on 127.0.0.1 only. Every Prometheus process is stopped
// by its pid: by [Server.Stop] (registered as a test cleanup by
// [StartServer]) or [Server.Kill]. On Linux the process also gets SIGKILL
// when the thread of the test process that started it dies (Pdeathsig) and
// runs in its own process group, so a crashed or killed test binary leaves
// no Prometheus behind. (Pdeathsig follows the starting OS thread: do not
// call [Start] or [Server.Restart] from a goroutine that locks its OS
// thread and exits without unlocking it.)
package promtest
