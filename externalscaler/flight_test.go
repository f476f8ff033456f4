package externalscaler

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFlights(t *testing.T) {
	g := newFlights()
	// Callers of a key that runs join it: one run for all.
	var runs atomic.Int32
	release := make(chan struct{})
	first := g.do("k", func() answer { runs.Add(1); <-release; return answer{seq: 7} })
	joined := g.do("k", func() answer { runs.Add(1); return answer{} })
	if first != joined {
		t.Fatal("a second caller of a running key started its own flight")
	}
	// Other keys run at once, beside it: none waits for another.
	var started sync.WaitGroup
	started.Add(10)
	others := make([]*flight, 10)
	for i := range others {
		others[i] = g.do(strconv.Itoa(i), func() answer { started.Done(); <-release; return answer{seq: uint32(i)} })
	}
	waited := make(chan struct{})
	go func() { started.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("flights of different keys did not run at the same time")
	}
	close(release)
	<-first.done
	if first.a.seq != 7 || runs.Load() != 1 {
		t.Errorf("answer %d after %d runs, want 7 after 1", first.a.seq, runs.Load())
	}
	for i, f := range others {
		<-f.done
		if f.a.seq != uint32(i) {
			t.Errorf("flight %d answered %d", i, f.a.seq)
		}
	}
	// Once done, the key runs again; the goroutines are kept and reused,
	// not started anew for each flight.
	time.Sleep(10 * time.Millisecond) // the kept goroutines reach their wait
	before := runtime.NumGoroutine()
	for range 100 {
		<-g.do("k", func() answer { return answer{} }).done
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("%d goroutines after 100 flights in a row, %d before: they are not reused", after, before)
	}
}
