package activator

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// scoreRoute is a static score route over eps with the scoring.
func scoreRoute(eps []string, extra string) string {
	return "routes:\n  - name: s\n    policy: score\n    endpoints: [" + quoteList(eps) + "]\n" +
		"    score:\n      scrape: {interval: 20ms, timeout: 15ms, staleAfter: 2s}\n" +
		"      metrics: {waiting: vllm:num_requests_waiting, kv: vllm:kv_cache_usage_perc}\n" +
		"      expression: 2 * waiting + 20 * kv + inflight\n" + extra
}

// fakePod is a real HTTP server that reports vLLM's gauges on /metrics
// and can fail its scrapes in each way a pod can; other paths answer with
// its name, after hold is closed if set.
type fakePod struct {
	name    string
	srv     *httptest.Server
	mu      sync.Mutex
	waiting float64
	fault   string
	hold    chan struct{}
	active  atomic.Int64
}

func newFakePod(t *testing.T, name string) *fakePod {
	p := &fakePod{name: name}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	p.srv.Config.IdleTimeout = time.Second // closes idle keep-alives, as uvicorn does
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return p
}

func (p *fakePod) set(waiting float64, fault string) {
	p.mu.Lock()
	p.waiting, p.fault = waiting, fault
	p.mu.Unlock()
}

func (p *fakePod) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	waiting, fault, hold := p.waiting, p.fault, p.hold
	p.mu.Unlock()
	if r.URL.Path != "/metrics" {
		p.active.Add(1)
		if hold != nil {
			<-hold
		}
		p.active.Add(-1)
		n, _ := io.Copy(io.Discard, r.Body)
		if n > 0 {
			fmt.Fprintf(w, "%s:%d", p.name, n)
			return
		}
		fmt.Fprint(w, p.name)
		return
	}
	body := fmt.Sprintf("# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=\"m\"} %g\n"+
		"# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{model_name=\"m\"} 0\n", waiting)
	switch fault {
	case "slow":
		time.Sleep(600 * time.Millisecond)
	case "huge":
		body += strings.Repeat("padding_metric{l=\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"} 1\n", 30000)
	case "malformed":
		body = "vllm:num_requests_waiting{ 1 2 3\n"
	case "missing":
		body = "# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc 0\n"
	case "error":
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprint(w, body)
}

func scoredAll(t *testing.T, h *harness, pods ...*fakePod) {
	eventually(t, "every pod scored", func() bool {
		for _, p := range pods {
			if _, ok := metricValue(t, h.reg, "nemesis_activator_endpoint_score", map[string]string{"route": "s", "endpoint": hostOf(p.srv)}); !ok {
				return false
			}
		}
		return true
	})
}

// TestScoreBurstSpreads: 64 simultaneous requests on 4 idle identical
// pods, all within one scrape interval's data, end up 12 to 20 per pod.
func TestScoreBurstSpreads(t *testing.T) {
	release := make(chan struct{})
	var pods []*fakePod
	var eps []string
	for i := range 4 {
		p := newFakePod(t, fmt.Sprintf("p%d", i))
		p.hold = release
		pods = append(pods, p)
		eps = append(eps, hostOf(p.srv))
	}
	h := startActivator(t, strings.Replace(scoreRoute(eps, ""), "interval: 20ms, timeout: 15ms", "interval: 1s, timeout: 500ms", 1), Options{})
	scoredAll(t, h, pods...)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(h.url + "/gen")
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	eventually(t, "64 requests held by the pods", func() bool {
		var n int64
		for _, p := range pods {
			n += p.active.Load()
		}
		return n == 64
	})
	for _, p := range pods {
		if n := p.active.Load(); n < 12 || n > 20 {
			t.Errorf("pod %s holds %d of 64 requests, want 12 to 20", p.name, n)
		}
	}
	close(release)
	wg.Wait()
}

// TestScoreFollowsReports: a pod that reports a queue gets nothing while
// the others score lower.
func TestScoreFollowsReports(t *testing.T) {
	a, b := newFakePod(t, "a"), newFakePod(t, "b")
	a.set(10, "")
	h := startActivator(t, scoreRoute([]string{hostOf(a.srv), hostOf(b.srv)}, ""), Options{})
	scoredAll(t, h, a, b)
	if c := distribution(t, h.url, 40); c["b"] != 40 {
		t.Errorf("%v, want all on b (a reports 10 waiting)", c)
	}
}

