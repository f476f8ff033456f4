package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/k8s-nemesis/nemesis/activator"
)

// TestActivatorConfigLoads checks both routes with the activator's own
// loader: the endpoints, the policy, and the score block of the issue.
func TestActivatorConfigLoads(t *testing.T) {
	eps := []string{"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"}
	for _, tc := range []struct {
		policy string
		want   activator.PolicyName
	}{
		{leastRequest, activator.PolicyLeastRequest},
		{score, activator.PolicyScore},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			cfg, err := activatorConfig(tc.policy, eps)
			if err != nil {
				t.Fatal(err)
			}
			c, err := activator.ParseConfig("bench.yaml", []byte(cfg))
			if err != nil {
				t.Fatalf("%v\n%s", err, cfg)
			}
			if len(c.Routes) != 1 {
				t.Fatalf("%d routes", len(c.Routes))
			}
			r := c.Routes[0]
			if r.Policy != tc.want || strings.Join(r.Endpoints, ",") != strings.Join(eps, ",") {
				t.Errorf("policy %q endpoints %v", r.Policy, r.Endpoints)
			}
			if tc.policy != score {
				if r.Score != nil {
					t.Errorf("a %s route has a score block", tc.policy)
				}
				return
			}
			if r.Score == nil {
				t.Fatal("the score route has no score block")
			}
			if r.Score.Scrape.Interval != 50*time.Millisecond || r.Score.Scrape.Path != "/metrics" {
				t.Errorf("scrape %+v", r.Score.Scrape)
			}
			fams := map[string]string{}
			for _, m := range r.Score.Metrics {
				fams[m.Name] = m.Family
			}
			for name, fam := range map[string]string{"waiting": "vllm:num_requests_waiting", "running": "vllm:num_requests_running", "kv": "vllm:kv_cache_usage_perc"} {
				if fams[name] != fam {
					t.Errorf("metric %s is %q, want %q", name, fams[name], fam)
				}
			}
			if r.Score.Expression != "2 * waiting + 20 * kv + inflight" {
				t.Errorf("expression %q", r.Score.Expression)
			}
		})
	}
	if _, err := activatorConfig("fastest", eps); err == nil {
		t.Error("an unknown policy was accepted")
	}
}

func parseExposition(t *testing.T, b []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	return fams
}

