package externalscaler

// Integration tests: the scaler runs in-process behind a real gRPC server,
// queries the shared real Prometheus (see testmain_test.go), and is driven
// through KEDA's own external scaler client, pkg/scalers, so that the values
// asserted are those KEDA would hand the HPA.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kedacore/keda/v2/pkg/scalers"
	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/kedacore/keda/v2/pkg/scalers/scalersconfig"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	v2 "k8s.io/api/autoscaling/v2"

	"github.com/k8s-nemesis/nemesis/metrics"
)

// Windows of the scaler under test: short, so that a test sees a change
// soon after Prometheus does; settle waits them out.
const (
	testReuseFor = 20 * time.Millisecond
	testCacheTTL = 20 * time.Millisecond
	settleDelay  = 3 * max(testReuseFor, testCacheTTL)
)

// settle waits until no answer cached before the call can be reused.
func settle() { time.Sleep(settleDelay) }

// integrationRules is the rule file most integration tests serve.
const integrationRules = `
ruleSets:
  - name: chat
    description: vLLM-like, as in examples/rules/vllm.yaml.
    queries:
      waiting: sum(vllm:num_requests_waiting{namespace="$namespace", model_name="$model"}) or vector(0)
      running: sum(vllm:num_requests_running{namespace="$namespace", model_name="$model"}) or vector(0)
    replicas: max(waiting / 4, running / 8)
    active: waiting > 0 || running > 0
    min: 0
    max: 16
    onError: fail

  - name: raw
    description: A bare query without "or vector(0)"; max far above the injected 1000.
    queries:
      waiting: sum(vllm:num_requests_waiting{namespace="$namespace", model_name="$model"})
    replicas: waiting
    min: 0
    max: 5000
    onError: fail

  - name: raw-or-zero
    queries:
      waiting: sum(vllm:num_requests_waiting{namespace="$namespace", model_name="$model"}) or vector(0)
    replicas: waiting
    min: 0
    max: 5000
    onError: fail

  - name: clamped
    queries:
      load: sum(nemesis_test_load{namespace="$namespace", service="$service"})
    replicas: load
    min: 2
    max: 5
    onError: fail

  - name: busiest
    queries:
      pods: max by (pod) (nemesis_test_inflight{namespace="$namespace", service="$service"})
    replicas: "len(series.pods) == 0 ? 0 : max(series.pods) * len(series.pods) / 10"
    min: 0
    max: 20
    onError: fail

  - name: bare-multi
    queries:
      pods: max by (pod) (nemesis_test_inflight{namespace="$namespace", service="$service"})
    replicas: pods / 10
    max: 20
    onError: fail

  - name: bare-empty
    queries:
      total: sum(nemesis_test_inflight{namespace="$namespace", service="$service"})
    replicas: total / 10
    max: 20
    onError: fail

  - name: bare-empty-fixed
    queries:
      total: sum(nemesis_test_inflight{namespace="$namespace", service="$service"})
    replicas: total / 10
    max: 20
    onError: 2

  - name: bare-or-zero
    queries:
      total: sum(nemesis_test_inflight{namespace="$namespace", service="$service"}) or vector(0)
    replicas: total / 10
    max: 20
    onError: fail

  - name: down-hold
    queries:
      waiting: sum(vllm:num_requests_waiting{namespace="$namespace", model_name="$model"}) or vector(0)
    replicas: waiting / 4
    max: 16
    onError: hold
    staleAfter: 2s

  - name: down-fail
    queries:
      waiting: sum(vllm:num_requests_waiting{namespace="$namespace", model_name="$model"}) or vector(0)
    replicas: waiting / 4
    max: 16
    onError: fail

  - name: down-fixed
    queries:
      waiting: sum(vllm:num_requests_waiting{namespace="$namespace", model_name="$model"}) or vector(0)
    replicas: waiting / 2
    max: 16
    onError: 3
`

// ---- A running scaler ----

// envConfig says how to start a scaler.
type envConfig struct {
	rules    string        // content of the one rule file, written to a temp dir
	paths    []string      // rule paths to load instead of rules
	promURL  string        // Prometheus for the metrics.Client
	querier  Querier       // used instead of a metrics.Client, if set
	reuseFor time.Duration // default testReuseFor
	cacheTTL time.Duration // default testCacheTTL
	clock    *fakeClock    // clock of the scaler and the client; default real
	tls      *TLSFiles     // serve TLS
	watch    bool          // run store.Watch(ctx, time.Hour)
	demand   Demand        // Options.Demand
	push     time.Duration // Options.PushInterval; default 100ms
}

// scalerEnv is a scaler serving gRPC on 127.0.0.1.
type scalerEnv struct {
	addr      string
	rulesPath string // the rule file written from envConfig.rules
	reg       *prometheus.Registry
	store     *RuleStore
	server    *Server
	rec       *recordingQuerier
	logs      *syncBuffer
}