// TestScoreScrapeFaults: a pod whose scrape fails in any way is scored on
// its requests in flight alone, counted by reason, and no request fails;
// a good scrape brings its numbers back.
func TestScoreScrapeFaults(t *testing.T) {
	for fault, reason := range map[string]string{"slow": "timeout", "huge": "too_large", "malformed": "parse", "missing": "missing", "error": "http"} {
		t.Run(fault, func(t *testing.T) {
			a, b := newFakePod(t, "a"), newFakePod(t, "b")
			a.set(3, "")  // scores 6 + inflight
			b.set(10, "") // scores 20 + inflight while its scrapes work
			// A timeout of 450ms (the slow fault takes 600ms): reading a
			// huge exposition under -race on a loaded machine must not
			// time out first (at 200ms it did, once).
			h := startActivator(t, strings.Replace(scoreRoute([]string{hostOf(a.srv), hostOf(b.srv)}, ""),
				"interval: 20ms, timeout: 15ms", "interval: 500ms, timeout: 450ms", 1), Options{})
			scoredAll(t, h, a, b)
			b.set(10, fault)
			labels := map[string]string{"route": "s", "endpoint": hostOf(b.srv), "reason": reason}
			eventually(t, "a "+reason+" error counted", func() bool {
				v, _ := metricValue(t, h.reg, "nemesis_activator_scrape_errors_total", labels)
				return v >= 2
			})
			if v, _ := metricValue(t, h.reg, "nemesis_activator_endpoint_score", map[string]string{"route": "s", "endpoint": hostOf(b.srv)}); v != 0 {
				t.Errorf("b's score %v while failing, want its in-flight count 0", v)
			}
			if c := distribution(t, h.url, 20); c["b"] != 20 {
				t.Errorf("with failing scrapes: %v, want all 20 on b (scored 0 in flight against a's 6)", c)
			}
			b.set(10, "")
			eventually(t, "b scored on its numbers again", func() bool {
				v, _ := metricValue(t, h.reg, "nemesis_activator_endpoint_score", map[string]string{"route": "s", "endpoint": hostOf(b.srv)})
				return v >= 20
			})
			if c := distribution(t, h.url, 20); c["a"] != 20 {
				t.Errorf("after recovery: %v, want all on a", c)
			}
		})
	}
}

func TestScoreStaleData(t *testing.T) {
	cfg, err := ParseConfig("t.yaml", []byte(scoreRoute([]string{"10.0.0.1:80", "10.0.0.2:80"}, "")))
	if err != nil {
		t.Fatal(err)
	}
	p := newScorePolicy(cfg.Routes[0], New(Options{}).m.forRoute("s", "", ""), http.DefaultClient, testLogger(t))
	eps := testEndpoints("10.0.0.1:80", "10.0.0.2:80")
	now := p.now()
	eps[0].scrape.Store(&podScrape{owner: p, at: now, vals: []float64{0, 0}})
	eps[1].scrape.Store(&podScrape{owner: p, at: now, vals: []float64{50, 0}})
	eps[0].inFlight.Store(5)
	if got := p.Pick(eps); got != eps[0] {
		t.Fatalf("fresh: picked %s, want 10.0.0.1 (5 against 100)", got.addr)
	}
	// Data older than staleAfter (2s): inflight alone, 5 against 0.
	eps[1].scrape.Store(&podScrape{owner: p, at: now - int64(3*time.Second), vals: []float64{50, 0}})
	if got := p.Pick(eps); got != eps[1] {
		t.Fatalf("stale: picked %s, want 10.0.0.2 (0 in flight)", got.addr)
	}
}

func TestScorePickDoesNotAllocate(t *testing.T) {
	p, eps := benchScorePolicy(t, 16)
	if n := testing.AllocsPerRun(1000, func() { p.Pick(eps) }); n != 0 {
		t.Errorf("Pick allocates %v times", n)
	}
	if n := testing.AllocsPerRun(1000, func() { p.PickKeyed(eps, 12345) }); n != 0 {
		t.Errorf("PickKeyed allocates %v times", n)
	}
}

