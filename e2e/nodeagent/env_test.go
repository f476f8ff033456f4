package nodeagent

import (
	"os/exec"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestExpandVars(t *testing.T) {
	vars := map[string]string{"A": "x", "B": "$(A)"}
	lookup := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	tests := map[string]struct{ in, want string }{
		"plain":          {"abc", "abc"},
		"defined":        {"--a=$(A)", "--a=x"},
		"two":            {"$(A)$(A)", "xx"},
		"undefined kept": {"$(C)-$(A)", "$(C)-x"},
		"escaped":        {"$$(A)", "$(A)"},
		"not recursive":  {"$(B)", "$(A)"},
		"lone dollar":    {"a$b$", "a$b$"},
		"unterminated":   {"$(A", "$(A"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := expandVars(tc.in, lookup); got != tc.want {
				t.Fatalf("expandVars(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestFieldValue(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-1", Namespace: "shop", UID: "u-1",
			Labels:      map[string]string{"app": "web", "tier": "front"},
			Annotations: map[string]string{"note": `say "hi"`},
		},
		Spec: corev1.PodSpec{NodeName: "n1", ServiceAccountName: "sa"},
	}
	tests := map[string]string{
		"metadata.name":                "web-1",
		"metadata.namespace":           "shop",
		"metadata.uid":                 "u-1",
		"spec.nodeName":                "n1",
		"spec.serviceAccountName":      "sa",
		"status.podIP":                 "10.244.1.1",
		"status.hostIP":                "10.244.0.1",
		"metadata.labels['app']":       "web",
		"metadata.labels":              "app=\"web\"\ntier=\"front\"",
		"metadata.annotations['note']": `say "hi"`,
	}
	for path, want := range tests {
		t.Run(path, func(t *testing.T) {
			got, err := fieldValue(pod, "10.244.1.1", "10.244.0.1", path)
			if err != nil || got != want {
				t.Fatalf("fieldValue(%q) = %q, %v; want %q", path, got, err, want)
			}
		})
	}
	if _, err := fieldValue(pod, "", "", "spec.containers"); err == nil {
		t.Fatal("an unsupported field path was accepted")
	}
}

func TestShellQuote(t *testing.T) {
	for _, s := range []string{"plain", "with space", `it's`, `"$(rm -rf /)"`, "a\nb", ""} {
		out, err := exec.Command("sh", "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("shellQuote(%q) through sh gives %q, %v", s, out, err)
		}
	}
}
