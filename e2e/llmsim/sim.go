package main

import (
	"context"
	"sync"
	"time"
)

// sim runs an engine in real time, scaled: a simulated duration d lasts
// d × timeScale on the wall clock, and simulated time is wall time since
// the start divided by timeScale. It sleeps on one timer per step and not
// at all while idle.
type sim struct {
	mu        sync.Mutex
	e         *engine
	timeScale float64
	start     time.Time
	wake      chan struct{}
}

func newSim(e *engine, timeScale float64) *sim {
	return &sim{e: e, timeScale: timeScale, start: time.Now(), wake: make(chan struct{}, 1)}
}

// simTime is wall time t as simulated time since the start.
func (s *sim) simTime(t time.Time) time.Duration {
	return time.Duration(float64(t.Sub(s.start)) / s.timeScale)
}

func (s *sim) wall(d time.Duration) time.Duration {
	return time.Duration(float64(d) * s.timeScale)
}

// add queues r, arrived now.
func (s *sim) add(r *request) admission {
	s.mu.Lock()
	a := s.e.add(r, s.simTime(time.Now()))
	s.mu.Unlock()
	if a == admitted {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return a
}

// abort drops r, now.
func (s *sim) abort(r *request) {
	s.mu.Lock()
	s.e.abort(r, s.simTime(time.Now()))
	s.mu.Unlock()
}

// progress is a request's state as its handler sees it.
type progress struct {
	state                reqState
	generated, cached    int
	arrival, firstToken  time.Duration
	finished             time.Duration
	promptLen, maxTokens int
}

func (s *sim) progress(r *request) progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	return progress{
		state: r.state, generated: r.generated, cached: max(r.cached, 0),
		arrival: r.arrival, firstToken: r.firstToken, finished: r.finished,
		promptLen: r.promptLen, maxTokens: r.maxTokens,
	}
}

// snapshot is what /metrics reads of the engine, all at one instant.
type snapshot struct {
	waiting, running int
	kvUsage          float64
	count            counters
}

func (s *sim) snapshot() snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return snapshot{waiting: len(s.e.waiting), running: len(s.e.running), kvUsage: s.e.kv.usage(), count: s.e.count}
}

// run advances the engine until ctx ends. Each step's wall end is set from
// the previous step's end rather than from when the loop got round to it,
// within half a step, so that timer and scheduling delays on a loaded
// machine do not slow the simulated GPU down; a longer stall is not made
// up. A step still ends after every arrival it admitted, so no request's
// time to first token is negative.
func (s *sim) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var end time.Time
	for {
		s.mu.Lock()
		d := s.e.schedule()
		s.mu.Unlock()
		if d == 0 {
			select {
			case <-s.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		w := s.wall(d)
		now := time.Now()
		begin := now
		if lag := now.Sub(end); lag > 0 && lag < w/2 {
			begin = end
		}
		end = begin.Add(w)
		timer.Reset(time.Until(end))
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return
		}
		s.mu.Lock()
		s.e.complete(s.simTime(end))
		s.mu.Unlock()
	}
}
