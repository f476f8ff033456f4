package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakePod streams max_tokens tokens, the first after firstDelay, with a
// usage frame, as llmsim does; a request whose user message is "refuse"
// gets 429, "short" one token too few.
func fakePod(t *testing.T, firstDelay time.Duration) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var b chatBody
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || r.Header.Get(policyHeader) == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		user := b.Messages[len(b.Messages)-1].Content
		if user == "refuse" {
			http.Error(w, "queue full", http.StatusTooManyRequests)
			return
		}
		n := b.MaxTokens
		if user == "short" {
			n--
		}
		w.Header().Set(podHeader, "pod-a")
		w.Header().Set("Content-Type", "text/event-stream")
		time.Sleep(firstDelay)
		fl := w.(http.Flusher)
		for range n {
			fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\" tok\"}}]}\n\n")
			fl.Flush()
			time.Sleep(time.Millisecond)
		}
		fmt.Fprintf(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"prompt_tokens_details\":{\"cached_tokens\":16}}}\n\ndata: [DONE]\n\n",
			len(strings.Fields(user)), n)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestClientDo(t *testing.T) {
	srv, _ := fakePod(t, 50*time.Millisecond)
	c := newClient(strings.TrimPrefix(srv.URL, "http://"), "m", 10*time.Second)
	defer c.close()
	send := func(user string, tokens int) result {
		body, err := c.body(request{user: user, maxTokens: tokens})
		if err != nil {
			t.Fatal(err)
		}
		return c.do(context.Background(), roundRobin, body, tokens, time.Now())
	}
	r := send("one two three", 20)
	if r.err != nil {
		t.Fatal(r.err)
	}
	// 20 tokens a millisecond or more apart: the first comes well before
	// the end.
	if r.ttft < 50*time.Millisecond || r.e2e-r.ttft < 19*time.Millisecond || len(r.tokenAt) != 20 {
		t.Errorf("ttft %v e2e %v, %d token times", r.ttft, r.e2e, len(r.tokenAt))
	}
	if r.pod != "pod-a" || r.prompt != 3 || r.completion != 20 || r.cached != 16 {
		t.Errorf("result %+v", r)
	}
	if r := send("refuse", 5); r.err == nil || !strings.Contains(r.err.Error(), "429") {
		t.Errorf("429: %v", r.err)
	}
	if r := send("short", 5); r.err == nil || !strings.Contains(r.err.Error(), "want 5") {
		t.Errorf("one token short: %v", r.err)
	}
}

// TestOpenLoopDueTimes checks that requests go out at their due times,
// not after the previous answer: each answer takes 300ms, the requests
// are 20ms apart, so sent one after another they would take 3s.
func TestOpenLoopDueTimes(t *testing.T) {
	srv, calls := fakePod(t, 300*time.Millisecond)
	c := newClient(strings.TrimPrefix(srv.URL, "http://"), "m", 10*time.Second)
	defer c.close()
	var reqs []request
	var bodies [][]byte
	for i := range 10 {
		r := request{at: time.Duration(i) * 20 * time.Millisecond, user: "q", maxTokens: 2}
		b, _ := c.body(r)
		reqs, bodies = append(reqs, r), append(bodies, b)
	}
	start := time.Now()
	res := c.openLoop(context.Background(), leastRequest, reqs, bodies, start)
	took := time.Since(start)
	if calls.Load() != 10 {
		t.Fatalf("%d calls", calls.Load())
	}
	for i, r := range res {
		if r.err != nil {
			t.Fatalf("request %d: %v", i, r.err)
		}
		if !r.start.Equal(start.Add(reqs[i].at)) {
			t.Errorf("request %d: start %v, want its due time", i, r.start.Sub(start))
		}
	}
	// Generous for a loaded machine, yet far below 3s.
	if took > 2*time.Second {
		t.Errorf("10 overlapping requests took %v", took)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i, r := range c.openLoop(ctx, leastRequest, reqs, bodies, time.Now().Add(time.Hour)) {
		if r.err == nil {
			t.Fatalf("request %d of a cancelled loop succeeded", i)
		}
	}
}

// TestClosedLoop checks that the loop keeps its clients busy and counts
// only the requests that end after the warm-up: 4 clients, answers of
// about 100ms, a 1.2s loop of which the last 0.9s count, so at most 4 ×
// 0.9 / 0.1 = 36 requests.
func TestClosedLoop(t *testing.T) {
	srv, calls := fakePod(t, 100*time.Millisecond)
	c := newClient(strings.TrimPrefix(srv.URL, "http://"), "m", 10*time.Second)
	defer c.close()
	reqs := []request{{user: "a", maxTokens: 1}, {user: "refuse", maxTokens: 1}}
	var bodies [][]byte
	for _, r := range reqs {
		b, _ := c.body(r)
		bodies = append(bodies, b)
	}
	r := c.closedLoop(context.Background(), roundRobin, reqs, bodies, 4, 1200*time.Millisecond, 0.25)
	if r.window != 900*time.Millisecond {
		t.Errorf("window %v, want 900ms", r.window)
	}
	if len(r.ok) == 0 || len(r.ok) > 36 {
		t.Errorf("%d requests succeeded in the window, want 1 to 36", len(r.ok))
	}
	if r.failures == 0 || r.err == nil || !strings.Contains(r.err.Error(), "429") {
		t.Errorf("%d failures (%v): the refused requests were not counted", r.failures, r.err)
	}
	if n := calls.Load(); n < int64(len(r.ok)+r.failures) {
		t.Errorf("%d calls for %d results", n, len(r.ok)+r.failures)
	}
}
