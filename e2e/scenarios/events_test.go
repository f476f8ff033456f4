//go:build e2e

package scenarios

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// scaledObjectEvents returns the scaler's Events on the ScaledObject
// sample of namespace, oldest first, as the API serves them to `kubectl
// describe scaledobject` (by name here; the UID is checked by
// checkScaleOutEvents).
//
//lint:ignore U1000 used by checkScaleOutEvents
func scaledObjectEvents(t *testing.T, namespace string) []corev1.Event {
	t.Helper()
	l, err := env.c.Client.CoreV1().Events(namespace).List(env.ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=ScaledObject,involvedObject.name=sample",
	})
	if err != nil {
		t.Fatalf("listing the Events of ScaledObject %s/sample: %v", namespace, err)
	}
	evs := slices.DeleteFunc(l.Items, func(e corev1.Event) bool { return !strings.HasPrefix(e.Reason, "Nemesis") })
	slices.SortStableFunc(evs, func(a, b corev1.Event) int { return a.EventTime.Compare(b.EventTime.Time) })
	return evs
}

// checkScaleOutEvents checks, after a scale-out through want replicas (in
// order), that the ScaledObject's Events list the decisions in order: the
// NemesisScaledUp Events, oldest first, name (action ScaleUpTo<n>) each
// replica count of want, in want's order (others may come between); each
// regards the ScaledObject's UID, so that kubectl describe shows it, and
// its note explains the decision ("replicas a → n: …"). It returns a
// summary for the report.
func checkScaleOutEvents(t *testing.T, namespace string, want []int32) string {
	t.Helper()
	raw, err := env.c.Client.Discovery().RESTClient().Get().AbsPath("/apis/keda.sh/v1alpha1/namespaces", namespace, "scaledobjects", "sample").DoRaw(env.ctx)
	if err != nil {
		t.Fatalf("get ScaledObject %s/sample: %v", namespace, err)
	}
	var so metav1.PartialObjectMetadata
	if err := json.Unmarshal(raw, &so); err != nil {
		t.Fatalf("ScaledObject %s/sample: %v", namespace, err)
	}
	var ups []int32
	var seen []string
	for _, e := range scaledObjectEvents(t, namespace) {
		seen = append(seen, e.Reason+" "+e.Action)
		if e.InvolvedObject.UID != so.GetUID() {
			t.Errorf("Event %s %s regards UID %q, not the ScaledObject's %q: kubectl describe does not show it", e.Reason, e.Action, e.InvolvedObject.UID, so.GetUID())
		}
		if e.Reason != "NemesisScaledUp" {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimPrefix(e.Action, "ScaleUpTo"), 10, 32)
		if err != nil {
			t.Errorf("NemesisScaledUp with action %q", e.Action)
			continue
		}
		if !strings.HasPrefix(e.Message, "replicas ") || !strings.Contains(e.Message, fmt.Sprintf(" → %d: ", n)) {
			t.Errorf("NemesisScaledUp to %d: note %q does not explain it", n, e.Message)
		}
		ups = append(ups, int32(n))
	}
	// want, in order, within ups.
	i := 0
	for _, n := range ups {
		if i < len(want) && n == want[i] {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("the ScaledObject's Events do not list the scale-out %v in order: %s", want, strings.Join(seen, ", "))
	}
	return fmt.Sprintf("%d Events (%d NemesisScaledUp)", len(seen), len(ups))
}
