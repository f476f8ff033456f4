//go:build browser

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/k8s-nemesis/nemesis/activator"
	"github.com/k8s-nemesis/nemesis/externalscaler"
	"github.com/k8s-nemesis/nemesis/internal/promtest"
)

// The browser test's rule sets: the live one and a shadow that answers
// twice as high.
const browserRules = `ruleSets:
  - name: chat
    description: one replica per 4 waiting requests
    queries:
      waiting: sum(vllm:num_requests_waiting{namespace="$namespace", model="$model"})
    replicas: waiting / 4
    active: waiting > 0
    max: 16
  - name: eager
    queries:
      waiting: sum(vllm:num_requests_waiting{namespace="$namespace", model="$model"})
    replicas: waiting / 2
    max: 16
`

// TestStatusPages opens the scaler's and the activator's status pages in
// headless Chromium (Debian's chromium, driven through chromedp), with both
// binaries running in-process against a real Prometheus: the tables must
// say what the JSON API says, a click on a chart dot must open that
// decision's explanation, the page must follow new decisions without a
// reload, the try form must answer, and the tables must read with
// JavaScript off. Screenshots go to $TMPDIR/nemesis-status-pages (or
// $NEMESIS_SCREENSHOTS).
func TestStatusPages(t *testing.T) {
	chrome, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("no chromium on PATH: go tool task deps:chromium installs Debian's (%v)", err)
	}
	shots := os.Getenv("NEMESIS_SCREENSHOTS")
	if shots == "" {
		shots = filepath.Join(os.TempDir(), "nemesis-status-pages")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}

	exp := promtest.StartExporter(t)
	prom := promtest.StartServer(t, promtest.Options{ScrapeTargets: []string{exp.Addr()}, ScrapeInterval: 200 * time.Millisecond})
	series := map[string]string{"namespace": "ml", "model": "llama"}
	const query = `sum(vllm:num_requests_waiting{namespace="ml", model="llama"})`

	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte(browserRules), 0o644); err != nil {
		t.Fatal(err)
	}
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	startCommand(t, "scaler", "--rules", rulesPath, "--prometheus-url", prom.URL(), "--grpc-address", grpcAddr,
		"--http-address", httpAddr, "--ui-try", "--query-cache-ttl", "100ms")
	scalerURL := "http://" + httpAddr
	waitReady(t, scalerURL+"/readyz")

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	keda := pb.NewExternalScalerClient(conn)
	ref := &pb.ScaledObjectRef{Namespace: "ml", Name: "llama", ScalerMetadata: map[string]string{"ruleSet": "chat", "model": "llama", externalscaler.ShadowMetadata: "eager"}}
	// decide makes waiting = v visible in Prometheus, then asks as KEDA
	// does, once the scaler's last answer is too old to be reused (1s).
	var asked time.Time
	decide := func(v float64) int64 {
		t.Helper()
		time.Sleep(time.Until(asked.Add(1100 * time.Millisecond)))
		defer func() { asked = time.Now() }()
		exp.Set("vllm:num_requests_waiting", series, v)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		if err := prom.WaitForValue(ctx, query, v); err != nil {
			t.Fatal(err)
		}
		resp, err := keda.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref})
		if err != nil {
			t.Fatal(err)
		}
		return resp.MetricValues[0].MetricValue
	}
	for _, v := range []float64{0, 6, 18, 30, 12, 4} {
		decide(v)
	}

	ctx := newBrowser(t, chrome)

	// The scaler's page: the tables hold what the API says.
	if err := chromedp.Do(ctx, chromedp.Navigate(scalerURL+"/?object=ml/llama"), chromedp.WaitVisible(chromedp.CSS("#object-table"))); err != nil {
		t.Fatal(err)
	}
	var api struct{ Decisions []externalscaler.Record }
	getJSONInto(t, scalerURL+"/api/v1/decisions", &api)
	type row struct {
		Object, RuleSet, Shadow, Replicas, Active, Explanation string
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]row](`[...document.querySelectorAll("#object-table tbody tr")].map(tr => ({
		Object: tr.dataset.object, RuleSet: tr.dataset.ruleSet, Shadow: tr.dataset.shadow,
		Replicas: tr.querySelector(".replicas").textContent.trim(), Active: tr.querySelector(".active").textContent.trim(),
		Explanation: tr.querySelector(".explanation").textContent.trim()}))`))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || len(api.Decisions) != 2 {
		t.Fatalf("page rows %+v, API decisions %d: want the live rule set and its shadow", rows, len(api.Decisions))
	}
	for _, rec := range api.Decisions {
		want := row{Object: "ml/llama", RuleSet: rec.RuleSet, Shadow: fmt.Sprint(rec.Shadow), Replicas: fmt.Sprint(rec.Replicas), Active: fmt.Sprint(rec.Active), Explanation: rec.Explanation}
		found := false
		for _, r := range rows {
			found = found || r == want
		}
		if !found {
			t.Errorf("no row %+v among %+v", want, rows)
		}
	}
	ruleSets, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#ruleset-table tbody tr")].map(tr => tr.dataset.ruleSet)`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ruleSets, ",") != "chat,eager" {
		t.Errorf("rule set rows %v, want chat,eager", ruleSets)
	}

	// A click on a dot of the chart opens that decision's explanation.
	var hist struct{ Decisions []externalscaler.Record }
	getJSONInto(t, scalerURL+"/api/v1/decisions/ml/llama", &hist)
	var pick *externalscaler.Record
	for i := range hist.Decisions {
		if r := &hist.Decisions[i]; !r.Shadow && r.Replicas == 8 { // waiting 30
			pick = r
		}
	}
	if pick == nil {
		t.Fatalf("no live decision of 8 replicas in %+v", hist.Decisions)
	}
	id := fmt.Sprintf("d-chat-%d", pick.Time.UnixNano())
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`svg#chart a[data-record="`+id+`"] circle`)),
		chromedp.WaitVisible(chromedp.CSS(`details#`+id+`[open] table.record-detail`)),
	); err != nil {
		t.Fatalf("clicking decision %s: %v", id, err)
	}
	explanation, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`details#`+id+` summary .explanation`)))
	if err != nil {
		t.Fatal(err)
	}
	open, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("`+id+`").open`))
	if err != nil {
		t.Fatal(err)
	}
	if !open || explanation != pick.Explanation || !strings.Contains(explanation, "(waiting = 30) / (4) = 7.5 → 8") {
		t.Errorf("clicked decision: open %v, explanation %q, API %q", open, explanation, pick.Explanation)
	}
	screenshot(t, ctx, filepath.Join(shots, "scaler.png"))

	// A new decision reaches the open page without a reload.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	if got := decide(44); got != 11 {
		t.Fatalf("waiting 44: %d replicas, want 11", got)
	}
	_, err = chromedp.Run(ctx, chromedp.Poll[chromedp.Void](`document.querySelector('#object-table tr[data-rule-set="chat"][data-shadow="false"] td.replicas').textContent.trim() === "11" && window.notReloaded === true && document.getElementById("`+id+`").open`,
		chromedp.WithPollingTimeout(15*time.Second)))
	if err != nil {
		t.Errorf("the page did not show the new decision (11 replicas) in place, with the picked one still open: %v", err)
	}

	// The try form: a candidate evaluated once, and an invalid one.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#try-rules"), "ruleSets:\n  - name: cautious\n    queries:\n      waiting: sum(vllm:num_requests_waiting{namespace=\"$namespace\", model=\"$model\"})\n    replicas: waiting / 8\n    max: 4\n"),
		chromedp.Click(chromedp.CSS("#try-form button")),
		chromedp.WaitVisible(chromedp.CSS("#try-explanation")),
	); err != nil {
		t.Fatal(err)
	}
	tried, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#try-explanation")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tried, "cautious would answer 4") || !strings.Contains(tried, "replicas 11 → 4: (waiting = 44) / (8) = 5.5 → 4 (0..4)") {
		t.Errorf("try: %q", tried)
	}
	screenshot(t, ctx, filepath.Join(shots, "scaler-try.png"))
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#try-rules"), "ruleSets:\n  - name: x\n    replicas: nope +\n    max: 4\n"),
		chromedp.Click(chromedp.CSS("#try-form button")),
		chromedp.WaitVisible(chromedp.CSS("#try-problems")),
	); err != nil {
		t.Fatal(err)
	}
	where, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#try-problems td.where")))
	if err != nil {
		t.Fatal(err)
	}
	if where != "3:20" {
		t.Errorf("invalid rule set: problem at %q, want 3:20", where)
	}
	// Nothing tried reached KEDA or the records.
	var after struct{ Decisions []externalscaler.Record }
	getJSONInto(t, scalerURL+"/api/v1/decisions/ml/llama", &after)
	for _, r := range after.Decisions {
		if r.RuleSet != "chat" && r.RuleSet != "eager" {
			t.Errorf("a tried rule set left a record: %+v", r)
		}
	}

	// Without JavaScript the tables are all there.
	noJS := newBrowser(t, chrome)
	disableScripts := func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return chromedp.Void{}, err
	}
	if err := chromedp.Do(noJS, disableScripts, chromedp.Navigate(scalerURL+"/"), chromedp.WaitVisible(chromedp.CSS("#object-table"))); err != nil {
		t.Fatal(err)
	}
	n, err := chromedp.Run(noJS, chromedp.Evaluate[int](`document.querySelectorAll("#object-table tbody tr[data-object]").length + document.querySelectorAll("details.record").length`))
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 + len(after.Decisions); n != want {
		t.Errorf("without JavaScript: %d rows and records, want %d", n, want)
	}

	checkActivatorPage(t, ctx, shots)
}

// checkActivatorPage runs an activator before two slow backends, holds
// requests in its queue, and checks its page against /api/v1/status.
func checkActivatorPage(t *testing.T, ctx context.Context, shots string) {
	// Backends as model servers behave: slow to answer (here, until the
	// test lets them), and closing idle keep-alive connections after 2s.
	release := make(chan struct{})
	var backends []string
	for range 2 {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			fmt.Fprintln(w, "done")
		}))
		srv.Config.IdleTimeout = 2 * time.Second
		srv.Start()
		t.Cleanup(srv.Close)
		backends = append(backends, `"`+srv.Listener.Addr().String()+`"`)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })

	cfgPath := filepath.Join(t.TempDir(), "activator.yaml")
	cfg := "routes:\n  - name: chat\n    match: {pathPrefix: /v1/}\n    endpoints: [" + strings.Join(backends, ", ") + "]\n" +
		"    policy: least-request\n    queue: {size: 100, timeout: 1m}\n    endpointConcurrency: 1\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	httpAddr, adminAddr := freeAddr(t), freeAddr(t)
	startCommand(t, "activator", "--config", cfgPath, "--http-address", httpAddr, "--admin-address", adminAddr, "--config-resync", "200ms")
	adminURL := "http://" + adminAddr
	waitReady(t, adminURL+"/readyz")

	// Four requests: one in flight on each backend, two held.
	reqCtx, cancelReqs := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { once.Do(func() { close(release) }); cancelReqs(); wg.Wait() })
	for range 4 {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(reqCtx, http.MethodPost, "http://"+httpAddr+"/v1/completions", strings.NewReader(`{"prompt": "hi"}`))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	var st activator.Status
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		getJSONInto(t, adminURL+"/api/v1/status", &st)
		if len(st.Routes) == 1 && st.Routes[0].QueueDepth == 2 && st.Routes[0].InFlight == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the activator did not hold 2 and proxy 2: %+v", st)
		}
	}
	// A refused reload: the configuration in force keeps serving.
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(cfg, "least-request", "fastest", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); st.LastReloadError == ""; time.Sleep(50 * time.Millisecond) {
		getJSONInto(t, adminURL+"/api/v1/status", &st)
		if time.Now().After(deadline) {
			t.Fatalf("the broken configuration was not refused: %+v", st)
		}
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(adminURL+"/"), chromedp.WaitVisible(chromedp.CSS("#route-table"))); err != nil {
		t.Fatal(err)
	}
	type route struct{ Name, Policy, Match, QueueDepth, InFlight string }
	type endpoint struct{ Address, State, InFlight string }
	page, err := chromedp.Run(ctx, chromedp.Evaluate[struct {
		Version   string
		Problems  []string
		Routes    []route
		Endpoints []endpoint
	}](`({
		Version: document.getElementById("config-version").textContent.trim(),
		Problems: [...document.querySelectorAll("#reload-problems li")].map(li => li.textContent.trim()),
		Routes: [...document.querySelectorAll("#route-table tbody tr[data-route]")].map(tr => ({
			Name: tr.dataset.route, Policy: tr.querySelector(".policy").textContent.trim(), Match: tr.querySelector(".match").textContent.trim(),
			QueueDepth: tr.querySelector(".queue-depth").textContent.trim(), InFlight: tr.querySelector(".inflight").textContent.trim()})),
		Endpoints: [...document.querySelectorAll("table.endpoint-table tbody tr[data-endpoint]")].map(tr => ({
			Address: tr.dataset.endpoint, State: tr.querySelector(".state").textContent.trim(), InFlight: tr.querySelector(".inflight").textContent.trim()})),
	})`))
	if err != nil {
		t.Fatal(err)
	}
	getJSONInto(t, adminURL+"/api/v1/status", &st)
	r := st.Routes[0]
	if page.Version != fmt.Sprint(st.ConfigVersion) || len(page.Routes) != 1 ||
		page.Routes[0] != (route{r.Name, r.Policy, r.Match, fmt.Sprint(r.QueueDepth), fmt.Sprint(r.InFlight)}) {
		t.Errorf("page version %s, routes %+v; API version %d, route %+v", page.Version, page.Routes, st.ConfigVersion, r)
	}
	if len(page.Endpoints) != len(r.Endpoints) {
		t.Fatalf("page endpoints %+v, API %+v", page.Endpoints, r.Endpoints)
	}
	for i, e := range r.Endpoints {
		if want := (endpoint{e.Address, e.State, fmt.Sprint(e.InFlight)}); page.Endpoints[i] != want || e.InFlight != 1 || e.State != activator.EndpointReady {
			t.Errorf("endpoint %d: page %+v, API %+v", i, page.Endpoints[i], e)
		}
	}
	if len(page.Problems) == 0 || !strings.HasPrefix(page.Problems[0], cfgPath+":5:13: ") || !strings.Contains(page.Problems[0], "fastest") {
		t.Errorf("reload problems on the page %q, want the refused file's file:line:column", page.Problems)
	}
	screenshot(t, ctx, filepath.Join(shots, "activator.png"))
}

// newBrowser starts a headless Chromium for the test, stopped when it ends.
func newBrowser(t *testing.T, chrome string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.WindowSize(1280, 1000),
		chromedp.Flag("headless", "new"),
		// No network but loopback: the page must need none.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser, for as long as ctx lives.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chrome, err)
	}
	return ctx
}

func screenshot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

func getJSONInto(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
