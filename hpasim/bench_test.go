package hpasim

import (
	"math"
	"testing"
	"time"
)

// BenchmarkSim steps a week at 15 s (40,320 steps), the size of the
// backtest the issue asks to finish well under 10 s, through a load that
// keeps KEDA and the HPA busy: daily waves, bursts and idle nights.
func BenchmarkSim(b *testing.B) {
	const steps = 7 * 24 * 3600 / 15
	inputs := make([]Input, steps)
	for i := range inputs {
		h := float64(i) * 15 / 3600
		d := math.Max(0, 20*math.Sin(2*math.Pi*h/24)+float64(i%97)/10-4)
		inputs[i] = Input{Desired: d, DesiredOK: i%500 != 0, Active: d > 0, ActiveOK: true}
	}
	cfg := DefaultConfig()
	cfg.PodStartup = 30 * time.Second
	b.ReportAllocs()
	for b.Loop() {
		s, err := New(cfg, t0, 0)
		if err != nil {
			b.Fatal(err)
		}
		var changes int
		for i, in := range inputs {
			if s.Step(t0.Add(time.Duration(i)*15*time.Second), in).Event != "" {
				changes++
			}
		}
		if changes < 100 {
			b.Fatalf("only %d changes: the load did not exercise the simulation", changes)
		}
	}
}