// startScaler starts a scaler and stops it when t ends.
func startScaler(t testing.TB, cfg envConfig) *scalerEnv {
	t.Helper()
	e := &scalerEnv{logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	logger := newTestLogger(e.logs)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("scaler logs:\n%s", e.logs.String())
		}
	})
	paths := cfg.paths
	if paths == nil {
		e.rulesPath = filepath.Join(t.TempDir(), "rules.yaml")
		if err := os.WriteFile(e.rulesPath, []byte(cfg.rules), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = []string{e.rulesPath}
	}
	var err error
	e.store, err = NewRuleStore(paths, logger, e.reg)
	if err != nil {
		t.Fatalf("NewRuleStore: %v", err)
	}
	reuseFor, cacheTTL := cmpOr(cfg.reuseFor, testReuseFor), cmpOr(cfg.cacheTTL, testCacheTTL)
	var now func() time.Time
	if cfg.clock != nil {
		now = cfg.clock.Now
	}
	q := cfg.querier
	if q == nil {
		if cfg.promURL == "" {
			t.Fatal("startScaler: no Prometheus URL and no querier")
		}
		q, err = metrics.NewClient(metrics.ClientConfig{URL: cfg.promURL, CacheTTL: cacheTTL, Timeout: 3 * time.Second, Now: now}, logger, e.reg, nil)
		if err != nil {
			t.Fatalf("metrics.NewClient: %v", err)
		}
	}
	e.rec = &recordingQuerier{next: q}
	e.server = New(e.store, e.rec, Options{
		Logger:       logger,
		Registerer:   e.reg,
		ReuseFor:     reuseFor,
		PushInterval: cmpOr(cfg.push, 100*time.Millisecond),
		Demand:       cfg.demand,
		Now:          now,
	})
	var opts []grpc.ServerOption
	if cfg.tls != nil {
		tlsCfg, err := ServerTLS(*cfg.tls)
		if err != nil {
			t.Fatalf("ServerTLS: %v", err)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = lis.Addr().String()
	gs := grpc.NewServer(opts...)
	pb.RegisterExternalScalerServer(gs, e.server)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	t.Cleanup(func() {
		gs.Stop()
		if err := <-served; err != nil {
			t.Errorf("gRPC Serve: %v", err)
		}
	})
	if cfg.watch {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.store.Watch(ctx, time.Hour) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Watch: %v", err)
			}
		})
	}
	return e
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// gauge reads one of the scaler's per-object gauges.
func (e *scalerEnv) gauge(g *prometheus.GaugeVec, namespace, name, ruleSet string) float64 {
	return testutil.ToFloat64(g.WithLabelValues(namespace, name, ruleSet))
}

func (e *scalerEnv) evaluations(ruleSet string) float64 {
	return testutil.ToFloat64(e.server.m.evaluations.WithLabelValues(ruleSet))
}

func (e *scalerEnv) evalErrors(ruleSet, reason string) float64 {
	return testutil.ToFloat64(e.server.m.errors.WithLabelValues(ruleSet, reason))
}

// gatherSum sums the samples of a counter or gauge family in g whose labels
// include match.
func gatherSum(tb testing.TB, g prometheus.Gatherer, name string, match map[string]string) float64 {
	tb.Helper()
	mfs, err := g.Gather()
	if err != nil {
		tb.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range match {
				if labels[k] != v {
					continue metric
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// recordingQuerier records the rendered queries the scaler sends.
type recordingQuerier struct {
	next Querier

	mu      sync.Mutex
	queries []string
}

func (r *recordingQuerier) Query(ctx context.Context, q string) (metrics.Result, error) {
	r.mu.Lock()
	r.queries = append(r.queries, q)
	r.mu.Unlock()
	return r.next.Query(ctx, q)
}

func (r *recordingQuerier) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.queries)
}

func (r *recordingQuerier) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queries)
}

// syncBuffer is a log sink safe for concurrent use, and after the test ends
// (unlike t.Log).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *syncBuffer) count(s string) int { return strings.Count(b.String(), s) }

// newTestLogger logs everything, debug included, to w.
func newTestLogger(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// eventually polls cond every 50ms until it holds or timeout passes, then
// fails t with cond's last message.
func eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- A KEDA trigger ----

// kedaTrigger is one external trigger of a ScaledObject, as KEDA's operator
// and metrics adapter see it.
type kedaTrigger struct {
	t      testing.TB
	scaler scalers.Scaler
	metric string // the metric name from the spec, with KEDA's "s0-" prefix
}

// scalerConfig builds the ScalerConfig KEDA builds for a trigger.
func scalerConfig(addr, triggerType, namespace, name string, meta, auth map[string]string) *scalersconfig.ScalerConfig {
	md := map[string]string{"scalerAddress": addr}
	for k, v := range meta {
		md[k] = v
	}
	return &scalersconfig.ScalerConfig{
		ScalableObjectName:      name,
		ScalableObjectNamespace: namespace,
		ScalableObjectType:      "ScaledObject",
		TriggerType:             triggerType,
		TriggerMetadata:         md,
		AuthParams:              auth,
		ResolvedEnv:             map[string]string{},
		MetricType:              v2.AverageValueMetricType,
		TriggerIndex:            0,
	}
}

// trigger makes a KEDA external trigger for the ScaledObject
// namespace/name with trigger metadata meta (scalerAddress is added).
func (e *scalerEnv) trigger(t testing.TB, namespace, name string, meta map[string]string) *kedaTrigger {
	t.Helper()
	return newTrigger(t, e.addr, namespace, name, meta, nil)
}

func newTrigger(t testing.TB, addr, namespace, name string, meta, auth map[string]string) *kedaTrigger {
	t.Helper()
	s, err := scalers.NewExternalScaler(scalerConfig(addr, "external", namespace, name, meta, auth))
	if err != nil {
		t.Fatalf("NewExternalScaler: %v", err)
	}
	// KEDA pools gRPC connections globally by metadata: give this one back.
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return &kedaTrigger{t: t, scaler: s}
}

func callCtx(t testing.TB) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), 10*time.Second)
}

// spec is KEDA's GetMetricSpecForScaling.
func (tr *kedaTrigger) spec() []v2.MetricSpec {
	ctx, cancel := callCtx(tr.t)
	defer cancel()
	return tr.scaler.GetMetricSpecForScaling(ctx)
}

