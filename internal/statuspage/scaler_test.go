package statuspage

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"

	"github.com/k8s-nemesis/nemesis/externalscaler"
	"github.com/k8s-nemesis/nemesis/metrics"
)

const pageRules = `ruleSets:
  - name: chat
    queries:
      waiting: sum(waiting{namespace="$namespace", model="$model"})
    replicas: waiting / 4
    max: 16
  - name: candidate
    queries:
      waiting: sum(waiting{namespace="$namespace", model="$model"})
    replicas: waiting / 2
    max: 16
`

// values answers every query with the value set for its metric name.
type values struct {
	mu sync.Mutex
	v  map[string]float64
}

func (q *values) Query(_ context.Context, query string) (metrics.Result, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	name := strings.TrimPrefix(query[:strings.IndexByte(query, '{')], "sum(")
	return metrics.Result{Values: []float64{q.v[name]}}, nil
}

type scalerEnv struct {
	server *externalscaler.Server
	store  *externalscaler.RuleStore
	q      *values
	url    string
	path   string
	now    time.Time
}

func newScalerEnv(t *testing.T, try bool) *scalerEnv {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(pageRules), 0o644); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	store, err := externalscaler.NewRuleStore([]string{path}, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &scalerEnv{store: store, q: &values{v: map[string]float64{"waiting": 10}}, path: path, now: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); e.now = e.now.Add(2 * time.Second); return e.now }
	e.server = externalscaler.New(store, e.q, externalscaler.Options{Logger: logger, Now: now})
	mux := http.NewServeMux()
	e.server.RegisterAPI(mux)
	RegisterScaler(mux, e.server, ScalerOptions{Try: try, Logger: logger, Now: now})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

