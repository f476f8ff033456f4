package hpasim

import (
	"errors"
	"fmt"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

// KEDA's and the HPA controller's defaults, so that a backtest without a
// ScaledObject manifest behaves like a ScaledObject that sets nothing.
const (
	// DefaultPollingInterval is KEDA's pollingInterval when unset.
	DefaultPollingInterval = 30 * time.Second
	// DefaultCooldownPeriod is KEDA's cooldownPeriod when unset.
	DefaultCooldownPeriod = 300 * time.Second
	// DefaultMaxReplicas is KEDA's maxReplicaCount when unset.
	DefaultMaxReplicas int32 = 100
	// DefaultSyncPeriod is kube-controller-manager's
	// --horizontal-pod-autoscaler-sync-period.
	DefaultSyncPeriod = 15 * time.Second
	// DefaultTolerance is kube-controller-manager's
	// --horizontal-pod-autoscaler-tolerance.
	DefaultTolerance = 0.1
	// DefaultDownscaleStabilization is kube-controller-manager's
	// --horizontal-pod-autoscaler-downscale-stabilization, the scale-down
	// window when behavior.scaleDown does not set one.
	DefaultDownscaleStabilization = 5 * time.Minute

	// maxStabilizationWindowSeconds and maxPeriodSeconds are the API
	// server's limits on an HPA's behavior.
	maxStabilizationWindowSeconds = 3600
	maxPeriodSeconds              = 1800
)

// Config is what the simulation needs to know about one ScaledObject and the
// cluster it runs in. Build it with [DefaultConfig] or [ParseScaledObject]
// rather than from a zero value: CooldownPeriod 0 and MinReplicas 0 are
// meaningful to KEDA and are kept as given.
type Config struct {
	// PollingInterval is KEDA's pollingInterval: how often the operator asks
	// the scaler IsActive and may scale between zero and one.
	PollingInterval time.Duration
	// CooldownPeriod is KEDA's cooldownPeriod: how long after the last
	// active answer the operator scales to zero (or IdleReplicas). Zero is
	// valid and means at the first inactive poll.
	CooldownPeriod time.Duration
	// MinReplicas is KEDA's minReplicaCount; the HPA gets max(MinReplicas, 1).
	MinReplicas int32
	// MaxReplicas is KEDA's maxReplicaCount, the HPA's maxReplicas.
	MaxReplicas int32
	// IdleReplicas is KEDA's idleReplicaCount, nil when unset.
	IdleReplicas *int32
	// Behavior is advanced.horizontalPodAutoscalerConfig.behavior as
	// written; nil makes the HPA controller take its older code path without
	// behaviors, as a real HPA whose spec has no behavior does.
	Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior
	// SyncPeriod is the HPA controller's sync period.
	SyncPeriod time.Duration
	// Tolerance is the HPA controller's cluster-wide tolerance.
	Tolerance float64
	// DownscaleStabilization is the HPA controller's scale-down
	// stabilization window when Behavior does not set one.
	DownscaleStabilization time.Duration
	// PodStartup is how long a created pod takes to become ready.
	PodStartup time.Duration
	// Push says the trigger is external-push: the scaler pushes each
	// change of IsActive down a stream, and the operator acts on it at
	// once (RequestScale, as at a poll) instead of at the next poll.
	Push bool
}

// DefaultConfig returns the configuration of a ScaledObject that sets none of
// the fields the simulation reads, in a cluster with default flags.
func DefaultConfig() Config {
	return Config{
		PollingInterval:        DefaultPollingInterval,
		CooldownPeriod:         DefaultCooldownPeriod,
		MaxReplicas:            DefaultMaxReplicas,
		SyncPeriod:             DefaultSyncPeriod,
		Tolerance:              DefaultTolerance,
		DownscaleStabilization: DefaultDownscaleStabilization,
	}
}

// WithDefaults fills the fields whose zero value KEDA or the controller
// manager would replace by a default (PollingInterval, MaxReplicas,
// SyncPeriod, Tolerance, DownscaleStabilization). It leaves CooldownPeriod
// alone because KEDA honours cooldownPeriod: 0.
func (c Config) WithDefaults() Config {
	if c.PollingInterval == 0 {
		c.PollingInterval = DefaultPollingInterval
	}
	if c.MaxReplicas == 0 {
		c.MaxReplicas = DefaultMaxReplicas
	}
	if c.SyncPeriod == 0 {
		c.SyncPeriod = DefaultSyncPeriod
	}
	if c.Tolerance == 0 {
		c.Tolerance = DefaultTolerance
	}
	if c.DownscaleStabilization == 0 {
		c.DownscaleStabilization = DefaultDownscaleStabilization
	}
	return c
}

// Validate reports every setting that KEDA's admission webhook or the API
// server would refuse, so that a backtest never simulates a ScaledObject that
// could not exist.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.PollingInterval < time.Second {
		bad("pollingInterval %v must be at least 1s", c.PollingInterval)
	}
	if c.CooldownPeriod < 0 {
		bad("cooldownPeriod %v must not be negative", c.CooldownPeriod)
	}
	if c.MinReplicas < 0 {
		bad("minReplicaCount %d must not be negative", c.MinReplicas)
	}
	if c.MaxReplicas < 1 {
		bad("maxReplicaCount %d must be at least 1", c.MaxReplicas)
	}
	if c.MinReplicas > c.MaxReplicas {
		bad("minReplicaCount %d must not exceed maxReplicaCount %d", c.MinReplicas, c.MaxReplicas)
	}
	if c.IdleReplicas != nil {
		// KEDA's CheckReplicaCountBoundsAreValid compares against the HPA's
		// minimum, max(minReplicaCount, 1).
		if *c.IdleReplicas < 0 {
			bad("idleReplicaCount %d must not be negative", *c.IdleReplicas)
		} else if *c.IdleReplicas >= hpaMin(c.MinReplicas) {
			bad("idleReplicaCount %d must be less than minReplicaCount %d", *c.IdleReplicas, hpaMin(c.MinReplicas))
		}
	}
	if c.SyncPeriod <= 0 {
		bad("sync period %v must be positive", c.SyncPeriod)
	}
	if c.Tolerance < 0 {
		bad("tolerance %v must not be negative", c.Tolerance)
	}
	if c.DownscaleStabilization < 0 {
		bad("downscale stabilization %v must not be negative", c.DownscaleStabilization)
	}
	if c.PodStartup < 0 {
		bad("pod startup %v must not be negative", c.PodStartup)
	}
	if b := c.Behavior; b != nil {
		errs = append(errs, validateRules("scaleUp", b.ScaleUp)...)
		errs = append(errs, validateRules("scaleDown", b.ScaleDown)...)
	}
	return errors.Join(errs...)
}

