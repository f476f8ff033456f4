package nodeagent

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// wantsBinding reports whether the agent, standing in for the default
// scheduler, should bind pod.
func wantsBinding(pod *corev1.Pod) bool {
	if pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil {
		return false
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	return pod.Spec.SchedulerName == "" || pod.Spec.SchedulerName == corev1.DefaultSchedulerName
}

// runBinder binds the pods queued by the pod informer until the queue shuts
// down.
func (a *Agent) runBinder(ctx context.Context) {
	for {
		key, quit := a.queue.Get()
		if quit {
			return
		}
		if err := a.bind(ctx, key); err != nil {
			if ctx.Err() == nil {
				a.log.Warn("binding a pod failed; retrying", "pod", key, "err", err)
				a.queue.AddRateLimited(key)
			}
		} else {
			a.queue.Forget(key)
		}
		a.queue.Done(key)
	}
}

// bind binds one pending pod to the node with the Binding subresource, as
// the scheduler does. A pod whose nodeSelector the node does not match is
// left pending with a FailedScheduling event.
func (a *Agent) bind(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := a.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("getting pod %s: %w", key, err)
	}
	if !wantsBinding(pod) {
		return nil
	}
	if missing := a.unmatchedSelector(pod); missing != "" {
		a.events.podEvent(pod, componentScheduler, "", corev1.EventTypeWarning, "FailedScheduling",
			fmt.Sprintf("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector (%s).", missing))
		return nil
	}
	binding := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: a.cfg.NodeName},
	}
	err = a.cfg.Client.CoreV1().Pods(ns).Bind(ctx, binding, metav1.CreateOptions{})
	switch {
	case err == nil:
	case apierrors.IsNotFound(err), apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		// Gone, or bound meanwhile.
		return nil
	default:
		return fmt.Errorf("binding pod %s to node %s: %w", key, a.cfg.NodeName, err)
	}
	a.log.Debug("pod bound", "pod", key)
	a.events.podEvent(pod, componentScheduler, "", corev1.EventTypeNormal, "Scheduled",
		fmt.Sprintf("Successfully assigned %s/%s to %s", ns, name, a.cfg.NodeName))
	return nil
}

// unmatchedSelector returns the nodeSelector terms the node does not
// match, "" if it matches them all.
func (a *Agent) unmatchedSelector(pod *corev1.Pod) string {
	labels := a.nodeLabels()
	var missing []string
	for k, v := range pod.Spec.NodeSelector {
		if labels[k] != v {
			missing = append(missing, k+"="+v)
		}
	}
	sort.Strings(missing)
	return strings.Join(missing, ", ")
}
