package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/k8s-nemesis/nemesis/internal/promtest"
)

const backtestRules = `ruleSets:
  - name: queue
    queries: {depth: 'sum(queue_depth{namespace="$namespace", model="$model"})'}
    replicas: depth / 4
    active: depth > 0
    max: 8
    onError: hold
    staleAfter: 2m
  - name: eager
    queries: {depth: 'sum(queue_depth{namespace="$namespace", model="$model"})'}
    replicas: depth / 2
    max: 8
    onError: fail
  - name: pods
    queries: {load: 'pod_load{namespace="$namespace"}'}
    replicas: load
    max: 8
`

const backtestSeries = `evaluation_interval: 15s
tests:
  - name: a queue builds up
    input_series:
      - series: 'queue_depth{namespace="ml", model="llama"}'
        values: '0 0 4 12 20x3 stale'
      - series: 'pod_load{namespace="ml", pod="a"}'
        values: '1x8'
      - series: 'pod_load{namespace="ml", pod="b"}'
        values: '1x8'
      - series: 'kube_replicas{namespace="ml"}'
        values: '0 0 1 1 2x5'
    builtins: {queued: '0 2 0x7'}
`

// backtestFiles writes the rules, series and ScaledObject files.
func backtestFiles(t *testing.T) (dir, rulesFile, seriesFile string) {
	t.Helper()
	dir = t.TempDir()
	rulesFile = filepath.Join(dir, "queue.yaml")
	seriesFile = filepath.Join(dir, "queue-test.yaml")
	for file, data := range map[string]string{rulesFile: backtestRules, seriesFile: backtestSeries,
		filepath.Join(dir, "so.yaml"):     "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: llama}\nspec:\n  pollingInterval: 15\n  maxReplicaCount: 6\n",
		filepath.Join(dir, "bad-so.yaml"): "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: llama}\nspec:\n  pollingInterval: soon\n",
	} {
		if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, rulesFile, seriesFile
}

// jsonStep is one line of --output json.
type jsonStep struct {
	Time     time.Time           `json:"time"`
	Values   map[string]*float64 `json:"values"`
	Builtins map[string]float64  `json:"builtins"`
	RuleSets map[string]struct {
		Desired  *int64 `json:"desired"`
		Active   bool   `json:"active"`
		Replicas int    `json:"replicas"`
		Error    string `json:"error"`
	} `json:"ruleSets"`
	Actual *float64 `json:"actual"`
}

func decodeSteps(t *testing.T, out []byte) []jsonStep {
	t.Helper()
	var steps []jsonStep
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var s jsonStep
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			t.Fatalf("%s: %v", sc.Text(), err)
		}
		steps = append(steps, s)
	}
	return steps
}

