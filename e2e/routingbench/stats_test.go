package main

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	ten := ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	tests := map[string]struct {
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		"empty":         {nil, 0.5, 0},
		"one":           {ms(7), 0.99, 7 * time.Millisecond},
		"median of ten": {ten, 0.5, 5 * time.Millisecond},
		"p90 of ten":    {ten, 0.9, 9 * time.Millisecond},
		"p99 of ten":    {ten, 0.99, 10 * time.Millisecond},
		"p100":          {ten, 1, 10 * time.Millisecond},
		"tiny p":        {ten, 0.001, 1 * time.Millisecond},
		"p50 of two":    {ms(1, 2), 0.5, 1 * time.Millisecond},
		"p51 of two":    {ms(1, 2), 0.51, 2 * time.Millisecond},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tc.sorted, tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	results := []result{
		// Warm-up: not counted, but its tokens between the first and
		// last measured arrivals (10ms to 80ms) are: those at 15 and 30.
		{start: t0, ttft: 1 * time.Millisecond, e2e: 40 * time.Millisecond, pod: "p3", prompt: 1000, completion: 3, cached: 1000, tokenAt: ms(1, 15, 30)},
		{start: t0.Add(10 * time.Millisecond), ttft: 10 * time.Millisecond, e2e: 100 * time.Millisecond, pod: "p1", prompt: 100, completion: 2, cached: 50, tokenAt: ms(10, 60)}, // 20ms, 70ms: both in
		{start: t0.Add(50 * time.Millisecond), ttft: 30 * time.Millisecond, e2e: 200 * time.Millisecond, pod: "p2", prompt: 100, completion: 2, cached: 0, tokenAt: ms(30, 150)}, // 80ms in, 200ms out
		{start: t0.Add(60 * time.Millisecond), err: errors.New("status 429")},
		{start: t0.Add(70 * time.Millisecond), ttft: 20 * time.Millisecond, e2e: 130 * time.Millisecond, pod: "p1", prompt: 200, completion: 1, cached: 150, tokenAt: ms(20)}, // 90ms: out
		{start: t0.Add(80 * time.Millisecond), ttft: 5 * time.Millisecond, e2e: 20 * time.Millisecond, pod: "ghost", prompt: 0, completion: 0},
	}
	// Time scale 0.5: one wall second is two simulated seconds.
	c := summarize(cell{policy: "x"}, results, 1, []string{"p1", "p2", "p3"}, 0.5)
	if c.requests != 5 || c.failures != 1 || c.firstErr == nil || !strings.Contains(c.firstErr.Error(), "429") {
		t.Errorf("requests %d failures %d err %v", c.requests, c.failures, c.firstErr)
	}
	if c.ttft50 != 20*time.Millisecond || c.ttft90 != 60*time.Millisecond || c.ttft99 != 60*time.Millisecond {
		t.Errorf("TTFT p50/p90/p99 %v %v %v, want 20ms 60ms 60ms (simulated: 10, 20, 40, 60)", c.ttft50, c.ttft90, c.ttft99)
	}
	if c.e2e99 != 400*time.Millisecond {
		t.Errorf("E2E p99 %v, want 400ms", c.e2e99)
	}
	// 5 tokens in 70ms wall, 140ms simulated.
	if want := 5 / 0.140; math.Abs(c.tokensPerSecond-want) > 1e-6 {
		t.Errorf("%.3f tok/s, want %.3f", c.tokensPerSecond, want)
	}
	if math.Abs(c.hitRate-0.5) > 1e-12 {
		t.Errorf("hit rate %v, want 200/400 (the warm-up's left out)", c.hitRate)
	}
	if want := []float64{0.5, 0.25, 0}; len(c.share) != 3 || c.share[0] != want[0] || c.share[1] != want[1] || c.share[2] != want[2] || c.unknownPods != 1 {
		t.Errorf("shares %v unknown %d, want %v and 1", c.share, c.unknownPods, want)
	}
	if len(c.ttfts) != 4 || c.ttfts[0] != 10*time.Millisecond {
		t.Errorf("ttfts %v", c.ttfts)
	}

	empty := summarize(cell{}, []result{{start: t0, err: errors.New("x")}}, 0, []string{"p1"}, 1)
	if !math.IsNaN(empty.hitRate) || empty.tokensPerSecond != 0 || empty.ttft90 != 0 || empty.share[0] != 0 || empty.failures != 1 {
		t.Errorf("all failed: %+v", empty)
	}
	if none := summarize(cell{}, results, 99, nil, 1); none.requests != 0 {
		t.Errorf("warm-up beyond the results: %+v", none)
	}
}

func TestRatio(t *testing.T) {
	if r := ratio(1, 4); r != 0.25 {
		t.Errorf("ratio(1, 4) = %v", r)
	}
	for _, c := range [][2]float64{{1, 0}, {math.NaN(), 1}, {1, math.NaN()}} {
		if r := ratio(c[0], c[1]); !math.IsNaN(r) {
			t.Errorf("ratio(%v, %v) = %v, want NaN", c[0], c[1], r)
		}
	}
}
