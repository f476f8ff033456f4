package externalscaler

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/k8s-nemesis/nemesis/metrics"
)

// shadowRules are recordRules' chat, the live rule set, and candidates:
// cand-a shares chat's waiting query and adds one of its own, cand-broken
// reads a metric that has no data.
const shadowRules = recordRules + `
  - name: cand-a
    queries:
      waiting: sum(waiting{namespace="$namespace", model="$model"})
      queue: sum(queue{namespace="$namespace", model="$model"})
    replicas: waiting / 2 + queue
    max: 16
    onError: fail
  - name: cand-broken
    queries:
      missing: sum(missing{namespace="$namespace", model="$model"})
    replicas: missing
    max: 16
    onError: fail
`

// countingQuery is byQuery counting the requests per query.
type countingQuery struct {
	byQuery
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingQuery) Query(ctx context.Context, q string) (metrics.Result, error) {
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[strings.TrimPrefix(q[:strings.IndexByte(q, '{')], "sum(")]++
	vals := c.vals
	c.mu.Unlock()
	return (&byQuery{vals: vals}).Query(ctx, q)
}

func (c *countingQuery) set(name string, v float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.vals[name] = v
}

func (c *countingQuery) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.calls)
}

// countEvents counts the Events emitted.
type countEvents struct {
	mu      sync.Mutex
	reasons []string
}

func (c *countEvents) Emit(_, _, reason, _, _ string, _ bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reasons = append(c.reasons, reason)
}

func (c *countEvents) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.reasons)
}

func shadowRef(name string) *pb.ScaledObjectRef {
	return ref("ns", name, map[string]string{"ruleSet": "chat", "model": "llama", ShadowMetadata: " cand-a , cand-broken,nope,, cand-a"})
}

