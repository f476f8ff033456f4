package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// testConfig is the default configuration, twenty times as fast.
func testConfig(t *testing.T) config {
	t.Helper()
	cfg, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.timeScale = 0.05
	cfg.model = "m"
	return cfg
}

// startServer serves cfg on a loopback port, its engine running, until the
// test ends.
func startServer(t *testing.T, cfg config) (*sim, *server, string) {
	t.Helper()
	s, api := assemble(cfg, "pod-test")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	ts := httptest.NewServer(api.handler())
	t.Cleanup(func() {
		api.stop()
		ts.Close()
	})
	return s, api, ts.URL
}

func post(t *testing.T, ctx context.Context, url, body string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return http.DefaultClient.Do(req)
}

// events reads a server-sent event stream's data payloads.
func events(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("line %q is not a data line", line)
		}
		out = append(out, data)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFor polls cond until it holds, failing after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStreamChatWithUsage(t *testing.T) {
	t.Parallel()
	_, _, url := startServer(t, testConfig(t))
	resp, err := post(t, t.Context(), url+"/v1/chat/completions",
		`{"model":"m","messages":[{"role":"system","content":"one two three"},{"role":"user","content":"four"}],"max_tokens":5,"stream":true,"stream_options":{"include_usage":true}}`)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if pod := resp.Header.Get(podHeader); pod != "pod-test" {
		t.Errorf("%s = %q, want pod-test", podHeader, pod)
	}
	evs := events(t, resp.Body)
	// role, 5 tokens (the last with finish_reason), usage, [DONE]
	if len(evs) != 8 || evs[7] != "[DONE]" {
		t.Fatalf("%d events %q, want 8 ending with [DONE]", len(evs), evs)
	}
	var chunks []completion
	for _, e := range evs[:7] {
		var c completion
		if err := json.Unmarshal([]byte(e), &c); err != nil {
			t.Fatalf("event %q: %v", e, err)
		}
		if c.Object != "chat.completion.chunk" || c.Model != "m" || c.ID != chunks0ID(chunks, c.ID) {
			t.Errorf("event %q: wrong object, model or id", e)
		}
		chunks = append(chunks, c)
	}
	if d := chunks[0].Choices[0].Delta; d == nil || d.Role != "assistant" || d.Content != "" {
		t.Errorf("first chunk %+v, want delta.role assistant", chunks[0])
	}
	var text string
	for i, c := range chunks[1:6] {
		ch := c.Choices[0]
		if ch.Delta == nil || ch.Delta.Content == "" {
			t.Errorf("token chunk %d has no content", i)
			continue
		}
		text += ch.Delta.Content
		if last := i == 4; last != (ch.FinishReason != nil) || (last && *ch.FinishReason != "length") {
			t.Errorf("token chunk %d: finish_reason %v", i, ch.FinishReason)
		}
	}
	if text != outputText(5) {
		t.Errorf("streamed text %q, want %q", text, outputText(5))
	}
	u := chunks[6]
	if len(u.Choices) != 0 || u.Usage == nil || u.Usage.PromptTokens != 4 || u.Usage.CompletionTokens != 5 || u.Usage.TotalTokens != 9 {
		t.Errorf("usage chunk %+v, want no choices and usage 4 + 5 = 9", u)
	}
}

func chunks0ID(chunks []completion, id string) string {
	if len(chunks) == 0 {
		return id
	}
	return chunks[0].ID
}

func TestStreamCompletionWithoutUsage(t *testing.T) {
	t.Parallel()
	_, _, url := startServer(t, testConfig(t))
	resp, err := post(t, t.Context(), url+"/v1/completions", `{"prompt":"a b c","max_tokens":3,"stream":true}`)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	evs := events(t, resp.Body)
	if len(evs) != 4 || evs[3] != "[DONE]" {
		t.Fatalf("events %q, want 3 tokens and [DONE]", evs)
	}
	var last completion
	if err := json.Unmarshal([]byte(evs[2]), &last); err != nil {
		t.Fatal(err)
	}
	if last.Object != "text_completion" || last.Usage != nil || last.Choices[0].Text == nil || last.Choices[0].FinishReason == nil {
		t.Errorf("last token chunk %q, want a text_completion with text and finish_reason and no usage", evs[2])
	}
}

