package memprom

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// A backtest's week: 7 days at 15 s, 40,320 samples a series.
const (
	benchStep    = 15 * time.Second
	benchSamples = 7 * 24 * 60 * 4
)

// benchSeries are three series of a week: a gauge, a counter and the
// +Inf bucket of a histogram, with a daily wave in them.
func benchSeries() (lsets []labels.Labels, samples [][]Sample) {
	lsets = []labels.Labels{
		labels.FromStrings("__name__", "queue_depth", "namespace", "ml", "model", "llama"),
		labels.FromStrings("__name__", "http_requests_total", "namespace", "ml", "model", "llama"),
		labels.FromStrings("__name__", "inflight", "namespace", "ml", "model", "llama"),
	}
	start := Epoch().Add(1000 * time.Hour).UnixMilli()
	samples = make([][]Sample, len(lsets))
	counter := 0.0
	for i := range benchSamples {
		t := start + int64(i)*benchStep.Milliseconds()
		wave := 50 + 40*math.Sin(float64(i)/float64(benchSamples/7)*2*math.Pi)
		counter += wave
		samples[0] = append(samples[0], Sample{t, math.Round(wave)})
		samples[1] = append(samples[1], Sample{t, counter})
		samples[2] = append(samples[2], Sample{t, wave / 10})
	}
	return lsets, samples
}

var benchQueries = []string{
	`sum(queue_depth{namespace="ml", model="llama"})`,
	`sum(rate(http_requests_total{namespace="ml", model="llama"}[1m]))`,
	`max_over_time(inflight{namespace="ml"}[2m])`,
}

// BenchmarkLoad adds three series of a week each.
func BenchmarkLoad(b *testing.B) {
	lsets, samples := benchSeries()
	b.ReportAllocs()
	for b.Loop() {
		s := New()
		for i := range lsets {
			if err := s.Add(lsets[i], samples[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkQueryRange runs the three queries of a backtest over the week
// at 15 s steps: 40,320 points each.
func BenchmarkQueryRange(b *testing.B) {
	lsets, samples := benchSeries()
	s := New()
	for i := range lsets {
		if err := s.Add(lsets[i], samples[i]); err != nil {
			b.Fatal(err)
		}
	}
	e := NewEngine(s, Options{})
	start := time.UnixMilli(samples[0][0].T)
	end := time.UnixMilli(samples[0][len(samples[0])-1].T)
	b.ReportAllocs()
	for b.Loop() {
		for _, q := range benchQueries {
			got, err := e.QueryRange(context.Background(), q, start, end, benchStep)
			if err != nil {
				b.Fatal(err)
			}
			if len(got) != 1 || len(got[0].Points) < benchSamples-8 {
				b.Fatalf("%s: %d series, want 1 of about %d points", q, len(got), benchSamples)
			}
		}
	}
}

// BenchmarkLoadAndQueryRange is the two together, from notation: what
// `rules backtest --series FILE` does with three week-long series.
func BenchmarkLoadAndQueryRange(b *testing.B) {
	defs := [][2]string{
		{`queue_depth{namespace="ml", model="llama"}`, "0+1x20159 20160-1x20159"},
		{`http_requests_total{namespace="ml", model="llama"}`, "0+10x40319"},
		{`inflight{namespace="ml", model="llama"}`, "3x10000 _x320 7x30000"},
	}
	end := Epoch().Add((benchSamples - 1) * benchStep)
	b.ReportAllocs()
	for b.Loop() {
		s := New()
		for _, d := range defs {
			if err := s.AddSeries(d[0], d[1], Epoch(), benchStep); err != nil {
				b.Fatal(err)
			}
		}
		e := NewEngine(s, Options{})
		for _, q := range benchQueries {
			if _, err := e.QueryRange(context.Background(), q, Epoch(), end, benchStep); err != nil {
				b.Fatal(err)
			}
		}
	}
}
