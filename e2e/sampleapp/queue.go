package main

import (
	"context"
	"slices"
	"sync"
)

// admission is the outcome of queue.acquire.
type admission int

const (
	// admitted: the caller holds a slot and must release it.
	admitted admission = iota
	// rejected: --max-waiting requests were already waiting.
	rejected
	// abandoned: the caller's context ended while it waited.
	abandoned
)

// queue hands out a fixed number of slots in arrival order. Like vLLM's
// scheduler queue, requests beyond the slots wait rather than fail, up to a
// bound.
type queue struct {
	mu         sync.Mutex
	slots      int
	maxWaiting int
	running    int
	// waiting holds one channel per waiting request, oldest first, closed
	// when a slot is handed over. A slice rather than a list: at most
	// --max-waiting long, and it needs no type assertions.
	waiting []chan struct{}
	// idle is closed while nothing runs or waits, and replaced when something
	// does, so that shutdown can wait for the queue to empty.
	idle   chan struct{}
	isIdle bool
}

func newQueue(slots, maxWaiting int) *queue {
	q := &queue{slots: slots, maxWaiting: maxWaiting, idle: make(chan struct{}), isIdle: true}
	close(q.idle)
	return q
}

// acquire waits for a slot in FIFO order until ctx ends.
func (q *queue) acquire(ctx context.Context) admission {
	q.mu.Lock()
	if q.running < q.slots && len(q.waiting) == 0 {
		q.running++
		q.markBusy()
		q.mu.Unlock()
		return admitted
	}
	if len(q.waiting) >= q.maxWaiting {
		q.mu.Unlock()
		return rejected
	}
	granted := make(chan struct{})
	q.waiting = append(q.waiting, granted)
	q.markBusy()
	q.mu.Unlock()

	select {
	case <-granted:
		return admitted
	case <-ctx.Done():
	}
	q.mu.Lock()
	select {
	case <-granted:
		// release handed the slot over just as ctx ended: pass it on.
		q.mu.Unlock()
		q.release()
	default:
		q.waiting = slices.DeleteFunc(q.waiting, func(c chan struct{}) bool { return c == granted })
		q.markIdleIfEmpty()
		q.mu.Unlock()
	}
	return abandoned
}

// release gives the caller's slot to the longest waiting request, if any.
func (q *queue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiting) > 0 {
		close(q.waiting[0])
		q.waiting[0] = nil
		q.waiting = q.waiting[1:]
		return
	}
	q.running--
	q.markIdleIfEmpty()
}

// counts reports how many requests hold a slot and how many wait for one.
func (q *queue) counts() (running, waiting int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running, len(q.waiting)
}

// idleCh returns a channel closed once nothing runs or waits.
func (q *queue) idleCh() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.idle
}

func (q *queue) markBusy() {
	if q.isIdle {
		q.idle, q.isIdle = make(chan struct{}), false
	}
}

func (q *queue) markIdleIfEmpty() {
	if !q.isIdle && q.running == 0 && len(q.waiting) == 0 {
		close(q.idle)
		q.isIdle = true
	}
}
