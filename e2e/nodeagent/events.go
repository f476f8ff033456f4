package nodeagent

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const (
	componentKubelet   = "kubelet"
	componentScheduler = "default-scheduler"
)

// recorder writes core/v1 Events in the background, so that a slow API
// server never holds up a pod worker. Events that do not fit its buffer
// are dropped (and logged).
type recorder struct {
	client kubernetes.Interface
	node   string
	log    *slog.Logger
	ch     chan *corev1.Event
}

func newRecorder(client kubernetes.Interface, node string, log *slog.Logger) *recorder {
	return &recorder{client: client, node: node, log: log, ch: make(chan *corev1.Event, 256)}
}

// podEvent records an event about pod (and one of its containers when
// fieldPath is set, e.g. "spec.containers{app}").
func (r *recorder) podEvent(pod *corev1.Pod, component, fieldPath, typ, reason, msg string) {
	r.log.Debug("event", "pod", pod.Namespace+"/"+pod.Name, "type", typ, "reason", reason, "message", msg)
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s.%x", pod.Name, time.Now().UnixNano()),
			Namespace: pod.Namespace,
		},
		InvolvedObject: corev1.ObjectReference{
			Kind: "Pod", APIVersion: "v1",
			Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
			ResourceVersion: pod.ResourceVersion, FieldPath: fieldPath,
		},
		Reason:              reason,
		Message:             msg,
		Type:                typ,
		Source:              corev1.EventSource{Component: component, Host: r.node},
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Count:               1,
		ReportingController: component,
		ReportingInstance:   r.node,
	}
	if component == componentScheduler {
		ev.Source.Host = ""
	}
	select {
	case r.ch <- ev:
	default:
		r.log.Warn("event dropped: too many pending", "pod", pod.Namespace+"/"+pod.Name, "reason", reason)
	}
}

// run writes events until ctx ends; what is still queued then is dropped.
func (r *recorder) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-r.ch:
			_, err := r.client.CoreV1().Events(ev.Namespace).Create(ctx, ev, metav1.CreateOptions{})
			switch {
			case err == nil, ctx.Err() != nil:
			case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
				// The namespace goes, and its pods with it: expected.
				r.log.Debug("event not written: namespace terminating", "pod", ev.Namespace+"/"+ev.InvolvedObject.Name, "reason", ev.Reason)
			default:
				r.log.Warn("writing an event failed", "pod", ev.Namespace+"/"+ev.InvolvedObject.Name, "reason", ev.Reason, "err", err)
			}
		}
	}
}