// metricName returns the metric name of the trigger's spec, checking that
// the spec is the one metric with an AverageValue target of 1.
func (tr *kedaTrigger) metricName() string {
	tr.t.Helper()
	if tr.metric != "" {
		return tr.metric
	}
	specs := tr.spec()
	if len(specs) != 1 {
		tr.t.Fatalf("GetMetricSpecForScaling returned %d specs, want 1: %+v", len(specs), specs)
	}
	checkSpec(tr.t, specs[0], "")
	tr.metric = specs[0].External.Metric.Name
	return tr.metric
}

// checkSpec checks that s is an external metric (named want, unless empty)
// with an AverageValue target of exactly 1.
func checkSpec(t testing.TB, s v2.MetricSpec, want string) {
	t.Helper()
	if s.Type != v2.ExternalMetricSourceType || s.External == nil {
		t.Fatalf("spec %+v: want an External metric", s)
	}
	if want != "" && s.External.Metric.Name != want {
		t.Errorf("metric name %q, want %q", s.External.Metric.Name, want)
	}
	if !strings.HasPrefix(s.External.Metric.Name, "s0-nemesis-") {
		t.Errorf("metric name %q: want KEDA's s0- prefix and the scaler's nemesis- prefix", s.External.Metric.Name)
	}
	tgt := s.External.Target
	if tgt.Type != v2.AverageValueMetricType || tgt.AverageValue == nil || tgt.AverageValue.MilliValue() != 1000 || tgt.Value != nil {
		t.Errorf("target %+v: want AverageValue 1", tgt)
	}
}

// get is KEDA's GetMetricsAndActivity: the replicas (the metric value
// against a target of 1) and the activity.
func (tr *kedaTrigger) get() (float64, bool, error) {
	tr.t.Helper()
	name := tr.metricName()
	ctx, cancel := callCtx(tr.t)
	defer cancel()
	vals, active, err := tr.scaler.GetMetricsAndActivity(ctx, name)
	if err != nil {
		return 0, false, err
	}
	if len(vals) != 1 {
		tr.t.Fatalf("GetMetricsAndActivity returned %d values, want 1: %+v", len(vals), vals)
	}
	if vals[0].MetricName != name {
		tr.t.Errorf("metric value named %q, want %q", vals[0].MetricName, name)
	}
	return vals[0].Value.AsApproximateFloat64(), active, nil
}

// expect checks that KEDA gets want replicas and activity wantActive.
func (tr *kedaTrigger) expect(want float64, wantActive bool) {
	tr.t.Helper()
	got, active, err := tr.get()
	if err != nil {
		tr.t.Fatalf("GetMetricsAndActivity: %v (want %v replicas, active %v)", err, want, wantActive)
	}
	if got != want || active != wantActive {
		tr.t.Fatalf("KEDA got %v replicas, active %v; want %v, active %v", got, active, want, wantActive)
	}
}

// expectErr checks that KEDA gets an error, and returns it.
func (tr *kedaTrigger) expectErr() error {
	tr.t.Helper()
	got, active, err := tr.get()
	if err == nil {
		tr.t.Fatalf("GetMetricsAndActivity: got %v replicas, active %v; want an error", got, active)
	}
	return err
}

// ---- Tests ----

// vllm returns the label set of the vLLM-like series.
func vllm(namespace, model string) map[string]string {
	return map[string]string{"namespace": namespace, "model_name": model}
}

func waitingQuery(namespace, model string) string {
	return fmt.Sprintf(`vllm:num_requests_waiting{namespace=%q, model_name=%q}`, namespace, model)
}

func TestIntegrationHappyPath(t *testing.T) {
	prom, exp := needProm(t)
	env := startScaler(t, envConfig{rules: integrationRules, promURL: prom.URL()})
	tr := env.trigger(t, "happy", "chat-llm", map[string]string{"ruleSet": "chat", "model": "llama"})
	if got := tr.metricName(); got != "s0-nemesis-chat" {
		t.Errorf("metric name %q, want s0-nemesis-chat", got)
	}
	for _, c := range []struct {
		waiting, running float64
		want             float64
	}{
		{waiting: 9, running: 0, want: 3},  // ceil(9/4)
		{waiting: 1, running: 17, want: 3}, // ceil(17/8)
		{waiting: 16, running: 8, want: 4}, // exact: no rounding up
		{waiting: 0.5, running: 0, want: 1},
	} {
		exp.Set("vllm:num_requests_waiting", vllm("happy", "llama"), c.waiting)
		exp.Set("vllm:num_requests_running", vllm("happy", "llama"), c.running)
		// Another model in the namespace must not count.
		exp.Set("vllm:num_requests_waiting", vllm("happy", "other"), 1000)
		waitProm(t, prom, waitingQuery("happy", "llama"), c.waiting)
		waitProm(t, prom, `vllm:num_requests_running{namespace="happy", model_name="llama"}`, c.running)
		settle()
		tr.expect(c.want, true)
		if got := env.gauge(env.server.m.desired, "happy", "chat-llm", "chat"); got != c.want {
			t.Errorf("nemesis_scaler_desired_replicas = %v, want %v", got, c.want)
		}
		if got := env.gauge(env.server.m.active, "happy", "chat-llm", "chat"); got != 1 {
			t.Errorf("nemesis_scaler_active = %v, want 1", got)
		}
	}
	if got := env.evalErrors("chat", "prometheus"); got != 0 {
		t.Errorf("prometheus errors = %v, want 0", got)
	}
}

