package externalscaler

import (
	"strconv"
	"time"
	"unicode/utf8"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc/status"
)

// Events receives the Kubernetes Events of a trigger whose decision or
// state changed; [kube.Events] implements it.
type Events interface {
	// Emit records an Event of reason regarding ScaledObject
	// namespace/name. It must not block: the evaluation waits for it.
	Emit(namespace, name, reason, action, note string, warning bool)
}

// The reasons of the Events on ScaledObjects (docs/operations.md).
const (
	// ReasonScaledUp: a good evaluation told KEDA more replicas than the
	// answer before.
	ReasonScaledUp = "NemesisScaledUp"
	// ReasonScaledDown: a good evaluation told KEDA fewer replicas.
	ReasonScaledDown = "NemesisScaledDown"
	// ReasonHolding: an evaluation failed and onError: hold answers with
	// the last good decision.
	ReasonHolding = "NemesisHolding"
	// ReasonEvaluationFailed: an evaluation failed and onError gave a
	// fixed count, or no answer (KEDA's fallback applies).
	ReasonEvaluationFailed = "NemesisEvaluationFailed"
	// ReasonRuleSetMissing: the trigger names no rule set, or one the
	// scaler does not have.
	ReasonRuleSetMissing = "NemesisRuleSetMissing"
)

// state is the kind of answer a trigger's evaluation gave, for Events.
type state uint8

const (
	stateNone     state = iota // no evaluation yet
	stateGood                  // a good evaluation
	stateHolding               // failed, holding the last good decision
	stateFixed                 // failed, onError's fixed count
	stateNoAnswer              // failed, no answer
)

// stateOf is the kind of answer of rec.
func stateOf(rec *record) state {
	switch {
	case rec.fail == nil:
		return stateGood
	case rec.flags&flagHolding != 0:
		return stateHolding
	case rec.flags&flagFixed != 0:
		return stateFixed
	default:
		return stateNoAnswer
	}
}

// eventOf says which Event, if any, the record rec makes, given what the
// trigger told KEDA before (told, none when !toldOK) and the state of its
// evaluation before. The first good evaluation makes none: there is no
// decision before it to change (after a restart of the scaler, too).
//
// The action of a scale names the replicas, e.g. ScaleUpTo5: the
// broadcaster merges Events alike but for their note into one series (one
// Event, its count, the first note) for 6 minutes, so that with a fixed
// action a scale-out 1 → 3 → 5 would show as one Event "1 → 3" seen twice.
func eventOf(rec *record, before state, told int64, toldOK bool) (reason, action string) {
	now := stateOf(rec)
	switch now {
	case stateGood:
		switch {
		case !toldOK || rec.replicas == told:
			return "", ""
		case rec.replicas > told:
			return ReasonScaledUp, "ScaleUpTo" + strconv.FormatInt(rec.replicas, 10)
		default:
			return ReasonScaledDown, "ScaleDownTo" + strconv.FormatInt(rec.replicas, 10)
		}
	case stateHolding:
		if before != stateHolding {
			return ReasonHolding, "Hold"
		}
	default:
		if before != now {
			return ReasonEvaluationFailed, "Evaluate"
		}
	}
	return "", ""
}

// noteEvent returns the Event that the evaluation kept as rec makes, and
// remembers what it told KEDA. Callers hold s.mu.
func (o *object) noteEvent(rec *record) (reason, action string) {
	reason, action = eventOf(rec, o.state, o.told, o.toldOK)
	o.state = stateOf(rec)
	if n, ok := rec.answered(); ok {
		o.told, o.toldOK = n, true
	}
	return reason, action
}

// emit hands the Event of reason, whose note is v's explanation, to
// Options.Events.
func (s *Server) emit(ref *pb.ScaledObjectRef, reason, action string, v *view) {
	s.opts.Events.Emit(ref.Namespace, ref.Name, reason, action, cutNote(v.explain()), reason != ReasonScaledUp && reason != ReasonScaledDown)
}

// maxNote is the longest note of an Event the API server accepts, in bytes.
const maxNote = 1024

// cutNote cuts note to maxNote bytes, on a rune boundary.
func cutNote(note string) string {
	if len(note) <= maxNote {
		return note
	}
	const ellipsis = "…"
	n := maxNote - len(ellipsis)
	for n > 0 && !utf8.RuneStart(note[n]) {
		n--
	}
	return note[:n] + ellipsis
}

// unresolvedTrigger is a trigger that could not be resolved: what was
// wrong, for its Events, and when it was last asked for.
type unresolvedTrigger struct {
	reason   string
	lastSeen time.Time
}

// noteUnresolved emits the Event of a trigger that cannot be resolved, for
// reason, with err as its note, unless the last call for the trigger found
// the same problem. Callers hold s.mu.
func (s *Server) noteUnresolved(key string, ref *pb.ScaledObjectRef, reason, action string, err error) {
	if s.opts.Events == nil {
		return
	}
	now := s.opts.Now()
	if u, ok := s.unresolved[key]; ok {
		u.lastSeen = now
		if u.reason == reason {
			return
		}
		u.reason = reason
	} else {
		if len(s.unresolved) >= s.opts.MaxScaledObjects {
			return // bounded as the triggers are; forgetIdle frees room
		}
		s.unresolved[key] = &unresolvedTrigger{reason: reason, lastSeen: now}
	}
	s.opts.Events.Emit(ref.Namespace, ref.Name, reason, action, cutNote(status.Convert(err).Message()), true)
}
