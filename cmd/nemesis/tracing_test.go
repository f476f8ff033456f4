package main

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// TestTracingOverOTLP runs the scaler with the standard OTEL_* variables
// pointing at an OTLP/HTTP receiver and checks that the gRPC call and the
// evaluation arrive as spans of one trace.
func TestTracingOverOTLP(t *testing.T) {
	var (
		mu    sync.Mutex
		spans = map[string][]byte{} // name → trace id
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					spans[s.Name] = s.TraceId
				}
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		_, _ = w.Write(b)
	}))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")

	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		// Prometheus is not there: the evaluation fails, and is traced all the same.
		done <- run(ctx, []string{"scaler", "--rules", "../../examples/rules", "--prometheus-url", "http://" + freeAddr(t),
			"--grpc-address", grpcAddr, "--http-address", httpAddr}, io.Discard, io.Discard)
	}()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewExternalScalerClient(conn)
	ref := &pb.ScaledObjectRef{Name: "chat", Namespace: "ml", ScalerMetadata: map[string]string{"ruleSet": "vllm-queue", "model": "llama"}}
	// WaitForReady: the call waits for the server to come up.
	// The caller's trace context (as a W3C traceparent) must be continued.
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	cctx, ccancel := context.WithTimeout(t.Context(), 10*time.Second)
	cctx = metadata.AppendToOutgoingContext(cctx, "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	_, err = client.GetMetrics(cctx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: "nemesis-vllm-queue"}, grpc.WaitForReady(true))
	ccancel()
	if err == nil {
		t.Fatal("GetMetrics succeeded without Prometheus")
	}
	cancel() // shutdown flushes the exporter
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("scaler exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("scaler did not stop")
	}
	mu.Lock()
	defer mu.Unlock()
	names := make([]string, 0, len(spans))
	for n := range spans {
		names = append(names, n)
	}
	for _, want := range []string{"externalscaler.ExternalScaler/GetMetrics", "nemesis.evaluate", "prometheus.query"} {
		if !slices.Contains(names, want) {
			t.Errorf("no span %q among %v", want, names)
		}
	}
	for _, name := range []string{"externalscaler.ExternalScaler/GetMetrics", "nemesis.evaluate", "prometheus.query"} {
		if got := hex.EncodeToString(spans[name]); got != traceID {
			t.Errorf("span %q is in trace %s, want the caller's trace %s", name, got, traceID)
		}
	}
}
