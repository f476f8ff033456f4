package main

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/k8s-nemesis/nemesis/demand"
)

// TestScalerShutdownEndsPushStreams: on shutdown the scaler ends KEDA's
// push streams at once, so that KEDA reconnects to a replica that serves,
// instead of holding them open, blind to demand, for --shutdown-timeout;
// and then it exits.
func TestScalerShutdownEndsPushStreams(t *testing.T) {
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte("ruleSets:\n  - name: demand\n    replicas: queued\n    active: queued > 0\n    max: 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	tracker := demand.NewTracker("activator-0", demand.TrackerOptions{})
	activator := httptest.NewServer(tracker.Handler())
	defer func() { tracker.Close(); activator.Close() }()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"scaler", "--rules", rulesPath, "--prometheus-url", "http://127.0.0.1:9",
			"--grpc-address", grpcAddr, "--http-address", httpAddr, "--activator", activator.URL,
			"--shutdown-timeout", "1m"}, io.Discard, io.Discard)
	}()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The scaler listens at once, but the first evaluations fail until the
	// aggregator has the activator's first snapshot (inflight and queued
	// unknown): no state is pushed until then.
	var stream pb.ExternalScaler_StreamIsActiveClient
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		stream, err = pb.NewExternalScalerClient(conn).StreamIsActive(t.Context(), &pb.ScaledObjectRef{Namespace: "ml", Name: "chat", ScalerMetadata: map[string]string{"ruleSet": "demand"}})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("StreamIsActive: %v", err)
		}
	}
	first := make(chan error, 1)
	go func() {
		resp, err := stream.Recv()
		if err == nil && resp.Result {
			t.Error("first push true with nothing queued")
		}
		first <- err
	}()
	select {
	case err := <-first:
		if err != nil {
			t.Fatalf("first push: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing pushed within 10s")
	}

	start := time.Now()
	cancel() // SIGTERM
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				ended <- err
				return
			}
		}
	}()
	select {
	case err := <-ended:
		t.Logf("the push stream ended %v after shutdown began: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(3 * time.Second):
		t.Fatal("the push stream was still open 3s after shutdown began (--shutdown-timeout 1m): KEDA would wait for it, blind")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("scaler exited with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the scaler did not exit within 5s of shutdown")
	}
}

// TestScalerMaxScaledObjects: the scaler keeps state for at most
// --max-scaled-objects triggers (default 10,000), whatever metadata callers
// of its gRPC port make up, and says so in a ResourceExhausted error.
func TestScalerMaxScaledObjects(t *testing.T) {
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte("ruleSets:\n  - name: demand\n    replicas: queued\n    active: queued > 0\n    max: 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"scaler", "--rules", rulesPath, "--prometheus-url", "http://127.0.0.1:9",
			"--grpc-address", grpcAddr, "--http-address", httpAddr}, io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("scaler exited with %v", err)
		}
	}()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewExternalScalerClient(conn)
	spec := func(i int) error {
		_, err := client.GetMetricSpec(t.Context(), &pb.ScaledObjectRef{Namespace: "ml", Name: "chat", ScalerMetadata: map[string]string{"ruleSet": "demand", "x": strconv.Itoa(i)}})
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); spec(0) != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("GetMetricSpec: %v", spec(0))
		}
	}
	for i := 1; i < 10000; i++ {
		if err := spec(i); err != nil {
			t.Fatalf("trigger %d: %v", i, err)
		}
	}
	err = spec(10000)
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "--max-scaled-objects") {
		t.Fatalf("trigger 10,001: %v, want ResourceExhausted naming --max-scaled-objects", err)
	}
}
