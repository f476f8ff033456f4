package externalscaler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8s-nemesis/nemesis/metrics"
)

// recordRules has a two-query rule set for the records' tests.
const recordRules = `
ruleSets:
  - name: chat
    queries:
      waiting: sum(waiting{namespace="$namespace", model="$model"})
      running: sum(running{namespace="$namespace", model="$model"})
    replicas: max(waiting / 4, running / 8)
    active: waiting > 0 || running > 0
    max: 16
    onError: hold
    staleAfter: 5m
`

// byQuery answers each query from a value set per metric name (the text
// before the first '{' after "sum("), or with err.
type byQuery struct {
	vals map[string]float64
	err  error
}

func (b *byQuery) Query(_ context.Context, q string) (metrics.Result, error) {
	if b.err != nil {
		return metrics.Result{}, b.err
	}
	name := strings.TrimPrefix(q[:strings.IndexByte(q, '{')], "sum(")
	v, ok := b.vals[name]
	if !ok {
		return metrics.Result{}, nil
	}
	return metrics.Result{Values: []float64{v}}, nil
}

func chatRef(name string) *pb.ScaledObjectRef {
	return ref("ns", name, map[string]string{"ruleSet": "chat", "model": "llama"})
}

func history(t *testing.T, e *unitEnv, name string) []Record {
	t.Helper()
	recs, known := e.server.History("ns", name)
	if !known {
		t.Fatalf("History(ns, %s): unknown", name)
	}
	return recs
}

func TestRecordOfGoodEvaluation(t *testing.T) {
	q := &byQuery{vals: map[string]float64{"waiting": 18, "running": 10}}
	e := newUnitServer(t, recordRules, q, Options{})
	r := chatRef("chat")
	e.expect(t, r, 5, true)
	q.vals["waiting"] = 9
	e.clock.Add(2 * time.Second) // past ReuseFor
	e.expect(t, r, 3, true)

	recs := history(t, e, "chat")
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	got := recs[0] // newest first
	if got.Explanation != "replicas 5 → 3: max(waiting / 4 = 2.25, running / 8 = 1.25) = 2.25 → 3 (0..16)" {
		t.Errorf("explanation %q", got.Explanation)
	}
	if recs[1].Explanation != "replicas 5: max(waiting / 4 = 4.5, running / 8 = 1.25) = 4.5 → 5 (0..16)" {
		t.Errorf("first explanation %q", recs[1].Explanation)
	}
	wantQueries := []QueryRecord{
		{Name: "waiting", Query: `sum(waiting{namespace="ns", model="llama"})`, Value: ptr(9.0)},
		{Name: "running", Query: `sum(running{namespace="ns", model="llama"})`, Value: ptr(10.0)},
	}
	if !equalQueries(got.Queries, wantQueries) {
		t.Errorf("queries %+v, want %+v", got.Queries, wantQueries)
	}
	if got.Replicas != 3 || !got.Active || got.Holding || got.Error != "" || got.Reason != "" || got.Shadow {
		t.Errorf("record %+v", got)
	}
	if got.Raw == nil || *got.Raw != 2.25 || got.Rounding != "2.25 → 3, within 0..16" {
		t.Errorf("raw %v, rounding %q", got.Raw, got.Rounding)
	}
	if got.PreviousReplicas == nil || *got.PreviousReplicas != 5 {
		t.Errorf("previousReplicas %v, want 5", got.PreviousReplicas)
	}
	if got.ActiveReason != "waiting > 0 || running > 0 is true" {
		t.Errorf("activeReason %q", got.ActiveReason)
	}
	// GetMetrics and the IsActive after it: one evaluation, two calls.
	if got.Calls != 2 || !got.Reused {
		t.Errorf("calls %d, reused %v; want 2, true", got.Calls, got.Reused)
	}
	if got.RulesVersion != 1 || !strings.HasSuffix(got.RuleFile, "rules.yaml:3:5") || got.Metadata["model"] != "llama" {
		t.Errorf("version %d, file %q, metadata %v", got.RulesVersion, got.RuleFile, got.Metadata)
	}
	if !got.Time.Equal(e.clock.Now()) {
		t.Errorf("time %v, want %v", got.Time, e.clock.Now())
	}
}

