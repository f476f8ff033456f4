package main

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

// words returns n distinct words, "<prefix>0" to "<prefix>{n-1}".
func words(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func testEngineConfig() engineConfig {
	return engineConfig{maxNumSeqs: 16, maxWaiting: 1000, maxModelLen: 8192, kvBlocks: 2048, maxPrefill: 512, slowdown: 1}
}

// bench drives an engine on a fake clock: each step takes exactly its
// simulated time.
type bench struct {
	t   testing.TB
	e   *engine
	now time.Duration
	// steps are the durations of the steps run.
	steps []time.Duration
}

func newBench(t testing.TB, cfg engineConfig) *bench {
	return &bench{t: t, e: newEngine(cfg)}
}

func (b *bench) add(w []string, maxTokens int) *request {
	b.t.Helper()
	r := newRequest(len(w), blockHashes(w), maxTokens)
	if a := b.e.add(r, b.now); a != admitted {
		b.t.Fatalf("add: admission %d, want admitted", a)
	}
	return r
}

// step runs one step, reporting false if there was nothing to do.
func (b *bench) step() bool {
	d := b.e.schedule()
	if d == 0 {
		return false
	}
	b.now += d
	b.steps = append(b.steps, d)
	b.e.complete(b.now)
	return true
}

// drain runs steps until the engine is idle, failing after max steps.
func (b *bench) drain(max int) {
	b.t.Helper()
	for i := 0; b.step(); i++ {
		if i > max {
			b.t.Fatalf("engine still busy after %d steps", max)
		}
	}
	if !b.e.idle() {
		b.t.Fatal("engine stopped stepping but is not idle")
	}
}

func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

func near(a, b time.Duration) bool { return math.Abs(float64(a-b)) <= float64(time.Microsecond) }

func TestStepTime(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		decode, kv, prefill int
		slowdown            float64
		want                time.Duration
	}{
		"idle":                   {0, 0, 0, 1, 0},
		"one decode":             {1, 100, 0, 1, ms(14 + 0.1026 + 0.0535)},
		"64 seqs 64k tokens":     {64, 65536, 0, 1, ms(14 + 0.1026*64 + 0.000535*65536)},
		"small prefill is 40ms":  {0, 0, 10, 1, ms(40)},
		"full prefill chunk":     {0, 0, 512, 1, ms(19.69 + 0.0677*512)},
		"mixed pays both":        {4, 4000, 512, 1, ms(14 + 0.1026*4 + 0.000535*4000 + 19.69 + 0.0677*512)},
		"slowdown doubles":       {1, 100, 0, 2, ms(2 * (14 + 0.1026 + 0.0535))},
		"slowdown of a prefill":  {0, 0, 10, 2, ms(80)},
		"half speed of a decode": {16, 0, 0, 0.5, ms(0.5 * (14 + 0.1026*16))},
	} {
		if got := stepTime(tc.decode, tc.kv, tc.prefill, tc.slowdown); !near(got, tc.want) {
			t.Errorf("%s: stepTime = %v, want %v", name, got, tc.want)
		}
	}
}

func TestAdmissionLimitsAndFIFO(t *testing.T) {
	t.Parallel()
	cfg := testEngineConfig()
	cfg.maxNumSeqs = 2
	b := newBench(t, cfg)
	var rs []*request
	for i := range 5 {
		rs = append(rs, b.add(words(fmt.Sprintf("r%d-", i), 20), 10+i))
	}
	b.step()
	if len(b.e.running) != 2 || b.e.running[0] != rs[0] || b.e.running[1] != rs[1] {
		t.Fatalf("running after one step: %d requests, want r0 and r1", len(b.e.running))
	}
	if !slices.Equal(b.e.waiting, rs[2:]) {
		t.Fatal("waiting after one step is not r2, r3, r4 in order")
	}
	b.drain(1000)
	// Each later request starts only once an earlier one has finished, and
	// in arrival order.
	for i := 2; i < len(rs); i++ {
		if rs[i].firstToken <= rs[i-1].firstToken {
			t.Errorf("r%d's first token at %v, not after r%d's at %v", i, rs[i].firstToken, i-1, rs[i-1].firstToken)
		}
		if rs[i].firstToken < rs[i-2].finished {
			t.Errorf("r%d started (first token %v) before r%d finished (%v) freed a place", i, rs[i].firstToken, i-2, rs[i-2].finished)
		}
	}
	for i, r := range rs {
		if r.state != stateDone || r.generated != r.maxTokens {
			t.Errorf("r%d: state %d, %d of %d tokens", i, r.state, r.generated, r.maxTokens)
		}
	}
	if got := b.e.count.success[reasonLength]; got != 5 {
		t.Errorf("success{length} = %d, want 5", got)
	}
}