// ask makes KEDA's GetMetrics call for ns/name.
func (e *scalerEnv) ask(t *testing.T, name string, meta map[string]string) int64 {
	t.Helper()
	resp, err := e.server.GetMetrics(context.Background(), &pb.GetMetricsRequest{ScaledObjectRef: &pb.ScaledObjectRef{Namespace: "ml", Name: name, ScalerMetadata: meta}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.MetricValues[0].MetricValue
}

func fetch(t *testing.T, method, u, contentType, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestScalerPage(t *testing.T) {
	e := newScalerEnv(t, false)
	meta := map[string]string{"ruleSet": "chat", "model": "llama", "shadowRuleSets": "candidate"}
	e.ask(t, "llama", meta)
	e.q.v["waiting"] = 30
	e.ask(t, "llama", meta)

	code, h, body := fetch(t, "GET", e.url+"/", "", "")
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("GET /: %d %v", code, h)
	}
	doc := parseHTML(t, body)
	// The tables hold what the JSON API says.
	var api struct{ Decisions []externalscaler.Record }
	_, _, raw := fetch(t, "GET", e.url+"/api/v1/decisions", "", "")
	if err := json.Unmarshal([]byte(raw), &api); err != nil {
		t.Fatal(err)
	}
	rows := doc.all("#object-table tbody tr")
	if len(rows) != len(api.Decisions) || len(rows) != 2 {
		t.Fatalf("%d ScaledObject rows, %d decisions in the API, want 2", len(rows), len(api.Decisions))
	}
	for _, rec := range api.Decisions {
		row := doc.find(`tr[data-object="ml/llama"][data-rule-set="` + rec.RuleSet + `"]`)
		if row == nil {
			t.Fatalf("no row for rule set %s", rec.RuleSet)
		}
		if got := row.text(".replicas"); got != itoa(rec.Replicas) {
			t.Errorf("%s: replicas cell %q, API %d", rec.RuleSet, got, rec.Replicas)
		}
		if got := row.text(".explanation"); got != rec.Explanation {
			t.Errorf("%s: explanation cell %q, API %q", rec.RuleSet, got, rec.Explanation)
		}
	}
	if got := doc.text(`tr[data-rule-set="chat"] .explanation`); got != "replicas 3 → 8: (waiting = 30) / (4) = 7.5 → 8 (0..16)" {
		t.Errorf("explanation %q", got)
	}
	// The selected ScaledObject's chart: the live line and the shadow's, one dot per record.
	if n := len(doc.all("svg#chart path.line")); n != 2 {
		t.Errorf("%d chart lines, want 2 (live and shadow)", n)
	}
	dots := doc.all("svg#chart a.dot-link")
	if len(dots) != 4 {
		t.Fatalf("%d dots, want 4", len(dots))
	}
	for _, d := range dots {
		id := strings.TrimPrefix(d.attr("href"), "#")
		if doc.find("details#"+id) == nil {
			t.Errorf("dot %s links to no record", id)
		}
	}
	// Rule sets, with the reload state; a rejected reload shows where.
	if got := doc.text("#rules-version"); got != "1" {
		t.Errorf("rules version %q", got)
	}
	if err := os.WriteFile(e.path, []byte("ruleSets:\n  - name: broken\n    replicas: nope +\n    max: 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Reload(); err == nil {
		t.Fatal("a broken rule file reloaded")
	}
	_, _, body = fetch(t, "GET", e.url+"/", "", "")
	doc = parseHTML(t, body)
	if got := doc.text("#reload-problems .where"); got != e.path+":3:20" {
		t.Errorf("reload problem at %q, want %s:3:20", got, e.path)
	}
	if n := len(doc.all("#ruleset-table tbody tr")); n != 2 {
		t.Errorf("%d rule sets shown after a rejected reload, want the 2 in force", n)
	}
	// Try is off: the form is not served.
	if doc.find("#try-off") == nil || doc.find("#try-form") != nil {
		t.Error("the try form shows without --ui-try")
	}
	if code, _, _ := fetch(t, "POST", e.url+"/try", "application/x-www-form-urlencoded", "object=ml%2Fllama&rules=x"); code != http.StatusMethodNotAllowed && code != http.StatusNotFound {
		t.Errorf("POST /try without --ui-try: %d", code)
	}
	// An unknown ScaledObject is a 404 page, still readable.
	if code, _, _ := fetch(t, "GET", e.url+"/?object=ml/nope", "", ""); code != http.StatusNotFound {
		t.Errorf("unknown ScaledObject: %d", code)
	}
	// The assets are served from the binary.
	for _, a := range []string{"style.css", "live.js"} {
		if code, _, body := fetch(t, "GET", e.url+AssetsPath+a, "", ""); code != http.StatusOK || len(body) < 100 {
			t.Errorf("%s: %d, %d bytes", a, code, len(body))
		}
	}
}

func TestScalerTryForm(t *testing.T) {
	e := newScalerEnv(t, true)
	e.ask(t, "llama", map[string]string{"ruleSet": "chat", "model": "llama"})
	e.q.v["queue"] = 9
	form := func(rules, ruleSet string) url.Values {
		return url.Values{"object": {"ml/llama"}, "ruleSet": {ruleSet}, "rules": {rules}}
	}
	post := func(v url.Values) (int, *node) {
		code, _, body := fetch(t, "POST", e.url+"/try", "application/x-www-form-urlencoded", v.Encode())
		return code, parseHTML(t, body)
	}
	good := "ruleSets:\n  - name: queue\n    queries: {q: 'sum(queue{namespace=\"$namespace\", model=\"$model\"})'}\n    replicas: q / 2\n    max: 8\n"
	code, doc := post(form(good, ""))
	if code != http.StatusOK {
		t.Fatalf("try: %d", code)
	}
	if got := doc.text("#try-explanation"); !strings.Contains(got, "replicas 3 → 5: (q = 9) / (2) = 4.5 → 5 (0..8)") {
		t.Errorf("try explanation %q", got)
	}
	// The form keeps what was pasted.
	if got := doc.s.Find("#try-rules").Text(); got != good {
		t.Errorf("the form lost the rules: %q", got)
	}
	// It changed nothing.
	recs, _ := e.server.History("ml", "llama")
	if len(recs) != 1 || len(e.server.RuleSets().RuleSets) != 2 {
		t.Errorf("after a try: %d records, %d rule sets", len(recs), len(e.server.RuleSets().RuleSets))
	}

	code, doc = post(form("ruleSets:\n  - name: x\n    replicas: nope +\n    max: 4\n", ""))
	if code != http.StatusUnprocessableEntity || doc.text("#try-problems .where") != "3:20" {
		t.Errorf("invalid rule set: %d, problem at %q, want 3:20", code, doc.text("#try-problems .where"))
	}
	code, doc = post(form("#"+strings.Repeat("x", 70<<10), ""))
	if code != http.StatusBadRequest || !strings.Contains(doc.text("#try-error"), "larger than 64 KiB") {
		t.Errorf("70 KiB of rules: %d %q", code, doc.text("#try-error"))
	}
	// The JSON twin.
	code, _, body := fetch(t, "POST", e.url+"/api/v1/try?object=ml/llama", "application/yaml", good)
	var resp struct {
		Decision *externalscaler.Record
		Error    string
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || code != http.StatusOK || resp.Decision == nil || resp.Decision.Replicas != 5 {
		t.Errorf("POST /api/v1/try: %d %s", code, body)
	}
	code, _, body = fetch(t, "POST", e.url+"/api/v1/try?object=ml/nope", "application/yaml", good)
	if code != http.StatusNotFound || !strings.Contains(body, "ml/nope") {
		t.Errorf("unknown ScaledObject: %d %s", code, body)
	}
}

// node is a parsed page, or a part of it.
type node struct{ s *goquery.Selection }

func parseHTML(t *testing.T, body string) *node {
	t.Helper()
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return &node{doc.Selection}
}

// find is the first element matching the CSS selector, or nil.
func (n *node) find(sel string) *node {
	s := n.s.Find(sel).First()
	if s.Length() == 0 {
		return nil
	}
	return &node{s}
}

func (n *node) all(sel string) []*node {
	var out []*node
	n.s.Find(sel).Each(func(_ int, s *goquery.Selection) { out = append(out, &node{s}) })
	return out
}

// text is the trimmed text of the first element matching sel, with its
// runs of white space made one space.
func (n *node) text(sel string) string {
	return strings.Join(strings.Fields(n.s.Find(sel).First().Text()), " ")
}

func (n *node) attr(name string) string {
	v, _ := n.s.Attr(name)
	return v
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// manyObjects is a scaler source with n ScaledObjects, one record each.
type manyObjects struct{ n int }

func (m manyObjects) Decisions() []externalscaler.Record {
	recs := make([]externalscaler.Record, m.n)
	for i := range recs {
		recs[i] = externalscaler.Record{Namespace: "ml", Name: "model-" + strconv.Itoa(100000+i), RuleSet: "chat", Replicas: int64(i % 7), Time: time.Unix(int64(i), 0)}
	}
	return recs
}
func (manyObjects) History(string, string) ([]externalscaler.Record, bool) { return nil, false }
func (manyObjects) RuleSets() externalscaler.RuleSetsResponse {
	return externalscaler.RuleSetsResponse{}
}
func (manyObjects) TryObject(context.Context, []byte, string, string) (externalscaler.Record, int, error) {
	return externalscaler.Record{}, 0, nil
}
func (manyObjects) RegisterTryAPI(*http.ServeMux) {}

func TestScalerPageBounded(t *testing.T) {
	mux := http.NewServeMux()
	RegisterScaler(mux, manyObjects{n: MaxRows + 100}, ScalerOptions{})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	_, _, body := fetch(t, "GET", srv.URL+"/?object=ml/model-100000", "", "")
	doc := parseHTML(t, body)
	if n := len(doc.all("#object-table tbody tr[data-object]")); n != MaxRows {
		t.Errorf("%d rows, want %d", n, MaxRows)
	}
	if got := doc.text("#objects-cut"); !strings.HasPrefix(got, "Showing the first 500 of 600 decisions") {
		t.Errorf("cut notice %q", got)
	}
	if n := len(doc.all("#try-object option")); n != 0 {
		t.Errorf("%d try options without --ui-try", n)
	}
}
