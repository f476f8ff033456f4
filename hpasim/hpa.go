package hpasim

import (
	"math"
	"strconv"
	"strings"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

// rules is one direction of an HPA behavior with the API server's defaults
// merged in, as the controller sees it.
type rules struct {
	window    time.Duration
	selectPol autoscalingv2.ScalingPolicySelect
	policies  []autoscalingv2.HPAScalingPolicy
	tolerance float64
	// longest is the longest policy period, after which the controller
	// marks a scale event of this direction as reusable.
	longest time.Duration
}

// resolveRules merges a direction's rules over the API server's defaults
// (SetDefaults_HorizontalPodAutoscalerBehavior), field by field as
// copyHPAScalingRules does, and applies the controller's own defaults for
// the scale-down window and the tolerance.
func resolveRules(given *autoscalingv2.HPAScalingRules, up bool, c Config) rules {
	r := rules{selectPol: autoscalingv2.MaxChangePolicySelect, tolerance: c.Tolerance}
	if up {
		r.policies = []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
			{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
		}
	} else {
		r.window = c.DownscaleStabilization
		r.policies = []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		}
	}
	if given != nil {
		if given.StabilizationWindowSeconds != nil {
			r.window = time.Duration(*given.StabilizationWindowSeconds) * time.Second
		}
		if given.SelectPolicy != nil {
			r.selectPol = *given.SelectPolicy
		}
		if given.Policies != nil {
			r.policies = given.Policies
		}
		if given.Tolerance != nil {
			r.tolerance = given.Tolerance.AsApproximateFloat64()
		}
	}
	for _, p := range r.policies {
		r.longest = max(r.longest, time.Duration(p.PeriodSeconds)*time.Second)
	}
	return r
}

// recommendation is one unstabilized desired count the controller computed.
type recommendation struct {
	replicas int32
	at       time.Time
}

// scaleEvent is one change the controller made, kept for the policies'
// periods. outdated mirrors the controller's flag: an outdated slot is
// reused by the next event of the same direction, but until then it still
// counts for the other direction, whose periods may be longer.
type scaleEvent struct {
	change   int32
	at       time.Time
	outdated bool
}

// hpa is the state the HPA controller keeps in memory for one HPA, and the
// spec KEDA gives it.
type hpa struct {
	min, max  int32
	behavior  bool // false: the controller's path without behaviors
	up, down  rules
	legacyWin time.Duration
	tolerance float64

	recs        []recommendation
	recsStarted bool
	upEvents    []scaleEvent
	downEvents  []scaleEvent
}

func newHPA(c Config) *hpa {
	h := &hpa{min: hpaMin(c.MinReplicas), max: c.MaxReplicas, legacyWin: c.DownscaleStabilization, tolerance: c.Tolerance}
	if c.Behavior != nil {
		h.behavior = true
		h.up = resolveRules(c.Behavior.ScaleUp, true, c)
		h.down = resolveRules(c.Behavior.ScaleDown, false, c)
	}
	return h
}

// sync is one reconcile of the HPA at now with the target at current
// replicas. It returns the new spec.replicas and whether it changed it.
func (h *hpa) sync(now time.Time, current int32, in Input) (int32, bool) {
	if !h.recsStarted {
		// recordInitialRecommendation: the first reconcile seeds the
		// window with the count the target had, even at zero.
		h.recs = append(h.recs, recommendation{current, now})
		h.recsStarted = true
	}
	var desired int32
	switch {
	case current == 0:
		// KEDA's HPA has minReplicas >= 1, so the controller never sets
		// the ScaledToZero condition and disables itself at zero.
		return current, false
	case current > h.max:
		desired = h.max
	case current < h.min:
		desired = h.min
	default:
		if !in.DesiredOK {
			// The only metric failed: computeReplicasForMetrics returns an
			// error and the reconcile ends without a recommendation.
			return current, false
		}
		proposal := h.metricReplicas(current, in.Desired)
		if h.behavior {
			desired = h.normalizeWithBehaviors(now, current, proposal)
		} else {
			desired = h.normalizeLegacy(now, current, proposal)
		}
	}
	if desired == current {
		return current, false
	}
	if h.behavior {
		h.storeEvent(now, current, desired)
	}
	return desired, true
}

// metricReplicas is GetExternalPerPodMetricReplicas for KEDA's one external
// metric with target averageValue 1: the metric value is the scaler's
// desired count, quantized to milli-units as KEDA does.
func (h *hpa) metricReplicas(current int32, value float64) int32 {
	usage := milli(value)
	const target = 1000 // averageValue 1, in milli-units
	ratio := float64(usage) / (float64(target) * float64(current))
	upTol, downTol := h.tolerance, h.tolerance
	if h.behavior {
		upTol, downTol = h.up.tolerance, h.down.tolerance
	}
	if 1-downTol <= ratio && ratio <= 1+upTol {
		return current
	}
	n := math.Ceil(float64(usage) / target)
	if n > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(n)
}

// milli turns the scaler's number into the milli-value the HPA reads: KEDA
// formats it with three decimals (NaN, ±Inf and negatives become 0) and the
// HPA takes Quantity.MilliValue.
func milli(v float64) int64 {
	if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
		return 0
	}
	if v >= math.MaxInt64/1000 {
		return math.MaxInt64
	}
	// Away from a tie between two milli-units, rounding the product gives
	// what the decimal formatting gives, without its allocations.
	if x := v * 1000; x < 1<<52 {
		if frac := x - math.Floor(x); math.Abs(frac-0.5) > 1e-6 {
			return int64(math.Round(x))
		}
	}
	s := strconv.FormatFloat(v, 'f', 3, 64)
	n, err := strconv.ParseInt(strings.Replace(s, ".", "", 1), 10, 64)
	if err != nil {
		return int64(math.Round(v * 1000))
	}
	return n
}

