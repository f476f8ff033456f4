package promtest

import (
	"os"
	"os/exec"
	"testing"
)

// PromtoolEnv names the promtool binary, as NEMESIS_PROMETHEUS_BIN names
// prometheus.
const PromtoolEnv = "NEMESIS_PROMTOOL_BIN"

// Promtool returns the path of $NEMESIS_PROMTOOL_BIN, else of Debian's
// promtool (it ships in the prometheus package), or fails tb saying how to
// install it. Under -short it skips tb: the caller runs the real promtool.
func Promtool(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("skipping: the test runs the real promtool (-short)")
	}
	bin := os.Getenv(PromtoolEnv)
	if bin == "" {
		bin = "promtool"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		tb.Fatalf("promtool not found: run `go tool task deps:prometheus` (Debian's prometheus package ships it) or set %s: %v", PromtoolEnv, err)
	}
	return path
}
