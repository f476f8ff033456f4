package main

import (
	"bytes"
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

// policyRun is one wrk run of the score comparison.
type policyRun struct {
	wrk wrkResult
	// cpu is the activator's CPU time (user and system) during the run,
	// per request answered: on a shared machine it moves less than
	// req/s does.
	cpu time.Duration
	// scrapeErrors counts a score route's failed scrapes during its run,
	// by reason; such a pod is scored on its requests in flight.
	scrapeErrors map[string]float64
}

// pairRun is one pair of the score comparison: the same load through a
// least-request route and through a score route.
type pairRun struct{ lr, score policyRun }

// ratio is score/least-request in req/s.
func (p pairRun) ratio() float64 { return p.score.wrk.rps / p.lr.wrk.rps }

// cpuRatio is score/least-request in the activator's CPU per request.
func (p pairRun) cpuRatio() float64 { return float64(p.score.cpu) / float64(p.lr.cpu) }

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
	one := func(pol string) (policyRun, error) {
		var run policyRun
		addr, admin := freeAddr(), freeAddr()
		name := "activator-" + pol
		if err := procs.start(ctx, dir, name, o.nemesis, "activator", "--config", cfgs[pol], "--http-address", addr, "--admin-address", admin, "--log-level", "warn",
			"--shutdown-delay", "0"); err != nil { // nothing to move away when its run is over
			return run, err
		}
		defer procs.stop(name)
		if err := waitHTTP(ctx, "http://"+addr+"/"); err != nil {
			return run, err
		}
		if pol == score {
			if err := waitScored(ctx, "http://"+admin+"/metrics", len(endpoints)); err != nil {
				return run, err
			}
		}
		pid := procs.pid(name)
		cpu0, err := procCPU(pid)
		if err != nil {
			return run, err
		}
		if run.wrk, err = runWrk(ctx, options{duration: o.scoreDuration, connections: o.connections, threads: o.threads}, "http://"+addr+"/"); err != nil {
			return run, fmt.Errorf("wrk against the %s route: %w", pol, err)
		}
		cpu1, err := procCPU(pid)
		if err != nil {
			return run, err
		}
		if run.wrk.requests > 0 {
			run.cpu = (cpu1 - cpu0) / time.Duration(run.wrk.requests)
		}
		if pol == score {
			m, err := adminMetrics(ctx, "http://"+admin+"/metrics")
			if err != nil {
				return run, err
			}
			run.scrapeErrors = scrapeErrors(m)
		}
		return run, nil
	}
	var (
		pairs []pairRun
		errs  int
	)
	fmt.Printf("%-6s %-14s %12s %8s %10s %10s %8s %10s %8s %s\n", "pair", "route", "req/s", "×lr", "p50", "p99", "errors", "cpu/req", "cpu×lr", "scrape errors")
	for i := range o.scorePairs {
		var p pairRun
		for _, pol := range pairOrder(i) {
			r, err := one(pol)
			if err != nil {
				return pairs, errs, err
			}
			errs += r.wrk.errors
			if pol == score {
				p.score = r
			} else {
				p.lr = r
			}
		}
		pairs = append(pairs, p)
		for _, pol := range pairOrder(i) {
			r, ratio, cpuRatio, se := p.lr, "-", "-", ""
			if pol == score {
				r, ratio, cpuRatio, se = p.score, fmt.Sprintf("%.3f", p.ratio()), fmt.Sprintf("%.3f", p.cpuRatio()), formatScrapeErrors(p.score.scrapeErrors)
			}
			fmt.Printf("%-6d %-14s %12.0f %8s %10v %10v %8d %10v %8s %s\n", i+1, pol, r.wrk.rps, ratio,
				r.wrk.p50.Round(time.Microsecond), r.wrk.p99.Round(time.Microsecond), r.wrk.errors, r.cpu.Round(100*time.Nanosecond), cpuRatio, se)
		}
	}
	return pairs, errs, nil
}

// procCPU is the CPU time, user and system, that process pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStatCPU(b)
}

// parseProcStatCPU reads utime and stime, in clock ticks of 10ms (Linux's
// USER_HZ), out of a /proc/PID/stat line. The command name, in
// parentheses, may hold spaces and parentheses: the fields count from
// the last ')'.
func parseProcStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat %q has no command name", b)
	}
	// After the name: state (field 3) ... utime (14), stime (15).
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat %q has %d fields after the command name, want 13 or more", b, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || n > 1<<40 { // 1<<40 ticks: 348 years
			return 0, fmt.Errorf("/proc stat: CPU time %q is not a count of ticks", s)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
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
