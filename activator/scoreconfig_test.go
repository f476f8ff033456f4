package activator

import (
	"strings"
	"testing"
	"time"
)

func TestParseScoreConfig(t *testing.T) {
	cfg, err := LoadConfig("testdata/score.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	chat := cfg.Routes[0]
	if chat.Policy != PolicyScore || chat.Score == nil || chat.Affinity == nil {
		t.Fatalf("chat: %+v", chat)
	}
	want := ScrapeSpec{Path: "/metrics", Interval: 50 * time.Millisecond, Timeout: 40 * time.Millisecond, StaleAfter: 2 * time.Second}
	if chat.Score.Scrape != want {
		t.Errorf("scrape %+v, want %+v", chat.Score.Scrape, want)
	}
	if got := chat.Score.Metrics; len(got) != 3 || got[0] != (ScoreMetric{"waiting", "vllm:num_requests_waiting"}) || got[2] != (ScoreMetric{"kv", "vllm:kv_cache_usage_perc"}) {
		t.Errorf("metrics %+v", got)
	}
	// waiting, running, kv, inflight, sent, age
	vals := []float64{3, 1, 0.5, 2, 0, 0}
	if got := chat.Score.expression.Number(vals); got != 2*3+20*0.5+2 {
		t.Errorf("expression = %v", got)
	}
	if !chat.Score.filter.Condition(vals) || chat.Score.filter.Condition([]float64{5, 0, 0, 0, 0, 0}) {
		t.Error("filter wrong")
	}
	if *chat.Affinity != (AffinitySpec{Key: AffinityBodyPrefix, PrefixBytes: 2048, LoadFactor: 1.25}) {
		t.Errorf("affinity %+v", *chat.Affinity)
	}
	tenant := cfg.Routes[1]
	wantScrape := ScrapeSpec{Path: DefaultScrapePath, Port: 9100, Interval: DefaultScrapeInterval, Timeout: DefaultScrapeTimeout, StaleAfter: DefaultScrapeStaleAfter}
	if tenant.Score.Scrape != wantScrape || tenant.Score.filter != nil {
		t.Errorf("tenant scrape %+v (filter %v)", tenant.Score.Scrape, tenant.Score.filter)
	}
	if *tenant.Affinity != (AffinitySpec{Key: AffinityHeader, Header: "X-Session-Id", PrefixBytes: DefaultAffinityPrefixBytes, LoadFactor: DefaultAffinityLoadFactor}) {
		t.Errorf("tenant affinity %+v", *tenant.Affinity)
	}
	// q, inflight, sent, age
	if got := tenant.Score.expression.Number([]float64{11, 2, 0, 0}); got != 1002 {
		t.Errorf("tenant expression = %v", got)
	}
	// A reload of the same file keeps the routes (compiled expressions
	// are compared by their source).
	again, err := LoadConfig("testdata/score.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Routes {
		if !sameBackend(cfg.Routes[i], again.Routes[i]) {
			t.Errorf("route %s: the same configuration is seen as changed", cfg.Routes[i].Name)
		}
	}
	changed := *again.Routes[0].Score
	changed.Expression = "inflight"
	r := *again.Routes[0]
	r.Score = &changed
	if sameBackend(cfg.Routes[0], &r) {
		t.Error("a changed expression is seen as the same")
	}
}

func TestParseScoreConfigBad(t *testing.T) {
	_, err := LoadConfig("testdata/score.bad.yaml")
	f := "testdata/score.bad.yaml"
	want := []string{
		f + `:7:30: route "unknown-var": score.filter: unknown name kv`,
		f + `:8:33: route "unknown-var": score.expression: unknown name queued`,
		f + `:12:12: route "not-score": score: only for policy: score (the policy is least-request)`,
		f + `:13:15: route "not-score": affinity: only for policy: score (the policy is least-request)`,
		f + `:16:13: route "no-score": score: required for policy: score: the metrics to scrape and the expression that scores a pod`,
		f + `:21:26: route "fields": score.scrape.interval: 5ms is below the minimum of 10ms`,
		f + `:21:40: route "fields": score.scrape.timeout: 1s is longer than the interval, 50ms: at most one scrape of a pod runs at a time`,
		f + `:21:44: route "fields": score.scrape.colour: unknown field: scrape has path, port, interval, timeout and staleAfter`,
		f + `:22:17: route "fields": score.metrics.inflight: "inflight" is a variable of its own (inflight, sent, age): name the metric otherwise`,
		f + `:22:30: route "fields": score.metrics.2w: "2w" is not a name an expression can use: letters, digits and _, not starting with a digit`,
		f + `:22:40: route "fields": score.metrics.w: "not a name" is not a metric family name such as vllm:num_requests_waiting`,
		f + `:24:21: route "fields": affinity.key: "cookie" is not body-prefix or header:NAME`,
		f + `:24:41: route "fields": affinity.loadFactor: "1" is not a number above 1 and at most 100 (1.25 lets a pod hold 25 % more than the average)`,
		f + `:24:57: route "fields": affinity.prefixBytes: "100000" is not a whole number between 1 and 65536`,
		f + `:31:9: route "block": score.expression: only numbers, the variables (w, inflight, sent, age), + - * / ^, comparisons, && || !, ?: and abs, ceil, floor, round, min and max may be used here`,
	}
	got := ConfigErrors(err)
	var lines []string
	for _, e := range got {
		lines = append(lines, e.Error())
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}