func ptr[T any](v T) *T { return &v }

func fmtPtr[T any](p *T) any {
	if p == nil {
		return "null"
	}
	return *p
}

func equalQueries(a, b []QueryRecord) bool {
	return slices.EqualFunc(a, b, func(x, y QueryRecord) bool {
		return x.Name == y.Name && x.Query == y.Query && x.Error == y.Error && x.Reason == y.Reason &&
			(x.Value == nil) == (y.Value == nil) && (x.Value == nil || *x.Value == *y.Value)
	})
}

func TestRecordOfHeldDecision(t *testing.T) {
	q := &byQuery{vals: map[string]float64{"waiting": 18, "running": 10}}
	e := newUnitServer(t, recordRules, q, Options{})
	r := chatRef("chat")
	e.expect(t, r, 5, true)
	good := e.clock.Now()
	e.clock.Add(time.Minute)
	q.err = errors.New("connection refused")
	e.expect(t, r, 5, true)

	got := history(t, e, "chat")[0]
	since := good.Format(time.TimeOnly)
	stale := good.Add(5 * time.Minute).Format(time.TimeOnly)
	if want := fmt.Sprintf("holding 5 since %s, stale at %s", since, stale); got.OnError != want {
		t.Errorf("onError %q, want %q", got.OnError, want)
	}
	if !got.Holding || got.Replicas != 5 || got.Raw != nil || got.Reason != "prometheus" || !strings.Contains(got.Error, "connection refused") {
		t.Errorf("record %+v", got)
	}
	if got.HoldingSince == nil || !got.HoldingSince.Equal(good) || got.StaleAt == nil || !got.StaleAt.Equal(good.Add(5*time.Minute)) {
		t.Errorf("holdingSince %v, staleAt %v", got.HoldingSince, got.StaleAt)
	}
	for _, qr := range got.Queries {
		if qr.Value != nil || qr.Reason != "prometheus" || !strings.Contains(qr.Error, "connection refused") {
			t.Errorf("query %+v: want a prometheus error and no value", qr)
		}
	}
	if !strings.HasPrefix(got.Explanation, "replicas 5 (holding 5 since "+since) {
		t.Errorf("explanation %q", got.Explanation)
	}
}

func TestRecordOfMissingData(t *testing.T) {
	q := &byQuery{vals: map[string]float64{"waiting": 18}} // running: no series
	e := newUnitServer(t, strings.Replace(recordRules, "onError: hold", "onError: fail", 1), q, Options{})
	r := chatRef("chat")
	e.expectCode(t, r, 14) // Unavailable
	got := history(t, e, "chat")[0]
	if got.Reason != "no_data" || got.Replicas != 0 || got.Holding || got.Active {
		t.Errorf("record %+v", got)
	}
	if got.Queries[0].Value == nil || *got.Queries[0].Value != 18 || got.Queries[1].Reason != "no_data" || got.Queries[1].Value != nil {
		t.Errorf("queries %+v", got.Queries)
	}
	if !strings.HasPrefix(got.Explanation, "no replicas (onError: fail: KEDA's fallback applies): ") {
		t.Errorf("explanation %q", got.Explanation)
	}
}