func benchScorePolicy(t testing.TB, n int) (*scorePolicy, []*Endpoint) {
	var addrs []string
	for i := range n {
		addrs = append(addrs, fmt.Sprintf("10.0.0.%d:80", i+1))
	}
	cfg, err := ParseConfig("t.yaml", []byte(scoreRoute(addrs, "      filter: waiting < 5 && kv < 0.8\n    affinity: {key: body-prefix}\n")))
	if err != nil {
		t.Fatal(err)
	}
	p := newScorePolicy(cfg.Routes[0], New(Options{}).m.forRoute("s", "", ""), http.DefaultClient, testLogger(t))
	eps := testEndpoints(addrs...)
	p.ring.Store(newHashRing(eps))
	for i, ep := range eps {
		ep.scrape.Store(&podScrape{owner: p, at: p.now(), vals: []float64{float64(i % 7), 0.1 * float64(i%9)}})
		ep.inFlight.Store(int64(i % 3))
	}
	return p, eps
}

// BenchmarkScorePick16 is a pick over 16 pods (aim: under 2 µs).
func BenchmarkScorePick16(b *testing.B) {
	p, eps := benchScorePolicy(b, 16)
	for b.Loop() {
		p.Pick(eps)
	}
}

// BenchmarkScorePickKeyed16 is an affinity pick over 16 pods.
func BenchmarkScorePickKeyed16(b *testing.B) {
	p, eps := benchScorePolicy(b, 16)
	var k uint64
	for b.Loop() {
		k += 0x9e3779b97f4a7c15
		p.PickKeyed(eps, k)
	}
}

// TestAffinityRing: a key stays on its pod while under the bound, spills
// to the next pod over it, and a pod leaving moves only its own keys.
func TestAffinityRing(t *testing.T) {
	p, eps := benchScorePolicy(t, 4)
	for _, ep := range eps {
		ep.inFlight.Store(0)
		ep.scrape.Store(&podScrape{owner: p, at: p.now(), vals: []float64{0, 0}})
	}
	home := map[uint64]*Endpoint{}
	share := map[*Endpoint]int{}
	for k := uint64(1); k <= 4000; k++ {
		key := k * 0x9e3779b97f4a7c15
		home[key] = p.PickKeyed(eps, key)
		if again := p.PickKeyed(eps, key); again != home[key] {
			t.Fatalf("key %d went to %s then %s", k, home[key].addr, again.addr)
		}
		share[home[key]]++
	}
	for ep, n := range share {
		if n < 700 || n > 1300 {
			t.Errorf("%s is home to %d of 4000 keys, want about 1000", ep.addr, n)
		}
	}
	// Over the bound: the home pod holds more than 1.25 × the average.
	var key uint64 = 0x9e3779b97f4a7c15
	h := home[key]
	h.inFlight.Store(3) // bound: ceil(1.25 × (3+1) / 4) = 2
	if got := p.PickKeyed(eps, key); got == h {
		t.Errorf("the home pod over its bound still got the key")
	}
	h.inFlight.Store(0)
	// A pod leaves: only its keys move.
	gone := eps[2]
	rest := []*Endpoint{eps[0], eps[1], eps[3]}
	p.ring.Store(newHashRing(rest))
	moved := 0
	for key, was := range home {
		now := p.PickKeyed(rest, key)
		if was != gone && now != was {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d keys of the pods that stayed moved", moved)
	}
}

// TestAffinityThroughProxy: requests sharing a body prefix (buffered and
// streamed bodies) or a header land on one pod, and the body arrives whole.
func TestAffinityThroughProxy(t *testing.T) {
	var pods []*fakePod
	var eps []string
	for i := range 4 {
		p := newFakePod(t, fmt.Sprintf("p%d", i))
		pods = append(pods, p)
		eps = append(eps, hostOf(p.srv))
	}
	h := startActivator(t, scoreRoute(eps, "    affinity: {key: body-prefix, prefixBytes: 64}\n"), Options{})
	scoredAll(t, h, pods...)
	post := func(body string) string {
		resp, err := http.Post(h.url+"/v1/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, %v", resp.StatusCode, err)
		}
		if want := fmt.Sprint(len(body)); !strings.HasSuffix(string(b), ":"+want) {
			t.Errorf("the pod got %q, want the whole body of %s bytes", b, want)
		}
		return string(b)
	}
	for _, size := range []int{200, 100 << 10} {
		for prefix := range 3 {
			sys := fmt.Sprintf("system prompt %d: %s", prefix, strings.Repeat("x", 64))
			first := post(sys + strings.Repeat("q", size))
			for i := range 5 {
				if got := post(sys + strings.Repeat(fmt.Sprint(i), size)); got != first {
					t.Errorf("body of %d bytes, prefix %d: went to %s, then %s", size, prefix, first, got)
				}
			}
		}
	}
}