func TestRulesBacktestSeries(t *testing.T) {
	dir, rulesFile, seriesFile := backtestFiles(t)
	plot := filepath.Join(dir, "out.svg")
	args := []string{"rules", "backtest", "--rules", rulesFile, "--rule-set", "queue", "--rule-set", "eager",
		"--series", seriesFile, "--namespace", "ml", "--name", "llama", "--metadata", "model: llama",
		"--scaled-object", filepath.Join(dir, "so.yaml"), "--start", "1970-01-01T00:00:00Z", "--end", "now",
		"--actual", `kube_replicas{namespace="ml"}`, "--builtin", "queued=vector(0)", "--builtin", "inflight=vector(1)", "--plot", plot}
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), append(args, "--output", "json"), &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	steps := decodeSteps(t, stdout.Bytes())
	// now is the last sample of the file: 9 × 15s.
	if len(steps) != 10 {
		t.Fatalf("%d steps, want 10:\n%s", len(steps), stdout.String())
	}
	query := `sum(queue_depth{namespace="ml", model="llama"})`
	for i, want := range []float64{0, 0, 4, 12, 20, 20, 20} {
		s := steps[i]
		if v := s.Values[query]; v == nil || *v != want {
			t.Errorf("step %d: value %v, want %v", i, v, want)
		}
		q, e := s.RuleSets["queue"], s.RuleSets["eager"]
		if q.Desired == nil || *q.Desired != int64(math.Ceil(want/4)) || q.Active != (want > 0) || q.Error != "" {
			t.Errorf("step %d: queue %+v for depth %v", i, q, want)
		}
		if e.Desired == nil || *e.Desired != min(int64(math.Ceil(want/2)), 8) {
			t.Errorf("step %d: eager %+v for depth %v", i, e, want)
		}
		if s.Builtins["inflight"] != 1 || s.Builtins["queued"] != 0 || len(s.Builtins) != 2 {
			t.Errorf("step %d: builtins %v", i, s.Builtins)
		}
	}
	// After the stale marker: queue holds, eager has no answer.
	last := steps[9]
	if last.Values[query] != nil || last.RuleSets["queue"].Error != "no_data" || *last.RuleSets["queue"].Desired != 5 ||
		last.RuleSets["eager"].Desired != nil || last.RuleSets["eager"].Error != "no_data" {
		t.Errorf("last step %+v", last)
	}
	if last.Actual == nil || *last.Actual != 2 || steps[5].RuleSets["eager"].Replicas > 6 {
		t.Errorf("last step: actual %v, eager replicas %d (max 6 from the manifest)", last.Actual, steps[5].RuleSets["eager"].Replicas)
	}
	for _, want := range []string{"RULE SET", "queue", "eager", "actual", "UNDER ACTUAL", "waiting on memprom"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	svg, err := os.ReadFile(plot)
	if err != nil || !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("eager (simulated)")) {
		t.Errorf("--plot: %v, %.200s", err, svg)
	}

	// csv: a header and the same steps.
	stdout.Reset()
	if err := run(t.Context(), append(args, "--output", "csv"), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 11 || lines[0] != `time,"sum(queue_depth{namespace=""ml"", model=""llama""})",inflight,queued,queue.desired,queue.active,queue.replicas,queue.error,eager.desired,eager.active,eager.replicas,eager.error,actual` {
		t.Fatalf("csv:\n%s", stdout.String())
	}
	// Each row says what the JSON line of its step says.
	for i, line := range lines[1:] {
		s := steps[i]
		q, e := s.RuleSets["queue"], s.RuleSets["eager"]
		cell := func(p *int64) string {
			if p == nil {
				return ""
			}
			return strconv.FormatInt(*p, 10)
		}
		value := ""
		if v := s.Values[query]; v != nil {
			value = strconv.FormatFloat(*v, 'g', -1, 64)
		}
		want := fmt.Sprintf("%s,%s,1,0,%s,%t,%d,%s,%s,%t,%d,%s,%g", s.Time.Format(time.RFC3339), value, cell(q.Desired), q.Active, q.Replicas, q.Error,
			cell(e.Desired), e.Active, e.Replicas, e.Error, *s.Actual)
		if line != want {
			t.Errorf("csv row %d:\n%s\nwant\n%s", i, line, want)
		}
	}
	// table: the summary on stdout.
	stdout.Reset()
	if err := run(t.Context(), append(args, "--output", "table"), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "q1 = "+query) || !strings.Contains(stdout.String(), "REPLICA-HOURS") {
		t.Errorf("table:\n%s", stdout.String())
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestRulesBacktestSeriesBuiltins: the test's own values of queued are its
// history when --builtin gives none (TestRulesBacktestSeries overrides
// them with vector(0)).
func TestRulesBacktestSeriesBuiltins(t *testing.T) {
	_, rulesFile, seriesFile := backtestFiles(t)
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"rules", "backtest", "--rules", rulesFile, "--rule-set", "queue", "--series", seriesFile,
		"--namespace", "ml", "--name", "llama", "--metadata", "model: llama", "--start", "-135s", "--end", "now", "--output", "json"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	steps := decodeSteps(t, stdout.Bytes())
	for i, s := range steps[:3] {
		queued := map[int]float64{1: 2}[i]
		if s.Builtins["queued"] != queued || s.RuleSets["queue"].Active != (queued > 0 || i == 2) {
			t.Errorf("step %d: queued %v, active %v", i, s.Builtins["queued"], s.RuleSets["queue"].Active)
		}
	}
}

func TestRulesBacktestBadInput(t *testing.T) {
	dir, rulesFile, seriesFile := backtestFiles(t)
	base := []string{"rules", "backtest", "--rules", rulesFile, "--series", seriesFile, "--namespace", "ml", "--name", "llama", "--metadata", "model: llama"}
	window := []string{"--start", "-2m", "--end", "now"}
	tests := map[string]struct {
		args []string
		want string
	}{
		"unknown rule set":  {args: append([]string{"--rule-set", "nope"}, window...), want: `no rule set named "nope": there are eager, pods, queue`},
		"end before start":  {args: []string{"--rule-set", "queue", "--start", "now", "--end", "-1m"}, want: "end 1970-01-01T00:01:15Z is before start 1970-01-01T00:02:15Z"},
		"step under 1s":     {args: append([]string{"--rule-set", "queue", "--step", "500ms"}, window...), want: "step 500ms is under 1s"},
		"a million steps":   {args: []string{"--rule-set", "queue", "--start", "-2000000s", "--end", "now", "--step", "1s"}, want: "1969-12-08T20:28:55Z to 1970-01-01T00:02:15Z at 1s is more than 1000000 steps: shorten the window or lengthen the step"},
		"several series":    {args: append([]string{"--rule-set", "pods"}, window...), want: `query pods.load (pod_load{namespace="ml"}): 2 series at 1970-01-01T00:00:15Z where one number is needed: aggregate it in PromQL`},
		"no data":           {args: []string{"--rule-set", "queue", "--start", "2026-01-01T00:00:00Z", "--end", "2026-01-01T01:00:00Z"}, want: `query queue.depth (sum(queue_depth{namespace="ml", model="llama"})): no data from 2026-01-01T00:00:00Z to 2026-01-01T01:00:00Z`},
		"query fails":       {args: append([]string{"--rule-set", "queue", "--actual", "rate(kube_replicas)"}, window...), want: `actual (rate(kube_replicas)): evaluating "rate(kube_replicas)": `},
		"bad builtin":       {args: append([]string{"--rule-set", "queue", "--builtin", "inflight"}, window...), want: `--builtin "inflight": want NAME=PromQL`},
		"bad time":          {args: []string{"--rule-set", "queue", "--start", "yesterday", "--end", "now"}, want: `--start: "yesterday" is not RFC 3339, now, or a duration relative to now such as -6h`},
		"bad hpa flags":     {args: append([]string{"--rule-set", "queue", "--hpa-sync-period", "0s", "--hpa-tolerance", "1.5"}, window...), want: "--hpa-sync-period must be at least 1s; --hpa-tolerance must be in [0, 1)"},
		"bad output":        {args: append([]string{"--rule-set", "queue", "--output", "xml"}, window...), want: `--output "xml": want one of table, csv, json`},
		"no window":         {args: []string{"--rule-set", "queue"}, want: "--start is required; --end is required"},
		"bad scaled object": {args: append([]string{"--rule-set", "queue", "--scaled-object", filepath.Join(dir, "bad-so.yaml")}, window...), want: filepath.Join(dir, "bad-so.yaml") + ":5:20: "},
		"both sources":      {args: append([]string{"--rule-set", "queue", "--prometheus-url", "http://127.0.0.1:1"}, window...), want: "give one of --prometheus-url and --series"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			plot := filepath.Join(t.TempDir(), "out.svg")
			var stdout, stderr bytes.Buffer
			// tc.args come last: a flag given twice takes its last value.
			args := append(append(base[:len(base):len(base)], "--output", "json", "--plot", plot), tc.args...)
			err := run(t.Context(), args, &stdout, &stderr)
			if exitCode(err) != 2 {
				t.Fatalf("exit %d (%v), want 2", exitCode(err), err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error:\n%s\nwant one line starting with:\n%s", msg, tc.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout is not empty:\n%s", stdout.String())
			}
			if _, err := os.Stat(plot); err == nil {
				t.Errorf("--plot was written")
			}
		})
	}
}

// writeOpenMetrics writes gauges in OpenMetrics text, one sample per step
// from start, for promtool's backfill.
func writeOpenMetrics(t *testing.T, path string, start time.Time, steps int, step time.Duration, series map[string]func(i int) float64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	names := map[string]bool{}
	for s := range series {
		names[s[:strings.IndexByte(s, '{')]] = true
	}
	for s, value := range series {
		name := s[:strings.IndexByte(s, '{')]
		if names[name] {
			fmt.Fprintf(w, "# TYPE %s gauge\n", name)
			names[name] = false
		}
		for i := range steps {
			ts := start.Add(time.Duration(i) * step)
			fmt.Fprintf(w, "%s %s %d\n", s, strconv.FormatFloat(value(i), 'g', -1, 64), ts.Unix())
		}
	}
	fmt.Fprintln(w, "# EOF")
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		t.Fatal(err)
	}
}

