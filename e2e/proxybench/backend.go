package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// runBackend serves a small fixed answer on each address, like the hello
// servers of PEERS.md's reference numbers, and on GET /metrics what a
// vLLM pod would report (see appendExposition) from that address's own
// counts, so that a score route has pods to scrape.
func runBackend(addrs []string) {
	errs := make(chan error, len(addrs))
	var wg sync.WaitGroup
	for _, addr := range addrs {
		srv := &http.Server{Addr: addr, ReadHeaderTimeout: 10 * time.Second, Handler: newBackendHandler()}
		wg.Go(func() { errs <- srv.ListenAndServe() })
	}
	err := <-errs
	fmt.Fprintln(os.Stderr, "backend:", err)
	os.Exit(1)
}

// backendHandler is one backend address: the hello answer, and its
// counts as a vLLM pod's metrics.
type backendHandler struct {
	body     []byte
	inflight atomic.Int64  // hello requests being answered
	served   atomic.Uint64 // hello requests answered
	// metrics is the scratch buffer of /metrics; scrapes of one address
	// come one at a time, the lock is for the odd overlap.
	mu      sync.Mutex
	metrics []byte
}

func newBackendHandler() *backendHandler {
	return &backendHandler{body: []byte("hello from the backend\n")}
}

func (h *backendHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/metrics" {
		h.serveMetrics(w)
		return
	}
	h.inflight.Add(1)
	defer func() {
		h.inflight.Add(-1)
		h.served.Add(1)
	}()
	if r.URL.Path == "/slow" { // held requests in the memory test never get here
		time.Sleep(time.Second)
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write(h.body)
}

func (h *backendHandler) serveMetrics(w http.ResponseWriter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.metrics = appendExposition(h.metrics[:0], vllmStats{inflight: h.inflight.Load(), served: h.served.Load()})
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(h.metrics)))
	w.Write(h.metrics)
}

// vllmStats is what a backend address has counted, to be reported as a
// vLLM pod would.
type vllmStats struct {
	inflight int64  // requests being answered
	served   uint64 // requests answered
}

// The backend as a vLLM pod: a batch of at most standInMaxSeqs requests
// (more wait), a KV cache that holds standInKVSeqs of them, and each hello
// request counted as standInPromptTokens in and standInOutputTokens out.
const (
	standInModel        = "proxybench"
	standInMaxSeqs      = 8
	standInKVSeqs       = 16
	standInPromptTokens = 32
	standInOutputTokens = 8
)

// vLLM's buckets of vllm:time_to_first_token_seconds and of
// vllm:e2e_request_latency_seconds, as in INFERENCE.md and e2e/llmsim.
func ttftBuckets() []float64 {
	return []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560}
}

func latencyBuckets() []float64 {
	return []float64{0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680}
}

// appendExposition appends to b, in the Prometheus text format, the
// families e2e/llmsim serves under vLLM's names (the score route's three
// gauges, the cache info, the token and request counters) and the six
// latency histograms INFERENCE.md lists (vLLM's TTFT buckets where
// llmsim has none), about 12 KB: a scrape reads an exposition of a model
// server's shape and size, not just the three lines it uses. Every
// answered request counts as instant (first buckets).
func appendExposition(b []byte, s vllmStats) []byte {
	running := min(s.inflight, standInMaxSeqs)
	waiting := s.inflight - running
	kv := float64(running) / standInKVSeqs
	label := `{model_name="` + standInModel + `"}`
	family := func(name, typ, help string) {
		b = fmt.Appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	sample := func(name, labels string, v float64) {
		b = append(b, name...)
		b = append(b, labels...)
		b = append(b, ' ')
		b = strconv.AppendFloat(b, v, 'g', -1, 64)
		b = append(b, '\n')
	}
	one := func(name, typ, help string, v float64) {
		family(name, typ, help)
		sample(name, label, v)
	}
	served := float64(s.served)
	one("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.", float64(running))
	one("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", float64(waiting))
	one("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", kv)
	family("vllm:cache_config_info", "gauge", "Information of the LLMEngine CacheConfig.")
	sample("vllm:cache_config_info", `{block_size="16",model_name="`+standInModel+`",num_gpu_blocks="`+strconv.Itoa(standInKVSeqs*64)+`"}`, 1)
	one("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.", served*standInPromptTokens)
	one("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.", served*standInOutputTokens)
	family("vllm:request_success_total", "counter", "Count of successfully processed requests.")
	for _, reason := range []string{"stop", "length", "abort"} {
		v := 0.0
		if reason == "length" {
			v = served
		}
		sample("vllm:request_success_total", `{finish_reason="`+reason+`",model_name="`+standInModel+`"}`, v)
	}
	one("vllm:prefix_cache_hits_total", "counter", "Prefix cache hits, in terms of number of cached tokens.", 0)
	one("vllm:prefix_cache_queries_total", "counter", "Prefix cache queries, in terms of number of queried tokens.", served*standInPromptTokens)
	one("vllm:num_preemptions_total", "counter", "Cumulative number of preemptions from the engine.", 0)
	histogram := func(name, help string, buckets []float64, each float64) {
		family(name, "histogram", help)
		for _, le := range buckets {
			sample(name+"_bucket", `{model_name="`+standInModel+`",le="`+strconv.FormatFloat(le, 'g', -1, 64)+`"}`, served)
		}
		sample(name+"_bucket", `{model_name="`+standInModel+`",le="+Inf"}`, served)
		sample(name+"_sum", label, served*each)
		sample(name+"_count", label, served)
	}
	histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", ttftBuckets(), 0.0002)
	histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", ttftBuckets(), 0.00002)
	histogram("vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.", latencyBuckets(), 0.0003)
	histogram("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", ttftBuckets(), 0)
	histogram("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", ttftBuckets(), 0.0001)
	histogram("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", ttftBuckets(), 0.0002)
	return b
}
