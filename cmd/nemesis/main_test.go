package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/k8s-nemesis/nemesis/demand"
)

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func TestRulesCheck(t *testing.T) {
	cases := map[string]struct {
		args       []string
		wantCode   int
		wantStdout string
		wantStderr []string
	}{
		"valid files and a directory": {
			args:       []string{"rules", "check", "../../rules/testdata/vllm.good.yaml", "../../examples/rules"},
			wantStdout: "8 rule sets in 7 files: business-hours, chat-llm, cpu-memory, http-busiest-pod, http-inflight, http-latency-slo, triton-queue-time, vllm-queue\n",
		},
		"every problem of every file": {
			args:     []string{"rules", "check", "../../rules/testdata/types.bad.yaml", "../../rules/testdata/syntax.bad.yaml"},
			wantCode: 1,
			wantStderr: []string{
				`../../rules/testdata/types.bad.yaml:5:15: rule set "types": replicas: must compute a number of replicas, but computes a bool`,
				`../../rules/testdata/types.bad.yaml:6:13: rule set "types": active: must compute true or false, but computes a float64`,
				`../../rules/testdata/types.bad.yaml:11:15: rule set "unknown": replicas: unknown name waitin`,
				`../../rules/testdata/types.bad.yaml:16:26: rule set "series-misuse": replicas: series.pod: there is no query named "pod"`,
				`../../rules/testdata/types.bad.yaml:16:37: rule set "series-misuse": replicas: series must be followed by the name of a query, as in series.pods`,
				`../../rules/testdata/syntax.bad.yaml:4:47: rule set "broken": queries.waiting: invalid PromQL: unclosed left parenthesis`,
				`../../rules/testdata/syntax.bad.yaml:6:23: rule set "broken": replicas: unexpected token EOF`,
				`../../rules/testdata/syntax.bad.yaml:7:13: rule set "broken": active: must compute true or false, but computes a float64`,
			},
		},
		"duplicate names across files": {
			args:       []string{"rules", "check", "../../rules/testdata/vllm.good.yaml", "../../rules/testdata/design.good.yaml"},
			wantCode:   1,
			wantStderr: []string{`../../rules/testdata/design.good.yaml:3:5: rule set "chat-llm": name: duplicate rule set name: also defined at ../../rules/testdata/vllm.good.yaml:3:5`},
		},
		"missing file": {
			args:       []string{"rules", "check", "nope.yaml"},
			wantCode:   1,
			wantStderr: []string{"reading rules: stat nope.yaml: no such file or directory"},
		},
		"no path": {args: []string{"rules", "check"}, wantCode: 2},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tc.args, &stdout, &stderr)
			if got := exitCode(err); got != tc.wantCode {
				t.Fatalf("exit code %d, want %d (err %v, stderr %s)", got, tc.wantCode, err, stderr.String())
			}
			if tc.wantStdout != "" && stdout.String() != tc.wantStdout {
				t.Errorf("stdout %q, want %q", stdout.String(), tc.wantStdout)
			}
			if tc.wantStderr != nil {
				if got := strings.TrimRight(stderr.String(), "\n"); got != strings.Join(tc.wantStderr, "\n") {
					t.Errorf("stderr:\n%s\nwant:\n%s", got, strings.Join(tc.wantStderr, "\n"))
				}
			}
		})
	}
}