func TestRecordRingKeepsNewest100(t *testing.T) {
	q := &byQuery{vals: map[string]float64{"running": 0}}
	e := newUnitServer(t, recordRules, q, Options{})
	r := chatRef("chat")
	const evals = 150
	for i := range evals {
		q.vals["waiting"] = float64(i)
		if _, _, err := e.replicas(r); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(2 * time.Second)
	}
	recs := history(t, e, "chat")
	if len(recs) != RecordsKept {
		t.Fatalf("%d records, want %d", len(recs), RecordsKept)
	}
	for i, rec := range recs {
		want := float64(evals - 1 - i) // newest first; the oldest 50 dropped
		if got := *rec.Queries[0].Value; got != want {
			t.Fatalf("record %d: waiting %v, want %v", i, got, want)
		}
		// The replicas of the evaluation before, evicted or not: waiting
		// one less, over 4, within max 16.
		wantPrev := min(16, int64(math.Ceil((want-1)/4)))
		if rec.PreviousReplicas == nil || *rec.PreviousReplicas != wantPrev {
			t.Fatalf("record %d: previousReplicas %v, want %d", i, fmtPtr(rec.PreviousReplicas), wantPrev)
		}
	}
	if d := e.server.Decisions(); len(d) != 1 || *d[0].Queries[0].Value != evals-1 {
		t.Errorf("Decisions: %+v, want the newest record only", d)
	}
}