func TestIntegrationNamespaceIsolation(t *testing.T) {
	prom, exp := needProm(t)
	env := startScaler(t, envConfig{rules: integrationRules, promURL: prom.URL()})
	exp.Set("vllm:num_requests_waiting", vllm("a", "llama"), 4)
	exp.Set("vllm:num_requests_waiting", vllm("b", "llama"), 12)
	waitProm(t, prom, waitingQuery("a", "llama"), 4)
	waitProm(t, prom, waitingQuery("b", "llama"), 12)

	// Trigger metadata cannot move a ScaledObject to another namespace.
	// Asked first, so that every query sent so far is its.
	spoof := env.trigger(t, "a", "spoof", map[string]string{"ruleSet": "chat", "model": "llama", "namespace": "b"})
	spoof.expect(1, true)
	seen := env.rec.seen()
	if len(seen) == 0 {
		t.Fatal("no query was sent")
	}
	for _, q := range seen {
		if !strings.Contains(q, `namespace="a"`) || strings.Contains(q, `namespace="b"`) {
			t.Errorf("query of a/spoof reads another namespace than a: %s", q)
		}
	}

	meta := map[string]string{"ruleSet": "chat", "model": "llama"}
	inA := env.trigger(t, "a", "app", meta)
	inB := env.trigger(t, "b", "app", meta)
	inA.expect(1, true)
	inB.expect(3, true)
	inA.expect(1, true)
}

func TestIntegrationMetadataInjection(t *testing.T) {
	prom, exp := needProm(t)
	for _, c := range []struct{ name, inject string }{
		{"as usually written", `x"}) or vector(1000) or foo{a="`}, // invalid PromQL if spliced
		{"balanced", `x"}) or vector(1000) or sum(foo{a="`},       // valid PromQL if spliced
		{"single quotes", "x'}) or vector(1000) or sum(foo{a='"},
		{"escaped quotes", `x\"}) or vector(1000) or sum(foo{a=\"`},
	} {
		inject := c.inject
		t.Run(c.name, func(t *testing.T) {
			env := startScaler(t, envConfig{rules: integrationRules, promURL: prom.URL()})
			meta := func(rs string) map[string]string { return map[string]string{"ruleSet": rs, "model": inject} }
			orZero := env.trigger(t, "inject", "so", meta("raw-or-zero"))
			bare := env.trigger(t, "inject", "so", meta("raw"))

			// No series has that model: the honest answers are 0 and "no data".
			orZero.expect(0, false)
			err := bare.expectErr()
			if !strings.Contains(err.Error(), "no series") {
				t.Errorf("error %v: want the no-data error", err)
			}
			if got := env.evalErrors("raw", "no_data"); got != 1 {
				t.Errorf("no_data errors of raw = %v, want 1", got)
			}

			// The rendered query holds the value as escaped string content.
			escaped := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(inject)
			want := `model_name="` + escaped + `"}`
			seen := env.rec.seen()
			if len(seen) == 0 {
				t.Fatal("no query was sent")
			}
			for _, q := range seen {
				if !strings.Contains(q, want) {
					t.Errorf("rendered query %s\ndoes not hold %s", q, want)
				}
			}

			// The value is matched literally: a series whose label is the
			// whole string is found, and only it.
			exp.Set("vllm:num_requests_waiting", vllm("inject", inject), 7)
			waitProm(t, prom, seen[0], 7)
			settle()
			orZero.expect(7, true)
			bare.expect(7, true)
		})
	}
}

func TestIntegrationClamping(t *testing.T) {
	prom, exp := needProm(t)
	env := startScaler(t, envConfig{rules: integrationRules, promURL: prom.URL()})
	tr := env.trigger(t, "clamp", "api", map[string]string{"ruleSet": "clamped", "service": "api"})
	labels := map[string]string{"namespace": "clamp", "service": "api"}
	for _, c := range []struct {
		load, want float64
	}{
		{1e9, 5},  // max
		{3.2, 4},  // in range, rounded up
		{0, 2},    // min
		{-7, 2},   // min
		{1e15, 5}, // max, far beyond int32
	} {
		exp.Set("nemesis_test_load", labels, c.load)
		waitProm(t, prom, `nemesis_test_load{namespace="clamp", service="api"}`, c.load)
		settle()
		tr.expect(c.want, true) // min 2: always active
	}
}

func TestIntegrationIdleGoesInactive(t *testing.T) {
	prom, exp := needProm(t)
	env := startScaler(t, envConfig{rules: integrationRules, promURL: prom.URL()})
	tr := env.trigger(t, "idle", "chat-llm", map[string]string{"ruleSet": "chat", "model": "llama"})
	exp.Set("vllm:num_requests_waiting", vllm("idle", "llama"), 9)
	exp.Set("vllm:num_requests_running", vllm("idle", "llama"), 4)
	waitProm(t, prom, waitingQuery("idle", "llama"), 9)
	tr.expect(3, true)

	exp.Set("vllm:num_requests_waiting", vllm("idle", "llama"), 0)
	exp.Set("vllm:num_requests_running", vllm("idle", "llama"), 0)
	waitProm(t, prom, waitingQuery("idle", "llama"), 0)
	waitProm(t, prom, `vllm:num_requests_running{namespace="idle", model_name="llama"}`, 0)
	settle()
	tr.expect(0, false)
	if got := env.gauge(env.server.m.active, "idle", "chat-llm", "chat"); got != 0 {
		t.Errorf("nemesis_scaler_active = %v, want 0", got)
	}

	// The pods are gone: no series at all is idle too ("or vector(0)").
	exp.Reset()
	waitProm(t, prom, `count(vllm:num_requests_waiting{namespace="idle"}) or vector(0)`, 0)
	settle()
	tr.expect(0, false)
}

