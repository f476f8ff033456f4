package main

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// engineConfig is the simulated vLLM engine's shape.
type engineConfig struct {
	maxNumSeqs    int
	maxWaiting    int
	maxModelLen   int
	kvBlocks      int
	maxPrefill    int     // prefill tokens per step
	slowdown      float64 // multiplies every step time
	ttft, latency prometheus.Observer
}

// stepTime is the fitted step model of INFERENCE.md (GIE's simulator,
// A100-40GB, Llama-3 architecture), times slowdown. A step that both
// decodes and prefills costs both parts, added: the decode part for the
// sequences that decode (with the KV tokens they attend to), the prefill
// part for the tokens prefilled. Adding counts the 14 ms base twice in a
// mixed step, which errs on the slow side, as chunked prefill does slow
// down the decodes that share its step.
func stepTime(decodeSeqs, kvTokens, prefillTokens int, slowdown float64) time.Duration {
	var ms float64
	if decodeSeqs > 0 {
		ms += 14 + 0.1026*float64(decodeSeqs) + 0.000535*float64(kvTokens)
	}
	if prefillTokens > 0 {
		ms += max(40, 19.69+0.0677*float64(prefillTokens))
	}
	return time.Duration(ms * slowdown * float64(time.Millisecond))
}

// reqState is where a request is in the engine.
type reqState int

const (
	stateNew reqState = iota
	stateWaiting
	stateRunning
	stateDone
	stateAborted
)

// admission is the outcome of engine.add.
type admission int

const (
	admitted admission = iota
	// tooLong: prompt plus max_tokens exceed --max-model-len (HTTP 400).
	tooLong
	// queueFull: --max-waiting requests already wait (HTTP 429).
	queueFull
)

// Finish reasons, vLLM's labels of request_success_total.
const (
	reasonStop = iota
	reasonLength
	reasonAbort
	numReasons
)

// reasonNames are the finish_reason label values, by reason.
func reasonNames() [numReasons]string { return [numReasons]string{"stop", "length", "abort"} }

// request is one completion inside the engine. Times are simulated, from
// the engine's start.
type request struct {
	promptLen int
	maxTokens int
	// hashes are the chained hashes of the prompt's full blocks.
	hashes []uint64
	// notify gets a value (without blocking) whenever the request makes
	// visible progress: a token, its end, or its abort.
	notify chan struct{}

	state   reqState
	arrival time.Duration
	// computed tokens have their KV in blocks; generated tokens have been
	// produced. A preemption resets computed, not generated: the request
	// recomputes its prompt and output so far, then goes on.
	computed, generated int
	blocks              []int32
	registered          int // prompt blocks registered in the cache
	cached              int // prompt tokens found cached on first admission; -1 before
	firstToken          time.Duration
	finished            time.Duration
	preemptions         int
	scheduled           int // tokens scheduled in the step under way
}

func newRequest(promptLen int, hashes []uint64, maxTokens int) *request {
	return &request{promptLen: promptLen, maxTokens: maxTokens, hashes: hashes, notify: make(chan struct{}, 1), cached: -1}
}

// total is how many tokens the request's sequence holds: prompt and output.
func (r *request) total() int { return r.promptLen + r.generated }

func (r *request) wake() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// counters are the engine's Prometheus counters, read at scrape time.
type counters struct {
	promptTokens, generationTokens uint64
	prefixQueries, prefixHits      uint64
	preemptions                    uint64
	success                        [numReasons]uint64
}

// engine is vLLM's scheduler and KV-cache manager, simulated, advanced one
// step at a time by its caller: schedule picks the next step's batch and
// says how long it takes; complete applies it once that time has passed.
// It has no clock, lock or goroutine of its own, so that tests drive it
// exactly; sim runs it in real time.
type engine struct {
	cfg     engineConfig
	kv      *kvCache
	waiting []*request // oldest first; preempted requests go to the front
	running []*request // oldest first; the last is preempted first
	batch   []*request // scheduled in the step under way
	count   counters
}

func newEngine(cfg engineConfig) *engine {
	return &engine{cfg: cfg, kv: newKVCache(cfg.kvBlocks)}
}

// add queues r, arrived at simulated time at.
func (e *engine) add(r *request, at time.Duration) admission {
	if r.promptLen+r.maxTokens > e.cfg.maxModelLen {
		return tooLong
	}
	if len(e.waiting) >= e.cfg.maxWaiting {
		return queueFull
	}
	r.state, r.arrival = stateWaiting, at
	e.waiting = append(e.waiting, r)
	return admitted
}

// abort drops r, as vLLM does when the client goes away: it leaves the queue
// or the batch and its blocks are released. A step under way that included
// it produces nothing for it.
func (e *engine) abort(r *request, at time.Duration) {
	switch r.state {
	case stateWaiting:
		e.waiting = slices.DeleteFunc(e.waiting, func(w *request) bool { return w == r })
	case stateRunning:
		e.running = slices.DeleteFunc(e.running, func(w *request) bool { return w == r })
		e.kv.release(r.blocks)
		r.blocks = nil
	default:
		return
	}
	r.state, r.finished = stateAborted, at
	e.count.success[reasonAbort]++
	r.wake()
}

// idle reports whether there is nothing to run.
func (e *engine) idle() bool { return len(e.running) == 0 && len(e.waiting) == 0 }