// validateRules applies the API server's checks to one direction of a
// behavior, after the defaults are merged in.
func validateRules(dir string, r *autoscalingv2.HPAScalingRules) []error {
	if r == nil {
		return nil
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("behavior.%s: "+format, append([]any{dir}, args...)...))
	}
	if w := r.StabilizationWindowSeconds; w != nil && (*w < 0 || *w > maxStabilizationWindowSeconds) {
		bad("stabilizationWindowSeconds %d must be between 0 and %d", *w, maxStabilizationWindowSeconds)
	}
	if p := r.SelectPolicy; p != nil {
		switch *p {
		case autoscalingv2.MaxChangePolicySelect, autoscalingv2.MinChangePolicySelect, autoscalingv2.DisabledPolicySelect:
		default:
			bad("selectPolicy %q must be Max, Min or Disabled", string(*p))
		}
	}
	if r.Policies != nil && len(r.Policies) == 0 {
		bad("policies must hold at least one policy")
	}
	for i, p := range r.Policies {
		if p.Type != autoscalingv2.PodsScalingPolicy && p.Type != autoscalingv2.PercentScalingPolicy {
			bad("policies[%d].type %q must be Pods or Percent", i, string(p.Type))
		}
		if p.Value <= 0 {
			bad("policies[%d].value %d must be greater than zero", i, p.Value)
		}
		if p.PeriodSeconds <= 0 || p.PeriodSeconds > maxPeriodSeconds {
			bad("policies[%d].periodSeconds %d must be between 1 and %d", i, p.PeriodSeconds, maxPeriodSeconds)
		}
	}
	if r.Tolerance != nil && r.Tolerance.Sign() < 0 {
		bad("tolerance %s must not be negative", r.Tolerance.String())
	}
	return errs
}

// hpaMin is the minReplicas KEDA writes into the HPA it owns
// (ScaledObject.GetHPAMinReplicas): the HPA cannot hold zero, KEDA does.
func hpaMin(minReplicaCount int32) int32 {
	return max(minReplicaCount, 1)
}
