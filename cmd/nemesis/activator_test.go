package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/k8s-nemesis/nemesis/activator"
	"github.com/k8s-nemesis/nemesis/demand"
)

func TestActivatorBadConfig(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct {
		config     string
		args       []string
		wantStderr []string
	}{
		"invalid file": {
			config: "routes:\n  - name: a\n    endpoints: [nope]\n    policy: fast\n",
			wantStderr: []string{
				`activator.yaml:3:17: route \"a\": endpoints: \"nope\" is not host:port`,
				`activator.yaml:4:13: route \"a\": policy: \"fast\" is not round-robin, least-request, random, metric or score`,
			},
		},
		"service route without a cluster": {
			config:     "routes:\n  - name: a\n    service: {namespace: ml, name: x, port: 80}\n",
			wantStderr: []string{`activator.yaml:2:5: route \"a\": service: service routes need Kubernetes endpoints`},
		},
		"no config flag": {args: []string{"activator"}, wantStderr: []string{"--config is required"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			args := tc.args
			if args == nil {
				path := filepath.Join(dir, "activator.yaml")
				if err := os.WriteFile(path, []byte(tc.config), 0o644); err != nil {
					t.Fatal(err)
				}
				args = []string{"activator", "--config", path, "--http-address", "127.0.0.1:0", "--admin-address", "127.0.0.1:0"}
			}
			var stderr bytes.Buffer
			err := run(t.Context(), args, io.Discard, &stderr)
			if code := exitCode(err); code != 2 {
				t.Fatalf("exit code %d, want 2 (err %v)", code, err)
			}
			all := stderr.String() + err.Error()
			for _, want := range tc.wantStderr {
				if !strings.Contains(all, want) {
					t.Errorf("output lacks %q:\n%s", want, all)
				}
			}
		})
	}
}

