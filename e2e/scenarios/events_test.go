//go:build e2e

package scenarios

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

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

// describeScaledObject runs the real `kubectl describe scaledobject sample
// -n namespace` against the cluster (the cluster's kubectl and admin
// kubeconfig), saves its whole output as describe-scaledobject.txt in the
// cluster's directory (the path is logged), and checks that its Events
// section shows every Event of the scaler that the API serves on the
// ScaledObject, each as a row of its type, reason and note as the API
// has them, with NemesisScaledUp rows for the replica counts of want. The
// order of the rows is not checked: kubectl sorts them by lastTimestamp,
// which Events of the events.k8s.io API leave empty. It returns a summary
// for the report.
func describeScaledObject(t *testing.T, namespace string, want []int32) string {
	t.Helper()
	evs := scaledObjectEvents(t, namespace) // listed first: describe shows these and maybe newer ones
	ctx, cancel := context.WithTimeout(env.ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.c.Kubectl, "--kubeconfig", env.c.Kubeconfig,
		"--cache-dir", filepath.Join(env.c.Dir, "kubectl-cache"),
		"describe", "scaledobject", "sample", "-n", namespace)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	file := filepath.Join(env.c.Dir, "describe-scaledobject.txt")
	if werr := os.WriteFile(file, out, 0o644); werr != nil {
		t.Errorf("saving kubectl describe's output: %v", werr)
	}
	t.Logf("kubectl describe scaledobject sample -n %s: output in %s", namespace, file)
	if err != nil {
		t.Fatalf("kubectl describe scaledobject sample -n %s: %v\n%s", namespace, err, stderr.Bytes())
	}
	rows, ok := describedEvents(string(out))
	if !ok {
		t.Fatalf("kubectl describe printed no Events section:\n%s", out)
	}
	for _, e := range evs {
		if !slices.ContainsFunc(rows, func(r string) bool { return describesEvent(r, e) }) {
			t.Errorf("kubectl describe's Events do not show %s %s %q; see %s", e.Type, e.Reason, e.Message, file)
		}
	}
	var ups []string
	for _, r := range rows {
		if strings.Fields(r)[1] == "NemesisScaledUp" {
			ups = append(ups, r)
		}
	}
	for _, n := range want {
		if !slices.ContainsFunc(ups, func(r string) bool {
			return strings.Contains(r, " replicas ") && strings.Contains(r, fmt.Sprintf(" → %d: ", n))
		}) {
			t.Errorf("kubectl describe's Events show no NemesisScaledUp \"replicas … → %d: …\"; see %s", n, file)
		}
	}
	return fmt.Sprintf("kubectl describe shows %d Events, %d NemesisScaledUp (%s)", len(rows), len(ups), file)
}

// describedEvents returns the rows of the Events section of a `kubectl
// describe` output: "  <type>  <reason>  <age>  <from>  <message>", the
// age possibly "35s (x2 over 50s)". It returns false if there is no
// Events section.
func describedEvents(out string) ([]string, bool) {
	i := strings.LastIndex(out, "\nEvents:")
	if i < 0 {
		return nil, false
	}
	var rows []string
	for _, line := range strings.Split(out[i+1:], "\n") {
		if f := strings.Fields(line); len(f) >= 5 && (f[0] == "Normal" || f[0] == "Warning") {
			rows = append(rows, line)
		}
	}
	return rows, true
}

// describesEvent reports whether row of describedEvents is e as kubectl
// prints it: its type, reason, source (the reporting controller for the
// events.k8s.io API's Events) and note.
func describesEvent(row string, e corev1.Event) bool {
	from := e.Source.Component
	if from == "" {
		from = e.ReportingController
	}
	f := strings.Fields(row)
	return len(f) >= 5 && f[0] == e.Type && f[1] == e.Reason && strings.Contains(row, " "+from+" ") &&
		strings.HasSuffix(row, " "+strings.TrimSpace(e.Message))
}