func TestRecordsForgottenWithScaledObject(t *testing.T) {
	q := &byQuery{vals: map[string]float64{"waiting": 4, "running": 0}}
	e := newUnitServer(t, recordRules, q, Options{ForgetAfter: time.Minute})
	mux := http.NewServeMux()
	e.server.RegisterAPI(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	e.expect(t, chatRef("old"), 1, true)
	e.clock.Add(45 * time.Second)
	e.expect(t, chatRef("recent"), 1, true)
	if code, _ := get(t, srv.URL+"/api/v1/decisions/ns/old"); code != http.StatusOK {
		t.Fatalf("before forgetting: %d", code)
	}
	e.clock.Add(30 * time.Second)
	e.server.forgetIdle()
	if _, known := e.server.History("ns", "old"); known {
		t.Error("History still knows the forgotten ScaledObject")
	}
	if code, body := get(t, srv.URL+"/api/v1/decisions/ns/old"); code != http.StatusNotFound {
		t.Errorf("forgotten: %d %s, want 404", code, body)
	}
	if d := e.server.Decisions(); len(d) != 1 || d[0].Name != "recent" {
		t.Errorf("Decisions after forgetting: %d records, want recent's only", len(d))
	}
}

func TestDecisionChangeLoggedAtDebug(t *testing.T) {
	q := &byQuery{vals: map[string]float64{"waiting": 18, "running": 10}}
	e := newUnitServer(t, recordRules, q, Options{})
	r := chatRef("chat")
	for _, waiting := range []float64{18, 17, 9} { // 5, 5, 3 replicas
		q.vals["waiting"] = waiting
		if _, _, err := e.replicas(r); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(2 * time.Second)
	}
	var lines []string
	for _, l := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(l, `msg="decision changed"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d decision lines, want 2 (first decision, then 5 → 3):\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if !strings.Contains(lines[1], `explanation="replicas 5 → 3: max(waiting / 4 = 2.25, running / 8 = 1.25) = 2.25 → 3 (0..16)"`) {
		t.Errorf("line %s", lines[1])
	}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", url, ct)
	}
	return resp.StatusCode, body
}

// TestAPI reads every endpoint through RegisterAPI's mux and checks the
// contract's field names and types on the wire.
func TestAPI(t *testing.T) {
	q := &byQuery{vals: map[string]float64{"waiting": 18, "running": 10}}
	e := newUnitServer(t, recordRules, q, Options{})
	mux := http.NewServeMux()
	e.server.RegisterAPI(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.expect(t, chatRef("a"), 5, true)
	e.clock.Add(time.Second)
	e.expect(t, chatRef("b"), 5, true)

	for _, path := range []string{"/api/v1/decisions", "/api/v1/decisions/ns/a"} {
		code, body := get(t, srv.URL+path)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		var resp struct {
			Decisions []map[string]json.RawMessage `json:"decisions"`
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		want := map[string]int{"/api/v1/decisions": 2, "/api/v1/decisions/ns/a": 1}[path]
		if len(resp.Decisions) != want {
			t.Fatalf("%s: %d decisions, want %d", path, len(resp.Decisions), want)
		}
		checkContract(t, path, resp.Decisions[0])
	}
	// Newest first.
	var all struct{ Decisions []Record }
	_, body := get(t, srv.URL+"/api/v1/decisions")
	if err := json.Unmarshal(body, &all); err != nil {
		t.Fatal(err)
	}
	if all.Decisions[0].Name != "b" || all.Decisions[1].Name != "a" {
		t.Errorf("order %s, %s; want b, a", all.Decisions[0].Name, all.Decisions[1].Name)
	}

	code, body := get(t, srv.URL+"/api/v1/decisions/ns/nope")
	var nf struct{ Error string }
	if code != http.StatusNotFound || json.Unmarshal(body, &nf) != nil || !strings.Contains(nf.Error, "ns/nope") {
		t.Errorf("unknown ScaledObject: %d %s, want 404 with a JSON error naming it", code, body)
	}

	// A rejected reload shows in /api/v1/rulesets, with the version in force.
	if err := os.WriteFile(e.path, []byte("ruleSets:\n  - name: broken\n    replicas: nope +\n    max: 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Reload(); err == nil {
		t.Fatal("reload of a broken file succeeded")
	}
	code, body = get(t, srv.URL+"/api/v1/rulesets")
	var rs RuleSetsResponse
	if code != http.StatusOK || json.Unmarshal(body, &rs) != nil {
		t.Fatalf("rulesets: %d %s", code, body)
	}
	if rs.Version != 1 || len(rs.RuleSets) != 1 || rs.RuleSets[0].Name != "chat" || rs.RuleSets[0].Replicas != "max(waiting / 4, running / 8)" {
		t.Errorf("rulesets: %s", body)
	}
	if rs.LastReloadError == "" || len(rs.Problems) == 0 || rs.Problems[0].Line != 3 || rs.Problems[0].RuleSet != "broken" {
		t.Errorf("reload error not shown with its position: %s", body)
	}
}

// checkContract checks that a record has the contract's fields with their
// JSON types.
func checkContract(t *testing.T, path string, rec map[string]json.RawMessage) {
	t.Helper()
	kinds := map[string]string{
		"time": "string", "namespace": "string", "name": "string", "ruleSet": "string",
		"shadow": "bool", "replicas": "number", "active": "bool", "holding": "bool",
		"error": "string", "reason": "string", "queries": "array", "builtins": "object",
		"raw": "number", "explanation": "string",
	}
	for field, kind := range kinds {
		raw, ok := rec[field]
		if !ok {
			t.Errorf("%s: record has no %q", path, field)
			continue
		}
		if got := jsonKind(raw); got != kind {
			t.Errorf("%s: %q is a JSON %s, want %s", path, field, got, kind)
		}
	}
	var queries []map[string]json.RawMessage
	if err := json.Unmarshal(rec["queries"], &queries); err != nil || len(queries) == 0 {
		t.Fatalf("%s: queries %s", path, rec["queries"])
	}
	for field, kind := range map[string]string{"name": "string", "query": "string", "value": "number", "error": "string"} {
		if got := jsonKind(queries[0][field]); got != kind {
			t.Errorf("%s: queries[0].%s is a JSON %s, want %s", path, field, got, kind)
		}
	}
}

func jsonKind(raw json.RawMessage) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "invalid"
	}
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "bool"
	case float64:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case nil:
		return "null"
	}
	return "?"
}

// freshQuerier answers every query with one value in a slice of its own,
// as the Prometheus client does for each response.
type freshQuerier struct{}

func (freshQuerier) Query(context.Context, string) (metrics.Result, error) {
	return metrics.Result{Values: []float64{7}}, nil
}

// failingQuerier fails every query, as a Prometheus that is down does, with
// an error of its own each time.
type failingQuerier struct{}

func (failingQuerier) Query(context.Context, string) (metrics.Result, error) {
	return metrics.Result{}, fmt.Errorf("Post %q: dial tcp 10.96.0.10:9090: connect: connection refused", "http://prometheus:9090/api/v1/query")
}

// BenchmarkRecordsMemory measures the heap the records of 1,000
// ScaledObjects hold once each has RecordsKept of them: reported as
// record-bytes/object (the heap beyond the same objects with one record
// each) and bytes/object (all their state, records included); "good" while
// the queries answer, "prometheus down" while every query fails; "good, 1
// shadow" with a shadow rule set of two queries, one shared, beside the
// live one.
func BenchmarkRecordsMemory(b *testing.B) {
	for _, bc := range []struct {
		name   string
		q      Querier
		shadow string
	}{{"good", freshQuerier{}, ""}, {"prometheus down", failingQuerier{}, ""}, {"good, 1 shadow", freshQuerier{}, "cand-a"}} {
		b.Run(bc.name, func(b *testing.B) { benchmarkRecordsMemory(b, bc.q, bc.shadow) })
	}
}

func benchmarkRecordsMemory(b *testing.B, q Querier, shadow string) {
	const objects = 1000
	_, failing := q.(failingQuerier)
	for b.Loop() {
		b.StopTimer()
		clock := newFakeClock()
		store, err := newStoreFrom(b, shadowRules)
		if err != nil {
			b.Fatal(err)
		}
		s := New(store, q, Options{Logger: discardLogger(), Now: clock.Now})
		refs := make([]*pb.ScaledObjectRef, objects)
		for i := range refs {
			meta := map[string]string{"ruleSet": "chat", "model": "llama"}
			if shadow != "" {
				meta[ShadowMetadata] = shadow
			}
			refs[i] = ref(fmt.Sprintf("ns-%d", i%20), fmt.Sprintf("so-%d", i), meta)
		}
		round := func() {
			for _, r := range refs {
				_, err := s.GetMetrics(context.Background(), &pb.GetMetricsRequest{ScaledObjectRef: r})
				if (err != nil) != failing {
					b.Fatalf("GetMetrics: %v", err)
				}
				if _, err := s.IsActive(context.Background(), r); (err != nil) != failing {
					b.Fatalf("IsActive: %v", err)
				}
			}
			clock.Add(2 * time.Second)
		}
		heap := func() uint64 {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			return m.HeapAlloc
		}
		before := heap()
		round()
		one := heap()
		b.StartTimer()
		for range RecordsKept - 1 {
			round()
		}
		b.StopTimer()
		full := heap()
		want := RecordsKept
		if shadow != "" {
			want *= 2
		}
		if recs, _ := s.History("ns-0", "so-0"); len(recs) != want {
			b.Fatalf("%d records, want %d", len(recs), want)
		}
		b.ReportMetric(float64(full-one)/objects, "record-bytes/object")
		b.ReportMetric(float64(full-before)/objects, "bytes/object")
		runtime.KeepAlive(s)
		b.StartTimer()
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newStoreFrom loads rules from a file in a temporary directory.
func newStoreFrom(tb testing.TB, rules string) (*RuleStore, error) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(rules), 0o644); err != nil {
		return nil, err
	}
	return NewRuleStore([]string{path}, discardLogger(), prometheus.NewRegistry())
}

// BenchmarkEvaluationPath is the scaler's own cost of one evaluation and
// its record, without gRPC or Prometheus: a GetMetrics past ReuseFor and
// the IsActive paired with it, over 100 triggers in turn (their rings
// full).
func BenchmarkEvaluationPath(b *testing.B) {
	store, err := newStoreFrom(b, recordRules)
	if err != nil {
		b.Fatal(err)
	}
	clock := newFakeClock()
	s := New(store, freshQuerier{}, Options{Logger: discardLogger(), Now: clock.Now})
	refs := make([]*pb.ScaledObjectRef, 100)
	for i := range refs {
		refs[i] = ref("ns", fmt.Sprintf("so-%d", i), map[string]string{"ruleSet": "chat", "model": "llama"})
	}
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if i%len(refs) == 0 {
			clock.Add(2 * time.Second)
		}
		r := refs[i%len(refs)]
		i++
		if _, err := s.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: r}); err != nil {
			b.Fatal(err)
		}
		if _, err := s.IsActive(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}