func TestRulesEval(t *testing.T) {
	var stdout bytes.Buffer
	err := run(t.Context(), []string{"rules", "eval", "--rules", "../../examples/rules", "--rule-set", "vllm-queue",
		"--namespace", "ml", "--metadata", "model: llama", "--set", "waiting: 9", "--set", "running: 3"}, &stdout, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`model_name="llama"`, `namespace="ml"`, "replicas: 3 (expression 2.25, min 0, max 16)", "active: true"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	stdout.Reset()
	err = run(t.Context(), []string{"rules", "eval", "--rules", "../../examples/rules", "--rule-set", "vllm-queue",
		"--metadata", "model: llama", "--set", "waiting: ", "--set", "running: 1"}, &stdout, io.Discard)
	if exitCode(err) != 1 || !strings.Contains(stdout.String(), "no series") || !strings.Contains(stdout.String(), "onError: hold") {
		t.Errorf("empty result: exit %d, output:\n%s", exitCode(err), stdout.String())
	}
}

// TestRulesEvalScaleTarget: current and ready come from --set.
func TestRulesEvalScaleTarget(t *testing.T) {
	args := []string{"rules", "eval", "--rules", "../../rules/testdata/builtins.good.yaml", "--rule-set", "scale-target",
		"--metadata", "model: llama", "--set", "waiting: 4"}
	var stdout bytes.Buffer
	err := run(t.Context(), append(args, "--set", "current: 3", "--set", "ready: 1"), &stdout, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"built-in current = 3", "built-in ready = 1", "replicas: 3 (expression 3, min 0, max 16)", "active: true"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	err = run(t.Context(), append(args, "--set", "current: 3"), io.Discard, io.Discard)
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "built-in ready, which the scaler reads from the ScaledObject's scale target: give it with --set 'ready: N'") {
		t.Errorf("without ready: exit %d, %v", exitCode(err), err)
	}
}

func TestScalerFlagErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("ruleSets:\n- name: x\n  replicas: y\n  max: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		args []string
		want string
	}{
		"no rules":              {[]string{"scaler", "--prometheus-url", "http://127.0.0.1:9"}, "--rules is required"},
		"no prometheus":         {[]string{"scaler", "--rules", "../../examples/rules"}, "--prometheus-url is required"},
		"invalid rules":         {[]string{"scaler", "--rules", bad, "--prometheus-url", "http://127.0.0.1:9"}, bad + ":3:13: rule set \"x\": replicas: unknown name y"},
		"half tls":              {[]string{"scaler", "--rules", "../../examples/rules", "--prometheus-url", "http://127.0.0.1:9", "--tls-cert-file", "c.pem"}, "--tls-cert-file and --tls-key-file go together"},
		"bad header":            {[]string{"scaler", "--prometheus-header", "nocolon"}, `"nocolon" is not a header`},
		"bad url":               {[]string{"scaler", "--rules", "../../examples/rules", "--prometheus-url", "::nope"}, "url"},
		"unknown command":       {[]string{"scale"}, `unknown command "scale"`},
		"negative interval":     {[]string{"scaler", "--rules", "x", "--prometheus-url", "http://p", "--push-interval", "-1s"}, "--push-interval must be positive"},
		"no scaled objects":     {[]string{"scaler", "--rules", "x", "--prometheus-url", "http://p", "--max-scaled-objects", "0"}, "--max-scaled-objects must be positive"},
		"bad activator service": {[]string{"scaler", "--activator-service", "nemesis/activator"}, `"nemesis/activator" is not NAMESPACE/NAME:PORT`},
		"both activator flags":  {[]string{"scaler", "--rules", "x", "--prometheus-url", "http://p", "--activator", "http://a:1", "--activator-service", "n/a:9091"}, "--activator and --activator-service exclude each other"},
		"bad activator":         {[]string{"scaler", "--rules", "x", "--prometheus-url", "http://p", "--activator", "activator-0:9091"}, `--activator: activator address "activator-0:9091"`},
		"bad kubeconfig":        {[]string{"scaler", "--rules", "../../examples/rules", "--prometheus-url", "http://127.0.0.1:9", "--grpc-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0", "--kubeconfig", "nope.kubeconfig"}, "kubeconfig nope.kubeconfig"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(t.Context(), tc.args, io.Discard, &stderr)
			if exitCode(err) != 2 {
				t.Fatalf("exit code %d, want 2 (err %v)", exitCode(err), err)
			}
			if !strings.Contains(strings.ToLower(err.Error()+stderr.String()), strings.ToLower(tc.want)) {
				t.Errorf("error %q (stderr %q) does not mention %q", err, stderr.String(), tc.want)
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestScalerLifecycle runs the scaler command in-process: probes, metrics,
// gRPC health, and a clean exit on cancellation.
func TestScalerLifecycle(t *testing.T) {
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	// One activator to watch for demand.
	tracker := demand.NewTracker("activator-0", demand.TrackerOptions{})
	activator := httptest.NewServer(tracker.Handler())
	defer func() { tracker.Close(); activator.Close() }()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"scaler", "--rules", "../../examples/rules", "--prometheus-url", "http://127.0.0.1:9",
			"--grpc-address", grpcAddr, "--http-address", httpAddr, "--activator", activator.URL}, io.Discard, io.Discard)
	}()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _ := get("/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("scaler not ready within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, body := get("/metrics"); strings.Contains(body, "nemesis_demand_connected_activators 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/metrics: nemesis_demand_connected_activators never 1")
		}
	}
	code, body := get("/metrics")
	for _, want := range []string{"nemesis_rules_rule_sets 7", "nemesis_prometheus_requests_total", "nemesis_scaler_active_streams 0", "go_goroutines", "nemesis_demand_stream_errors_total"} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %q", code, want)
		}
	}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || hc.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health: %v, %v", hc, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("scaler exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("scaler did not stop within 20s")
	}
	if _, err := net.DialTimeout("tcp", grpcAddr, time.Second); err == nil {
		t.Errorf("gRPC port %s still open after exit", grpcAddr)
	}
}

// The activator's Prometheus client keeps no result cache: a metric route's
// refresh may be shorter than the scaler's 2 s default.
func TestActivatorPrometheusNoCache(t *testing.T) {
	cfg, err := parseActivatorFlags([]string{"--config", "x.yaml", "--prometheus-url", "http://prom:9090"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.prom.CacheTTL >= 0 {
		t.Fatalf("activator Prometheus cache TTL %v, want disabled (negative)", cfg.prom.CacheTTL)
	}
}
