package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// maxBody bounds a request body: 16 MiB, far more than a --max-model-len
// of words.
const maxBody = 16 << 20

// podHeader names the pod that served a response, as llm-d's simulator does.
const podHeader = "x-inference-pod"

// server is llmsim's HTTP side: the OpenAI API over a sim, /metrics with
// its faults, /health, and the /sim/ switches.
type server struct {
	model       string
	maxModelLen int
	pod         string
	sim         *sim
	faultDelay  time.Duration
	fault       atomic.Int32 // a metricsFault
	unhealthy   atomic.Bool
	ids         atomic.Uint64
	created     int64

	metrics, missing http.Handler
	huge             func() http.Handler

	// stopping is closed when the HTTP server shuts down, so that the slow
	// and hang faults let go of their scrapes.
	stopping chan struct{}
	stopOnce sync.Once
}

func newServer(cfg config, pod string, s *sim, reg *prometheus.Registry) *server {
	srv := &server{
		model: cfg.model, maxModelLen: cfg.maxModelLen, pod: pod, sim: s,
		faultDelay: cfg.metricsFaultDelay, created: time.Now().Unix(),
		stopping: make(chan struct{}),
	}
	srv.fault.Store(int32(cfg.metricsFault))
	opts := promhttp.HandlerOpts{}
	srv.metrics = promhttp.HandlerFor(reg, opts)
	srv.missing = promhttp.HandlerFor(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		fams, err := reg.Gather()
		out := fams[:0]
		for _, f := range fams {
			if f.GetName() != "vllm:num_requests_waiting" {
				out = append(out, f)
			}
		}
		return out, err
	}), opts)
	// Built on first use: 20,000 series are worth a few MiB only when asked
	// for. Uncompressed, so that the body is huge on the wire too.
	srv.huge = sync.OnceValue(func() http.Handler {
		pad := paddingFamily()
		return promhttp.HandlerFor(prometheus.Gatherers{reg, prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
			return []*dto.MetricFamily{pad}, nil
		})}, promhttp.HandlerOpts{DisableCompression: true})
	})
	return srv
}

// stop lets go of scrapes held by the slow and hang faults.
func (s *server) stop() { s.stopOnce.Do(func() { close(s.stopping) }) }

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { s.serveCompletion(w, r, false) })
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { s.serveCompletion(w, r, true) })
	mux.HandleFunc("GET /v1/models", s.serveModels)
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	mux.HandleFunc("GET /health", s.serveHealth)
	mux.HandleFunc("GET /sim/metrics-fault", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, metricsFault(s.fault.Load()))
	})
	mux.HandleFunc("PUT /sim/metrics-fault", s.setFault)
	mux.HandleFunc("GET /sim/health", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, healthName(!s.unhealthy.Load()))
	})
	mux.HandleFunc("PUT /sim/health", s.setHealth)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(podHeader, s.pod)
		mux.ServeHTTP(w, r)
	})
}

func healthName(ok bool) string {
	if ok {
		return "ok"
	}
	return "fail"
}

func (s *server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	if s.unhealthy.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK) // vLLM answers an empty 200
}

func (s *server) setHealth(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64))
	if err != nil {
		http.Error(w, fmt.Sprintf("reading the body: %v", err), http.StatusBadRequest)
		return
	}
	switch v := strings.TrimSpace(string(body)); v {
	case "ok", "fail":
		s.unhealthy.Store(v == "fail")
		fmt.Fprintln(w, v)
	default:
		http.Error(w, fmt.Sprintf("health %q is neither ok nor fail", v), http.StatusBadRequest)
	}
}