// queryRangeRequests reads Prometheus' own count of query_range requests.
func queryRangeRequests(t *testing.T, url string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var n float64
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "prometheus_http_requests_total{") && strings.Contains(line, `handler="/api/v1/query_range"`) {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatal(err)
			}
			n += v
		}
	}
	return n
}

// TestRulesBacktestPrometheus backfills four hours at 1s into a real
// Prometheus with promtool and backtests them: 14,401 steps, so each range
// query takes two requests, and every step's answer is checked.
func TestRulesBacktestPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real Prometheus (-short)")
	}
	promtool := promtest.Promtool(t)
	dir, rulesFile, _ := backtestFiles(t)
	promDir := filepath.Join(dir, "prom")
	// Within one UTC day, so that the backfill is one block, which the
	// test Prometheus' short time retention (relative to its newest
	// block) does not delete.
	start := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour).Add(time.Hour)
	const steps = 4*3600 + 1
	depth := func(i int) float64 { return float64((i / 600) % 9 * 4) } // a 90-minute saw, changing every 10 minutes
	om := filepath.Join(dir, "data.om")
	writeOpenMetrics(t, om, start, steps, time.Second, map[string]func(int) float64{
		`queue_depth{namespace="ml",model="llama"}`:                            depth,
		`nemesis_activator_requests_queued{namespace="ml",service="llama"}`:    func(i int) float64 { return float64(i % 2) },
		`nemesis_activator_requests_in_flight{namespace="ml",service="llama"}`: func(int) float64 { return 3 },
		`kube_replicas{namespace="ml"}`:                                        func(i int) float64 { return math.Ceil(depth(i) / 4) },
	})
	if out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h", om, filepath.Join(promDir, "data")).CombinedOutput(); err != nil {
		t.Fatalf("promtool: %v\n%s", err, out)
	}
	srv := promtest.StartServer(t, promtest.Options{Dir: promDir})
	before := queryRangeRequests(t, srv.URL())

	var stdout, stderr bytes.Buffer
	end := start.Add((steps - 1) * time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	err := run(ctx, []string{"rules", "backtest", "--rules", rulesFile, "--rule-set", "queue", "--prometheus-url", srv.URL(),
		"--namespace", "ml", "--name", "llama", "--metadata", "model: llama", "--step", "1s",
		"--start", start.Format(time.RFC3339), "--end", end.Format(time.RFC3339), "--actual", `kube_replicas{namespace="ml"}`,
		"--output", "json"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	// Four range queries (depth, inflight, queued, actual), two requests each.
	if got := queryRangeRequests(t, srv.URL()) - before; got != 8 {
		t.Errorf("%v query_range requests, want 4 queries × 2 chunks = 8", got)
	}
	got := decodeSteps(t, stdout.Bytes())
	if len(got) != steps {
		t.Fatalf("%d steps, want %d", len(got), steps)
	}
	query := `sum(queue_depth{namespace="ml", model="llama"})`
	matches := 0
	for i, s := range got {
		if want := start.Add(time.Duration(i) * time.Second); !s.Time.Equal(want) {
			t.Fatalf("step %d at %v, want %v", i, s.Time, want)
		}
		v := s.Values[query]
		q := s.RuleSets["queue"]
		if v == nil || *v != depth(i) || q.Desired == nil || *q.Desired != int64(math.Ceil(depth(i)/4)) {
			t.Fatalf("step %d: value %v desired %v, want %v and %v", i, v, q.Desired, depth(i), math.Ceil(depth(i)/4))
		}
		if queued := float64(i % 2); s.Builtins["queued"] != queued || s.Builtins["inflight"] != 3 || q.Active != (depth(i) > 0 || queued > 0) {
			t.Fatalf("step %d: builtins %v active %v", i, s.Builtins, q.Active)
		}
		if s.Actual == nil || *s.Actual != math.Ceil(depth(i)/4) {
			t.Fatalf("step %d: actual %v", i, s.Actual)
		}
		if float64(q.Replicas) == *s.Actual {
			matches++
		}
	}
	if matches == 0 {
		t.Errorf("the simulation never ran what actually ran")
	}
	if !strings.Contains(stderr.String(), "waiting on prometheus (4 range queries)") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}

func TestProgressBar(t *testing.T) {
	var b bytes.Buffer
	p := &progressBar{w: &b}
	p.update("query", 1, 4)
	p.update("replay", 10, 40) // within 100ms of the last draw: skipped
	p.update("replay", 40, 40) // the end is always drawn
	p.done()
	want := "\r\033[K[#######.......................] 1/4 range queries" +
		"\r\033[K[##############################] 40/40 steps" + "\r\033[K"
	if b.String() != want {
		t.Errorf("got %q\nwant %q", b.String(), want)
	}
}

// TestRulesBacktestHPASyncPeriod: the controller's sync period reaches the
// simulation: with a 1 m sync the HPA follows the rising queue later than
// with the default 15 s.
func TestRulesBacktestHPASyncPeriod(t *testing.T) {
	dir, rulesFile, seriesFile := backtestFiles(t)
	replicas := func(extra ...string) []int {
		args := append([]string{"rules", "backtest", "--rules", rulesFile, "--rule-set", "queue",
			"--series", seriesFile, "--namespace", "ml", "--name", "llama", "--metadata", "model: llama",
			"--scaled-object", filepath.Join(dir, "so.yaml"), "--start", "1970-01-01T00:00:00Z", "--end", "now",
			"--builtin", "queued=vector(0)", "--builtin", "inflight=vector(1)", "--output", "json"}, extra...)
		var stdout, stderr bytes.Buffer
		if err := run(t.Context(), args, &stdout, &stderr); err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		var out []int
		for _, s := range decodeSteps(t, stdout.Bytes()) {
			out = append(out, s.RuleSets["queue"].Replicas)
		}
		return out
	}
	def, slow := replicas(), replicas("--hpa-sync-period", "1m")
	// depth 0 0 4 12 20…: the 15 s HPA reaches 3 at 45 s and 5 at 60 s;
	// the 1 m one syncs at 0 and 60 s only.
	if len(def) < 5 || def[3] != 3 || slow[3] != 1 {
		t.Errorf("replicas with a 15 s sync %v, with a 1 m sync %v: want 3 and 1 at 45 s", def, slow)
	}
}
