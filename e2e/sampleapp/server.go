package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// tokens is how many chunks a streamed completion sends, spread evenly over
// the request's latency.
const tokens = 8

// statusClientGone is nginx's code for a request whose client went away
// before the answer; it is only counted, never sent.
const statusClientGone = 499

// server answers model requests through a queue of --concurrency slots.
type server struct {
	cfg      config
	pod      string
	q        *queue
	m        *metrics
	readyAt  time.Time
	draining atomic.Bool

	served, rejected, abandoned atomic.Int64
}

func newServer(cfg config, pod string, reg prometheus.Registerer) *server {
	s := &server{
		cfg:     cfg,
		pod:     pod,
		q:       newQueue(cfg.concurrency, cfg.maxWaiting),
		readyAt: time.Now().Add(cfg.startupDelay),
	}
	s.m = newMetrics(reg, cfg.model, s.q)
	return s
}

// handler serves the probes, /metrics from reg, and model requests on every
// other path.
func (s *server) handler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/ready", s.serveReady)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/", s.serveModel)
	return mux
}

func (s *server) serveReady(w http.ResponseWriter, _ *http.Request) {
	switch {
	case s.draining.Load():
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
	case time.Now().Before(s.readyAt):
		http.Error(w, "loading the model", http.StatusServiceUnavailable)
	default:
		fmt.Fprintln(w, "ok")
	}
}

// answer is the body of a plain model request, and part of every streamed
// chunk.
type answer struct {
	Pod      string  `json:"pod"`
	WaitedMS float64 `json:"waited_ms"`
	ServedMS float64 `json:"served_ms"`
}

func (s *server) serveModel(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	stream, err := wantsStream(w, r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		s.finish(start, http.StatusBadRequest)
		return
	}
	switch s.q.acquire(r.Context()) {
	case rejected:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many requests waiting", http.StatusServiceUnavailable)
		s.finish(start, http.StatusServiceUnavailable)
		return
	case abandoned:
		s.finish(start, statusClientGone)
		return
	}
	defer s.q.release()
	a := answer{Pod: s.pod, WaitedMS: millis(time.Since(start))}
	var code int
	if stream {
		code = s.stream(w, r, a)
	} else {
		code = s.complete(w, r, a)
	}
	s.finish(start, code)
}

// complete answers after the whole latency, like a non-streamed completion.
func (s *server) complete(w http.ResponseWriter, r *http.Request, a answer) int {
	began := time.Now()
	if !sleep(r.Context(), s.latency()) {
		return statusClientGone
	}
	a.ServedMS = millis(time.Since(began))
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(a); err != nil {
		return statusClientGone
	}
	return http.StatusOK
}

// chunk is one server-sent event of a streamed completion, shaped like
// OpenAI's so that OpenAI clients can read it.
type chunk struct {
	answer
	Object  string   `json:"object"`
	Model   string   `json:"model"`
	Choices []choice `json:"choices"`
}

type choice struct {
	Index        int     `json:"index"`
	Text         string  `json:"text"`
	FinishReason *string `json:"finish_reason"`
}

// stream sends one flushed chunk per token, each after its share of the
// latency, then "data: [DONE]".
func (s *server) stream(w http.ResponseWriter, r *http.Request, a answer) int {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	began := time.Now()
	step := s.latency() / tokens
	for i := range tokens {
		if !sleep(r.Context(), step) {
			return statusClientGone
		}
		c := chunk{answer: a, Object: "text_completion", Model: s.cfg.model, Choices: []choice{{Text: " token" + strconv.Itoa(i)}}}
		c.ServedMS = millis(time.Since(began))
		if i == tokens-1 {
			reason := "length"
			c.Choices[0].FinishReason = &reason
		}
		data, err := json.Marshal(c)
		if err != nil {
			panic(err) // a struct of strings and numbers always marshals
		}
		if !event(w, rc, data) {
			return statusClientGone
		}
	}
	if !event(w, rc, []byte("[DONE]")) {
		return statusClientGone
	}
	return http.StatusOK
}

// event writes and flushes one server-sent event, reporting whether the
// client took it.
func event(w io.Writer, rc *http.ResponseController, data []byte) bool {
	if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
		return false
	}
	return rc.Flush() == nil
}

func (s *server) finish(start time.Time, code int) {
	s.m.observe(code, time.Since(start).Seconds())
	switch code {
	case http.StatusOK:
		s.served.Add(1)
	case http.StatusServiceUnavailable:
		s.rejected.Add(1)
	case statusClientGone:
		s.abandoned.Add(1)
	}
}

// latency draws one request's latency, uniform within ±jitter of the mean.
func (s *server) latency() time.Duration {
	f := 1 + s.cfg.jitter*(2*rand.Float64()-1)
	return time.Duration(float64(s.cfg.latency) * f)
}

// wantsStream reports whether r asks for a streamed completion: only
// POST /v1/completions can, with ?stream=1 or "stream": true in its body.
func wantsStream(w http.ResponseWriter, r *http.Request) (bool, error) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/completions" {
		return false, nil
	}
	if v := r.URL.Query().Get("stream"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("query parameter stream=%q is not a boolean", v)
		}
		if b {
			return true, nil
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		return false, fmt.Errorf("reading the request body: %w", err)
	}
	if len(body) == 0 {
		return false, nil
	}
	var req struct {
		Stream bool `json:"stream"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return false, fmt.Errorf("decoding the request body: %w", err)
	}
	return req.Stream, nil
}

// sleep waits d, reporting false if ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// wait blocks until no request runs or waits, or ctx ends.
func (s *server) wait(ctx context.Context) {
	select {
	case <-s.q.idleCh():
	case <-ctx.Done():
	}
}