func TestIntegrationSeriesAndEmptyResults(t *testing.T) {
	prom, exp := needProm(t)
	// The data does not change: reuse answers for long, so that each
	// GetMetrics+IsActive pair is exactly one evaluation.
	env := startScaler(t, envConfig{rules: integrationRules, promURL: prom.URL(), reuseFor: time.Minute})
	for pod, v := range map[string]float64{"p1": 15, "p2": 5, "p3": 9} {
		exp.Set("nemesis_test_inflight", map[string]string{"namespace": "multi", "service": "busy", "pod": pod}, v)
	}
	waitProm(t, prom, `count(nemesis_test_inflight{namespace="multi", service="busy"})`, 3)
	waitProm(t, prom, `max(nemesis_test_inflight{namespace="multi", service="busy"})`, 15)

	busy := map[string]string{"service": "busy"}
	empty := map[string]string{"service": "none"}
	trig := func(rs string, meta map[string]string) *kedaTrigger {
		m := map[string]string{"ruleSet": rs}
		for k, v := range meta {
			m[k] = v
		}
		return env.trigger(t, "multi", rs+"-"+meta["service"], m)
	}

	t.Run("series", func(t *testing.T) {
		trig("busiest", busy).expect(5, true) // ceil(15 * 3 / 10)
		trig("busiest", empty).expect(0, false)
	})
	t.Run("several series used bare", func(t *testing.T) {
		err := trig("bare-multi", busy).expectErr()
		if !strings.Contains(err.Error(), "3 series") {
			t.Errorf("error %v: want the several-series error", err)
		}
		if got := env.evalErrors("bare-multi", "series"); got != 1 {
			t.Errorf("series errors = %v, want 1", got)
		}
	})
	t.Run("empty used bare, onError fail", func(t *testing.T) {
		trig("bare-empty", empty).expectErr()
		if got := env.evalErrors("bare-empty", "no_data"); got != 1 {
			t.Errorf("no_data errors = %v, want 1", got)
		}
		trig("bare-empty", busy).expect(3, true) // ceil(29 / 10)
	})
	t.Run("empty used bare, onError 2", func(t *testing.T) {
		trig("bare-empty-fixed", empty).expect(2, true)
		if got := env.evalErrors("bare-empty-fixed", "no_data"); got != 1 {
			t.Errorf("no_data errors = %v, want 1", got)
		}
	})
	t.Run("empty or vector(0)", func(t *testing.T) {
		trig("bare-or-zero", empty).expect(0, false)
		if got := env.evalErrors("bare-or-zero", "no_data"); got != 0 {
			t.Errorf("no_data errors = %v, want 0", got)
		}
	})
}

func TestIntegrationPrometheusDown(t *testing.T) {
	prom, exp := needProm(t)
	clock := newFakeClock()
	env := startScaler(t, envConfig{rules: integrationRules, promURL: prom.URL(), clock: clock})
	meta := func(rs string) map[string]string { return map[string]string{"ruleSet": rs, "model": "llama"} }
	hold := env.trigger(t, "down", "hold", meta("down-hold"))
	fail := env.trigger(t, "down", "fail", meta("down-fail"))
	fixed := env.trigger(t, "down", "fixed", meta("down-fixed"))
	holding := func() float64 { return env.gauge(env.server.m.holding, "down", "hold", "down-hold") }

	exp.Set("vllm:num_requests_waiting", vllm("down", "llama"), 9)
	waitProm(t, prom, waitingQuery("down", "llama"), 9)
	clock.Add(time.Second)
	hold.expect(3, true)
	fail.expect(3, true)
	fixed.expect(5, true)
	if got := holding(); got != 0 {
		t.Errorf("holding = %v before the outage, want 0", got)
	}

	if err := prom.Kill(); err != nil {
		t.Fatal(err)
	}
	down := true
	t.Cleanup(func() {
		if down { // the tests after this one need it
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := prom.Restart(ctx); err != nil {
				t.Errorf("restarting Prometheus: %v", err)
			}
		}
	})

	// The specs need no Prometheus.
	for _, tr := range []*kedaTrigger{hold, fail, fixed} {
		if specs := tr.spec(); len(specs) != 1 {
			t.Errorf("GetMetricSpecForScaling with Prometheus down: %d specs, want 1", len(specs))
		}
	}

	clock.Add(time.Second) // 1s after the last good decision
	hold.expect(3, true)
	if got := holding(); got != 1 {
		t.Errorf("holding = %v within staleAfter, want 1", got)
	}
	err := fail.expectErr()
	if status.Code(err) != codes.Unavailable {
		t.Errorf("onError fail: error %v, want code Unavailable", err)
	}
	fixed.expect(3, true)
	for _, rs := range []string{"down-hold", "down-fail", "down-fixed"} {
		if got := env.evalErrors(rs, "prometheus"); got != 1 {
			t.Errorf("%s: prometheus errors = %v, want 1", rs, got)
		}
	}

	clock.Add(time.Second) // 2s: staleAfter, still held
	hold.expect(3, true)
	if got := holding(); got != 1 {
		t.Errorf("holding = %v at staleAfter, want 1", got)
	}

	clock.Add(500 * time.Millisecond) // past staleAfter
	err = hold.expectErr()
	if !strings.Contains(err.Error(), "older than staleAfter") {
		t.Errorf("hold past staleAfter: error %v, want it to say the decision is stale", err)
	}
	if got := holding(); got != 0 {
		t.Errorf("holding = %v past staleAfter, want 0", got)
	}
	fail.expectErr()
	fixed.expect(3, true)

	// Prometheus is back: decisions resume.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := prom.Restart(ctx); err != nil {
		t.Fatalf("restarting Prometheus: %v", err)
	}
	down = false
	exp.Set("vllm:num_requests_waiting", vllm("down", "llama"), 13)
	waitProm(t, prom, waitingQuery("down", "llama"), 13)
	clock.Add(time.Second)
	hold.expect(4, true)
	fail.expect(4, true)
	fixed.expect(7, true)
	if got := holding(); got != 0 {
		t.Errorf("holding = %v after the outage, want 0", got)
	}
}

