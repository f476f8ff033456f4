package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// started is a runMain in the background, with its log lines.
type started struct {
	url  string
	logs chan map[string]any
	done chan error
}

// startRun runs llmsim on a free loopback port with args added, learns the
// port from its start-up log line, and stops it when the test ends.
func startRun(t *testing.T, ctx context.Context, args ...string) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	s := &started{logs: make(chan map[string]any, 10), done: make(chan error, 1)}
	go func() {
		defer close(s.logs)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				line = map[string]any{"unparsed": sc.Text()}
			}
			s.logs <- line
		}
	}()
	go func() {
		err := runMain(ctx, append([]string{"--address", "127.0.0.1:0"}, args...), pw)
		pw.Close()
		s.done <- err
	}()
	t.Cleanup(func() {
		cancel()
		for range s.logs {
		}
	})
	select {
	case line := <-s.logs:
		if line["msg"] != "llmsim started" {
			t.Fatalf("first log line %v, want the start-up line", line)
		}
		s.url = "http://" + line["address"].(string)
	case err := <-s.done:
		t.Fatalf("run ended at once: %v", err)
	}
	return s
}

// finish waits for runMain to return and for its last log line.
func (s *started) finish(t *testing.T) (map[string]any, error) {
	t.Helper()
	var err error
	select {
	case err = <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return")
	}
	var last map[string]any
	for line := range s.logs {
		last = line
	}
	return last, err
}

func TestRunLifecycle(t *testing.T) {
	t.Parallel()
	ctx, sigterm := context.WithCancel(t.Context())
	defer sigterm()
	s := startRun(t, ctx, "--name", "pod-a", "--model", "llama", "--time-scale", "0.5", "--shutdown-grace", "10s")

	// SIGTERM while a request of about 1 s (wall) runs: it still finishes.
	inflight := make(chan error, 1)
	go func() {
		resp, err := http.Post(s.url+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"a b","max_tokens":100}`))
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
		resp, err := http.Get(s.url + "/metrics")
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
	last, err := s.finish(t)
	if err != nil {
		t.Fatalf("run after a graceful shutdown: %v", err)
	}
	if last["msg"] != "llmsim stopped" || last["graceful"] != true || last["finished"] != float64(1) {
		t.Errorf("last log line %v, want a graceful stop with one request finished", last)
	}
	if _, err := http.Get(s.url + "/health"); err == nil {
		t.Error("still accepting after run returned")
	}
}

func TestRunGraceExceeded(t *testing.T) {
	t.Parallel()
	ctx, sigterm := context.WithCancel(t.Context())
	defer sigterm()
	s := startRun(t, ctx, "--shutdown-grace", "200ms")
	go func() {
		if resp, err := http.Post(s.url+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"a","max_tokens":5000}`)); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, "the request to run", func() bool {
		resp, err := http.Get(s.url + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(body), `vllm:num_requests_running{model_name="llmsim"} 1`)
	})
	sigterm()
	last, err := s.finish(t)
	var ee *exitError
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
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != 2 {
				t.Fatalf("error %v, want exit code 2", err)
			}
			got := strings.Split(err.Error(), "\n")
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("problems %q lack %q", got, w)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("got %d problems %q, want %d", len(got), got, len(tc.want))
			}
		})
	}
}