func completeOnce(t *testing.T, url, body string) completion {
	t.Helper()
	resp, err := post(t, t.Context(), url+"/v1/completions", body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, data)
	}
	var c completion
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	return c
}

func TestCompletionUsageAndPrefixCache(t *testing.T) {
	t.Parallel()
	_, _, url := startServer(t, testConfig(t))
	body := fmt.Sprintf(`{"model":"m","prompt":%q,"max_tokens":7}`, strings.Join(words("w", 40), " "))
	first := completeOnce(t, url, body)
	if first.Object != "text_completion" || len(first.Choices) != 1 || first.Choices[0].Text == nil || *first.Choices[0].Text != outputText(7) {
		t.Fatalf("answer %+v", first)
	}
	u := first.Usage
	if u == nil || u.PromptTokens != 40 || u.CompletionTokens != 7 || u.TotalTokens != 47 || u.PromptTokensDetails.CachedTokens != 0 {
		t.Fatalf("first usage %+v, want 40 + 7 = 47, none cached", u)
	}
	// 40 tokens: two full blocks, both within the first 39 tokens.
	if c := completeOnce(t, url, body).Usage.PromptTokensDetails.CachedTokens; c != 32 {
		t.Errorf("second identical request: %d tokens cached, want 32", c)
	}
}

func TestModels(t *testing.T) {
	t.Parallel()
	_, _, url := startServer(t, testConfig(t))
	resp, err := http.Get(url + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID          string `json:"id"`
			MaxModelLen int    `json:"max_model_len"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if list.Object != "list" || len(list.Data) != 1 || list.Data[0].ID != "m" || list.Data[0].MaxModelLen != 8192 {
		t.Errorf("models %+v, want the one model m of 8192 tokens", list)
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.maxNumSeqs, cfg.maxWaiting, cfg.timeScale = 1, 1, 1
	s, _, url := startServer(t, cfg)
	// One request runs and one waits, for minutes: the next is refused.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for range 2 {
		go func() {
			if resp, err := post(t, ctx, url+"/v1/completions", `{"prompt":"a","max_tokens":5000}`); err == nil {
				resp.Body.Close()
			}
		}()
	}
	waitFor(t, "one running and one waiting", func() bool {
		snap := s.snapshot()
		return snap.running == 1 && snap.waiting == 1
	})
	for name, tc := range map[string]struct {
		path, body string
		code       int
		want       string
	}{
		"queue full":    {"/v1/completions", `{"prompt":"a"}`, http.StatusTooManyRequests, "too many requests waiting"},
		"too long":      {"/v1/completions", `{"prompt":"a b c","max_tokens":8190}`, http.StatusBadRequest, "maximum context length is 8192 tokens. However, you requested 8193 tokens"},
		"chat too long": {"/v1/chat/completions", `{"messages":[{"role":"user","content":"a b"}],"max_tokens":8191}`, http.StatusBadRequest, "you requested 8193 tokens"},
		"other model":   {"/v1/completions", `{"model":"x","prompt":"a"}`, http.StatusNotFound, "The model `x` does not exist."},
		"bad body":      {"/v1/completions", `{"prompt":1}`, http.StatusBadRequest, "prompt must be"},
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := post(t, t.Context(), url+tc.path, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct {
				Error struct {
					Message string `json:"message"`
					Code    int    `json:"code"`
				} `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.code || e.Error.Code != tc.code || !strings.Contains(e.Error.Message, tc.want) {
				t.Errorf("status %d, error %+v; want %d with %q", resp.StatusCode, e.Error, tc.code, tc.want)
			}
		})
	}
}