// reloadRules is the rule file of the reload tests; divisor is the edit.
func reloadRules(divisor int) string {
	return fmt.Sprintf(`
ruleSets:
  - name: chat
    queries:
      waiting: sum(vllm:num_requests_waiting{namespace="$namespace", model_name="$model"}) or vector(0)
    replicas: waiting / %d
    max: 16
    onError: fail
`, divisor)
}

// writeAtomic replaces path's content at once, as editors and kubectl cp do.
func writeAtomic(t testing.TB, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitWatching waits until the store's watcher sees file events in dir, by
// touching a hidden probe file until the watcher logs an event: Watch has
// no readiness signal, and an event before it watches would be lost.
func waitWatching(t testing.TB, env *scalerEnv, dir string) {
	t.Helper()
	probe := filepath.Join(dir, ".probe")
	for range 50 {
		before := env.logs.count("\"file event\"")
		if err := os.WriteFile(probe, []byte(time.Now().String()), 0o644); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			time.Sleep(20 * time.Millisecond)
			if env.logs.count("\"file event\"") > before {
				time.Sleep(200 * time.Millisecond) // let the probe's debounced reload pass
				return
			}
		}
	}
	t.Fatal("the rule watcher never reported an event")
}

// expectEventually polls KEDA until it gets want replicas.
func (tr *kedaTrigger) expectEventually(want float64, timeout time.Duration) {
	tr.t.Helper()
	eventually(tr.t, timeout, func() (bool, string) {
		got, _, err := tr.get()
		return err == nil && got == want, fmt.Sprintf("KEDA got %v replicas (err %v), want %v", got, err, want)
	})
}