// TestActivatorLifecycle runs the activator command in-process: proxying,
// probes, metrics, reload, and a graceful stop that fails /readyz first
// and lets an in-flight request finish.
func TestActivatorLifecycle(t *testing.T) {
	release := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		fmt.Fprint(w, "backend")
	}))
	defer be.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "activator.yaml")
	cfg := fmt.Sprintf("routes:\n  - name: web\n    endpoints: [%q]\n", strings.TrimPrefix(be.URL, "http://"))
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	httpAddr, adminAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"activator", "--config", path, "--http-address", httpAddr, "--admin-address", adminAddr,
			"--shutdown-delay", "300ms", "--drain-timeout", "5s", "--log-level", "error", "--id", "activator-test"}, io.Discard, io.Discard)
	}()
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _ := get("http://" + adminAddr + "/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("activator not ready within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body := get("http://" + httpAddr + "/"); code != 200 || body != "backend" {
		t.Errorf("proxy: %d %q", code, body)
	}
	if code, _ := get("http://" + adminAddr + "/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if _, body := get("http://" + httpAddr + "/metrics"); body != "backend" {
		t.Errorf("the proxy serves its own /metrics instead of proxying: %.40q", body)
	}
	code, body := get("http://" + adminAddr + "/metrics")
	for _, want := range []string{
		`nemesis_activator_requests_total{code="200",namespace="",route="web",service=""} 2`,
		`nemesis_activator_requests_in_flight{namespace="",route="web",service=""} 0`,
		`nemesis_activator_requests_queued{namespace="",route="web",service=""} 0`,
		`nemesis_activator_request_duration_seconds_bucket`,
		`nemesis_activator_queue_wait_seconds`,
		`nemesis_activator_endpoint_requests_in_flight{endpoint=`,
		"go_goroutines",
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %q", code, want)
		}
	}

	// Scalers read the demand stream on the admin address; an open stream
	// must not hold up the shutdown below.
	resp, err := http.Get("http://" + adminAddr + demand.WatchPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.Contains(first, `"activator":"activator-test"`) {
		t.Errorf("demand stream: first line %q, %v", first, err)
	}

	// A request in flight when the stop comes finishes.
	slow := make(chan string, 1)
	go func() {
		c, b := get("http://" + httpAddr + "/slow")
		slow <- fmt.Sprintf("%d %s", c, b)
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	time.Sleep(100 * time.Millisecond)
	if code, _ := get("http://" + adminAddr + "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz during shutdown delay: %d, want 503", code)
	}
	close(release)
	if r := <-slow; r != "200 backend" {
		t.Errorf("in-flight request: %s", r)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("activator exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("activator did not stop within 20s")
	}
}

// TestActivatorStatusAPI: the activator serves its status as JSON on the
// admin address, through the real binary: a request held by a slow backend
// counts in flight at its endpoint, and a configuration file the watcher
// refuses shows as the last reload error while the version in force stays.
func TestActivatorStatusAPI(t *testing.T) {
	release := make(chan struct{})
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		fmt.Fprint(w, "backend")
	}))
	be.Config.IdleTimeout = time.Second // closes idle keep-alives, as model servers do
	be.Start()
	defer be.Close()
	addr := strings.TrimPrefix(be.URL, "http://")
	path := filepath.Join(t.TempDir(), "activator.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf("routes:\n  - name: web\n    match: {pathPrefix: /}\n    endpoints: [%q]\n", addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	httpAddr, adminAddr := freeAddr(t), freeAddr(t)
	startCommand(t, "activator", "--config", path, "--http-address", httpAddr, "--admin-address", adminAddr,
		"--shutdown-delay", "0s", "--drain-timeout", "5s", "--config-resync", "100ms", "--log-level", "error")
	// Before the activator drains and the backend closes, even if the
	// test fails early.
	unblock := sync.OnceFunc(func() { close(release) })
	defer unblock()
	waitReady(t, "http://"+adminAddr+"/readyz")

	status := func() (raw map[string]any, st activator.Status) {
		t.Helper()
		resp, err := http.Get("http://" + adminAddr + "/api/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/json" {
			t.Fatalf("GET /api/v1/status: %d, Content-Type %q: %s", resp.StatusCode, ct, body)
		}
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Fatalf("%v in %s", err, body)
		}
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatalf("%v in %s", err, body)
		}
		return raw, st
	}

	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + httpAddr + "/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	var st activator.Status
	var raw map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if raw, st = status(); len(st.Routes) == 1 && st.Routes[0].InFlight == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the held request never showed in flight: %+v", st)
		}
	}
	// The field names are the API's contract (docs/operations.md).
	keys := func(m any) []string {
		var out []string
		for k := range m.(map[string]any) {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	route := raw["routes"].([]any)[0]
	for what, c := range map[string]struct {
		got  []string
		want string
	}{
		"status":   {keys(raw), "configFile configVersion lastReloadAt lastReloadError loadedAt routes"},
		"route":    {keys(route), "endpointConcurrency endpoints inFlight match name oldestWaitSeconds policy queueDepth queueSize queueTimeout requestTimeout responseHeaderTimeout service"},
		"endpoint": {keys(route.(map[string]any)["endpoints"].([]any)[0]), "address inFlight state"},
	} {
		if got := strings.Join(c.got, " "); got != c.want {
			t.Errorf("%s fields: %s\nwant %s", what, got, c.want)
		}
	}
	wantEps := []activator.EndpointStatus{{Address: addr, State: "ready", InFlight: 1}}
	if r := st.Routes[0]; st.ConfigVersion != 1 || st.ConfigFile != path || st.LastReloadError != "" ||
		r.Name != "web" || r.Match != "pathPrefix: /" || r.Service != "" || !reflect.DeepEqual(r.Endpoints, wantEps) {
		t.Errorf("status: %+v", st)
	}

	// A file the watcher refuses: the version in force stays, and serves.
	if err := os.WriteFile(path, []byte("routes:\n  - name: web\n    endpoints: [nope]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantErr := path + `:3:17: route "web": endpoints: "nope" is not host:port`
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, st = status(); st.LastReloadError != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the refused file never showed in the status")
		}
	}
	if st.LastReloadError != wantErr || st.ConfigVersion != 1 || len(st.Routes) != 1 || st.Routes[0].Endpoints[0].Address != addr {
		t.Errorf("after a refused file: error %q (want %q), version %d (want 1), routes %+v", st.LastReloadError, wantErr, st.ConfigVersion, st.Routes)
	}
	unblock()
	if r := <-slow; r != "200 backend" {
		t.Errorf("held request: %s", r)
	}
}

// startCommand runs `nemesis args…` in-process until the test ends.
func startCommand(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, io.Discard, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("nemesis %s: %v", args[0], err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("nemesis %s did not exit within 15s", args[0])
		}
	})
}

// waitReady polls url until it answers 200, for up to 10 s.
func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not 200 within 10s", url)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