func TestAddRefusals(t *testing.T) {
	t.Parallel()
	cfg := testEngineConfig()
	cfg.maxWaiting = 2
	cfg.maxModelLen = 100
	e := newEngine(cfg)
	if a := e.add(newRequest(90, nil, 11), 0); a != tooLong {
		t.Errorf("90 + 11 tokens with a context of 100: admission %d, want tooLong", a)
	}
	if a := e.add(newRequest(90, nil, 10), 0); a != admitted {
		t.Errorf("90 + 10 tokens with a context of 100: admission %d, want admitted", a)
	}
	e.add(newRequest(10, nil, 10), 0)
	if a := e.add(newRequest(10, nil, 10), 0); a != queueFull {
		t.Errorf("third waiting request with --max-waiting 2: admission %d, want queueFull", a)
	}
}

func TestChunkedPrefillBudget(t *testing.T) {
	t.Parallel()
	b := newBench(t, testEngineConfig())
	long := b.add(words("long", 1200), 3)
	b.step()
	if long.computed != 512 || long.generated != 0 {
		t.Fatalf("after step 1: %d computed, %d generated; want 512 and 0", long.computed, long.generated)
	}
	// A request arriving now gets only what the long prefill leaves.
	short := b.add(words("short", 400), 2)
	b.step()
	if long.computed != 1024 || short.state != stateWaiting {
		t.Fatalf("after step 2: long %d computed, short state %d; want 1024 and still waiting", long.computed, short.state)
	}
	b.step()
	if long.computed != 1200 || long.generated != 1 || short.computed != 512-176 {
		t.Fatalf("after step 3: long %d computed %d generated, short %d computed; want 1200, 1, 336", long.computed, long.generated, short.computed)
	}
	chunk := stepTime(0, 0, 512, 1)
	if want := 3 * chunk; !near(long.firstToken, want) {
		t.Errorf("long's first token at %v, want three full prefill steps, %v", long.firstToken, want)
	}
	if !near(b.steps[2], chunk) {
		t.Errorf("step 3 (176 + 336 prefilled) took %v, want %v", b.steps[2], chunk)
	}
	// Step 4: long decodes while short finishes its prefill: both parts.
	b.step()
	if want := stepTime(1, 1201, 64, 1); !near(b.steps[3], want) {
		t.Errorf("mixed step took %v, want %v", b.steps[3], want)
	}
	b.drain(100)
}

func TestPrefixCacheHit(t *testing.T) {
	t.Parallel()
	system := words("sys", 2000)
	for name, tc := range map[string]struct {
		second     []string
		wantCached int
	}{
		// 2,000 tokens are 125 full blocks, but the last token is always
		// computed: 124 blocks hit.
		"same prompt": {system, 1984},
		// The question starts a new block: all 125 blocks of the system
		// prompt hit.
		"same prefix, another question": {append(slices.Clone(system), words("q", 50)...), 2000},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBench(t, testEngineConfig())
			first := b.add(append(slices.Clone(system), words("first", 50)...), 5)
			b.drain(100)
			start := b.now
			second := b.add(tc.second, 5)
			b.drain(100)
			if first.cached != 0 {
				t.Errorf("first request: %d tokens cached, want 0", first.cached)
			}
			if second.cached != tc.wantCached {
				t.Errorf("second request: %d tokens cached, want %d", second.cached, tc.wantCached)
			}
			ttft1, ttft2 := first.firstToken-first.arrival, second.firstToken-start
			if ttft2 >= ttft1/2 {
				t.Errorf("TTFT %v with the prefix cached, %v without: want much shorter", ttft2, ttft1)
			}
			if hits := b.e.count.prefixHits; hits != uint64(tc.wantCached) {
				t.Errorf("prefix_cache_hits = %d, want %d", hits, tc.wantCached)
			}
			if q := b.e.count.prefixQueries; q != uint64(first.promptLen+second.promptLen) {
				t.Errorf("prefix_cache_queries = %d, want %d", q, first.promptLen+second.promptLen)
			}
		})
	}
}

