package externalscaler

import (
	"sync"
	"time"
)

// flights runs one evaluation per key at a time for every caller that asks
// while it runs, as singleflight.Group's DoChan does, but on goroutines that
// are kept for a while after their evaluation: a new goroutine starts on a
// small stack, and an evaluation grew it frame by frame, copying the stack
// two or three times (a fifth of the scaler's CPU per evaluation in
// BenchmarkEvaluationPath). A kept goroutine starts the next evaluation on
// the stack the last one grew.
type flights struct {
	mu    sync.Mutex
	calls map[string]*flight
	// idle hands work to a kept goroutine that waits for some; a send
	// succeeds only while one waits.
	idle chan func()
}

// flight is one evaluation, and its answer once done is closed.
type flight struct {
	done chan struct{}
	a    answer
}

// keepWorker is how long a goroutine waits for the next evaluation.
const keepWorker = 10 * time.Second

func newFlights() *flights {
	return &flights{calls: map[string]*flight{}, idle: make(chan func())}
}

// do starts fn for key unless it runs already, and returns the flight to
// wait for.
func (g *flights) do(key string, fn func() answer) *flight {
	g.mu.Lock()
	if f, ok := g.calls[key]; ok {
		g.mu.Unlock()
		return f
	}
	f := &flight{done: make(chan struct{})}
	g.calls[key] = f
	g.mu.Unlock()
	g.run(func() {
		f.a = fn()
		g.mu.Lock()
		delete(g.calls, key)
		g.mu.Unlock()
		close(f.done)
	})
	return f
}

// run runs work on a kept goroutine, or a new one when none waits.
func (g *flights) run(work func()) {
	select {
	case g.idle <- work:
	default:
		go g.keep(work)
	}
}

// keep runs work, then waits keepWorker for more before it ends.
func (g *flights) keep(work func()) {
	t := time.NewTimer(keepWorker)
	defer t.Stop()
	for {
		work()
		t.Reset(keepWorker)
		select {
		case work = <-g.idle:
		case <-t.C:
			return
		}
	}
}
