package nodeagent

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// writeStatus reports the pod's status if it differs from what the API
// server has. Only the kubelet's fields change; conditions of other types
// stay. A conflict is retried with the newest pod.
func (w *worker) writeStatus(ctx context.Context) error {
	pods := w.a.cfg.Client.CoreV1().Pods(w.ns)
	pod := w.cur
	for attempt := 0; ; attempt++ {
		desired := pod.DeepCopy()
		w.applyStatus(&desired.Status, time.Now())
		if apiequality.Semantic.DeepEqual(desired.Status, pod.Status) {
			return nil
		}
		updated, err := pods.UpdateStatus(ctx, desired, metav1.UpdateOptions{})
		if err == nil {
			w.cur = updated
			return nil
		}
		if !apierrors.IsConflict(err) || attempt == 4 {
			if ctx.Err() == nil && !apierrors.IsNotFound(err) {
				w.log.Warn("updating the pod status failed", "err", err)
			}
			return fmt.Errorf("updating the status of pod %s/%s: %w", w.ns, w.name, err)
		}
		fresh, err := pods.Get(ctx, w.name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("updating the status of pod %s/%s: %w", w.ns, w.name, err)
		}
		if fresh.UID != w.uid {
			return nil // a new pod of the same name
		}
		pod = fresh
		w.cur = fresh
	}
}

// applyStatus sets the kubelet's fields of st from the worker's state.
// Transition and start times already in st are kept when nothing changed,
// so that an unchanged pod compares equal.
func (w *worker) applyStatus(st *corev1.PodStatus, now time.Time) {
	gw := w.a.cfg.Gateway.String()
	st.Phase = w.phase()
	st.HostIP = gw
	st.HostIPs = []corev1.HostIP{{IP: gw}}
	if ip := w.podIP(); ip != "" && (w.sandboxReady || w.terminal != "" || w.terminating) {
		st.PodIP = ip
		st.PodIPs = []corev1.PodIP{{IP: ip}}
	}
	if st.StartTime == nil && !w.startTime.IsZero() {
		t := w.startTime
		st.StartTime = &t
	}

	prev := map[string]corev1.ContainerStatus{}
	for _, cs := range append(append([]corev1.ContainerStatus(nil), st.InitContainerStatuses...), st.ContainerStatuses...) {
		prev[cs.Name] = cs
	}
	var initStatuses, statuses []corev1.ContainerStatus
	var notInit, notReady []string
	for _, c := range w.initCs {
		cs := w.containerStatus(c, prev[c.spec.Name])
		initStatuses = append(initStatuses, cs)
		if !cs.Ready {
			notInit = append(notInit, c.spec.Name)
		}
	}
	for _, c := range w.cs {
		cs := w.containerStatus(c, prev[c.spec.Name])
		statuses = append(statuses, cs)
		if !cs.Ready {
			notReady = append(notReady, c.spec.Name)
		}
	}
	st.InitContainerStatuses = initStatuses
	st.ContainerStatuses = statuses

	nowT := metav1.NewTime(now).Rfc3339Copy()
	set := func(typ corev1.PodConditionType, ok bool, reason, msg string) {
		status := corev1.ConditionFalse
		if ok {
			status = corev1.ConditionTrue
			reason, msg = "", ""
		}
		c := corev1.PodCondition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: nowT}
		for i := range st.Conditions {
			if st.Conditions[i].Type != typ {
				continue
			}
			if st.Conditions[i].Status == status {
				c.LastTransitionTime = st.Conditions[i].LastTransitionTime
				c.LastProbeTime = st.Conditions[i].LastProbeTime
				c.ObservedGeneration = st.Conditions[i].ObservedGeneration
			}
			st.Conditions[i] = c
			return
		}
		st.Conditions = append(st.Conditions, c)
	}
	finished := w.terminal != ""
	reason := func(r string) string {
		if finished {
			return "PodCompleted"
		}
		return r
	}
	set(corev1.PodReadyToStartContainers, w.sandboxReady, "", "")
	set(corev1.PodInitialized, w.initDone, reason("ContainersNotInitialized"),
		fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(notInit, " ")))
	containersReady := len(notReady) == 0 && !finished
	set(corev1.ContainersReady, containersReady, reason("ContainersNotReady"),
		fmt.Sprintf("containers with unready status: [%s]", strings.Join(notReady, " ")))
	ready, readyReason, readyMsg := containersReady, reason("ContainersNotReady"), fmt.Sprintf("containers with unready status: [%s]", strings.Join(notReady, " "))
	if ready {
		var gates []string
		for _, g := range w.spec.ReadinessGates {
			if !conditionTrue(st.Conditions, g.ConditionType) {
				gates = append(gates, string(g.ConditionType))
			}
		}
		if len(gates) > 0 {
			ready, readyReason, readyMsg = false, "ReadinessGatesNotReady", fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist or is not True", strings.Join(gates, ", "))
		}
	}
	set(corev1.PodReady, ready, readyReason, readyMsg)
	set(corev1.PodScheduled, true, "", "")
}

