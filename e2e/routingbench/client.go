package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// policyHeader selects the activator route, and so the policy, of a
// request: one activator serves every policy, one route each.
const policyHeader = "X-Bench-Policy"

// podHeader names the pod that answered, set by llmsim (and by
// llm-d-inference-sim with POD_NAME).
const podHeader = "X-Inference-Pod"

// client sends streaming chat completions to the activator.
type client struct {
	url     string // http://activator/v1/chat/completions
	model   string
	http    *http.Client
	timeout time.Duration // per request, wall time
}

func newClient(addr, model string, timeout time.Duration) *client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &client{url: "http://" + addr + "/v1/chat/completions", model: model, http: &http.Client{Transport: tr}, timeout: timeout}
}

func (c *client) close() { c.http.CloseIdleConnections() }

// chatBody is the request body. Field order matters: model and messages
// come first, so that the first bytes of the body, which body-prefix
// affinity hashes, are the same for requests that share a system prompt.
type chatBody struct {
	Model         string        `json:"model"`
	Messages      []chatMessage `json:"messages"`
	MaxTokens     int           `json:"max_tokens"`
	Stream        bool          `json:"stream"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	IgnoreEOS bool `json:"ignore_eos"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// body returns the JSON request body of r.
func (c *client) body(r request) ([]byte, error) {
	b := chatBody{Model: c.model, MaxTokens: r.maxTokens, Stream: true, IgnoreEOS: true}
	b.StreamOptions.IncludeUsage = true
	if r.system != "" {
		b.Messages = append(b.Messages, chatMessage{Role: "system", Content: r.system})
	}
	b.Messages = append(b.Messages, chatMessage{Role: "user", Content: r.user})
	return json.Marshal(b)
}

// do sends one request through the route of policy; start is when it
// was due, which latencies count from.
func (c *client) do(ctx context.Context, policy string, body []byte, maxTokens int, start time.Time) result {
	res := result{start: start}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		res.err = err
		return res
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set(policyHeader, policy)
	resp, err := c.http.Do(req)
	if err != nil {
		res.err = err
		return res
	}
	defer resp.Body.Close()
	res.pod = resp.Header.Get(podHeader)
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		res.err = fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
		return res
	}
	s, err := readStream(resp.Body, func() {
		d := time.Since(start)
		if res.tokenAt == nil {
			res.ttft = d
			res.tokenAt = make([]time.Duration, 0, maxTokens)
		}
		res.tokenAt = append(res.tokenAt, d)
	})
	res.e2e = time.Since(start)
	if err != nil {
		res.err = err
		return res
	}
	if s.usage == nil {
		res.err = fmt.Errorf("no usage frame (%d tokens)", s.tokens)
		return res
	}
	res.prompt, res.completion, res.cached = s.usage.PromptTokens, s.usage.CompletionTokens, s.usage.cached()
	if s.tokens != maxTokens || res.completion != maxTokens {
		res.err = fmt.Errorf("%d token frames and usage of %d tokens, want %d", s.tokens, res.completion, maxTokens)
	}
	return res
}

// openLoop sends reqs at their due times (from start), whatever the
// latency, each on its own goroutine, and returns their results in the
// order of reqs. Latencies count from the due time, so a late send shows
// instead of slowing the load.
func (c *client) openLoop(ctx context.Context, policy string, reqs []request, bodies [][]byte, start time.Time) []result {
	results := make([]result, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		due := start.Add(r.at)
		if w := time.Until(due); w > 0 {
			t := time.NewTimer(w)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			for j := i; j < len(reqs); j++ {
				results[j] = result{start: start.Add(reqs[j].at), err: ctx.Err()}
			}
			break
		}
		wg.Go(func() { results[i] = c.do(ctx, policy, bodies[i], r.maxTokens, due) })
	}
	wg.Wait()
	return results
}

// loopResult is what a closed loop measured.
type loopResult struct {
	// ok are the requests that succeeded within the window.
	ok []result
	// failures counts those that failed within it; err is one of them.
	failures int
	err      error
	// window is the time measured: the loop's duration less the warm-up.
	window time.Duration
}

// closedLoop keeps concurrency requests in flight, cycling through reqs,
// for d, and counts the requests that ended in the last (1-warm) of d;
// requests still in flight at the end are cancelled and not counted.
func (c *client) closedLoop(ctx context.Context, policy string, reqs []request, bodies [][]byte, concurrency int, d time.Duration, warm float64) loopResult {
	loopCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	begin := time.Now()
	from, end := begin.Add(time.Duration(warm*float64(d))), begin.Add(d)
	var (
		mu   sync.Mutex
		next int
		wg   sync.WaitGroup
		out  = loopResult{window: end.Sub(from)}
	)
	take := func() int {
		mu.Lock()
		defer mu.Unlock()
		i := next % len(reqs)
		next++
		return i
	}
	for range concurrency {
		wg.Go(func() {
			for loopCtx.Err() == nil && time.Now().Before(end) {
				i := take()
				r := c.do(loopCtx, policy, bodies[i], reqs[i].maxTokens, time.Now())
				done := r.start.Add(r.e2e)
				if loopCtx.Err() != nil || !done.After(from) || !done.Before(end) {
					continue
				}
				mu.Lock()
				if r.err == nil {
					out.ok = append(out.ok, r)
				} else if out.failures++; out.err == nil {
					out.err = r.err
				}
				mu.Unlock()
			}
		})
	}
	t := time.NewTimer(time.Until(end))
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	t.Stop()
	cancel()
	wg.Wait()
	return out
}
