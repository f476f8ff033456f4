package hpasim

import "time"

// keda is the part of the KEDA operator's scale loop that moves a target
// between zero (or idleReplicaCount) and the HPA's range: the
// RequestScale of pkg/scaling/executor in KEDA v2.21, with one trigger,
// no fallback and no pause annotations.
type keda struct {
	min        int32
	idle       *int32
	cooldown   time.Duration
	lastActive time.Time
	hasActive  bool // status.lastActiveTime is set
}

func newKEDA(c Config) *keda {
	return &keda{min: c.MinReplicas, idle: c.IdleReplicas, cooldown: c.CooldownPeriod}
}

// poll is one pass of the scale loop at now with the target at current
// replicas. It returns the new spec.replicas, whether it changed it, and a
// short name for what it did.
func (k *keda) poll(now time.Time, current int32, in Input) (int32, bool, string) {
	// With one trigger, an IsActive that failed is not active and is an
	// error (scale_handler.getScaledObjectState).
	isError := !in.ActiveOK
	if in.ActiveOK && in.Active {
		if (k.idle != nil && current < k.min) || current == 0 {
			// scaleFromZeroOrIdle sets max(minReplicaCount, 1) and, only
			// when that succeeds, lastActiveTime.
			k.lastActive, k.hasActive = now, true
			to := max(k.min, 1)
			return to, to != current, "keda activate"
		}
		k.lastActive, k.hasActive = now, true
		return current, false, ""
	}
	switch {
	case isError:
		// Without a fallback KEDA only marks the ScaledObject not ready;
		// it never scales to zero on an error.
		return current, false, ""
	case (k.idle != nil && current > *k.idle) || (current > 0 && k.min == 0):
		// scaleToZeroOrIdle: strictly after lastActiveTime+cooldownPeriod.
		// A nil lastActiveTime (possible only at the start of a simulation
		// begun at zero, see New) means the initial cooldown, 0 by default,
		// has passed.
		if k.hasActive && !k.lastActive.Add(k.cooldown).Before(now) {
			return current, false, ""
		}
		to := k.min
		if k.idle != nil {
			to = *k.idle
		}
		return to, to != current, "keda deactivate"
	case k.idle == nil && current < k.min:
		return k.min, true, "keda min"
	}
	return current, false, ""
}