func TestClientGoneAborts(t *testing.T) {
	t.Parallel()
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.maxNumSeqs, cfg.timeScale = 1, 1
			s, _, url := startServer(t, cfg)
			ctx, cancel := context.WithCancel(t.Context())
			gone := make(chan struct{})
			go func() {
				defer close(gone)
				body := fmt.Sprintf(`{"prompt":"a b c","max_tokens":5000,"stream":%v}`, stream)
				if resp, err := post(t, ctx, url+"/v1/completions", body); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
			waitFor(t, "the request to run", func() bool { return s.snapshot().running == 1 })
			cancel()
			<-gone
			waitFor(t, "the slot and blocks to be freed", func() bool {
				snap := s.snapshot()
				return snap.running == 0 && snap.kvUsage == 0 && snap.count.success[reasonAbort] == 1
			})
			// The slot serves the next request.
			if c := completeOnce(t, url, `{"prompt":"d e f","max_tokens":2}`); c.Usage.CompletionTokens != 2 {
				t.Errorf("next request: %+v", c.Usage)
			}
		})
	}
}

// scrape gets /metrics and parses it as the Prometheus text format.
func scrape(t *testing.T, url string) (int, []byte, map[string]*dto.MetricFamily, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	return resp.StatusCode, body, fams, err
}

func vllmNames() []string {
	return []string{
		"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc", "vllm:cache_config_info",
		"vllm:prompt_tokens_total", "vllm:generation_tokens_total", "vllm:request_success_total",
		"vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total", "vllm:num_preemptions_total",
		"vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds",
	}
}

func TestMetricsExposition(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.maxNumSeqs, cfg.timeScale = 1, 1
	_, _, url := startServer(t, cfg)
	completeOnce(t, url, `{"prompt":"a b c","max_tokens":2}`)
	// Two long requests: one runs, one waits; the gauges show it at once.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for range 2 {
		go func() {
			if resp, err := post(t, ctx, url+"/v1/completions", `{"prompt":"x","max_tokens":5000}`); err == nil {
				resp.Body.Close()
			}
		}()
	}
	var fams map[string]*dto.MetricFamily
	waitFor(t, "waiting 1 and running 1 on /metrics", func() bool {
		code, body, f, err := scrape(t, url)
		if err != nil || code != http.StatusOK {
			t.Fatalf("scrape: %d %v\n%s", code, err, body)
		}
		fams = f
		return gaugeValue(f, "vllm:num_requests_waiting") == 1 && gaugeValue(f, "vllm:num_requests_running") == 1
	})
	for _, name := range vllmNames() {
		f, ok := fams[name]
		if !ok {
			t.Errorf("/metrics lacks %s", name)
			continue
		}
		for _, m := range f.Metric {
			if !hasLabel(m, "model_name", "m") {
				t.Errorf("%s lacks model_name=\"m\"", name)
			}
		}
	}
	if c := fams["vllm:cache_config_info"]; c != nil && (!hasLabel(c.Metric[0], "block_size", "16") || !hasLabel(c.Metric[0], "num_gpu_blocks", "2048")) {
		t.Errorf("cache_config_info labels %v", c.Metric[0].Label)
	}
	for _, h := range []string{"vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds"} {
		if got := fams[h].GetMetric()[0].GetHistogram().GetSampleCount(); got < 1 {
			t.Errorf("%s count %d, want the finished request", h, got)
		}
	}
	if kv := gaugeValue(fams, "vllm:kv_cache_usage_perc"); kv <= 0 || kv > 1 {
		t.Errorf("kv_cache_usage_perc %v while a request runs", kv)
	}
}

