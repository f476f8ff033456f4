package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The two policies of the score comparison.
const (
	leastRequest = "least-request"
	score        = "score"
)

// scoreBlock is the score route's configuration: as e2e/routingbench's,
// the endpoint picker's scrape every 50 ms and filter, and the
// expression of docs/activator.md.
const scoreBlock = `    score:
      scrape: {path: /metrics, interval: 50ms, timeout: 40ms, staleAfter: 2s}
      metrics: {waiting: vllm:num_requests_waiting, running: vllm:num_requests_running, kv: vllm:kv_cache_usage_perc}
      filter: waiting < 5 && kv < 0.8
      expression: 2 * waiting + 20 * kv + inflight
`

// scoreSummary says in one line what the score route does, for the report.
const scoreSummary = "/metrics scraped every 50ms, filter waiting < 5 && kv < 0.8, expression 2 * waiting + 20 * kv + inflight"

// activatorConfig returns an activator configuration with one route,
// named bench, to the static endpoints under policy (least-request or
// score).
func activatorConfig(policy string, endpoints []string) (string, error) {
	quoted := make([]string, len(endpoints))
	for i, e := range endpoints {
		quoted[i] = strconv.Quote(e)
	}
	cfg := "routes:\n  - name: bench\n    endpoints: [" + strings.Join(quoted, ", ") + "]\n    policy: " + policy + "\n"
	switch policy {
	case leastRequest:
		return cfg, nil
	case score:
		return cfg + scoreBlock, nil
	}
	return "", fmt.Errorf("policy %q is neither %s nor %s", policy, leastRequest, score)
}

// pairRun is one pair of the score comparison: the same load through a
// least-request route and through a score route.
type pairRun struct {
	lr, score wrkResult
	// scrapeErrors counts the score route's failed scrapes during its
	// run, by reason; such a pod is scored on its requests in flight.
	scrapeErrors map[string]float64
}

func (p pairRun) ratio() float64 { return p.score.rps / p.lr.rps }

// medianRatio is the median of the pairs' score/least-request ratios.
func medianRatio(pairs []pairRun) float64 {
	r := make([]float64, len(pairs))
	for i, p := range pairs {
		r[i] = p.ratio()
	}
	return medianOf(r)
}

// medianOf returns the median of v (the mean of the middle two for an
// even count), sorting v.
func medianOf(v []float64) float64 {
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// pairOrder is the order of the two policies in pair i (from 0): the
// first of each pair alternates, so that a drift of the machine within a
// pair favours neither.
func pairOrder(i int) [2]string {
	if i%2 == 0 {
		return [2]string{leastRequest, score}
	}
	return [2]string{score, leastRequest}
}

// scorePairs measures the activator on a least-request route and on a
// score route to the same endpoints, under the same wrk load, in pairs.
// Each run gets an activator of its own, started for it and stopped
// after it, so that the score route's scrapes run only in its own runs
// and count against it. The score run starts once every endpoint has a
// score, so that it measures scoring, not its fallback.
func scorePairs(ctx context.Context, o options, procs *procGroup, dir string, endpoints []string) ([]pairRun, int, error) {
	cfgs := map[string]string{}
	for _, pol := range []string{leastRequest, score} {
		cfg, err := activatorConfig(pol, endpoints)
		if err != nil {
			return nil, 0, err
		}
		cfgs[pol] = filepath.Join(dir, "activator-"+pol+".yaml")
		if err := os.WriteFile(cfgs[pol], []byte(cfg), 0o644); err != nil {
			return nil, 0, err
		}
	}
	one := func(pol string) (wrkResult, map[string]float64, error) {
		addr, admin := freeAddr(), freeAddr()
		name := "activator-" + pol
		if err := procs.start(ctx, dir, name, o.nemesis, "activator", "--config", cfgs[pol], "--http-address", addr, "--admin-address", admin, "--log-level", "warn",
			"--shutdown-delay", "0"); err != nil { // nothing to move away when its run is over
			return wrkResult{}, nil, err
		}
		defer procs.stop(name)
		if err := waitHTTP(ctx, "http://"+addr+"/"); err != nil {
			return wrkResult{}, nil, err
		}
		if pol == score {
			if err := waitScored(ctx, "http://"+admin+"/metrics", len(endpoints)); err != nil {
				return wrkResult{}, nil, err
			}
		}
		r, err := runWrk(ctx, options{duration: o.scoreDuration, connections: o.connections, threads: o.threads}, "http://"+addr+"/")
		if err != nil {
			return r, nil, fmt.Errorf("wrk against the %s route: %w", pol, err)
		}
		if pol != score {
			return r, nil, nil
		}
		m, err := adminMetrics(ctx, "http://"+admin+"/metrics")
		if err != nil {
			return r, nil, err
		}
		return r, scrapeErrors(m), nil
	}
	var (
		pairs []pairRun
		errs  int
	)
	fmt.Printf("%-6s %-14s %12s %8s %10s %10s %8s %s\n", "pair", "route", "req/s", "×lr", "p50", "p99", "errors", "scrape errors")
	for i := range o.scorePairs {
		var p pairRun
		for _, pol := range pairOrder(i) {
			r, se, err := one(pol)
			if err != nil {
				return pairs, errs, err
			}
			errs += r.errors
			if pol == score {
				p.score, p.scrapeErrors = r, se
			} else {
				p.lr = r
			}
		}
		pairs = append(pairs, p)
		for _, pol := range pairOrder(i) {
			r, ratio, se := p.lr, "-", ""
			if pol == score {
				r, ratio, se = p.score, fmt.Sprintf("%.3f", p.ratio()), formatScrapeErrors(p.scrapeErrors)
			}
			fmt.Printf("%-6d %-14s %12.0f %8s %10v %10v %8d %s\n", i+1, pol, r.rps, ratio,
				r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.errors, se)
		}
	}
	return pairs, errs, nil
}

// waitScored waits until the activator reports a score for each of n
// endpoints: every pod has been scraped once.
func waitScored(ctx context.Context, url string, n int) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		m, err := adminMetrics(ctx, url)
		if err == nil && len(m["nemesis_activator_endpoint_score"].GetMetric()) >= n {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the score route did not score its %d endpoints within 15s (%s: %v)", n, url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// adminMetrics reads the activator's own metrics.
func adminMetrics(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	return fams, nil
}

// scrapeErrors sums nemesis_activator_scrape_errors_total by reason.
func scrapeErrors(fams map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, m := range fams["nemesis_activator_scrape_errors_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "reason" {
				out[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// formatScrapeErrors writes scrape errors as "0" or "timeout 3, http 1".
func formatScrapeErrors(se map[string]float64) string {
	reasons := make([]string, 0, len(se))
	for r, n := range se {
		if n > 0 {
			reasons = append(reasons, r)
		}
	}
	if len(reasons) == 0 {
		return "0"
	}
	slices.Sort(reasons)
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%s %.0f", r, se[r])
	}
	return strings.Join(parts, ", ")
}

// scoreEndpoints is how many endpoints the compared routes have: enough
// that the score policy scans several pods per pick and scrapes each.
const scoreEndpoints = 4