func conditionTrue(conds []corev1.PodCondition, typ corev1.PodConditionType) bool {
	for _, c := range conds {
		if c.Type == typ {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// phase is the pod's phase: Pending until the init containers are done
// and every container has run, Running after, until the pod is finished.
func (w *worker) phase() corev1.PodPhase {
	if w.terminal != "" {
		return w.terminal
	}
	if !w.initDone {
		return corev1.PodPending
	}
	for _, c := range w.cs {
		if !c.everRan {
			return corev1.PodPending
		}
	}
	return corev1.PodRunning
}

// containerStatus is c's status; prev is what the API server has, whose
// fields the agent does not own are kept.
func (w *worker) containerStatus(c *containerRun, prev corev1.ContainerStatus) corev1.ContainerStatus {
	running := c.proc != nil
	started := running && c.started
	cs := corev1.ContainerStatus{
		Name:         c.spec.Name,
		Image:        c.spec.Image,
		ImageID:      prev.ImageID,
		RestartCount: c.restarts,
		Started:      &started,
		// Kept as the API server has them.
		AllocatedResources: prev.AllocatedResources,
		Resources:          prev.Resources,
		VolumeMounts:       prev.VolumeMounts,
		User:               prev.User,
	}
	if c.binary != "" {
		cs.ImageID = "file://" + c.binary
	}
	switch {
	case running:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: c.startedAt}
		cs.ContainerID = containerID(c.proc.pid)
		cs.Ready = c.ready && !c.init
		if c.lastTerm != nil {
			cs.LastTerminationState.Terminated = c.lastTerm
		}
	case c.lastTerm != nil && !w.willRestart(c):
		cs.State.Terminated = c.lastTerm
		cs.ContainerID = c.lastTerm.ContainerID
		cs.Ready = c.init && c.lastTerm.ExitCode == 0
		if c.prevTerm != nil {
			cs.LastTerminationState.Terminated = c.prevTerm
		}
	case c.lastTerm != nil:
		reason, msg := c.waitReason, c.waitMessage
		if reason == "" {
			reason = "CrashLoopBackOff"
			msg = fmt.Sprintf("back-off %v restarting failed container=%s pod=%s_%s(%s)", c.backoff, c.spec.Name, w.name, w.ns, w.uid)
		}
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
		cs.ContainerID = c.lastTerm.ContainerID
		cs.LastTerminationState.Terminated = c.lastTerm
	default:
		reason := c.waitReason
		if reason == "" {
			reason = "ContainerCreating"
			if c.init {
				reason = "PodInitializing"
			}
		}
		if !c.init && !w.initDone {
			reason = "PodInitializing"
		}
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: c.waitMessage}
	}
	return cs
}