func TestParseExpositionFormats(t *testing.T) {
	fams := map[string]int{"vllm:num_requests_waiting": 0, "vllm:prefix_cache_hits": 1, "vllm:time_to_first_token_seconds_count": 2}
	text := "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=\"a\"} 2\nvllm:num_requests_waiting{model_name=\"b\"} 3\n" +
		"# TYPE vllm:prefix_cache_hits_total counter\nvllm:prefix_cache_hits_total 7\n" +
		"# TYPE vllm:time_to_first_token_seconds histogram\nvllm:time_to_first_token_seconds_bucket{le=\"+Inf\"} 4\nvllm:time_to_first_token_seconds_sum 1.5\nvllm:time_to_first_token_seconds_count 4\n"
	om := "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=\"a # {x}\"} 2 1700000000.5\nvllm:num_requests_waiting{model_name=\"b\"} 3\n" +
		"# TYPE vllm:prefix_cache_hits counter\nvllm:prefix_cache_hits_total 7 # {trace_id=\"abc\"} 1.0 1700000000\n" +
		"vllm:time_to_first_token_seconds_count 4\n# EOF\n"
	for name, c := range map[string]struct {
		data string
		om   bool
	}{"text": {text, false}, "openmetrics": {om, true}} {
		vals, err := parseExposition([]byte(c.data), c.om, fams, 3)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if vals[0] != 5 || vals[1] != 7 || vals[2] != 4 {
			t.Errorf("%s: %v, want [5 7 4] (series summed, _total either way, histogram count)", name, vals)
		}
	}
}

// FuzzParseExposition: no exposition makes the parser panic, and a
// success has a value for each named family.
func FuzzParseExposition(f *testing.F) {
	f.Add([]byte("# TYPE w gauge\nw{a=\"b\"} 1\nw 2\n"), false)
	f.Add([]byte("# TYPE w counter\nw_total 1 # {t=\"x\"} 1 2\n# EOF\n"), true)
	f.Add([]byte("w{a=\"b c\\\" d\"} 1 123\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, om bool) {
		vals, err := parseExposition(data, om, map[string]int{"w": 0, "w_total": 1}, 2)
		if err == nil && len(vals) != 2 {
			t.Fatalf("%d values", len(vals))
		}
	})
}

// vllmLikeExposition is an exposition of a model server's shape: the
// three gauges a score reads among info metrics, counters and hists
// histograms of 22 buckets, as vLLM serves (about 2 KB per histogram).
func vllmLikeExposition(hists int) []byte {
	var b bytes.Buffer
	for _, g := range []string{"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"} {
		fmt.Fprintf(&b, "# HELP %s A gauge.\n# TYPE %s gauge\n%s{model_name=\"m\"} 3\n", g, g, g)
	}
	b.WriteString("# HELP vllm:cache_config_info Info.\n# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{block_size=\"16\",model_name=\"m\",num_gpu_blocks=\"1024\"} 1\n")
	for _, c := range []string{"vllm:prompt_tokens_total", "vllm:generation_tokens_total", "vllm:num_preemptions_total"} {
		fmt.Fprintf(&b, "# HELP %s A counter.\n# TYPE %s counter\n%s{model_name=\"m\"} 12345\n", c, c, c)
	}
	for h := range hists {
		name := fmt.Sprintf("vllm:latency_%d_seconds", h)
		fmt.Fprintf(&b, "# HELP %s A histogram.\n# TYPE %s histogram\n", name, name)
		for i, le := range []string{"0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1", "0.25", "0.5", "0.75", "1", "2.5", "5", "7.5", "10", "20", "40", "80", "160", "640", "2560", "+Inf"} {
			fmt.Fprintf(&b, "%s_bucket{le=\"%s\",model_name=\"m\"} %d\n", name, le, 100*i)
		}
		fmt.Fprintf(&b, "%s_sum{model_name=\"m\"} 123.5\n%s_count{model_name=\"m\"} 2200\n", name, name)
	}
	return b.Bytes()
}

func scoreFamilies() map[string]int {
	return map[string]int{"vllm:num_requests_waiting": 0, "vllm:num_requests_running": 1, "vllm:kv_cache_usage_perc": 2}
}