// value is the one value of a family; histograms give their count.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no family %s", name)
	}
	var v float64
	for _, m := range f.GetMetric() {
		switch f.GetType() {
		case dto.MetricType_GAUGE:
			v += m.GetGauge().GetValue()
		case dto.MetricType_COUNTER:
			v += m.GetCounter().GetValue()
		case dto.MetricType_HISTOGRAM:
			v += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return v
}

// TestExposition parses what a backend serves with the parser the
// activator's scraper uses, and checks the stand-in's numbers.
func TestExposition(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		s                      vllmStats
		running, waiting, kv   float64
		prompt, requests, ttft float64
	}{
		{"idle", vllmStats{}, 0, 0, 0, 0, 0, 0},
		{"some", vllmStats{inflight: 3, served: 10}, 3, 0, 3.0 / standInKVSeqs, 10 * standInPromptTokens, 10, 10},
		{"queued", vllmStats{inflight: standInMaxSeqs + 5, served: 7}, standInMaxSeqs, 5, float64(standInMaxSeqs) / standInKVSeqs, 7 * standInPromptTokens, 7, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := appendExposition(nil, tc.s)
			fams := parseExposition(t, b)
			for name, want := range map[string]float64{
				"vllm:num_requests_running":        tc.running,
				"vllm:num_requests_waiting":        tc.waiting,
				"vllm:kv_cache_usage_perc":         tc.kv,
				"vllm:prompt_tokens_total":         tc.prompt,
				"vllm:request_success_total":       tc.requests,
				"vllm:time_to_first_token_seconds": tc.ttft,
				"vllm:e2e_request_latency_seconds": tc.ttft,
				"vllm:request_decode_time_seconds": tc.ttft,
				"vllm:cache_config_info":           1,
			} {
				if got := value(t, fams, name); got != want {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
			if n := len(fams["vllm:time_to_first_token_seconds"].GetMetric()[0].GetHistogram().GetBucket()); n != len(ttftBuckets())+1 {
				t.Errorf("%d TTFT buckets, want vLLM's %d and +Inf", n, len(ttftBuckets()))
			}
			// Appending keeps what was there.
			if got := appendExposition([]byte("x"), tc.s); !bytes.Equal(got[1:], b) || got[0] != 'x' {
				t.Error("appendExposition does not append")
			}
		})
	}
}

// TestBackendMetrics checks that a backend address reports its own
// requests: those answered in the counters, one in flight as running.
func TestBackendMetrics(t *testing.T) {
	srv := httptest.NewServer(newBackendHandler())
	t.Cleanup(srv.Close)
	get := func(path string) []byte {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Error(err)
			return nil
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s, %v", path, resp.Status, err)
		}
		return b
	}
	if b := get("/"); string(b) != "hello from the backend\n" {
		t.Errorf("GET / = %q", b)
	}
	get("/v1/anything")
	fams := parseExposition(t, get("/metrics"))
	if got := value(t, fams, "vllm:request_success_total"); got != 2 {
		t.Errorf("2 requests answered, %v counted", got)
	}
	if got := value(t, fams, "vllm:num_requests_running"); got != 0 {
		t.Errorf("idle backend reports %v running (a scrape is not a request)", got)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		get("/slow") // held for a second at the backend
	}()
	t.Cleanup(func() { <-done })
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams := parseExposition(t, get("/metrics"))
		if value(t, fams, "vllm:num_requests_running") == 1 && value(t, fams, "vllm:kv_cache_usage_perc") == 1.0/standInKVSeqs {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a request held at the backend never showed as running")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMedianRatio(t *testing.T) {
	pair := func(lr, sc float64) pairRun {
		return pairRun{lr: policyRun{wrk: wrkResult{rps: lr}}, score: policyRun{wrk: wrkResult{rps: sc}}}
	}
	for _, tc := range []struct {
		name  string
		pairs []pairRun
		want  float64
	}{
		{"one", []pairRun{pair(100, 90)}, 0.9},
		{"odd", []pairRun{pair(100, 99), pair(200, 100), pair(100, 97)}, 0.97},
		{"even", []pairRun{pair(100, 99), pair(100, 80), pair(100, 95), pair(100, 120)}, 0.97},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := medianRatio(tc.pairs); got < tc.want-1e-9 || got > tc.want+1e-9 {
				t.Errorf("median ratio %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPairOrder checks that each policy goes first in every other pair.
func TestPairOrder(t *testing.T) {
	first := map[string]int{}
	for i := range 4 {
		o := pairOrder(i)
		if o[0] == o[1] || o[0] != leastRequest && o[0] != score || o[1] != leastRequest && o[1] != score {
			t.Fatalf("pair %d: %v", i, o)
		}
		first[o[0]]++
	}
	if first[leastRequest] != 2 || first[score] != 2 {
		t.Errorf("first of 4 pairs: %v", first)
	}
}

func TestFormatScrapeErrors(t *testing.T) {
	for _, tc := range []struct {
		in   map[string]float64
		want string
	}{
		{nil, "0"},
		{map[string]float64{"timeout": 0}, "0"},
		{map[string]float64{"timeout": 3, "http": 1, "parse": 0}, "http 1, timeout 3"},
	} {
		if got := formatScrapeErrors(tc.in); got != tc.want {
			t.Errorf("formatScrapeErrors(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseProcStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     time.Duration
		bad      bool
	}{
		{"plain", "4242 (nemesis) S 1 4242 4242 0 -1 4194560 2510 0 0 0 150 27 0 0 20 0 7 0 1234 1000 100", 1770 * time.Millisecond, false},
		{"name with spaces and parens", "7 (a b) c)) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0", 70 * time.Millisecond, false},
		{"no name", "7 a R 1", 0, true},
		{"short", "7 (x) R 1 2 3", 0, true},
		{"not a number", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 x 4 0 0", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStatCPU([]byte(tc.in))
			if tc.bad {
				if err == nil {
					t.Errorf("accepted, %v", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func FuzzParseProcStatCPU(f *testing.F) {
	f.Add([]byte("4242 (nemesis) S 1 4242 4242 0 -1 4194560 2510 0 0 0 150 27 0 0 20 0 7 0 1234 1000 100"))
	f.Add([]byte("7 (a b) c)) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := parseProcStatCPU(b); err == nil && d < 0 {
			t.Errorf("negative CPU time %v", d)
		}
	})
}
