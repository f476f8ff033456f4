package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/k8s-nemesis/nemesis/demand"
)

// TestScalerDecisionsAPI: the scaler serves the records of its
// evaluations on --http-address, beside /metrics, through the real binary.
func TestScalerDecisionsAPI(t *testing.T) {
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte("ruleSets:\n  - name: demand\n    replicas: queued + inflight / 2\n    active: queued > 0\n    max: 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	tracker := demand.NewTracker("activator-0", demand.TrackerOptions{})
	activator := httptest.NewServer(tracker.Handler())
	t.Cleanup(func() { tracker.Close(); activator.Close() })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"scaler", "--rules", rulesPath, "--prometheus-url", "http://127.0.0.1:9",
			"--grpc-address", grpcAddr, "--http-address", httpAddr, "--activator", activator.URL}, io.Discard, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the scaler did not exit within 10s")
		}
	})
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := pb.NewExternalScalerClient(conn)
	ref := &pb.ScaledObjectRef{Namespace: "ml", Name: "chat", ScalerMetadata: map[string]string{"ruleSet": "demand"}}
	// Until the aggregator has the activator's first snapshot the
	// evaluation fails (no demand data); that is a record too.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err = client.GetMetrics(t.Context(), &pb.GetMetricsRequest{ScaledObjectRef: ref}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GetMetrics: %v", err)
		}
	}

	getJSON := func(path string, want int, v any) {
		t.Helper()
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("GET %s: %d %s, want %d", path, resp.StatusCode, body, want)
		}
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	}
	type rec struct {
		Namespace, Name, RuleSet, Explanation string
		Replicas                              int64
		Builtins                              map[string]float64
		BuiltinSources                        map[string]string
	}
	var all struct{ Decisions []rec }
	getJSON("/api/v1/decisions", http.StatusOK, &all)
	if len(all.Decisions) != 1 {
		t.Fatalf("decisions: %+v, want one", all.Decisions)
	}
	d := all.Decisions[0]
	if d.Namespace != "ml" || d.Name != "chat" || d.RuleSet != "demand" || d.Replicas != 0 ||
		d.Explanation != "replicas 0: (queued = 0) + (inflight / 2 = 0) = 0 → 0 (0..4)" {
		t.Errorf("decision %+v", d)
	}
	if v, ok := d.Builtins["queued"]; !ok || v != 0 || !strings.HasPrefix(d.BuiltinSources["queued"], "activators") {
		t.Errorf("builtins %v, sources %v", d.Builtins, d.BuiltinSources)
	}
	var hist struct{ Decisions []rec }
	getJSON("/api/v1/decisions/ml/chat", http.StatusOK, &hist)
	if len(hist.Decisions) == 0 || hist.Decisions[0].Explanation != d.Explanation {
		t.Errorf("history %+v", hist.Decisions)
	}
	var nf struct{ Error string }
	getJSON("/api/v1/decisions/ml/other", http.StatusNotFound, &nf)
	if !strings.Contains(nf.Error, "ml/other") {
		t.Errorf("404 error %q", nf.Error)
	}
	var sets struct {
		Version  uint64
		RuleSets []struct{ Name string }
	}
	getJSON("/api/v1/rulesets", http.StatusOK, &sets)
	if sets.Version != 1 || len(sets.RuleSets) != 1 || sets.RuleSets[0].Name != "demand" {
		t.Errorf("rulesets %+v", sets)
	}
}
