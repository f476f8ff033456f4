package chart

import (
	"math"
	"strconv"
)

const (
	// targetTicks is roughly how many intervals an axis is split into;
	// rounding the step to 1, 2 or 5 times a power of ten yields between
	// targetTicks/2 and 2*targetTicks of them.
	targetTicks = 5
	// epsilon absorbs floating-point error when a bound divided by the
	// step lands a hair beyond a whole number, which would otherwise add
	// an empty tick interval.
	epsilon = 1e-9
	// maxValue bounds the values drawn, far beyond any count, so that the
	// arithmetic on scales cannot overflow; values beyond it are skipped
	// like infinities.
	maxValue = 1e300
)

// scale is a rounded axis range: ticks at k*step for k in [first, last].
// Indices are kept rather than bounds so that tick values are computed
// by one multiplication each, without accumulated rounding error.
type scale struct {
	step        float64
	first, last float64 // whole numbers
}

// niceScale returns a scale that covers [lo, hi] and 0. When integer is
// set the step is at least 1, for quantities such as replica counts that
// have no fractions. Bounds must be within ±maxValue.
func niceScale(lo, hi float64, integer bool) scale {
	lo, hi = min(lo, 0), max(hi, 0)
	if !(hi > lo) { // also catches NaN
		lo, hi = 0, 1
	}
	step := niceStep((hi - lo) / targetTicks)
	if integer && step < 1 {
		step = 1
	}
	s := scale{
		step:  step,
		first: math.Floor(lo/step + epsilon),
		last:  math.Ceil(hi/step - epsilon),
	}
	if s.last == s.first { // a range too small for the step to resolve
		s.last++
	}
	return s
}

// niceStep rounds raw up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if !(raw > 0) || math.IsInf(raw, 0) {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	if mag == 0 || math.IsInf(mag, 0) {
		return raw // subnormal or huge: any positive step will do
	}
	var f float64
	switch r := raw / mag; {
	case r <= 1+epsilon:
		f = 1
	case r <= 2+epsilon:
		f = 2
	case r <= 5+epsilon:
		f = 5
	default:
		f = 10
	}
	return f * mag
}

func (s scale) lo() float64 { return s.first * s.step }
func (s scale) hi() float64 { return s.last * s.step }

// ticks returns the tick values from lo to hi.
func (s scale) ticks() []float64 {
	n := int(s.last-s.first) + 1
	t := make([]float64, 0, n)
	for i := range n {
		t = append(t, (s.first+float64(i))*s.step)
	}
	return t
}

// frac returns where v lies between lo (0) and hi (1).
func (s scale) frac(v float64) float64 {
	return (v/s.step - s.first) / (s.last - s.first)
}

// label formats a tick value with as many decimals as the step needs, so
// that 0.2 steps read 0.2, 0.4 and whole steps carry no ".0". Values too
// large or too fine for that fall back to three significant digits, which
// are enough because every tick is a small multiple of a 1-2-5 step.
func (s scale) label(v float64) string {
	if v == 0 {
		return "0" // never "-0"
	}
	dec := max(0, -int(math.Floor(math.Log10(s.step)+epsilon)))
	if dec > 4 || max(math.Abs(s.lo()), math.Abs(s.hi())) >= 1e7 {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	return strconv.FormatFloat(v, 'f', dec, 64)
}
