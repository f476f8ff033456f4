package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func mkCell(w workload, load float64, policy string, p90 time.Duration, tps, hit float64, failures int) cell {
	return cell{workload: w, load: load, rate: 3, policy: policy, requests: 100, failures: failures,
		ttft50: p90 / 2, ttft90: p90, ttft99: 2 * p90, e2e99: 10 * p90, tokensPerSecond: tps, hitRate: hit,
		share: []float64{0.25, 0.25, 0.25, 0.25}}
}

func TestFormat(t *testing.T) {
	tests := map[time.Duration]string{
		1500 * time.Microsecond: "1.5ms",
		250 * time.Millisecond:  "250ms",
		1234 * time.Millisecond: "1.23s",
		150 * time.Second:       "150s",
	}
	for d, want := range tests {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
	if formatRatio(math.NaN()) != "-" || formatRatio(math.Inf(1)) != "-" || formatRatio(0.456) != "0.46" {
		t.Error("formatRatio")
	}
	if formatPercent(math.NaN()) != "-" || formatPercent(0.1234) != "12.3%" {
		t.Error("formatPercent")
	}
}

func TestWriteTable(t *testing.T) {
	cells := []cell{
		mkCell(mixed, 0.8, roundRobin, time.Second, 1000, 0.1, 0),
		mkCell(mixed, 0.8, score, 250*time.Millisecond, 1100, 0.2, 2),
		mkCell(sharedPrefix, 0.5, leastRequest, time.Second, 500, math.NaN(), 0), // no round-robin cell: no ratios
	}
	cells[1].unknownPods = 3
	var b bytes.Buffer
	if err := writeTable(&b, cells, []string{"p1", "p2", "p3", "p4-slow"}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines, want header, separator and 3 rows:\n%s", len(lines), b.String())
	}
	width := len([]rune(lines[0]))
	for i, l := range lines {
		if len([]rune(l)) != width || !strings.HasPrefix(l, "| ") || !strings.HasSuffix(l, " |") {
			t.Errorf("line %d is not a table row of width %d:\n%s", i, width, l)
		}
		if got, want := strings.Count(l, "|"), strings.Count(lines[0], "|"); got != want {
			t.Errorf("line %d has %d separators, want %d", i, got, want)
		}
	}
	if !strings.Contains(lines[0], "share p1/p2/p3/p4-slow") || !strings.Contains(lines[1], "| ---") {
		t.Errorf("header:\n%s\n%s", lines[0], lines[1])
	}
	cols := func(l string) []string {
		f := strings.Split(strings.Trim(l, "|"), "|")
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		return f
	}
	rr, sc, lr := cols(lines[2]), cols(lines[3]), cols(lines[4])
	// p90×RR, p99×RR, tok/s×RR, hit×RR are the last four columns.
	if got := sc[len(sc)-4:]; strings.Join(got, " ") != "0.25 0.25 1.10 2.00" {
		t.Errorf("score's ratios %q", got)
	}
	if got := rr[len(rr)-4:]; strings.Join(got, " ") != "1.00 1.00 1.00 1.00" {
		t.Errorf("round-robin's ratios %q", got)
	}
	if got := lr[len(lr)-4:]; strings.Join(got, " ") != "- - - -" {
		t.Errorf("ratios without a baseline %q", got)
	}
	if sc[4] != "98/100" || sc[5] != "125ms" || !strings.Contains(sc[11], "25/25/25/25 (+3 unnamed)") || lr[10] != "-" {
		t.Errorf("score row %q, least-request row %q", sc, lr)
	}
}

func TestJudge(t *testing.T) {
	base := func() []cell {
		return []cell{
			mkCell(mixed, 0.8, roundRobin, 2*time.Second, 1000, 0.01, 0),
			mkCell(mixed, 0.8, leastRequest, 1*time.Second, 1000, 0.01, 0),
			mkCell(mixed, 0.8, score, 700*time.Millisecond, 995, 0.01, 0),
			mkCell(sharedPrefix, 0.8, roundRobin, 3*time.Second, 800, 0.4, 1),
			mkCell(sharedPrefix, 0.8, scoreAffinity, 800*time.Millisecond, 820, 0.9, 1),
		}
	}
	tests := map[string]struct {
		change func([]cell) []cell
		want   [2]string
	}{
		"both pass": {func(c []cell) []cell { return c }, [2]string{"PASS", "PASS"}},
		"score p90 over 0.8× least-request": {func(c []cell) []cell {
			c[2].ttft90 = 850 * time.Millisecond
			return c
		}, [2]string{"MISS", "PASS"}},
		"score throughput lower": {func(c []cell) []cell {
			c[2].tokensPerSecond = 970
			return c
		}, [2]string{"MISS", "PASS"}},
		"score fails more": {func(c []cell) []cell {
			c[2].failures = 1
			return c
		}, [2]string{"MISS", "PASS"}},
		"hit rate under 2×": {func(c []cell) []cell {
			c[4].hitRate = 0.79
			return c
		}, [2]string{"PASS", "MISS"}},
		"affinity p90 over 0.3×": {func(c []cell) []cell {
			c[4].ttft90 = 901 * time.Millisecond
			return c
		}, [2]string{"PASS", "MISS"}},
		"round-robin never hits": {func(c []cell) []cell {
			c[3].hitRate = 0
			return c
		}, [2]string{"PASS", "PASS"}},
		"no score cells": {func(c []cell) []cell { return []cell{c[0], c[1], c[3]} }, [2]string{"n/a", "n/a"}},
		"other load only": {func(c []cell) []cell {
			for i := range c {
				c[i].load = 0.5
			}
			return c
		}, [2]string{"n/a", "n/a"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			aims := judge(tc.change(base()))
			if len(aims) != 2 || aims[0].status != tc.want[0] || aims[1].status != tc.want[1] {
				t.Fatalf("aims %+v, want %v", aims, tc.want)
			}
			var b bytes.Buffer
			if err := writeAims(&b, aims); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(b.String(), tc.want[0]) {
				t.Errorf("output does not start with the verdict:\n%s", b.String())
			}
		})
	}
}