func TestIntegrationHotReload(t *testing.T) {
	prom, exp := needProm(t)
	exp.Set("vllm:num_requests_waiting", vllm("reload", "llama"), 9)
	waitProm(t, prom, waitingQuery("reload", "llama"), 9)
	meta := map[string]string{"ruleSet": "chat", "model": "llama"}

	t.Run("edit, then invalid, then back", func(t *testing.T) {
		env := startScaler(t, envConfig{rules: reloadRules(4), promURL: prom.URL(), watch: true})
		m := env.store.m
		tr := env.trigger(t, "reload", "so", meta)
		tr.expect(3, true) // ceil(9/4)
		waitWatching(t, env, filepath.Dir(env.rulesPath))

		writeAtomic(t, env.rulesPath, reloadRules(2))
		tr.expectEventually(5, 10*time.Second) // ceil(9/2)
		if got := testutil.ToFloat64(m.reloads.WithLabelValues("success")); got != 1 {
			t.Errorf("successful reloads = %v, want 1", got)
		}
		if got := testutil.ToFloat64(m.version); got != 2 {
			t.Errorf("nemesis_rules_version = %v, want 2", got)
		}

		writeAtomic(t, env.rulesPath, strings.Replace(reloadRules(1), "waiting / 1", "waiting /", 1))
		// The store counts the failure, then logs it: wait for both.
		eventually(t, 10*time.Second, func() (bool, string) {
			got := testutil.ToFloat64(m.reloads.WithLabelValues("failure"))
			logged := strings.Contains(env.logs.String(), "rule files rejected")
			return got >= 1 && logged, fmt.Sprintf("failed reloads = %v, want it to grow; rejection logged: %v", got, logged)
		})
		if got := testutil.ToFloat64(m.lastFailure); got != 1 {
			t.Errorf("nemesis_rules_last_reload_failed = %v, want 1", got)
		}
		settle()
		tr.expect(5, true) // the last good version keeps serving
		if got := env.store.Current().Version; got != 2 {
			t.Errorf("version = %d after a failed reload, want 2", got)
		}

		// Back to the version in force: nothing to reload, but the newest
		// version is no longer rejected.
		writeAtomic(t, env.rulesPath, reloadRules(2))
		eventually(t, 10*time.Second, func() (bool, string) {
			got := testutil.ToFloat64(m.lastFailure)
			return got == 0, fmt.Sprintf("nemesis_rules_last_reload_failed = %v after the file was fixed, want 0", got)
		})
		tr.expect(5, true)
		if got := testutil.ToFloat64(m.reloads.WithLabelValues("success")); got != 1 {
			t.Errorf("successful reloads = %v, want still 1", got)
		}
	})

	t.Run("ConfigMap symlink swap", func(t *testing.T) {
		// The layout kubelet gives a ConfigMap volume.
		dir := t.TempDir()
		mustDo := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		mustDo(os.Mkdir(filepath.Join(dir, "..2026_x"), 0o755))
		mustDo(os.WriteFile(filepath.Join(dir, "..2026_x", "rules.yaml"), []byte(reloadRules(4)), 0o644))
		mustDo(os.Symlink("..2026_x", filepath.Join(dir, "..data")))
		mustDo(os.Symlink(filepath.Join("..data", "rules.yaml"), filepath.Join(dir, "rules.yaml")))

		env := startScaler(t, envConfig{paths: []string{dir}, promURL: prom.URL(), watch: true})
		tr := env.trigger(t, "reload", "so", meta)
		tr.expect(3, true)
		waitWatching(t, env, dir)

		// kubelet's atomic update: a new timestamped dir, a new link,
		// renamed over ..data, then the old dir removed.
		mustDo(os.Mkdir(filepath.Join(dir, "..2026_y"), 0o755))
		mustDo(os.WriteFile(filepath.Join(dir, "..2026_y", "rules.yaml"), []byte(reloadRules(2)), 0o644))
		mustDo(os.Symlink("..2026_y", filepath.Join(dir, "..data_tmp")))
		mustDo(os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
		mustDo(os.RemoveAll(filepath.Join(dir, "..2026_x")))

		tr.expectEventually(5, 10*time.Second)
		if got := testutil.ToFloat64(env.store.m.reloads.WithLabelValues("success")); got != 1 {
			t.Errorf("successful reloads = %v, want 1", got)
		}
		if got := testutil.ToFloat64(env.store.m.reloads.WithLabelValues("failure")); got != 0 {
			t.Errorf("failed reloads = %v, want 0", got)
		}
	})
}

// ---- TLS ----

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial struct {
	sync.Mutex
	n int64
}

func nextSerial() *big.Int {
	serial.Lock()
	defer serial.Unlock()
	serial.n++
	return big.NewInt(serial.n)
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a PEM certificate and key signed by ca: a server
// certificate for 127.0.0.1, or a client certificate.
func (ca *testCA) issue(t testing.TB, name string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestIntegrationTLS(t *testing.T) {
	prom, exp := needProm(t)
	exp.Set("vllm:num_requests_waiting", vllm("tls", "llama"), 9)
	waitProm(t, prom, waitingQuery("tls", "llama"), 9)

	ca := newTestCA(t, "nemesis test CA")
	dir := t.TempDir()
	certPEM, keyPEM := ca.issue(t, "nemesis-scaler", true)
	files := TLSFiles{
		CertFile: writeFile(t, dir, "tls.crt", certPEM),
		KeyFile:  writeFile(t, dir, "tls.key", keyPEM),
	}
	clientCert, clientKey := ca.issue(t, "keda-operator", false)
	rogue := newTestCA(t, "rogue CA")
	rogueCert, rogueKey := rogue.issue(t, "keda-operator", false)

	meta := map[string]string{"ruleSet": "chat", "model": "llama"}
	tlsMeta := map[string]string{"ruleSet": "chat", "model": "llama", "enableTLS": "true"}

	t.Run("TLS", func(t *testing.T) {
		env := startScaler(t, envConfig{rules: integrationRules, promURL: prom.URL(), tls: &files, reuseFor: time.Minute})
		newTrigger(t, env.addr, "tls", "so", tlsMeta, map[string]string{"caCert": string(ca.pem)}).expect(3, true)

		plain := newTrigger(t, env.addr, "tls", "plain", meta, nil)
		plain.metric = "s0-nemesis-chat"
		plain.expectErr()

		// Without caCert the system roots do not know the test CA.
		unknown := newTrigger(t, env.addr, "tls", "roots", tlsMeta, nil)
		unknown.metric = "s0-nemesis-chat"
		unknown.expectErr()
	})

	t.Run("mTLS", func(t *testing.T) {
		mfiles := files
		mfiles.ClientCAFile = writeFile(t, dir, "client-ca.crt", ca.pem)
		env := startScaler(t, envConfig{rules: integrationRules, promURL: prom.URL(), tls: &mfiles, reuseFor: time.Minute})

		withCert := newTrigger(t, env.addr, "tls", "so", tlsMeta, map[string]string{
			"caCert": string(ca.pem), "tlsClientCert": string(clientCert), "tlsClientKey": string(clientKey),
		})
		withCert.expect(3, true)

		noCert := newTrigger(t, env.addr, "tls", "nocert", tlsMeta, map[string]string{"caCert": string(ca.pem)})
		if specs := noCert.spec(); specs != nil {
			t.Errorf("without a client certificate KEDA got specs %+v", specs)
		}
		noCert.metric = "s0-nemesis-chat"
		noCert.expectErr()

		wrongCA := newTrigger(t, env.addr, "tls", "rogue", tlsMeta, map[string]string{
			"caCert": string(ca.pem), "tlsClientCert": string(rogueCert), "tlsClientKey": string(rogueKey),
		})
		wrongCA.metric = "s0-nemesis-chat"
		wrongCA.expectErr()
		if got := env.evaluations("chat"); got != 1 {
			t.Errorf("evaluations = %v, want 1 (only the client with a good certificate)", got)
		}
	})
}

func TestIntegrationPush(t *testing.T) {
	prom, exp := needProm(t)
	env := startScaler(t, envConfig{rules: integrationRules, promURL: prom.URL()})
	exp.Set("vllm:num_requests_waiting", vllm("push", "llama"), 0)
	waitProm(t, prom, waitingQuery("push", "llama"), 0)

	push, err := scalers.NewExternalPushScaler(scalerConfig(env.addr, "external-push", "push", "chat-llm",
		map[string]string{"ruleSet": "chat", "model": "llama"}, nil))
	if err != nil {
		t.Fatalf("NewExternalPushScaler: %v", err)
	}
	t.Cleanup(func() { _ = push.Close(context.Background()) })
	ctx, cancel := context.WithCancel(context.Background())
	active := make(chan bool, 16)
	ran := make(chan struct{})
	go func() { defer close(ran); push.Run(ctx, active) }()
	t.Cleanup(func() {
		cancel()
		for range active { // Run closes it when it returns
		}
		<-ran
	})

	next := func(what string) (bool, time.Time) {
		t.Helper()
		select {
		case v, ok := <-active:
			if !ok {
				t.Fatalf("waiting for %s: KEDA's Run ended", what)
			}
			return v, time.Now()
		case <-time.After(15 * time.Second):
			t.Fatalf("waiting for %s: nothing pushed within 15s", what)
		}
		panic("unreachable")
	}
	if v, _ := next("the first state"); v {
		t.Fatal("first pushed state is true, want false: nothing waits yet")
	}
	if got := testutil.ToFloat64(env.server.m.streams); got != 1 {
		t.Errorf("nemesis_scaler_active_streams = %v, want 1", got)
	}

	scrapes := exp.Scrapes()
	set := time.Now()
	exp.Set("vllm:num_requests_waiting", vllm("push", "llama"), 3)
	// The first scrape served after the change carries it; Prometheus
	// commits it a moment later.
	scraped := make(chan time.Time, 1)
	go func() {
		defer close(scraped)
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if exp.Scrapes() > scrapes {
				scraped <- time.Now()
				return
			}
		}
	}()
	visible := make(chan time.Time, 1)
	go func() {
		wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
		defer wcancel()
		if prom.WaitForValue(wctx, waitingQuery("push", "llama"), 3) == nil {
			visible <- time.Now()
		}
		close(visible)
	}()
	v, at := next("true")
	if !v {
		t.Fatal("pushed false after the load arrived, want true")
	}
	scrapedAt, ok1 := <-scraped
	seen, ok2 := <-visible
	if !ok1 || !ok2 {
		t.Fatal("Prometheus never showed the load")
	}
	// WaitForValue polls every 50ms, so "seen" is late by up to that much
	// and that latency may even come out negative; the scrape is exact.
	t.Logf("push latency: %v after the scrape that carried the change, %v after a query first showed it (polled every 50ms), %v after the exporter changed (scrape interval %v, push interval 100ms)",
		at.Sub(scrapedAt).Round(time.Millisecond), at.Sub(seen).Round(time.Millisecond), at.Sub(set).Round(time.Millisecond), scrapeInterval)
	if lat := at.Sub(set); lat > 5*time.Second {
		t.Errorf("true pushed %v after the change, want well under 5s", lat)
	}

	// Idle again: false is pushed too, as a hint.
	exp.Set("vllm:num_requests_waiting", vllm("push", "llama"), 0)
	if v, _ := next("false"); v {
		t.Error("pushed true after the load left, want false")
	}
}

func TestIntegrationOneEvaluationPerPoll(t *testing.T) {
	prom, exp := needProm(t)
	env := startScaler(t, envConfig{rules: integrationRules, promURL: prom.URL(), reuseFor: 5 * time.Second})
	exp.Set("vllm:num_requests_waiting", vllm("once", "llama"), 9)
	waitProm(t, prom, waitingQuery("once", "llama"), 9)
	tr := env.trigger(t, "once", "chat-llm", map[string]string{"ruleSet": "chat", "model": "llama"})
	tr.metricName() // GetMetricSpec: no evaluation
	if got := env.evaluations("chat"); got != 0 {
		t.Fatalf("evaluations after GetMetricSpec = %v, want 0", got)
	}
	requests := func() float64 { return gatherSum(t, env.reg, "nemesis_prometheus_requests_total", nil) }

	tr.expect(3, true) // GetMetrics + IsActive
	if got := env.evaluations("chat"); got != 1 {
		t.Errorf("evaluations after one GetMetricsAndActivity = %v, want exactly 1", got)
	}
	if got := requests(); got != 2 {
		t.Errorf("Prometheus requests = %v, want 2 (the rule set's two queries)", got)
	}
	tr.expect(3, true) // within ReuseFor
	if got := env.evaluations("chat"); got != 1 {
		t.Errorf("evaluations after a second poll within ReuseFor = %v, want 1", got)
	}
	if got := env.rec.calls(); got != 2 {
		t.Errorf("queries run = %d, want 2", got)
	}
}

func TestIntegrationGetMetricSpecDoesNoIO(t *testing.T) {
	var calls int
	var mu sync.Mutex
	env := startScaler(t, envConfig{rules: integrationRules, querier: querierFunc(func(_ context.Context, q string) (metrics.Result, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		return metrics.Result{}, errors.New("the test's Querier must not be called")
	})})

	tr := env.trigger(t, "spec", "chat-llm", map[string]string{"ruleSet": "chat", "model": "llama"})
	specs := tr.spec()
	if len(specs) != 1 {
		t.Fatalf("GetMetricSpecForScaling: %d specs, want 1", len(specs))
	}
	checkSpec(t, specs[0], "s0-nemesis-chat")

	for _, c := range []struct {
		name string
		meta map[string]string
	}{
		{"unknown rule set", map[string]string{"ruleSet": "nope", "model": "llama"}},
		{"no ruleSet key", map[string]string{"model": "llama"}},
		{"missing template key", map[string]string{"ruleSet": "chat"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := env.trigger(t, "spec", "bad", c.meta)
			// KEDA logs the error and returns nil.
			if specs := bad.spec(); specs != nil {
				t.Errorf("KEDA got specs %+v, want nil", specs)
			}
			bad.metric = "s0-nemesis-chat"
			if err := bad.expectErr(); status.Code(err) != codes.InvalidArgument {
				t.Errorf("GetMetricsAndActivity: %v, want code InvalidArgument", err)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 0 {
		t.Errorf("the Querier was called %d times, want 0", calls)
	}
	if got := env.evaluations("chat"); got != 0 {
		t.Errorf("evaluations = %v, want 0", got)
	}
}
