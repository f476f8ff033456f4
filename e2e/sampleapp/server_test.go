package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// testConfig is fast and exact: no start-up delay, no jitter.
func testConfig() config {
	return config{model: "sample", latency: 50 * time.Millisecond, concurrency: 4, maxWaiting: 1000, shutdownGrace: time.Second}
}

func startServer(t *testing.T, cfg config) (*server, string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s := newServer(cfg, "pod-test", reg)
	ts := httptest.NewServer(s.handler(reg))
	t.Cleanup(ts.Close)
	return s, ts.URL
}

// result is one model request's outcome.
type result struct {
	code int
	body answer
	err  error
}

// request sends a model request in the background.
func request(ctx context.Context, url string) <-chan result {
	out := make(chan result, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/generate", nil)
		if err != nil {
			out <- result{err: err}
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- result{err: err}
			return
		}
		defer resp.Body.Close()
		r := result{code: resp.StatusCode}
		if resp.StatusCode == http.StatusOK {
			r.err = json.NewDecoder(resp.Body).Decode(&r.body)
		}
		out <- r
	}()
	return out
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// scrape parses url's /metrics.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, url+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics answered %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return families
}

// sample is the value of name's series that has label=value (any series if
// label is empty), and whether there is one.
func sample(families map[string]*dto.MetricFamily, name, label, value string) (float64, bool) {
	for _, m := range families[name].GetMetric() {
		match := label == ""
		for _, l := range m.GetLabel() {
			match = match || l.GetName() == label && l.GetValue() == value
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// waitGauges polls /metrics until the vLLM gauges read running and waiting.
func waitGauges(t *testing.T, url string, running, waiting float64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		f := scrape(t, url)
		r, _ := sample(f, "vllm:num_requests_running", "model_name", "sample")
		w, _ := sample(f, "vllm:num_requests_waiting", "model_name", "sample")
		if r == running && w == waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics shows %v running and %v waiting, want %v and %v", r, w, running, waiting)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSample polls /metrics until name{label=value} reads want.
func waitSample(t *testing.T, url, name, label, value string, want float64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		got, _ := sample(scrape(t, url), name, label, value)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s{%s=%q} = %v, want %v", name, label, value, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.concurrency = 2
	cfg.latency = 300 * time.Millisecond
	_, url := startServer(t, cfg)

	var results []<-chan result
	for range 2 {
		results = append(results, request(t.Context(), url))
	}
	waitGauges(t, url, 2, 0)
	results = append(results, request(t.Context(), url))
	waitGauges(t, url, 2, 1) // the third waits for a slot

	for i, c := range results {
		r := <-c
		if r.err != nil || r.code != http.StatusOK {
			t.Fatalf("request %d: code %d, error %v", i, r.code, r.err)
		}
		waitedLong := r.body.WaitedMS >= 200
		if waitedLong != (i == 2) {
			t.Errorf("request %d waited %vms; only the third should wait, about the latency", i, r.body.WaitedMS)
		}
		if r.body.ServedMS < 300 || r.body.Pod != "pod-test" {
			t.Errorf("request %d answered %+v, want served_ms ≥ 300 and pod pod-test", i, r.body)
		}
	}
	waitGauges(t, url, 0, 0)
}

func TestMaxWaiting(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.concurrency, cfg.maxWaiting = 1, 1
	cfg.latency = time.Minute // the held requests are cancelled at the end
	_, url := startServer(t, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	request(ctx, url)
	waitGauges(t, url, 1, 0)
	request(ctx, url)
	waitGauges(t, url, 1, 1)
	if r := <-request(t.Context(), url); r.code != http.StatusServiceUnavailable {
		t.Fatalf("request beyond --max-waiting: code %d, error %v; want 503", r.code, r.err)
	}
	waitSample(t, url, "sampleapp_requests_total", "code", "503", 1)
}

func TestClientCancelLeavesQueue(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.concurrency = 1
	cfg.latency = time.Minute
	_, url := startServer(t, cfg)

	holdCtx, release := context.WithCancel(t.Context())
	defer release()
	held := request(holdCtx, url)
	waitGauges(t, url, 1, 0)

	waitCtx, giveUp := context.WithCancel(t.Context())
	waiter := request(waitCtx, url)
	waitGauges(t, url, 1, 1)
	giveUp()
	if r := <-waiter; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled request: code %d, error %v", r.code, r.err)
	}
	waitGauges(t, url, 1, 0) // gone from the queue though the slot is still held

	release()
	<-held
	waitGauges(t, url, 0, 0)
	waitSample(t, url, "sampleapp_requests_total", "code", "499", 2)

	// Neither slot nor place leaked: the next request gets the slot at once.
	nextCtx, cancelNext := context.WithCancel(t.Context())
	defer cancelNext()
	request(nextCtx, url)
	waitGauges(t, url, 1, 0)
}

func TestReadinessAfterStartupDelay(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.startupDelay = 300 * time.Millisecond
	s, url := startServer(t, cfg)
	start := time.Now()

	if code, _ := get(t, url+"/ready"); code != http.StatusServiceUnavailable {
		t.Fatalf("/ready during start-up = %d, want 503", code)
	}
	if code, _ := get(t, url+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz during start-up = %d, want 200", code)
	}
	for {
		code, _ := get(t, url+"/ready")
		if code == http.StatusOK {
			break
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("/ready still %d after 2s", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if elapsed := time.Since(start); elapsed < 250*time.Millisecond {
		t.Fatalf("/ready turned OK after %v, before the 300ms start-up delay", elapsed)
	}
	s.draining.Store(true)
	if code, _ := get(t, url+"/ready"); code != http.StatusServiceUnavailable {
		t.Fatalf("/ready while draining = %d, want 503", code)
	}
	if code, _ := get(t, url+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz while draining = %d, want 200", code)
	}
}

func TestStreamChunksArriveSeparately(t *testing.T) {
	t.Parallel()
	const latency = 400 * time.Millisecond
	cfg := testConfig()
	cfg.latency = latency
	_, url := startServer(t, cfg)

	for name, tc := range map[string]struct {
		query, body string
	}{
		"body":  {body: `{"prompt": "hi", "stream": true}`},
		"query": {query: "?stream=1"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			resp, err := http.Post(url+"/v1/completions"+tc.query, "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
				t.Fatalf("code %d, Content-Type %q", resp.StatusCode, ct)
			}
			var events []string
			var arrivals []time.Duration
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
					events = append(events, data)
					arrivals = append(arrivals, time.Since(start))
				}
			}
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
			if len(events) != tokens+1 || events[tokens] != "[DONE]" {
				t.Fatalf("got %d events ending %q, want %d chunks then [DONE]", len(events), events[len(events)-1], tokens)
			}
			for i, e := range events[:tokens] {
				var c chunk
				if err := json.Unmarshal([]byte(e), &c); err != nil || len(c.Choices) != 1 || c.Pod != "pod-test" {
					t.Fatalf("chunk %d %s: %v", i, e, err)
				}
				if last := c.Choices[0].FinishReason != nil; last != (i == tokens-1) {
					t.Errorf("chunk %d has finish_reason %v", i, c.Choices[0].FinishReason)
				}
			}
			// Unflushed, every chunk would arrive at the end, together.
			if first := arrivals[0]; first > latency/2 {
				t.Errorf("first chunk arrived after %v, want about %v", first, latency/tokens)
			}
			if spread := arrivals[tokens-1] - arrivals[0]; spread < latency/2 {
				t.Errorf("chunks arrived within %v, want spread over about %v", spread, latency*(tokens-1)/tokens)
			}
		})
	}
}

func TestCompletionsWithoutStream(t *testing.T) {
	t.Parallel()
	_, url := startServer(t, testConfig())
	for name, tc := range map[string]struct {
		query, body string
		code        int
	}{
		"empty body":      {code: http.StatusOK},
		"stream false":    {body: `{"stream": false}`, code: http.StatusOK},
		"query stream=0":  {query: "?stream=0", code: http.StatusOK},
		"invalid JSON":    {body: `{"stream": tru`, code: http.StatusBadRequest},
		"invalid boolean": {query: "?stream=maybe", code: http.StatusBadRequest},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			resp, err := http.Post(url+"/v1/completions"+tc.query, "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("code %d, want %d", resp.StatusCode, tc.code)
			}
			if tc.code != http.StatusOK {
				return
			}
			var a answer
			if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || a.Pod != "pod-test" {
				t.Fatalf("answer %+v, error %v", a, err)
			}
		})
	}
}