// TestKeepFamilies: the parser reads only the families a score can use,
// each whole, and the values are those of the whole exposition.
func TestKeepFamilies(t *testing.T) {
	data := vllmLikeExposition(12)
	fams := scoreFamilies()
	kept := keepFamilies(data, familyBases(fams))
	if len(kept) > len(data)/10 {
		t.Errorf("kept %d of %d bytes:\n%s", len(kept), len(data), kept)
	}
	whole, err := readFamilies(data, fams, 3)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseExposition(data, false, fams, 3)
	if err != nil || !slices.Equal(got, whole) {
		t.Errorf("filtered %v, %v; whole %v", got, err, whole)
	}
	for name, c := range map[string]struct {
		data, want string
	}{
		// A histogram's lines all go, or all stay.
		"histogram": {
			"# HELP x_seconds h\n# TYPE x_seconds histogram\nx_seconds_bucket{le=\"+Inf\"} 2\nx_seconds_sum 1\nx_seconds_count 2\n# TYPE y gauge\ny 1\n",
			"# HELP x_seconds h\n# TYPE x_seconds histogram\nx_seconds_bucket{le=\"+Inf\"} 2\nx_seconds_sum 1\nx_seconds_count 2\n"},
		// The TYPE line of a family stays when one of its samples does:
		// x_bucket is histogram x's bucket, not a family of its own.
		"short family": {"# TYPE x histogram\nx_bucket{le=\"1\"} 2\nx_sum 1\nx_count 2\n", "# TYPE x histogram\nx_bucket{le=\"1\"} 2\n"},
		// Comments, blank lines and other families go; a quoted name, a
		// line without a name and the last line without a newline stay.
		"others": {"# just a comment\n\n# TYPE z gauge\nz 1\n{\"x_seconds.q\"} 1\n# HELP\n  x_seconds_count 3", "{\"x_seconds.q\"} 1\n# HELP\n  x_seconds_count 3\n"},
		// A malformed line of another family no longer matters.
		"malformed other": {"this is { not a metric\nx_seconds_count 3\n", "x_seconds_count 3\n"},
	} {
		if got := string(keepFamilies([]byte(c.data), []string{"x_seconds", "x_bucket"})); got != c.want {
			t.Errorf("%s: kept\n%q, want\n%q", name, got, c.want)
		}
	}
	// A malformed line of a family read from still fails the scrape.
	if _, err := parseExposition([]byte("vllm:num_requests_waiting{model_name=\"broken\" 3\nthis is { not a metric\n"), false, fams, 3); err == nil || errors.As(err, new(*missingError)) {
		t.Errorf("a malformed named family: %v, want a parse error", err)
	}
}

// FuzzKeepFamilies: whatever the exposition, if the whole of it parses,
// the families kept parse too, to the same values, and a family missing
// from the whole is missing from what is kept.
func FuzzKeepFamilies(f *testing.F) {
	f.Add(vllmLikeExposition(1), "vllm:num_requests_waiting")
	f.Add([]byte("# TYPE w counter\nw_total 1\n# TYPE w_x gauge\nw_x 3\nw_total 2\n"), "w")
	f.Add([]byte("# TYPE x histogram\nx_bucket{le=\"1\"} 2\nx_sum 1\nx_count 2\n"), "x_bucket")
	f.Add([]byte("a 1\nb 2\na 3\n"), "a_count")
	f.Fuzz(func(t *testing.T, data []byte, fam string) {
		fams := map[string]int{fam: 0, fam + "_sum": 1}
		whole, werr := readFamilies(data, fams, 2)
		kept, kerr := readFamilies(keepFamilies(data, familyBases(fams)), fams, 2)
		if werr == nil && (kerr != nil || !slices.Equal(whole, kept)) {
			t.Fatalf("whole %v; kept %v, %v", whole, kept, kerr)
		}
		var me *missingError
		if errors.As(werr, &me) && kerr == nil {
			t.Fatalf("missing from the whole (%v), read from what is kept: %v", werr, kept)
		}
	})
}

// BenchmarkParseExposition is one scrape's parse of a model server's
// exposition (12 histograms, about 30 KB) for a score's three gauges.
func BenchmarkParseExposition(b *testing.B) {
	data := vllmLikeExposition(12)
	fams := scoreFamilies()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseExposition(data, false, fams, 3); err != nil {
			b.Fatal(err)
		}
	}
}