// TestPrefixSharedWhileRunning: a request finds the prefix blocks of one
// still running, and they are held once, not twice.
func TestPrefixSharedWhileRunning(t *testing.T) {
	t.Parallel()
	b := newBench(t, testEngineConfig())
	system := words("sys", 320) // 20 blocks
	a := b.add(append(slices.Clone(system), words("a", 16)...), 50)
	b.step() // a's prefill: 336 tokens, 21 blocks
	c := b.add(append(slices.Clone(system), words("c", 16)...), 50)
	b.step()
	if c.cached != 320 {
		t.Fatalf("c found %d tokens cached, want 320", c.cached)
	}
	// a decodes its 337th token: 22 blocks; c adds one block to the 20 it
	// shares.
	if held := b.e.kv.held; held != 23 {
		t.Errorf("%d blocks held by a (22) and c (1 beyond the 20 shared), want 23", held)
	}
	b.drain(200)
	if a.state != stateDone || c.state != stateDone {
		t.Fatal("not both done")
	}
}

func TestPreemptsNewest(t *testing.T) {
	t.Parallel()
	cfg := testEngineConfig()
	cfg.kvBlocks = 10 // 160 tokens
	cfg.maxModelLen = 160
	b := newBench(t, cfg)
	// Each grows to 64 + 60 = 124 tokens, 8 blocks: both cannot fit.
	old := b.add(words("old", 64), 60)
	young := b.add(words("young", 64), 60)
	var sawPreempted bool
	for i := 0; b.step(); i++ {
		if young.state == stateWaiting && young.preemptions > 0 {
			sawPreempted = true
			if b.e.waiting[0] != young {
				t.Fatal("the preempted request is not at the front of the queue")
			}
			if len(young.blocks) != 0 || young.computed != 0 {
				t.Fatalf("preempted request holds %d blocks, %d computed; want none", len(young.blocks), young.computed)
			}
			if young.generated == 0 {
				t.Fatal("preempted before any output: the cache should have run out only in decode")
			}
		}
		if i > 1000 {
			t.Fatal("engine still busy")
		}
	}
	if !sawPreempted {
		t.Fatal("the newest request was never preempted")
	}
	if old.preemptions != 0 {
		t.Errorf("the oldest request was preempted %d times", old.preemptions)
	}
	if b.e.count.preemptions == 0 {
		t.Error("num_preemptions_total is 0")
	}
	if old.finished >= young.finished {
		t.Errorf("old finished at %v, young at %v: want old first", old.finished, young.finished)
	}
	for name, r := range map[string]*request{"old": old, "young": young} {
		if r.state != stateDone || r.generated != 60 {
			t.Errorf("%s: state %d, %d tokens, want done with 60", name, r.state, r.generated)
		}
	}
	// Young's prompt blocks stayed cached when it was preempted: its
	// recompute found them.
	if young.cached != 0 {
		t.Errorf("young's cached_tokens = %d, want 0 (from its first admission)", young.cached)
	}
	if b.e.count.prefixHits != 0 {
		t.Errorf("prefix hits %d counted again on readmission", b.e.count.prefixHits)
	}
	if u := b.e.kv.usage(); u != 0 {
		t.Errorf("kv usage %v after all finished, want 0", u)
	}
}