// normalizeLegacy is the controller's path for an HPA without behavior:
// the highest recommendation within the downscale window, then at most
// max(2×current, 4) and within [min, max].
func (h *hpa) normalizeLegacy(now time.Time, current, proposal int32) int32 {
	cutoff := now.Add(-h.legacyWin)
	stabilized := proposal
	kept := h.recs[:0]
	for _, r := range h.recs {
		if r.at.Before(cutoff) {
			continue // the controller would overwrite this old sample
		}
		stabilized = max(stabilized, r.replicas)
		kept = append(kept, r)
	}
	h.recs = append(kept, recommendation{proposal, now})

	upLimit := clampInt32(math.Max(2*float64(current), 4))
	hi := min(h.max, upLimit)
	switch {
	case stabilized < h.min:
		return h.min
	case stabilized > hi:
		return hi
	}
	return stabilized
}

// normalizeWithBehaviors is stabilizeRecommendationWithBehaviors followed by
// convertDesiredReplicasWithBehaviorRate.
func (h *hpa) normalizeWithBehaviors(now time.Time, current, proposal int32) int32 {
	upCut := now.Add(-h.up.window)
	downCut := now.Add(-h.down.window)
	upRec, downRec := proposal, proposal
	kept := h.recs[:0]
	for _, r := range h.recs {
		if r.at.After(upCut) {
			upRec = min(upRec, r.replicas)
		}
		if r.at.After(downCut) {
			downRec = max(downRec, r.replicas)
		}
		if r.at.Before(upCut) && r.at.Before(downCut) {
			continue // old for both windows: the controller reuses its slot
		}
		kept = append(kept, r)
	}
	h.recs = append(kept, recommendation{proposal, now})

	desired := current
	if desired < upRec {
		desired = upRec
	}
	if desired > downRec {
		desired = downRec
	}

	switch {
	case desired > current:
		limit := h.scaleLimit(now, current, h.up, true)
		limit = max(limit, current)
		return min(desired, h.max, limit)
	case desired < current:
		limit := h.scaleLimit(now, current, h.down, false)
		limit = min(limit, current)
		return max(desired, h.min, limit)
	}
	return desired
}

// scaleLimit is calculateScaleUpLimitWithScalingRules (up) or
// calculateScaleDownLimitWithBehaviors (down): each policy proposes a bound
// from the count at the start of its period, and selectPolicy picks one.
func (h *hpa) scaleLimit(now time.Time, current int32, r rules, up bool) int32 {
	if r.selectPol == autoscalingv2.DisabledPolicySelect {
		return current
	}
	// Max means the largest change: the highest bound going up, the lowest
	// going down.
	wantHigh := (r.selectPol == autoscalingv2.MinChangePolicySelect) != up
	var result int32
	if wantHigh {
		result = math.MinInt32
	} else {
		result = math.MaxInt32
	}
	for _, p := range r.policies {
		period := time.Duration(p.PeriodSeconds) * time.Second
		// In float64, where the controller's int32 sums would wrap near
		// the top of the range, then clamped back into int32.
		start := float64(current) - changeWithin(now, period, h.upEvents) + changeWithin(now, period, h.downEvents)
		var proposed int32
		switch {
		case up && p.Type == autoscalingv2.PodsScalingPolicy:
			proposed = clampInt32(start + float64(p.Value))
		case up && p.Type == autoscalingv2.PercentScalingPolicy:
			// Rounded up so that a small target can still grow.
			proposed = clampInt32(math.Ceil(start * (1 + float64(p.Value)/100)))
		case !up && p.Type == autoscalingv2.PodsScalingPolicy:
			proposed = clampInt32(start - float64(p.Value))
		case !up && p.Type == autoscalingv2.PercentScalingPolicy:
			proposed = clampInt32(math.Trunc(start * (1 - float64(p.Value)/100)))
		}
		if wantHigh {
			result = max(result, proposed)
		} else {
			result = min(result, proposed)
		}
	}
	return result
}

// changeWithin sums the events strictly inside the last period.
func changeWithin(now time.Time, period time.Duration, events []scaleEvent) float64 {
	cutoff := now.Add(-period)
	var n float64
	for _, e := range events {
		if e.at.After(cutoff) {
			n += float64(e.change)
		}
	}
	return n
}

// clampInt32 converts x to int32, saturating where Go's conversion of an
// out-of-range float would give an arbitrary value.
func clampInt32(x float64) int32 {
	switch {
	case x >= math.MaxInt32:
		return math.MaxInt32
	case x <= math.MinInt32:
		return math.MinInt32
	}
	return int32(x)
}

// storeEvent is storeScaleEvent: mark the events older than the direction's
// longest period as outdated, then put the new one in the last outdated
// slot, or append it.
func (h *hpa) storeEvent(now time.Time, from, to int32) {
	events, r, change := &h.upEvents, h.up, to-from
	if to < from {
		events, r, change = &h.downEvents, h.down, from-to
	}
	cutoff := now.Add(-r.longest)
	slot := -1
	for i := range *events {
		if (*events)[i].at.Before(cutoff) {
			(*events)[i].outdated = true
		}
		if (*events)[i].outdated {
			slot = i
		}
	}
	e := scaleEvent{change: change, at: now}
	if slot >= 0 {
		(*events)[slot] = e
	} else {
		*events = append(*events, e)
	}
}
