package chart

import (
	"math"
	"slices"
	"testing"
)

func TestNiceScale(t *testing.T) {
	tests := map[string]struct {
		lo, hi  float64
		integer bool
		want    []string
	}{
		"replicas up to 4":      {hi: 4, integer: true, want: []string{"0", "1", "2", "3", "4"}},
		"replicas up to 3":      {hi: 3, integer: true, want: []string{"0", "1", "2", "3"}},
		"one replica":           {hi: 1, integer: true, want: []string{"0", "1"}},
		"all zero":              {integer: true, want: []string{"0", "1"}},
		"fraction":              {hi: 0.9, want: []string{"0", "0.2", "0.4", "0.6", "0.8", "1.0"}},
		"requests up to 37":     {hi: 37, integer: true, want: []string{"0", "10", "20", "30", "40"}},
		"exact top":             {hi: 50, want: []string{"0", "10", "20", "30", "40", "50"}},
		"ninety seconds":        {hi: 90, want: []string{"0", "20", "40", "60", "80", "100"}},
		"lower bound above 0":   {lo: 5, hi: 8, integer: true, want: []string{"0", "2", "4", "6", "8"}},
		"negative":              {lo: -3, hi: 7, integer: true, want: []string{"-4", "-2", "0", "2", "4", "6", "8"}},
		"tiny":                  {hi: 3e-7, want: []string{"0", "1e-07", "2e-07", "3e-07"}},
		"huge":                  {hi: 3e9, integer: true, want: []string{"0", "1e+09", "2e+09", "3e+09"}},
		"float error in bounds": {hi: 0.1, want: []string{"0", "0.02", "0.04", "0.06", "0.08", "0.10"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := niceScale(tc.lo, tc.hi, tc.integer)
			var got []string
			for _, v := range s.ticks() {
				got = append(got, s.label(v))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("niceScale(%v, %v, %v) ticks = %q, want %q", tc.lo, tc.hi, tc.integer, got, tc.want)
			}
			if s.lo() > tc.lo || s.hi() < tc.hi {
				t.Errorf("scale [%v, %v] does not cover [%v, %v]", s.lo(), s.hi(), tc.lo, tc.hi)
			}
		})
	}
}

func TestNiceScaleExtremes(t *testing.T) {
	tests := map[string]struct{ lo, hi float64 }{
		"max value":       {hi: maxValue},
		"both max values": {lo: -maxValue, hi: maxValue},
		"subnormal":       {hi: 5e-324},
		"NaN":             {hi: math.NaN()},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := niceScale(tc.lo, tc.hi, false)
			ticks := s.ticks()
			if len(ticks) < 2 || len(ticks) > 4*targetTicks {
				t.Fatalf("got %d ticks, want 2 to %d", len(ticks), 4*targetTicks)
			}
			for _, v := range ticks {
				f := s.frac(v)
				if math.IsNaN(f) || f < -epsilon || f > 1+epsilon {
					t.Errorf("frac(%v) = %v, want within [0, 1]", v, f)
				}
				if math.IsInf(v, 0) || math.IsNaN(v) {
					t.Errorf("tick %v is not finite", v)
				}
			}
		})
	}
}
