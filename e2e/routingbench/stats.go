package main

import (
	"math"
	"slices"
	"time"
)

// result is what the client saw of one request.
type result struct {
	// start is when the request was due (open loop) or sent (closed
	// loop); ttft and e2e count from it, so a late send shows.
	start time.Time
	// ttft is the time to the first token frame, e2e to the end of the
	// stream.
	ttft, e2e time.Duration
	// tokenAt holds when each token frame arrived, from start.
	tokenAt []time.Duration
	// pod is the x-inference-pod header.
	pod string
	// prompt, completion and cached are the usage frame's counts.
	prompt, completion, cached int
	// err is why the request failed, nil if it succeeded.
	err error
}

// percentile returns the p-quantile (0 < p ≤ 1) of sorted by the
// nearest-rank method: the smallest value with at least p of the values
// at or below it. It returns 0 for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p*float64(len(sorted)) - 1e-9))
	return sorted[min(len(sorted), max(1, rank))-1]
}

// cell is the summary of one (workload, load, policy) run.
type cell struct {
	workload workload
	load     float64 // fraction of the measured capacity
	rate     float64 // requests per simulated second
	policy   string

	requests, failures int
	// firstErr is one failure's error, to show what went wrong.
	firstErr error
	// Latencies in simulated time (wall time / time scale).
	ttft50, ttft90, ttft99, e2e99 time.Duration
	// ttfts are every successful request's TTFT, sorted, for the chart.
	ttfts []time.Duration
	// tokensPerSecond is output tokens per simulated second while the
	// measured requests arrive: token frames (of any request of the cell,
	// warm-up included) received from the first measured arrival to the
	// last.
	tokensPerSecond float64
	// hitRate is cached over prompt tokens, NaN without prompt tokens.
	hitRate float64
	// share is each pod's fraction of the successful requests, in the
	// order of the pods argument of summarize.
	share []float64
	// unknownPods counts successful answers from a pod not in the list.
	unknownPods int
	// wall is how long the cell took, warm-up included.
	wall time.Duration
}

// summarize reduces the results of one cell, the first warmup of them
// not counted but for the tokens they stream while the measured ones
// arrive. timeScale converts wall time to simulated time (simulated =
// wall / timeScale).
func summarize(c cell, all []result, warmup int, pods []string, timeScale float64) cell {
	warmup = min(max(warmup, 0), len(all))
	results := all[warmup:]
	c.requests = len(results)
	c.share = make([]float64, len(pods))
	var (
		ttfts, e2es    []time.Duration
		prompt, cached int
		first, last    time.Time
	)
	sim := func(d time.Duration) time.Duration { return time.Duration(float64(d) / timeScale) }
	for _, r := range results {
		if first.IsZero() || r.start.Before(first) {
			first = r.start
		}
		if r.start.After(last) {
			last = r.start
		}
		if r.err != nil {
			c.failures++
			if c.firstErr == nil {
				c.firstErr = r.err
			}
			continue
		}
		ttfts = append(ttfts, sim(r.ttft))
		e2es = append(e2es, sim(r.e2e))
		prompt += r.prompt
		cached += r.cached
		if i := slices.Index(pods, r.pod); i >= 0 {
			c.share[i]++
		} else {
			c.unknownPods++
		}
	}
	slices.Sort(ttfts)
	slices.Sort(e2es)
	c.ttfts = ttfts
	c.ttft50, c.ttft90, c.ttft99 = percentile(ttfts, 0.50), percentile(ttfts, 0.90), percentile(ttfts, 0.99)
	c.e2e99 = percentile(e2es, 0.99)
	if span := sim(last.Sub(first)).Seconds(); span > 0 {
		tokens := 0
		for _, r := range all {
			for _, at := range r.tokenAt {
				if t := r.start.Add(at); !t.Before(first) && !t.After(last) {
					tokens++
				}
			}
		}
		c.tokensPerSecond = float64(tokens) / span
	}
	c.hitRate = math.NaN()
	if prompt > 0 {
		c.hitRate = float64(cached) / float64(prompt)
	}
	if ok := len(ttfts); ok > 0 {
		for i := range c.share {
			c.share[i] /= float64(ok)
		}
	}
	return c
}

// ratio returns a / b, NaN when either is NaN or b is 0 (no baseline).
func ratio(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return math.NaN()
	}
	return a / b
}
