//go:build e2e

package scenarios

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-nemesis/nemesis/e2e/cluster"
	"github.com/k8s-nemesis/nemesis/e2e/stack"
)

// backtestStep is the part of one line of `rules backtest --output json`
// that the comparison reads.
type backtestStep struct {
	Time     time.Time `json:"time"`
	RuleSets map[string]struct {
		Replicas int32 `json:"replicas"`
	} `json:"ruleSets"`
}

// checkBacktest replays what the scenario in namespace did: `nemesis rules
// backtest` reads the cluster's Prometheus from the creation of the app's
// HPA (when KEDA's and the HPA's loops start, which fixes their phase) to
// end, and its simulated replica count must equal the Deployment's real
// spec.replicas, as set by the real KEDA and HPA, at 90 % or more of the
// steps, and never differ by more than one. It returns the report line.
func checkBacktest(t *testing.T, namespace, ruleSet string, cooldown int, tl *timeline, end time.Time) string {
	t.Helper()
	hpa, err := env.c.Client.AutoscalingV2().HorizontalPodAutoscalers(namespace).Get(env.ctx, "keda-hpa-sample", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the HPA KEDA made: %v", err)
	}
	// The creation time has whole seconds; the HPA was created within the
	// second after it, and its controller syncs it from then on. The next
	// whole second puts each simulated sync at most a second after the
	// real one, so that a step sees the change in both.
	start := hpa.CreationTimestamp.Time.Add(time.Second)
	dir := t.TempDir()
	bin := filepath.Join(dir, "nemesis")
	repo, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	build := exec.CommandContext(env.ctx, "go", "build", "-o", bin, "./cmd/nemesis")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	manifests, err := stack.RenderApp(appSettings(namespace, ruleSet, cooldown))
	if err != nil {
		t.Fatal(err)
	}
	rulesFile, soFile := filepath.Join(dir, "rules.yaml"), filepath.Join(dir, "app.yaml")
	if err := os.WriteFile(rulesFile, []byte(stack.RuleSet+extraRuleSets), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(soFile, manifests, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"rules", "backtest", "--rules", rulesFile, "--rule-set", ruleSet,
		"--prometheus-url", env.c.PrometheusURL,
		"--namespace", namespace, "--name", "sample", "--metadata", "service: sample",
		"--scaled-object", soFile,
		"--start", start.UTC().Format(time.RFC3339), "--end", end.UTC().Format(time.RFC3339), "--step", "1s",
		// The sample app is ready 1 s after it starts, seen by a probe
		// every second.
		"--pod-startup", "2s",
		// The local cluster's kube-controller-manager syncs HPAs every 5 s.
		"--hpa-sync-period", "5s",
		"--output", "json", "--plot", filepath.Join(dir, "backtest.svg")}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(env.ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("nemesis %v: %v\n%s", args, err, stderr.Bytes())
	}
	t.Logf("backtest summary:\n%s", stderr.Bytes())
	var steps, equal, worst int
	var diffs []string
	out := bytes.Clone(stdout.Bytes())
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var s backtestStep
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("backtest output line %q: %v", sc.Bytes(), err)
		}
		real, ok := tl.specAt(s.Time)
		if !ok {
			continue // before the watch's first look
		}
		sim, ok := s.RuleSets[ruleSet]
		if !ok {
			t.Fatalf("backtest output line %q has no rule set %s", sc.Bytes(), ruleSet)
		}
		steps++
		d := int(sim.Replicas - real)
		if d == 0 {
			equal++
			continue
		}
		worst = max(worst, d, -d)
		diffs = append(diffs, fmt.Sprintf("%s sim %d real %d", s.Time.Sub(start).Round(time.Second), sim.Replicas, real))
	}
	if steps < 10 {
		t.Fatalf("only %d backtest steps to compare:\n%s", steps, stdout.Bytes())
	}
	if len(diffs) > 0 {
		t.Logf("steps where the simulation differs: %v", diffs)
	}
	share := float64(equal) / float64(steps)
	if share < 0.9 || worst > 1 {
		t.Logf("the backtest's steps from %s:\n%s", start.Format(time.RFC3339), out)
		tl.mu.Lock()
		for _, c := range tl.specs {
			t.Logf("real spec.replicas %d from %v after the start", c.spec, c.at.Sub(start).Round(100*time.Millisecond))
		}
		tl.mu.Unlock()
		t.Errorf("the backtest's simulated replicas equal the real ones at %d of %d steps (%.0f %%, want ≥ 90 %%) and differ by up to %d (want ≤ 1); real: %s",
			equal, steps, 100*share, worst, tl)
	}
	return fmt.Sprintf("backtest from Prometheus: simulated replicas = real at %d/%d steps of 1 s (%.0f %%), never more than %d apart", equal, steps, 100*share, worst)
}
