package main

import (
	"bufio"
	"context"
	"encoding/json"
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

// startRun runs llmsim on a free loopback port with args added, learns the
// port from its start-up log line, and stops it when the test ends.
func startRun(t *testing.T, ctx context.Context, args ...string) *commandtest.Started {
	t.Helper()
	return commandtest.Command{Name: "llmsim", Run: runMain, StopWithin: 10 * time.Second}.Start(t, ctx, args...)
}

func TestRunLifecycle(t *testing.T) {
	t.Parallel()
	ctx, sigterm := context.WithCancel(t.Context())
	defer sigterm()
	s := startRun(t, ctx, "--name", "pod-a", "--model", "llama", "--time-scale", "0.5", "--shutdown-grace", "10s")

	// SIGTERM while a request of about 1 s (wall) runs: it still finishes.
	inflight := make(chan error, 1)
	go func() {
		resp, err := http.Post(s.URL+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"a b","max_tokens":100}`))
		if err != nil {
			inflight <- err
			return
		}
		defer resp.Body.Close()
		var c completion
		if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
			inflight <- err
			return
		}
		if resp.Header.Get(podHeader) != "pod-a" || c.Usage == nil || c.Usage.CompletionTokens != 100 {
			inflight <- errors.New("wrong answer")
			return
		}
		inflight <- nil
	}()
	waitFor(t, "the request to run", func() bool {
		resp, err := http.Get(s.URL + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(body), `vllm:num_requests_running{model_name="llama"} 1`)
	})
	sigterm()
	if err := <-inflight; err != nil {
		t.Errorf("request in flight at SIGTERM: %v", err)
	}
	last, err := s.Finish(t)
	if err != nil {
		t.Fatalf("run after a graceful shutdown: %v", err)
	}
	if last["msg"] != "llmsim stopped" || last["graceful"] != true || last["finished"] != float64(1) {
		t.Errorf("last log line %v, want a graceful stop with one request finished", last)
	}
	if _, err := http.Get(s.URL + "/health"); err == nil {
		t.Error("still accepting after run returned")
	}
}

func TestRunGraceExceeded(t *testing.T) {
	t.Parallel()
	ctx, sigterm := context.WithCancel(t.Context())
	defer sigterm()
	s := startRun(t, ctx, "--shutdown-grace", "200ms")
	go func() {
		if resp, err := http.Post(s.URL+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"a","max_tokens":5000}`)); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, "the request to run", func() bool {
		resp, err := http.Get(s.URL + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(body), `vllm:num_requests_running{model_name="llmsim"} 1`)
	})
	sigterm()
	last, err := s.Finish(t)
	var ee *command.ExitError
	if err == nil || errors.As(err, &ee) || !strings.Contains(err.Error(), "grace of 200ms exceeded") {
		t.Fatalf("run = %v, want a plain error (exit 1) naming the grace", err)
	}
	if last["graceful"] != false {
		t.Errorf("last log line %v, want graceful false", last)
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	c, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config{address: ":8000", model: "llmsim", maxNumSeqs: 16, maxWaiting: 1000, maxModelLen: 8192, kvBlocks: 2048,
		maxPrefill: 512, timeScale: 1, slowdown: 1, metricsFault: faultNone, metricsFaultDelay: time.Second,
		idleTimeout: 5 * time.Second, shutdownGrace: 30 * time.Second}
	if c != want {
		t.Errorf("defaults %+v, want %+v", c, want)
	}
	c, err = parseFlags([]string{"--metrics-fault", "huge", "--slowdown", "2", "--time-scale", "0.25"}, io.Discard)
	if err != nil || c.metricsFault != faultHuge || c.slowdown != 2 || c.timeScale != 0.25 {
		t.Errorf("parsed %+v, %v", c, err)
	}

	for name, tc := range map[string]struct {
		args []string
		want []string
	}{
		"unknown flag": {[]string{"--nope"}, []string{"flag provided but not defined: -nope"}},
		"context beyond the cache": {[]string{"--kv-blocks", "10", "--max-model-len", "161"},
			[]string{`--max-model-len "161" must fit in the KV cache of --kv-blocks 10 × 16 = 160 tokens`}},
		"every problem at once": {
			[]string{"--max-num-seqs", "0", "--max-waiting", "-1", "--time-scale", "0", "--slowdown", "NaN", "--metrics-fault", "flaky",
				"--shutdown-grace", "-2s", "--max-prefill-tokens-per-step", "0", "--model", " ", "extra"},
			[]string{
				`unexpected arguments: ["extra"]`,
				`--model " " must not be blank`,
				`--max-num-seqs "0" must be at least 1`,
				`--max-prefill-tokens-per-step "0" must be at least 1`,
				`--max-waiting "-1" must not be negative`,
				`--time-scale "0" must be a number above 0`,
				`--slowdown "NaN" must be a number above 0`,
				`--metrics-fault: metrics fault "flaky" is none of none, slow, hang, huge, malformed, missing, error`,
				`--shutdown-grace "-2s" must not be negative`,
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

// TestIdleKeepAliveClosed: like uvicorn, llmsim closes a keep-alive
// connection left idle for --idle-timeout, so that a proxy pooling
// connections to it meets closed ones as in production.
func TestIdleKeepAliveClosed(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	s := startRun(t, t.Context(), "--idle-timeout", idle.String())
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	if _, err := io.WriteString(conn, "GET /health HTTP/1.1\r\nHost: llmsim\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	answered := time.Now()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("status %d, close %v; want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
	}
	if err := conn.SetReadDeadline(time.Now().Add(idle + 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := br.Read(make([]byte, 1))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("reading the idle connection: %d bytes, %v; want EOF as the server closes it", n, err)
	}
	if idled := time.Since(answered); idled < idle-50*time.Millisecond {
		t.Errorf("closed after %v idle, before the idle timeout of %v", idled, idle)
	}
}
