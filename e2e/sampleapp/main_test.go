package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/k8s-nemesis/nemesis/e2e/internal/command"
	"github.com/k8s-nemesis/nemesis/e2e/internal/command/commandtest"
)

// startRun runs sampleapp on a free loopback port with args added, learns the
// port from its start-up log line, and stops it when the test ends.
func startRun(t *testing.T, ctx context.Context, args ...string) *commandtest.Started {
	t.Helper()
	return commandtest.Command{Name: "sampleapp", Run: run, StopWithin: 5 * time.Second}.Start(t, ctx, args...)
}

func TestRunLifecycle(t *testing.T) {
	t.Setenv("POD_NAME", "pod-a")
	ctx, sigterm := context.WithCancel(t.Context())
	defer sigterm()
	const latency = 300 * time.Millisecond
	s := startRun(t, ctx, "--model", "llama", "--latency", latency.String(), "--jitter", "0", "--startup-delay", "1s", "--shutdown-grace", "5s")

	if code, _ := get(t, s.URL+"/ready"); code != http.StatusServiceUnavailable {
		t.Fatalf("/ready at start = %d, want 503", code)
	}
	deadline := time.Now().Add(4 * time.Second)
	for code, _ := get(t, s.URL+"/ready"); code != http.StatusOK; code, _ = get(t, s.URL+"/ready") {
		if time.Now().After(deadline) {
			t.Fatalf("/ready still %d", code)
		}
		time.Sleep(10 * time.Millisecond)
	}

	if r := <-request(t.Context(), s.URL); r.code != http.StatusOK || r.body.Pod != "pod-a" {
		t.Fatalf("first request: %+v", r)
	}
	_, metrics := get(t, s.URL+"/metrics")
	for _, want := range []string{
		`vllm:num_requests_waiting{model_name="llama"} 0`,
		`vllm:num_requests_running{model_name="llama"} 0`,
		`sampleapp_requests_total{code="200"} 1`,
		`sampleapp_request_duration_seconds_count 1`,
		"\ngo_goroutines ",
		"\nprocess_cpu_seconds_total ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// SIGTERM while a request runs: readiness fails at once, the request
	// finishes, and one that arrives during the drain is still served.
	inflight := request(t.Context(), s.URL)
	deadline = time.Now().Add(2 * time.Second)
	for !strings.Contains(scrapeText(t, s.URL), `vllm:num_requests_running{model_name="llama"} 1`) {
		if time.Now().After(deadline) {
			t.Fatal("the in-flight request never ran")
		}
		time.Sleep(5 * time.Millisecond)
	}
	sigterm()
	deadline = time.Now().Add(time.Second)
	for code, _ := get(t, s.URL+"/ready"); code != http.StatusServiceUnavailable; code, _ = get(t, s.URL+"/ready") {
		if time.Now().After(deadline) {
			t.Fatalf("/ready still %d after SIGTERM", code)
		}
		time.Sleep(5 * time.Millisecond)
	}
	late := request(t.Context(), s.URL)
	for name, c := range map[string]<-chan result{"in-flight": inflight, "late": late} {
		if r := <-c; r.code != http.StatusOK || r.err != nil {
			t.Errorf("%s request: code %d, error %v", name, r.code, r.err)
		}
	}

	last, err := s.Finish(t)
	if err != nil {
		t.Fatalf("run after a graceful shutdown: %v", err)
	}
	if last["msg"] != "sampleapp stopped" || last["served"] != float64(3) || last["graceful"] != true {
		t.Fatalf("last log line %v, want sampleapp stopped with served 3", last)
	}
	if _, err := http.Get(s.URL + "/healthz"); err == nil {
		t.Fatal("still accepting after run returned")
	}
}

func scrapeText(t *testing.T, url string) string {
	t.Helper()
	_, body := get(t, url+"/metrics")
	return body
}

func TestRunGraceExceeded(t *testing.T) {
	t.Parallel()
	ctx, sigterm := context.WithCancel(t.Context())
	defer sigterm()
	s := startRun(t, ctx, "--latency", "1m", "--startup-delay", "0s", "--shutdown-grace", "200ms")

	stuck := request(t.Context(), s.URL)
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(scrapeText(t, s.URL), `vllm:num_requests_running{model_name="sample"} 1`) {
		if time.Now().After(deadline) {
			t.Fatal("the request never ran")
		}
		time.Sleep(5 * time.Millisecond)
	}
	began := time.Now()
	sigterm()
	last, err := s.Finish(t)
	if took := time.Since(began); took > time.Second {
		t.Errorf("run took %v to give up, with a 200ms grace", took)
	}
	var ee *command.ExitError
	if err == nil || errors.As(err, &ee) || !strings.Contains(err.Error(), "grace of 200ms exceeded with 1 requests running") {
		t.Fatalf("run = %v, want a plain error (exit 1) naming the grace", err)
	}
	if last["graceful"] != false {
		t.Errorf("last log line %v, want graceful false", last)
	}
	if r := <-stuck; r.err == nil {
		t.Errorf("the request cut off by the grace got code %d and no error", r.code)
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	c, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config{address: ":8000", model: "sample", latency: 200 * time.Millisecond, jitter: 0.1, concurrency: 4,
		maxWaiting: 1000, startupDelay: 2 * time.Second, shutdownGrace: 30 * time.Second, idleTimeout: 5 * time.Second}
	if c != want {
		t.Errorf("defaults %+v, want %+v", c, want)
	}

	for name, tc := range map[string]struct {
		args []string
		want []string
	}{
		"unknown flag": {[]string{"--nope"}, []string{"flag provided but not defined: -nope"}},
		"jitter":       {[]string{"--jitter", "1.5"}, []string{`--jitter "1.5" must be between 0 and 1`}},
		"every problem at once": {
			[]string{"--concurrency", "0", "--max-waiting", "-1", "--latency", "-1s", "--shutdown-grace", "-2s", "--idle-timeout", "-1s", "--model", " ", "extra"},
			[]string{
				`unexpected arguments: ["extra"]`,
				`--model " " must not be blank`,
				`--concurrency "0" must be at least 1`,
				`--max-waiting "-1" must not be negative`,
				`--latency "-1s" must not be negative`,
				`--shutdown-grace "-2s" must not be negative`,
				`--idle-timeout "-1s" must not be negative`,
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := parseFlags(tc.args, io.Discard)
			commandtest.WantUsage(t, err, tc.want)
		})
	}
}

// TestIdleKeepAliveConnectionClosed protects the suite's likeness to
// uvicorn: a keep-alive connection left idle for --idle-timeout is closed
// by the server (uvicorn's timeout_keep_alive), and not before, so that a
// proxy pooling connections to it meets closed ones as it would in
// production.
func TestIdleKeepAliveConnectionClosed(t *testing.T) {
	t.Parallel()
	ctx, sigterm := context.WithCancel(t.Context())
	const idle = 300 * time.Millisecond
	s := startRun(t, ctx, "--startup-delay", "0s", "--idle-timeout", idle.String())
	defer func() {
		sigterm()
		if _, err := s.Finish(t); err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	var answered time.Time
	// Two requests on the one connection: it is kept alive, and reused
	// before the idle timeout.
	for i := range 2 {
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: sample\r\n\r\n"); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatalf("request %d: body: %v", i+1, err)
		}
		resp.Body.Close()
		answered = time.Now()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("request %d: status %d, close %v; want 200 on a kept-alive connection", i+1, resp.StatusCode, resp.Close)
		}
	}

	// The server closes the idle connection: the read ends with EOF, after
	// the idle timeout and well before the bound.
	if err := conn.SetReadDeadline(time.Now().Add(idle + 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := br.Read(make([]byte, 1))
	idled := time.Since(answered)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("reading the idle connection: %d bytes, %v; want EOF as the server closes it", n, err)
	}
	if idled < idle-50*time.Millisecond {
		t.Errorf("closed after %v idle, before the idle timeout of %v", idled, idle)
	}
}
