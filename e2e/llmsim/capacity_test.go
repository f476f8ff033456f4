package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// workload makes the i-th request of a run: its prompt words and max_tokens.
type workload func(rng *rand.Rand, i int) ([]string, int)

// mixedWorkload: prompts of 100 to 1,000 tokens, outputs of 50 to 300, no
// prefix shared (each prompt starts with its own word).
func mixedWorkload() workload {
	return func(rng *rand.Rand, i int) ([]string, int) {
		w := words(fmt.Sprintf("m%d-", i), 100+rng.IntN(901))
		return w, 50 + rng.IntN(251)
	}
}

// sharedPrefixWorkload: one of 16 system prompts of 2,000 tokens, then a
// question of 50; 100 output tokens.
func sharedPrefixWorkload() workload {
	systems := make([][]string, 16)
	for i := range systems {
		systems[i] = words(fmt.Sprintf("sys%d-", i), 2000)
	}
	return func(rng *rand.Rand, i int) ([]string, int) {
		w := append(slices.Clone(systems[rng.IntN(len(systems))]), words(fmt.Sprintf("q%d-", i), 50)...)
		return w, 100
	}
}

// capacity is one closed-loop run's throughput, in simulated time.
type capacity struct {
	outputTokensPerSec, requestsPerSec float64
	hitRate                            float64 // cached over prompt tokens
	meanTTFT                           time.Duration
	preemptions                        uint64
	steps                              int
}

// measureCapacity keeps twice max-num-seqs requests in the engine (so the
// batch stays full and the queue never empties), lets the first 50 finish
// as a warm-up, then measures until n more have finished.
func measureCapacity(t testing.TB, cfg engineConfig, w workload, n int) capacity {
	rng := rand.New(rand.NewPCG(1, 2))
	b := newBench(t, cfg)
	next := 0
	add := func() {
		words, maxTokens := w(rng, next)
		next++
		b.add(words, maxTokens)
	}
	for range 2 * cfg.maxNumSeqs {
		add()
	}
	const warmup = 50
	var (
		finished, tokens, prompt, cached int
		ttft                             time.Duration
		start                            time.Duration
		startPreemptions                 uint64
		steps                            int
	)
	for finished < warmup+n {
		d := b.e.schedule()
		if d == 0 {
			t.Fatal("engine idle in a closed loop")
		}
		b.now += d
		if finished >= warmup {
			steps++
		}
		before := b.e.count.generationTokens
		done := b.e.complete(b.now)
		if finished >= warmup {
			tokens += int(b.e.count.generationTokens - before)
		}
		for _, r := range done {
			finished++
			if finished == warmup {
				start, startPreemptions = b.now, b.e.count.preemptions
			}
			if finished > warmup {
				prompt += r.promptLen
				cached += r.cached
				ttft += r.firstToken - r.arrival
			}
			add()
		}
	}
	secs := (b.now - start).Seconds()
	return capacity{
		outputTokensPerSec: float64(tokens) / secs,
		requestsPerSec:     float64(n) / secs,
		hitRate:            float64(cached) / float64(prompt),
		meanTTFT:           ttft / time.Duration(n),
		preemptions:        b.e.count.preemptions - startPreemptions,
		steps:              steps,
	}
}

// BenchmarkCapacity reports one pod's simulated capacity with the default
// flags under a closed loop (sim_*), and the real CPU time the engine
// spends per simulated step (ns/op).
func BenchmarkCapacity(b *testing.B) {
	for name, w := range map[string]workload{"mixed": mixedWorkload(), "shared-prefix": sharedPrefixWorkload()} {
		b.Run(name, func(b *testing.B) {
			var c capacity
			steps := 0
			for b.Loop() {
				c = measureCapacity(b, testEngineConfig(), w, 500)
				steps += c.steps
			}
			b.ReportMetric(c.outputTokensPerSec, "sim_out_tok/s")
			b.ReportMetric(c.requestsPerSec, "sim_req/s")
			b.ReportMetric(c.hitRate, "hit_rate")
			b.ReportMetric(c.meanTTFT.Seconds(), "sim_ttft_s")
			b.ReportMetric(float64(c.preemptions), "preemptions")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(steps), "ns/step")
		})
	}
}
