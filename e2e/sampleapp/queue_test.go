package main

import (
	"context"
	"testing"
	"time"
)

// waitCounts polls q until it reports running and waiting, or fails.
func waitCounts(t *testing.T, q *queue, running, waiting int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		r, w := q.counts()
		if r == running && w == waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue has %d running and %d waiting, want %d and %d", r, w, running, waiting)
		}
		time.Sleep(time.Millisecond)
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestQueueFIFO(t *testing.T) {
	t.Parallel()
	q := newQueue(1, 10)
	if got := q.acquire(t.Context()); got != admitted {
		t.Fatalf("first acquire = %d, want admitted", got)
	}
	order := make(chan int, 3)
	for i := range 3 {
		go func() {
			if q.acquire(t.Context()) == admitted {
				order <- i
			}
		}()
		waitCounts(t, q, 1, i+1) // i is queued before i+1 starts
	}
	for want := range 3 {
		q.release()
		if got := <-order; got != want {
			t.Fatalf("slot %d went to waiter %d, want %d", want, got, want)
		}
	}
	q.release()
	waitCounts(t, q, 0, 0)
}

func TestQueueRejectsBeyondMaxWaiting(t *testing.T) {
	t.Parallel()
	q := newQueue(1, 1)
	q.acquire(t.Context())
	go q.acquire(t.Context())
	waitCounts(t, q, 1, 1)
	if got := q.acquire(t.Context()); got != rejected {
		t.Fatalf("acquire beyond --max-waiting = %d, want rejected", got)
	}
	waitCounts(t, q, 1, 1)
}

func TestQueueAbandonLeavesNoTrace(t *testing.T) {
	t.Parallel()
	q := newQueue(1, 10)
	if !isClosed(q.idleCh()) {
		t.Fatal("a new queue is not idle")
	}
	q.acquire(t.Context())
	idle := q.idleCh()
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan admission, 1)
	go func() { got <- q.acquire(ctx) }()
	waitCounts(t, q, 1, 1)
	cancel()
	if a := <-got; a != abandoned {
		t.Fatalf("cancelled acquire = %d, want abandoned", a)
	}
	waitCounts(t, q, 1, 0)
	if isClosed(idle) {
		t.Fatal("queue idle while a slot is held")
	}
	q.release()
	waitCounts(t, q, 0, 0) // the slot went to nobody: the abandoned waiter is gone
	if !isClosed(idle) {
		t.Fatal("queue not idle after the last release")
	}
}