// TestTTFTIncludesQueueTime: a request that waits for a place counts the
// wait in its time to first token, as vLLM's histogram does.
func TestTTFTIncludesQueueTime(t *testing.T) {
	t.Parallel()
	var obs observed
	cfg := testEngineConfig()
	cfg.maxNumSeqs = 1
	cfg.ttft = &obs
	b := newBench(t, cfg)
	first := b.add(words("a", 100), 20)
	second := b.add(words("b", 100), 20)
	b.drain(200)
	if len(obs) != 2 {
		t.Fatalf("%d TTFT observations, want 2", len(obs))
	}
	own := stepTime(0, 0, 100, 1).Seconds()
	if math.Abs(obs[0]-own) > 1e-6 {
		t.Errorf("first TTFT %v, want one prefill step, %v", obs[0], own)
	}
	wantSecond := (first.finished + stepTime(0, 0, 100, 1)).Seconds()
	if math.Abs(obs[1]-wantSecond) > 1e-6 || second.arrival != 0 {
		t.Errorf("second TTFT %v, want its wait for the first (%v) plus its prefill: %v", obs[1], first.finished, wantSecond)
	}
}

// observed records observations.
type observed []float64

func (o *observed) Observe(v float64) { *o = append(*o, v) }

func TestAbort(t *testing.T) {
	t.Parallel()
	cfg := testEngineConfig()
	cfg.maxNumSeqs = 1
	b := newBench(t, cfg)
	running := b.add(words("run", 100), 100)
	waiting := b.add(words("wait", 100), 100)
	b.step()
	if b.e.kv.usage() == 0 {
		t.Fatal("no blocks held by the running request")
	}
	b.e.abort(waiting, b.now)
	if len(b.e.waiting) != 0 || waiting.state != stateAborted {
		t.Fatal("the aborted request is still waiting")
	}
	// Aborted while its step is under way: the step yields nothing for it.
	b.e.schedule()
	b.e.abort(running, b.now)
	if u := b.e.kv.usage(); u != 0 || len(b.e.running) != 0 {
		t.Fatalf("after the abort: kv usage %v, %d running; want 0 and 0", u, len(b.e.running))
	}
	generated := running.generated
	b.e.complete(b.now + time.Second)
	if running.generated != generated {
		t.Error("the aborted request got a token from the step under way")
	}
	if got := b.e.count.success[reasonAbort]; got != 2 {
		t.Errorf("success{abort} = %d, want 2", got)
	}
	if !b.e.idle() {
		t.Error("engine not idle")
	}
	// Its prompt blocks stay cached, idle: a new request finds them.
	again := b.add(words("run", 100), 1)
	b.drain(10)
	if again.cached != 96 {
		t.Errorf("after the abort, the same prompt found %d tokens cached, want 96", again.cached)
	}
}

func TestKVCacheUsage(t *testing.T) {
	t.Parallel()
	cfg := testEngineConfig()
	cfg.kvBlocks = 100
	cfg.maxModelLen = 1600
	b := newBench(t, cfg)
	r := b.add(words("x", 320), 3) // 20 blocks of prompt
	b.step()
	if u := b.e.kv.usage(); u != 0.2 {
		t.Errorf("usage %v after the prefill of 320 tokens, 20 of 100 blocks, want 0.2", u)
	}
	b.step() // the first decode computes token 321: a 21st block
	if u := b.e.kv.usage(); u != 0.21 {
		t.Errorf("usage %v while 321 tokens need 21 of 100 blocks, want 0.21", u)
	}
	b.drain(10)
	if r.state != stateDone {
		t.Fatal("not done")
	}
	if u, idle := b.e.kv.usage(), b.e.kv.idle; u != 0 || idle != 20 {
		t.Errorf("after the end: usage %v, %d idle cached blocks; want 0 and 20", u, idle)
	}
}

// TestCapacity checks the engine's throughput in simulated time against
// the step model, with a closed loop that keeps the batch full.
func TestCapacity(t *testing.T) {
	t.Parallel()
	res := measureCapacity(t, testEngineConfig(), sharedPrefixWorkload(), 300)
	// 16 decoding sequences cost at most 14 + 1.64 + 0.000535 × 16 × 2150
	// ≈ 34 ms a step: at least 470 tokens/s, less the prefill steps.
	if res.outputTokensPerSec < 200 || res.outputTokensPerSec > 1200 {
		t.Errorf("shared prefix: %.0f output tokens/s, want between 200 and 1,200", res.outputTokensPerSec)
	}
	if res.hitRate < 0.5 {
		t.Errorf("shared prefix: cache hit rate %.2f, want most of the prompt", res.hitRate)
	}
}
