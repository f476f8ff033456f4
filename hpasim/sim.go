package hpasim

import (
	"fmt"
	"strings"
	"time"
)

// Input is the scaler's answer, which KEDA's poll (IsActive) and the HPA's
// sync (the external metric) read.
type Input struct {
	// Desired is the metric value, the replica count the rule set wants.
	Desired float64
	// DesiredOK is false when GetMetrics failed: the HPA keeps the count.
	DesiredOK bool
	// Active is the IsActive answer.
	Active bool
	// ActiveOK is false when IsActive failed: KEDA treats it as not active
	// but does not scale to zero on it.
	ActiveOK bool
}

// State is the simulated target after a step.
type State struct {
	// Replicas is the target's spec.replicas.
	Replicas int32
	// Ready is the number of pods that have finished starting.
	Ready int32
	// Event says what KEDA and the HPA changed during the step, such as
	// "keda activate 0→1; hpa scale-up 1→4", or "" when nothing changed.
	Event string
}

// podGroup is a batch of pods created at the same time.
type podGroup struct {
	created time.Time
	n       int32
}

// Sim is a simulated KEDA operator and HPA controller acting on one scale
// target. It is not safe for concurrent use.
type Sim struct {
	cfg      Config
	keda     *keda
	hpa      *hpa
	replicas int32
	// pods hold the target's pods oldest first; scale-down removes the
	// newest, as a ReplicaSet deletes not-ready and younger pods first.
	pods     []podGroup
	nextPoll time.Time
	nextSync time.Time
	last     time.Time
	events   []string
	// pushed and lastPush are the last activity pushed (Config.Push).
	pushed   bool
	lastPush bool
}

// New starts a simulation at start with the target at replicas, all of
// them ready. It applies [Config.WithDefaults] and refuses a configuration
// that [Config.Validate] rejects, or a negative replica count. When
// replicas > 0 the ScaledObject is taken as last active at start, so the
// first scale to zero waits a full cooldown, as it would for a target that
// was busy until the window began.
func New(cfg Config, start time.Time, replicas int32) (*Sim, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("simulating KEDA and the HPA: %w", err)
	}
	if replicas < 0 {
		return nil, fmt.Errorf("simulating KEDA and the HPA: initial replicas %d must not be negative", replicas)
	}
	s := &Sim{
		cfg:      cfg,
		keda:     newKEDA(cfg),
		hpa:      newHPA(cfg),
		replicas: replicas,
		nextPoll: start,
		nextSync: start,
		last:     start.Add(-1),
	}
	if replicas > 0 {
		s.pods = []podGroup{{created: start.Add(-cfg.PodStartup), n: replicas}}
		s.keda.lastActive, s.keda.hasActive = start, true
	}
	return s, nil
}

// Step advances the simulation to t. KEDA polls every PollingInterval and
// the HPA syncs every SyncPeriod, both first at the start; every poll and
// sync in (previous t, t] reads in, the scaler's answer since the previous
// step. When a poll and a sync fall at the same instant, the poll runs
// first. A t earlier than the previous one runs nothing.
func (s *Sim) Step(t time.Time, in Input) State {
	s.events = s.events[:0]
	if t.After(s.last) {
		for {
			poll := !s.nextPoll.After(t)
			sync := !s.nextSync.After(t)
			if !poll && !sync {
				break
			}
			if poll && (!sync || !s.nextPoll.After(s.nextSync)) {
				to, changed, what := s.keda.poll(s.nextPoll, s.replicas, in)
				if changed {
					s.scale(s.nextPoll, to, what)
				}
				s.nextPoll = s.nextPoll.Add(s.cfg.PollingInterval)
				continue
			}
			to, changed := s.hpa.sync(s.nextSync, s.replicas, in)
			if changed {
				what := "hpa scale-down"
				if to > s.replicas {
					what = "hpa scale-up"
				}
				s.scale(s.nextSync, to, what)
			}
			s.nextSync = s.nextSync.Add(s.cfg.SyncPeriod)
		}
		if s.cfg.Push && in.ActiveOK && (!s.pushed || in.Active != s.lastPush) {
			// The stream sends a change when the scaler sees it, at t
			// here, and KEDA's operator acts on it at once.
			s.pushed, s.lastPush = true, in.Active
			if to, changed, what := s.keda.poll(t, s.replicas, in); changed {
				s.scale(t, to, what+" (push)")
			}
		}
		s.last = t
	}
	return State{Replicas: s.replicas, Ready: s.ready(t), Event: strings.Join(s.events, "; ")}
}

// scale sets spec.replicas at t and creates or removes pods.
func (s *Sim) scale(t time.Time, to int32, what string) {
	s.events = append(s.events, fmt.Sprintf("%s %d→%d", what, s.replicas, to))
	if to > s.replicas {
		s.pods = append(s.pods, podGroup{created: t, n: to - s.replicas})
	}
	for drop := s.replicas - to; drop > 0 && len(s.pods) > 0; {
		g := &s.pods[len(s.pods)-1]
		if g.n > drop {
			g.n -= drop
			break
		}
		drop -= g.n
		s.pods = s.pods[:len(s.pods)-1]
	}
	s.replicas = to
	s.mergeReady(t)
}

// ready counts the pods started by t.
func (s *Sim) ready(t time.Time) int32 {
	var n int32
	for _, g := range s.pods {
		if g.created.Add(s.cfg.PodStartup).After(t) {
			break
		}
		n += g.n
	}
	return n
}

// mergeReady folds the leading ready groups into one, so that the list
// holds only the groups still starting.
func (s *Sim) mergeReady(t time.Time) {
	i := 0
	var n int32
	for i < len(s.pods) && !s.pods[i].created.Add(s.cfg.PodStartup).After(t) {
		n += s.pods[i].n
		i++
	}
	if i > 1 {
		s.pods[i-1].n = n
		s.pods = append(s.pods[:0], s.pods[i-1:]...)
	}
}