func gaugeValue(fams map[string]*dto.MetricFamily, name string) float64 {
	f, ok := fams[name]
	if !ok || len(f.Metric) == 0 {
		return -1
	}
	return f.Metric[0].GetGauge().GetValue()
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.Label {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

func put(t *testing.T, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func TestMetricsFaults(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.metricsFaultDelay = 300 * time.Millisecond
	cfg.metricsFault = faultError // the flag's mode applies from the start
	_, _, url := startServer(t, cfg)
	if code, _, _, _ := scrape(t, url); code != http.StatusInternalServerError {
		t.Fatalf("with --metrics-fault error: status %d, want 500", code)
	}
	// Sequential: one server, one mode at a time.
	for _, tc := range []struct {
		mode  string
		check func(t *testing.T, code int, body []byte, fams map[string]*dto.MetricFamily, err error, took time.Duration)
	}{
		{"none", func(t *testing.T, code int, _ []byte, fams map[string]*dto.MetricFamily, err error, _ time.Duration) {
			if err != nil || code != 200 || fams["vllm:num_requests_waiting"] == nil {
				t.Errorf("status %d, error %v, waiting family present %v", code, err, fams["vllm:num_requests_waiting"] != nil)
			}
		}},
		{"slow", func(t *testing.T, code int, _ []byte, fams map[string]*dto.MetricFamily, err error, took time.Duration) {
			if err != nil || code != 200 || fams["vllm:num_requests_running"] == nil || took < 300*time.Millisecond {
				t.Errorf("status %d, error %v, took %v; want a valid answer after 300ms", code, err, took)
			}
		}},
		{"hang", func(t *testing.T, _ int, _ []byte, _ map[string]*dto.MetricFamily, err error, _ time.Duration) {
			var ne interface{ Timeout() bool }
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("error %v, want the client's timeout", err)
			}
		}},
		{"huge", func(t *testing.T, code int, body []byte, fams map[string]*dto.MetricFamily, err error, _ time.Duration) {
			if err != nil || code != 200 || len(body) <= 2<<20 || fams["vllm:num_requests_waiting"] == nil {
				t.Errorf("status %d, error %v, %d bytes; want a valid exposition over 2 MiB", code, err, len(body))
			}
		}},
		{"malformed", func(t *testing.T, code int, body []byte, _ map[string]*dto.MetricFamily, err error, _ time.Duration) {
			if code != 200 || err == nil {
				t.Errorf("status %d, parse error %v; want 200 and a body that does not parse:\n%s", code, err, body)
			}
		}},
		{"missing", func(t *testing.T, code int, _ []byte, fams map[string]*dto.MetricFamily, err error, _ time.Duration) {
			if err != nil || code != 200 || fams["vllm:num_requests_waiting"] != nil || fams["vllm:num_requests_running"] == nil {
				t.Errorf("status %d, error %v; want only vllm:num_requests_waiting left out", code, err)
			}
		}},
		{"error", func(t *testing.T, code int, _ []byte, _ map[string]*dto.MetricFamily, _ error, _ time.Duration) {
			if code != http.StatusInternalServerError {
				t.Errorf("status %d, want 500", code)
			}
		}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			if code, body := put(t, url+"/sim/metrics-fault", tc.mode+"\n"); code != 200 || strings.TrimSpace(body) != tc.mode {
				t.Fatalf("PUT %s: %d %q", tc.mode, code, body)
			}
			began := time.Now()
			code, body, fams, err := scrape(t, url)
			tc.check(t, code, body, fams, err, time.Since(began))
		})
	}
	if code, body := put(t, url+"/sim/metrics-fault", "sometimes"); code != http.StatusBadRequest || !strings.Contains(body, `"sometimes" is none of`) {
		t.Errorf("PUT of an unknown mode: %d %q", code, body)
	}
}

func TestHealthSwitch(t *testing.T) {
	t.Parallel()
	_, _, url := startServer(t, testConfig(t))
	health := func() int {
		resp, err := http.Get(url + "/health")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, step := range []struct {
		body string
		code int
	}{{"fail", 503}, {"ok", 200}, {"fail", 503}} {
		if code, _ := put(t, url+"/sim/health", step.body); code != 200 {
			t.Fatalf("PUT %s: %d", step.body, code)
		}
		if got := health(); got != step.code {
			t.Errorf("after %s: /health %d, want %d", step.body, got, step.code)
		}
	}
	if code, _ := put(t, url+"/sim/health", "maybe"); code != http.StatusBadRequest {
		t.Errorf("PUT maybe: %d, want 400", code)
	}
}