func (s *server) setFault(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64))
	if err != nil {
		http.Error(w, fmt.Sprintf("reading the body: %v", err), http.StatusBadRequest)
		return
	}
	f, err := parseFault(string(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.fault.Store(int32(f))
	fmt.Fprintln(w, f)
}

func (s *server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	switch metricsFault(s.fault.Load()) {
	case faultSlow:
		t := time.NewTimer(s.faultDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-s.stopping:
		}
		s.metrics.ServeHTTP(w, r)
	case faultHang:
		select {
		case <-r.Context().Done():
		case <-s.stopping:
		}
	case faultHuge:
		s.huge().ServeHTTP(w, r)
	case faultMalformed:
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		io.WriteString(w, malformedExposition)
	case faultMissing:
		s.missing.ServeHTTP(w, r)
	case faultError:
		http.Error(w, "metrics fault: error", http.StatusInternalServerError)
	default:
		s.metrics.ServeHTTP(w, r)
	}
}

func (s *server) serveModels(w http.ResponseWriter, _ *http.Request) {
	type model struct {
		ID          string `json:"id"`
		Object      string `json:"object"`
		Created     int64  `json:"created"`
		OwnedBy     string `json:"owned_by"`
		Root        string `json:"root"`
		MaxModelLen int    `json:"max_model_len"`
	}
	writeJSON(w, http.StatusOK, struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{"list", []model{{s.model, "model", s.created, "llmsim", s.model, s.maxModelLen}}})
}

// apiError writes an error in OpenAI's shape.
func apiError(w http.ResponseWriter, code int, typ, msg string) {
	type body struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Param   any    `json:"param"`
		Code    int    `json:"code"`
	}
	writeJSON(w, code, struct {
		Error body `json:"error"`
	}{body{msg, typ, nil, code}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		http.Error(w, fmt.Sprintf("encoding the answer: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(data, '\n'))
}

// The shapes of OpenAI's answers, as far as llmsim fills them.
type (
	usage struct {
		PromptTokens        int `json:"prompt_tokens"`
		CompletionTokens    int `json:"completion_tokens"`
		TotalTokens         int `json:"total_tokens"`
		PromptTokensDetails struct {
			CachedTokens int `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	}
	chatMessage struct {
		Role    string `json:"role,omitempty"`
		Content string `json:"content"`
	}
	choice struct {
		Index        int          `json:"index"`
		Text         *string      `json:"text,omitempty"`
		Message      *chatMessage `json:"message,omitempty"`
		Delta        *chatMessage `json:"delta,omitempty"`
		Logprobs     *struct{}    `json:"logprobs"`
		FinishReason *string      `json:"finish_reason"`
	}
	completion struct {
		ID      string   `json:"id"`
		Object  string   `json:"object"`
		Created int64    `json:"created"`
		Model   string   `json:"model"`
		Choices []choice `json:"choices"`
		Usage   *usage   `json:"usage,omitempty"`
	}
)

func usageOf(p progress) *usage {
	u := &usage{PromptTokens: p.promptLen, CompletionTokens: p.generated, TotalTokens: p.promptLen + p.generated}
	u.PromptTokensDetails.CachedTokens = p.cached
	return u
}

// serveCompletion runs one completion or chat completion through the
// engine. Errors found before the first token are plain HTTP statuses; a
// stream's status line and first event are sent with its first token, as
// vLLM does. If the client goes away, the request is aborted.
func (s *server) serveCompletion(w http.ResponseWriter, r *http.Request, chat bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		apiError(w, http.StatusBadRequest, "BadRequestError", fmt.Sprintf("reading the request body: %v", err))
		return
	}
	p, err := parseRequest(body, chat)
	if err != nil {
		apiError(w, http.StatusBadRequest, "BadRequestError", err.Error())
		return
	}
	if p.model != "" && p.model != s.model {
		apiError(w, http.StatusNotFound, "NotFoundError", fmt.Sprintf("The model `%s` does not exist.", p.model))
		return
	}
	req := newRequest(len(p.words), blockHashes(p.words), p.maxTokens)
	switch s.sim.add(req) {
	case tooLong:
		apiError(w, http.StatusBadRequest, "BadRequestError", fmt.Sprintf(
			"This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.",
			s.maxModelLen, req.promptLen+req.maxTokens, req.promptLen, req.maxTokens))
		return
	case queueFull:
		w.Header().Set("Retry-After", "1")
		apiError(w, http.StatusTooManyRequests, "TooManyRequestsError", "too many requests waiting")
		return
	}
	finished := false
	defer func() {
		if !finished {
			s.sim.abort(req)
		}
	}()

	out := completion{Object: "text_completion", Model: s.model, Created: time.Now().Unix()}
	if chat {
		out.Object = "chat.completion"
		out.ID = fmt.Sprintf("chatcmpl-%s-%d", s.pod, s.ids.Add(1))
	} else {
		out.ID = fmt.Sprintf("cmpl-%s-%d", s.pod, s.ids.Add(1))
	}
	var st *streamer
	if p.stream {
		st = &streamer{w: w, rc: http.NewResponseController(w), chunk: out, chat: chat}
		if chat {
			st.chunk.Object = "chat.completion.chunk"
		}
	}
	for {
		select {
		case <-req.notify:
		case <-r.Context().Done():
			return
		}
		pr := s.sim.progress(req)
		if pr.state == stateAborted {
			return
		}
		if st != nil {
			if err := st.tokens(pr); err != nil {
				return
			}
		}
		if pr.state != stateDone {
			continue
		}
		finished = true
		if st != nil {
			if p.includeUsage {
				st.usage(pr)
			}
			st.event([]byte("[DONE]"))
			return
		}
		text := outputText(pr.generated)
		reason := "length"
		if chat {
			out.Choices = []choice{{Message: &chatMessage{Role: "assistant", Content: text}, FinishReason: &reason}}
		} else {
			out.Choices = []choice{{Text: &text, FinishReason: &reason}}
		}
		out.Usage = usageOf(pr)
		writeJSON(w, http.StatusOK, out)
		return
	}
}

func outputText(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(outputWord(i))
	}
	return b.String()
}

// streamer writes a completion as server-sent events.
type streamer struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	chunk   completion
	chat    bool
	started bool
	sent    int
	buf     []byte
}

// tokens sends one chunk per token generated since the last call, the last
// token's chunk with finish_reason "length", and flushes once.
func (s *streamer) tokens(pr progress) error {
	if pr.generated == s.sent {
		return nil
	}
	if !s.started {
		s.started = true
		h := s.w.Header()
		h.Set("Content-Type", "text/event-stream; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		s.w.WriteHeader(http.StatusOK)
		if s.chat {
			s.write(choice{Delta: &chatMessage{Role: "assistant"}})
		}
	}
	for ; s.sent < pr.generated; s.sent++ {
		word := outputWord(s.sent)
		var c choice
		if s.chat {
			c.Delta = &chatMessage{Content: word}
		} else {
			c.Text = &word
		}
		if s.sent+1 == pr.maxTokens {
			reason := "length"
			c.FinishReason = &reason
		}
		s.write(c)
	}
	return s.flush()
}

// usage sends the usage chunk: no choices, only usage.
func (s *streamer) usage(pr progress) {
	c := s.chunk
	c.Choices = []choice{}
	c.Usage = usageOf(pr)
	s.appendEvent(c)
}

// event sends a raw event and flushes.
func (s *streamer) event(data []byte) error {
	s.buf = fmt.Appendf(s.buf, "data: %s\n\n", data)
	return s.flush()
}

func (s *streamer) write(c choice) {
	chunk := s.chunk
	chunk.Choices = []choice{c}
	s.appendEvent(chunk)
}

func (s *streamer) appendEvent(c completion) {
	data, err := json.Marshal(c)
	if err != nil {
		// Strings and numbers only: this cannot happen; if it did, the
		// client would see the stream end early.
		return
	}
	s.buf = append(append(append(s.buf, "data: "...), data...), "\n\n"...)
}

func (s *streamer) flush() error {
	if _, err := s.w.Write(s.buf); err != nil {
		return err
	}
	s.buf = s.buf[:0]
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}