// schedule picks the next step's batch the way vLLM V1 does and returns
// the step's simulated duration, 0 when there is nothing to do. Running
// requests come first, oldest first: each decodes one token, or prefills
// (a prompt, or after a preemption its whole sequence) within what is left
// of the step's prefill budget. A request that needs a block when none is
// left preempts the newest running request, itself if it is the newest.
// Then, unless a preemption happened, waiting requests are admitted in
// FIFO order while fewer than max-num-seqs run, prefill budget is left and
// their blocks can be allocated; the first that does not fit stops
// admission (no overtaking).
func (e *engine) schedule() time.Duration {
	e.batch = e.batch[:0]
	budget := e.cfg.maxPrefill
	decodeSeqs, kvTokens, prefill := 0, 0, 0
	preempted := false
	for i := 0; i < len(e.running); i++ {
		r := e.running[i]
		n := r.total() - r.computed
		decode := r.generated > 0 && n == 1
		if !decode {
			n = min(n, budget)
			if n == 0 {
				continue
			}
		}
		for !e.grow(r, r.computed+n) {
			victim := e.running[len(e.running)-1]
			e.preempt(victim)
			preempted = true
			if victim == r {
				break
			}
		}
		if r.state != stateRunning {
			break // r preempted itself: it was the newest, nothing follows
		}
		r.scheduled = n
		e.batch = append(e.batch, r)
		if decode {
			decodeSeqs++
			kvTokens += r.computed + 1
		} else {
			budget -= n
			prefill += n
		}
	}
	for !preempted && len(e.waiting) > 0 && len(e.running) < e.cfg.maxNumSeqs && budget > 0 {
		r := e.waiting[0]
		// As in vLLM, the last token is always computed, so that a fully
		// cached prompt still yields logits: at most (len-1)/16 blocks hit.
		hits, idle := e.kv.lookup(r.hashes, (r.total()-1)/blockSize)
		cached := len(hits) * blockSize
		n := min(r.total()-cached, budget)
		need := blocksFor(cached+n) - len(hits)
		if e.kv.available()-idle < need {
			break
		}
		e.kv.take(hits)
		r.blocks = append(append(r.blocks[:0], hits...), e.kv.allocate(need)...)
		r.registered = len(hits)
		r.computed = cached
		if r.cached < 0 {
			r.cached = cached
			e.count.prefixQueries += uint64(r.promptLen)
			e.count.prefixHits += uint64(cached)
		}
		e.waiting = e.waiting[1:]
		r.state = stateRunning
		e.running = append(e.running, r)
		r.scheduled = n
		e.batch = append(e.batch, r)
		budget -= n
		prefill += n
	}
	if len(e.batch) == 0 {
		return 0
	}
	return stepTime(decodeSeqs, kvTokens, prefill, e.cfg.slowdown)
}

// blocksFor is how many blocks hold n tokens.
func blocksFor(n int) int { return (n + blockSize - 1) / blockSize }

// grow gives r blocks enough for tokens, reporting false (and taking
// nothing) when too few are available.
func (e *engine) grow(r *request, tokens int) bool {
	need := blocksFor(tokens) - len(r.blocks)
	if need <= 0 {
		return true
	}
	got := e.kv.allocate(need)
	if got == nil {
		return false
	}
	r.blocks = append(r.blocks, got...)
	return true
}

// preempt sends running request r back to the front of the waiting queue
// with its blocks released (those it registered stay cached, idle) and its
// progress reset, as vLLM V1 does when the KV cache runs out.
func (e *engine) preempt(r *request) {
	e.running = slices.DeleteFunc(e.running, func(w *request) bool { return w == r })
	e.kv.release(r.blocks)
	r.blocks = r.blocks[:0]
	r.computed, r.registered = 0, 0
	r.state = stateWaiting
	r.preemptions++
	e.waiting = slices.Insert(e.waiting, 0, r)
	e.count.preemptions++
}

// complete applies the step scheduled last, which ended at simulated time
// at: each request in the batch has computed its scheduled tokens, the
// prompt blocks they filled are registered in the prefix cache, and each
// whose sequence is now fully computed produces its next token. It returns
// the requests that finished.
func (e *engine) complete(at time.Duration) []*request {
	var done []*request
	for _, r := range e.batch {
		if r.state != stateRunning {
			continue // aborted during the step
		}
		r.computed += r.scheduled
		r.scheduled = 0
		full := min(r.computed, r.promptLen) / blockSize
		for ; r.registered < full; r.registered++ {
			e.kv.register(r.blocks[r.registered], r.hashes[r.registered])
		}
		if r.computed < r.total() {
			continue // a prefill chunk: no token yet
		}
		r.generated++
		e.count.generationTokens++
		if r.generated == 1 {
			r.firstToken = at
			e.count.promptTokens += uint64(r.promptLen)
			if e.cfg.ttft != nil {
				e.cfg.ttft.Observe((at - r.arrival).Seconds())
			}
		}
		if r.generated == r.maxTokens {
			e.finish(r, at)
			done = append(done, r)
		}
		r.wake()
	}
	e.batch = e.batch[:0]
	return done
}

// finish ends r, which produced all its max_tokens.
func (e *engine) finish(r *request, at time.Duration) {
	e.running = slices.DeleteFunc(e.running, func(w *request) bool { return w == r })
	e.kv.release(r.blocks)
	r.blocks = nil
	r.state, r.finished = stateDone, at
	e.count.success[reasonLength]++
	if e.cfg.latency != nil {
		e.cfg.latency.Observe((at - r.arrival).Seconds())
	}
}