// TestShadowNeverReachesKEDA: whatever the shadows say, or however they
// fail, GetMetrics, IsActive and StreamIsActive answer from the live rule
// set; the shadows' answers go to their records and gauge only, and their
// errors are counted apart.
func TestShadowNeverReachesKEDA(t *testing.T) {
	q := &countingQuery{byQuery: byQuery{vals: map[string]float64{"waiting": 18, "running": 10, "queue": 3}}}
	ev := &countEvents{}
	e := newUnitServer(t, shadowRules, q, Options{Events: ev})
	r := shadowRef("so")

	// Live: max(18/4, 10/8) = 4.5 → 5; cand-a: 18/2 + 3 = 12; cand-broken fails.
	e.expect(t, r, 5, true)
	if got := testutil.ToFloat64(e.server.m.shadowDesired.WithLabelValues("ns", "so", "cand-a")); got != 12 {
		t.Errorf("shadow gauge cand-a = %v, want 12", got)
	}
	if got := testutil.ToFloat64(e.server.m.desired.WithLabelValues("ns", "so", "chat")); got != 5 {
		t.Errorf("live gauge = %v, want 5", got)
	}

	// Live inactive at 0 while cand-a says 3 and active.
	q.set("waiting", 0)
	q.set("running", 0)
	e.clock.Add(2 * time.Second)
	e.expect(t, r, 0, false)
	if got := testutil.ToFloat64(e.server.m.shadowDesired.WithLabelValues("ns", "so", "cand-a")); got != 3 {
		t.Errorf("shadow gauge cand-a = %v, want 3", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ps := &pushStream{ctx: ctx, sent: make(chan bool, 4)}
	done := make(chan error, 1)
	go func() { done <- e.server.StreamIsActive(r, ps) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case v := <-ps.sent:
		if v {
			t.Error("StreamIsActive sent true: the shadow's activity reached KEDA")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("StreamIsActive sent nothing in 10s")
	}

	if got := testutil.ToFloat64(e.server.m.shadowErrors.WithLabelValues("cand-broken", "no_data")); got < 2 {
		t.Errorf("shadow errors of cand-broken = %v, want at least 2", got)
	}
	if n := testutil.CollectAndCount(e.server.m.errors); n != 0 {
		t.Errorf("%d series of nemesis_scaler_evaluation_errors_total: a shadow's error was counted as the trigger's", n)
	}
	if got := testutil.ToFloat64(e.server.m.evaluations.WithLabelValues("chat")); got < 2 {
		t.Errorf("live evaluations = %v", got)
	}
	if n := testutil.CollectAndCount(e.server.m.evaluations); n != 1 {
		t.Errorf("%d series of nemesis_scaler_evaluations_total, want the live rule set's only", n)
	}
	// cand-a changed 12 → 3 and cand-broken failed: no Event; the live
	// rule set went 5 → 0: one.
	if got := ev.got(); !slices.Equal(got, []string{ReasonScaledDown}) {
		t.Errorf("Events %v, want the live rule set's one scale-down only", got)
	}
}

// TestShadowSharesQueries: a query the live rule set and a shadow share is
// sent once per evaluation.
func TestShadowSharesQueries(t *testing.T) {
	q := &countingQuery{byQuery: byQuery{vals: map[string]float64{"waiting": 18, "running": 10, "queue": 3}}}
	e := newUnitServer(t, shadowRules, q, Options{})
	r := shadowRef("so")
	const rounds = 3
	for range rounds {
		e.expect(t, r, 5, true)
		e.clock.Add(2 * time.Second)
	}
	want := map[string]int{"waiting": rounds, "running": rounds, "queue": rounds, "missing": rounds}
	if got := q.counts(); !maps.Equal(got, want) {
		t.Errorf("queries sent %v, want %v (one per distinct query per evaluation)", got, want)
	}
}

// TestShadowRecordsInAPI: the decisions API serves the shadows' records
// with shadow true and their rule set, beside the live ones.
func TestShadowRecordsInAPI(t *testing.T) {
	q := &countingQuery{byQuery: byQuery{vals: map[string]float64{"waiting": 18, "running": 10, "queue": 3}}}
	e := newUnitServer(t, shadowRules, q, Options{})
	mux := http.NewServeMux()
	e.server.RegisterAPI(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	r := shadowRef("so")
	e.expect(t, r, 5, true)
	e.clock.Add(2 * time.Second)
	e.expect(t, r, 5, true)

	type key struct {
		ruleSet string
		shadow  bool
	}
	for path, perRuleSet := range map[string]int{"/api/v1/decisions": 1, "/api/v1/decisions/ns/so": 2} {
		code, body := get(t, srv.URL+path)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		var resp struct{ Decisions []Record }
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatal(err)
		}
		got := map[key][]Record{}
		for _, rec := range resp.Decisions {
			got[key{rec.RuleSet, rec.Shadow}] = append(got[key{rec.RuleSet, rec.Shadow}], rec)
		}
		if len(got) != 3 {
			t.Fatalf("%s: records by rule set %v, want chat (live), cand-a and cand-broken (shadow)", path, keysOf(got))
		}
		for k, n := range map[key]int{{"chat", false}: perRuleSet, {"cand-a", true}: perRuleSet, {"cand-broken", true}: perRuleSet} {
			if len(got[k]) != n {
				t.Errorf("%s: %d records of %v, want %d", path, len(got[k]), k, n)
			}
		}
		if a := got[key{"cand-a", true}]; len(a) > 0 && (a[0].Replicas != 12 || a[0].Error != "" || a[0].Explanation == "") {
			t.Errorf("%s: cand-a record %+v, want 12 replicas explained", path, a[0])
		}
		if b := got[key{"cand-broken", true}]; len(b) > 0 && b[0].Reason != "no_data" {
			t.Errorf("%s: cand-broken record reason %q, want no_data", path, b[0].Reason)
		}
		if l := got[key{"chat", false}]; len(l) > 0 && l[0].Replicas != 5 {
			t.Errorf("%s: live record %d replicas, want 5", path, l[0].Replicas)
		}
	}
}

func keysOf[K comparable, V any](m map[K]V) []K {
	var out []K
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestShadowMissing: a shadow rule set the scaler does not have is a
// warning, logged and counted once per trigger; the trigger answers.
func TestShadowMissing(t *testing.T) {
	q := &countingQuery{byQuery: byQuery{vals: map[string]float64{"waiting": 18, "running": 10}}}
	e := newUnitServer(t, recordRules, q, Options{})
	r := ref("ns", "so", map[string]string{"ruleSet": "chat", "model": "llama", ShadowMetadata: "nope"})
	for range 3 {
		e.expect(t, r, 5, true)
		e.clock.Add(2 * time.Second)
	}
	if got := testutil.ToFloat64(e.server.m.shadowMissing.WithLabelValues("nope")); got != 1 {
		t.Errorf("shadow_rule_sets_missing_total = %v, want 1 (once per trigger)", got)
	}
	if n := strings.Count(e.logs.String(), "shadow rule set missing"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, e.logs.String())
	}
	if !strings.Contains(e.logs.String(), "level=WARN") {
		t.Errorf("the missing shadow is not a warning:\n%s", e.logs.String())
	}
	if recs := history(t, e, "so"); len(recs) != 3 || slices.ContainsFunc(recs, func(r Record) bool { return r.Shadow }) {
		t.Errorf("%d records, want the live rule set's 3 only", len(recs))
	}
	if n := testutil.CollectAndCount(e.server.m.errors); n != 0 {
		t.Errorf("the missing shadow counted %d evaluation error series for the trigger", n)
	}
}

// TestShadowGaugeForgotten: the shadow gauge goes with the trigger.
func TestShadowGaugeForgotten(t *testing.T) {
	q := &countingQuery{byQuery: byQuery{vals: map[string]float64{"waiting": 18, "running": 10, "queue": 3}}}
	e := newUnitServer(t, shadowRules, q, Options{ForgetAfter: time.Minute})
	e.expect(t, shadowRef("old"), 5, true)
	e.clock.Add(45 * time.Second)
	e.expect(t, shadowRef("recent"), 5, true)
	if n := testutil.CollectAndCount(e.server.m.shadowDesired); n != 2 {
		t.Fatalf("%d shadow gauge series, want 2 (cand-a of old and recent)", n)
	}
	e.clock.Add(30 * time.Second)
	e.server.forgetIdle()
	if n := testutil.CollectAndCount(e.server.m.shadowDesired); n != 1 {
		t.Errorf("%d shadow gauge series after forgetting old, want 1", n)
	}
	if got := testutil.ToFloat64(e.server.m.shadowDesired.WithLabelValues("ns", "recent", "cand-a")); got != 12 {
		t.Errorf("recent's shadow gauge = %v, want 12", got)
	}
}

func TestShadowNames(t *testing.T) {
	for name, tc := range map[string]struct {
		value, live string
		want        []string
	}{
		"empty":            {"", "chat", nil},
		"one":              {"cand", "chat", []string{"cand"}},
		"trimmed":          {" candidate-a, candidate-b ", "chat", []string{"candidate-a", "candidate-b"}},
		"empty parts":      {",a,,b,", "chat", []string{"a", "b"}},
		"repeats":          {"a, b, a", "chat", []string{"a", "b"}},
		"live left out":    {"chat, a", "chat", []string{"a"}},
		"only separators":  {" , ,", "chat", nil},
		"inner space kept": {"a b", "chat", []string{"a b"}},
		"tabs are trimmed": {"\ta\t", "chat", []string{"a"}},
	} {
		t.Run(name, func(t *testing.T) {
			if got := shadowNames(tc.value, tc.live); !slices.Equal(got, tc.want) {
				t.Errorf("shadowNames(%q, %q) = %q, want %q", tc.value, tc.live, got, tc.want)
			}
		})
	}
}

func FuzzShadowNames(f *testing.F) {
	f.Add("candidate-a, candidate-b", "chat")
	f.Add(" , chat,,x ", "chat")
	f.Fuzz(func(t *testing.T, value, live string) {
		names := shadowNames(value, live)
		seen := map[string]bool{}
		for _, n := range names {
			if n == "" || n == live || seen[n] || strings.TrimSpace(n) != n || strings.Contains(n, ",") {
				t.Fatalf("shadowNames(%q, %q) = %q", value, live, names)
			}
			seen[n] = true
		}
	})
}

// TestShadowRemovedByReload: a reload that drops a shadow's rule set stops
// its evaluation and removes its gauge; the live rule set answers on, and
// a reload that brings it back resumes it.
func TestShadowRemovedByReload(t *testing.T) {
	q := &countingQuery{byQuery: byQuery{vals: map[string]float64{"waiting": 18, "running": 10, "queue": 3}}}
	e := newUnitServer(t, shadowRules, q, Options{})
	r := ref("ns", "so", map[string]string{"ruleSet": "chat", "model": "llama", ShadowMetadata: "cand-a"})
	e.expect(t, r, 5, true)
	if n := testutil.CollectAndCount(e.server.m.shadowDesired); n != 1 {
		t.Fatalf("%d shadow gauge series, want 1", n)
	}
	for i, rules := range []string{recordRules, shadowRules} {
		if err := os.WriteFile(e.path, []byte(rules), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.Reload(); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(2 * time.Second)
		e.expect(t, r, 5, true)
		if n, want := testutil.CollectAndCount(e.server.m.shadowDesired), i; n != want {
			t.Errorf("reload %d: %d shadow gauge series, want %d", i, n, want)
		}
	}
	if got := testutil.ToFloat64(e.server.m.shadowEvaluations.WithLabelValues("cand-a")); got != 2 {
		t.Errorf("cand-a evaluated %v times, want 2 (not while missing)", got)
	}
	if got := testutil.ToFloat64(e.server.m.shadowMissing.WithLabelValues("cand-a")); got != 1 {
		t.Errorf("missing counted %v times, want 1", got)
	}
}
