package rules

import (
	"errors"
	"math"
	"testing"

	"github.com/expr-lang/expr"
)

func TestFormulaNumber(t *testing.T) {
	vars := []string{"waiting", "kv", "inflight"}
	for _, c := range []struct {
		src  string
		vals []float64
		want float64
	}{
		{"2 * waiting + 20 * kv + inflight", []float64{3, 0.5, 2}, 18},
		{"waiting > 4 ? 100 : inflight", []float64{5, 0, 1}, 100},
		{"waiting > 4 ? 100 : inflight", []float64{1, 0, 1}, 1},
		{"max(waiting, kv * 10, 1) - min(inflight, 2)", []float64{3, 0.5, 7}, 3},
		{"-abs(kv - 1) + ceil(0.2) + floor(1.9) + round(2.5) + 2 ^ 3", []float64{0, 0.5, 0}, -0.5 + 1 + 1 + 3 + 8},
		{"inflight / waiting", []float64{0, 0, 1}, math.Inf(1)},
	} {
		f, err := CompileNumber(c.src, vars)
		if err != nil {
			t.Fatalf("%q: %v", c.src, err)
		}
		if got := f.Number(c.vals); got != c.want {
			t.Errorf("%q with %v = %v, want %v", c.src, c.vals, got, c.want)
		}
	}
}

func TestFormulaCondition(t *testing.T) {
	f, err := CompileCondition("waiting < 5 && kv < 0.8 || !(inflight >= 1)", []string{"waiting", "kv", "inflight"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		vals []float64
		want bool
	}{{[]float64{4, 0.7, 3}, true}, {[]float64{5, 0.7, 3}, false}, {[]float64{9, 0.9, 0}, true}} {
		if got := f.Condition(c.vals); got != c.want {
			t.Errorf("with %v = %v, want %v", c.vals, got, c.want)
		}
	}
}

func TestFormulaErrors(t *testing.T) {
	vars := []string{"waiting", "inflight"}
	for _, c := range []struct {
		src    string
		cond   bool
		offset int
		msg    string
	}{
		{"2 * queued + inflight", false, 4, "unknown name queued"},
		{"waiting < 5", false, 0, "must compute a number, but computes a bool"},
		{"waiting + 1", true, 0, "must compute true or false, but computes a float64"},
		{"waiting + reduce([1], #acc)", false, 10, "reduce() is not available"},
		{"len([waiting, 1]) + inflight", false, 0, "only numbers, the variables (waiting, inflight)"},
		{"let x = waiting; x + 1", false, 0, "only numbers"},
		{"waiting +", false, 8, "unexpected token EOF"},
	} {
		var err error
		if c.cond {
			_, err = CompileCondition(c.src, vars)
		} else {
			_, err = CompileNumber(c.src, vars)
		}
		var fe *FormulaError
		if !errors.As(err, &fe) {
			t.Errorf("%q: got %v, want a *FormulaError", c.src, err)
			continue
		}
		if fe.Offset != c.offset || !contains(fe.Msg, c.msg) {
			t.Errorf("%q: got offset %d %q, want offset %d and %q", c.src, fe.Offset, fe.Msg, c.offset, c.msg)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestFormulaDoesNotAllocate(t *testing.T) {
	f, err := CompileNumber("2 * waiting + 20 * kv + inflight + (sent > 3 ? age : max(age, 1))", []string{"waiting", "kv", "inflight", "sent", "age"})
	if err != nil {
		t.Fatal(err)
	}
	vals := []float64{1, 0.5, 2, 4, 0.05}
	var sink float64
	if n := testing.AllocsPerRun(1000, func() { sink += f.Number(vals) }); n != 0 {
		t.Fatalf("Number allocates %v times per run, want 0", n)
	}
}

// FuzzFormula compiles arbitrary text: it must never panic, and a formula
// that compiles gives what expr's VM gives for the same values.
func FuzzFormula(f *testing.F) {
	for _, s := range []string{"2 * a + 20 * b + c", "a < 5 && b < 0.8", "a > 1 ? b : c", "max(a, b, 1) / min(c, 2)", "-a ^ 2", "abs(a - b) + ceil(c)"} {
		f.Add(s, 1.5, 0.25, 3.0)
	}
	f.Fuzz(func(t *testing.T, src string, a, b, c float64) {
		vars := []string{"a", "b", "c"}
		env := map[string]any{"a": a, "b": b, "c": c}
		if fm, err := CompileNumber(src, vars); err == nil {
			got := fm.Number([]float64{a, b, c})
			prog, err := expr.Compile(src, expr.Env(env), expr.AsFloat64())
			if err != nil {
				t.Fatalf("%q compiles as a formula, not with expr: %v", src, err)
			}
			out, err := expr.Run(prog, env)
			if err != nil {
				return // a run-time error of the VM (e.g. an integer overflow); the fast path has none
			}
			if want := out.(float64); got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
				t.Fatalf("%q with %v %v %v: formula %v, expr %v", src, a, b, c, got, want)
			}
		}
		if fm, err := CompileCondition(src, vars); err == nil {
			_ = fm.Condition([]float64{a, b, c})
		}
	})
}
