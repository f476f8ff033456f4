package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Policy names as the report shows them.
const (
	roundRobin    = "round-robin"
	leastRequest  = "least-request"
	score         = "score"
	scoreAffinity = "score+affinity"
)

// formatDuration prints a latency compactly: "850ms", "12.3s".
func formatDuration(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	case d < 100*time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return fmt.Sprintf("%.0fs", d.Seconds())
}

// formatRatio prints a ratio to the baseline, "-" when there is none.
func formatRatio(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "-"
	}
	return fmt.Sprintf("%.2f", r)
}

func formatPercent(f float64) string {
	if math.IsNaN(f) {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*f)
}

// writeTable writes one row per cell, in the order given, as a Markdown
// table whose columns line up in a terminal too. Ratios are to the
// round-robin cell of the same workload and load; pods label the share
// column.
func writeTable(w io.Writer, cells []cell, pods []string) error {
	header := []string{"workload", "load", "req/s", "policy", "ok/sent", "TTFT p50", "TTFT p90", "TTFT p99", "E2E p99",
		"out tok/s", "cache hit", "share " + strings.Join(pods, "/"), "p90×RR", "p99×RR", "tok/s×RR", "hit×RR"}
	rows := [][]string{header}
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = "---"
	}
	rows = append(rows, sep)
	for _, c := range cells {
		base, hasBase := find(cells, c.workload, c.load, roundRobin)
		r := func(a, b float64) string {
			if !hasBase {
				return "-"
			}
			return formatRatio(ratio(a, b))
		}
		shares := make([]string, len(c.share))
		for i, s := range c.share {
			shares[i] = fmt.Sprintf("%.0f", 100*s)
		}
		share := strings.Join(shares, "/")
		if c.unknownPods > 0 {
			share += fmt.Sprintf(" (+%d unnamed)", c.unknownPods)
		}
		rows = append(rows, []string{
			string(c.workload), fmt.Sprintf("%.0f%%", 100*c.load), fmt.Sprintf("%.2f", c.rate), c.policy,
			fmt.Sprintf("%d/%d", c.requests-c.failures, c.requests),
			formatDuration(c.ttft50), formatDuration(c.ttft90), formatDuration(c.ttft99), formatDuration(c.e2e99),
			fmt.Sprintf("%.0f", c.tokensPerSecond), formatPercent(c.hitRate), share,
			r(c.ttft90.Seconds(), base.ttft90.Seconds()), r(c.ttft99.Seconds(), base.ttft99.Seconds()),
			r(c.tokensPerSecond, base.tokensPerSecond), r(c.hitRate, base.hitRate),
		})
	}
	widths := make([]int, len(header))
	for _, row := range rows {
		for i, f := range row {
			widths[i] = max(widths[i], len([]rune(f)))
		}
	}
	var b strings.Builder
	for ri, row := range rows {
		b.WriteString("|")
		for i, f := range row {
			pad := widths[i] - len([]rune(f))
			if ri == 1 {
				f, pad = strings.Repeat("-", widths[i]), 0
			}
			b.WriteString(" " + f + strings.Repeat(" ", pad) + " |")
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// find returns the cell of a workload, load and policy.
func find(cells []cell, w workload, load float64, policy string) (cell, bool) {
	for _, c := range cells {
		if c.workload == w && c.policy == policy && math.Abs(c.load-load) < 1e-9 {
			return c, true
		}
	}
	return cell{}, false
}

// throughputTolerance is how much lower a policy's output tokens per
// second may be and still count as "equal" throughput: runs of a few
// hundred requests differ by about this much for the same policy.
const throughputTolerance = 0.02

// aimLoad is the load level the aims are judged at.
const aimLoad = 0.8

// aim is one target of the issue, judged on a run.
type aim struct {
	name   string
	status string // PASS, MISS, or n/a when a cell it needs was not run
	detail string
}

// judge evaluates the aims on the cells.
func judge(cells []cell) []aim {
	var aims []aim

	// Mixed workload: score's TTFT p90 well under round-robin's and
	// least-request's, at equal or better throughput, failing no more.
	a := aim{name: fmt.Sprintf("mixed %.0f%%: score TTFT p90 ≤ 0.5× round-robin, ≤ 0.8× least-request, tok/s ≥ both (−%.0f%%), failures ≤ both",
		100*aimLoad, 100*throughputTolerance)}
	s, ok1 := find(cells, mixed, aimLoad, score)
	rr, ok2 := find(cells, mixed, aimLoad, roundRobin)
	lr, ok3 := find(cells, mixed, aimLoad, leastRequest)
	if !ok1 || !ok2 || !ok3 {
		a.status, a.detail = "n/a", "needs the score, round-robin and least-request cells at this load"
	} else {
		rrp, lrp := ratio(s.ttft90.Seconds(), rr.ttft90.Seconds()), ratio(s.ttft90.Seconds(), lr.ttft90.Seconds())
		floor := max(rr.tokensPerSecond, lr.tokensPerSecond) * (1 - throughputTolerance)
		pass := rrp <= 0.5 && lrp <= 0.8 && s.tokensPerSecond >= floor && s.failures <= min(rr.failures, lr.failures)
		a.status = verdict(pass)
		a.detail = fmt.Sprintf("p90 %s: ×%s round-robin, ×%s least-request; tok/s %.0f vs %.0f / %.0f; failures %d vs %d / %d",
			formatDuration(s.ttft90), formatRatio(rrp), formatRatio(lrp), s.tokensPerSecond, rr.tokensPerSecond, lr.tokensPerSecond,
			s.failures, rr.failures, lr.failures)
	}
	aims = append(aims, a)

	// Shared prefixes: affinity keeps each prefix on few pods, so their
	// caches hold it.
	a = aim{name: fmt.Sprintf("shared-prefix %.0f%%: score+affinity cache hit ≥ 2× round-robin, TTFT p90 ≤ 0.3× round-robin, failures ≤ round-robin",
		100*aimLoad)}
	sa, ok1 := find(cells, sharedPrefix, aimLoad, scoreAffinity)
	rr, ok2 = find(cells, sharedPrefix, aimLoad, roundRobin)
	if !ok1 || !ok2 {
		a.status, a.detail = "n/a", "needs the score+affinity and round-robin cells at this load"
	} else {
		hit, p90 := ratio(sa.hitRate, rr.hitRate), ratio(sa.ttft90.Seconds(), rr.ttft90.Seconds())
		// A round-robin hit rate of 0 makes any positive rate infinitely
		// better.
		if rr.hitRate == 0 && sa.hitRate > 0 {
			hit = math.Inf(1)
		}
		pass := hit >= 2 && p90 <= 0.3 && sa.failures <= rr.failures
		a.status = verdict(pass)
		a.detail = fmt.Sprintf("cache hit %s vs %s (×%s); p90 %s vs %s (×%s); failures %d vs %d",
			formatPercent(sa.hitRate), formatPercent(rr.hitRate), formatRatioInf(hit),
			formatDuration(sa.ttft90), formatDuration(rr.ttft90), formatRatio(p90), sa.failures, rr.failures)
	}
	return append(aims, a)
}

func formatRatioInf(r float64) string {
	if math.IsInf(r, 1) {
		return "∞"
	}
	return formatRatio(r)
}

func verdict(pass bool) string {
	if pass {
		return "PASS"
	}
	return "MISS"
}

func writeAims(w io.Writer, aims []aim) error {
	var b strings.Builder
	for _, a := range aims {
		fmt.Fprintf(&b, "%-4s %s\n     %s\n", a.status, a.name, a.detail)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
