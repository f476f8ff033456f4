// Package hpasim simulates what KEDA and the Kubernetes HPA controller do
// with a scaler's answers over time, so that `nemesis rules backtest` can
// show the replica count a rule set would really have run, not only the
// count it asked for. It is pure: time in, replicas out, no I/O and no
// goroutines.
//
// A [Sim] is built from a [Config], usually read from the ScaledObject
// manifest by [ParseScaledObject] (defaults as KEDA's), and driven by
// [Sim.Step] with the scaler's answer ([Input]) at each step. Inside a step,
// two loops run at their own periods, both first at the start:
//
//   - KEDA's scale loop, every pollingInterval, reads IsActive and moves the
//     target between zero (or idleReplicaCount) and max(minReplicaCount, 1),
//     following RequestScale in KEDA v2.21's
//     pkg/scaling/executor/scale_scaledobjects.go.
//   - The HPA controller of Kubernetes v1.37, every sync period, reads KEDA's
//     one External metric (target averageValue 1, so the value is the desired
//     count) and follows reconcileAutoscaler in
//     pkg/controller/podautoscaler/horizontal.go: tolerance, stabilization
//     windows, behavior policies and selectPolicy, minReplicas
//     max(minReplicaCount, 1), maxReplicas maxReplicaCount, nothing while the
//     target is at zero.
//
// Pods created at t are ready at t + PodStartup; removed pods leave at once.
//
// # Where the simulation is exact and where it approximates
//
// Exact, in the sense that the same sequence of answers at the same instants
// gives the same spec.replicas as the code of KEDA v2.21 and Kubernetes
// v1.37 (read from their sources, not from memory):
//
//   - KEDA activation: at a poll that answers active, a target at 0 (or,
//     with idleReplicaCount, below minReplicaCount) is set to
//     max(minReplicaCount, 1); every active poll records lastActiveTime.
//   - KEDA deactivation: at a poll that answers inactive, a target above
//     zero with minReplicaCount 0 (or above idleReplicaCount when set) goes
//     to minReplicaCount (or idleReplicaCount) once lastActiveTime +
//     cooldownPeriod is strictly before the poll. With idleReplicaCount unset
//     a target below minReplicaCount is raised to it even when inactive.
//   - Errors: an IsActive that fails counts as not active, and without a
//     fallback KEDA does not scale to zero on it; a failed metric makes the
//     HPA keep the count for that sync (the reconcile ends on the error,
//     recording no recommendation).
//   - The External metric with an averageValue target: the value is
//     quantized to milli-units as KEDA sends it (three decimals; NaN, ±Inf
//     and negatives are 0), usageRatio = value / currentReplicas, no change
//     while 1 - tolerance ≤ usageRatio ≤ 1 + tolerance (edges included),
//     else ceil(value). Per-direction tolerances from behavior (the
//     HPAConfigurableTolerance feature is GA in v1.37) are honoured.
//   - Without behavior in the ScaledObject, KEDA creates an HPA without
//     behavior and the API server leaves it so: the controller then takes
//     its older path, a 300 s downscale window that keeps a recommendation
//     exactly 300 s old, and a scale-up limit of max(2 × current, 4), which
//     is not the same as the documented default behavior (current + 4 or
//     2 × current). With behavior, unset fields are merged from the API
//     server's defaults field by field; recommendations are stabilized over
//     the windows (strictly newer than the cutoff); the scale-up and
//     scale-down limits come from the HPA's own scale events within each
//     policy's period, with the controller's reuse of outdated event slots;
//     selectPolicy Max, Min and Disabled behave as in the controller.
//   - A target above maxReplicaCount or below the HPA's minimum is set to
//     the bound without reading the metric. While spec.replicas is 0 the HPA
//     does nothing: KEDA's HPA has minReplicas ≥ 1, so the HPAScaleToZero
//     feature (beta in v1.37) never applies.
//   - The first sync seeds the recommendations with the count the target
//     had, as recordInitialRecommendation does.
//
// Approximate, and why:
//
//   - Phase. Polls and syncs fall exactly every pollingInterval and sync
//     period from the start, and when both fall at the same instant KEDA's
//     poll runs first. In a cluster, KEDA's loop starts when the operator
//     reconciles the ScaledObject and the HPA controller's work queue
//     resyncs each HPA on its own schedule, so activation and deactivation
//     can come up to one pollingInterval later or sooner, and HPA changes up
//     to one sync period. Policies whose period equals the sync period are
//     sensitive to this: the controller counts an event only if it is
//     strictly within the period, and a reconcile a few milliseconds early
//     still sees the previous step's event.
//   - external-push. With an external-push trigger (Config.Push, set by
//     ParseScaledObject) a change of IsActive is acted on at the step that
//     sees it, as KEDA acts on a pushed value at once; the real stream
//     pushes within the scaler's push interval (1 s by default) of the
//     change, which a step of more than that rounds to the step.
//   - The answer between steps. Every poll and sync in (previous step, t]
//     reads the answer given at t; the real scaler is asked at the instant of
//     each poll and each sync (useCachedMetrics, which makes the HPA read the
//     last poll's value, is not modelled).
//   - status.replicas. The HPA divides the metric by status.replicas, the
//     pods that exist; the simulation uses spec.replicas, assuming the
//     Deployment has created its pods by the next sync. Right after an
//     activation 0 → 1 a real sync may still see 0 pods and ask for
//     ceil(value) where the simulation, within tolerance of 1, keeps 1.
//   - Readiness. For an External metric with an averageValue target the HPA
//     never looks at pods (GetExternalPerPodMetricReplicas uses only
//     status.replicas), so its handling of unready pods — the
//     --horizontal-pod-autoscaler-initial-readiness-delay and
//     --horizontal-pod-autoscaler-cpu-initialization-period flags, used by
//     groupPods for Resource and Pods metrics — does not apply, and neither
//     does the count of ready pods used for metricType Value
//     (GetExternalMetricReplicas), which ParseScaledObject refuses. Ready
//     follows a fixed PodStartup: real pods vary, may wait for a node (the
//     cluster autoscaler is not modelled) or crash. A scale-down removes the
//     newest pods first, as a ReplicaSet prefers not-ready and younger pods;
//     its randomisation within age buckets is not modelled.
//   - Not modelled: KEDA's fallback (errors hold the count instead of
//     switching to fallback.replicas after failureThreshold), scalingModifiers
//     and more than one trigger, pause annotations, API and controller
//     latency, rollouts and terminating pods.
//   - The start. A simulation started with replicas > 0 takes the ScaledObject
//     as last active at the start, so the first scale to zero waits a full
//     cooldownPeriod; initialCooldownPeriod, which KEDA uses only while
//     status.lastActiveTime is unset, therefore never matters. The HPA's
//     windows start empty but for the initial recommendation, as for a
//     freshly started controller.
//   - Controller flags. The sync period, tolerance and downscale window are
//     the kube-controller-manager defaults (15 s, 0.1, 5 min) unless Config
//     says otherwise.
package hpasim
