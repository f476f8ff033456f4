package rules

import (
	"fmt"
	"testing"
)

func TestExplain(t *testing.T) {
	for name, tc := range map[string]struct {
		replicas string
		builtins string // extra query-free built-in use, appended to replicas
		results  []Result
		b        *BuiltinValues
		want     string
	}{
		"max of two terms": {
			replicas: "max(waiting / 4, running / 8)",
			results:  []Result{{Values: []float64{18}}, {Values: []float64{10}}},
			want:     "max(waiting / 4 = 4.5, running / 8 = 1.25) = 4.5 → 5 (0..16)",
		},
		"wrapped in ceil": {
			replicas: "ceil(max(waiting / 4, running / 8))",
			results:  []Result{{Values: []float64{18}}, {Values: []float64{10}}},
			want:     "ceil(max(waiting / 4 = 4.5, running / 8 = 1.25) = 4.5) = 5 → 5 (0..16)",
		},
		"binary": {
			replicas: "waiting / 4 + running",
			results:  []Result{{Values: []float64{2}}, {Values: []float64{3}}},
			want:     "(waiting / 4 = 0.5) + (running = 3) = 3.5 → 4 (0..16)",
		},
		"a bare name": {
			replicas: "waiting",
			results:  []Result{{Values: []float64{40}}, {Values: []float64{0}}},
			want:     "waiting = 40 → 16 (0..16)",
		},
		"literal arguments are not annotated": {
			replicas: "max(waiting, 2)",
			results:  []Result{{Values: []float64{1}}, {Values: []float64{0}}},
			want:     "max(waiting = 1, 2) = 2 → 2 (0..16)",
		},
		"ternary shows its condition": {
			replicas: "queued > 0 ? max(1, waiting) : waiting",
			results:  []Result{{Values: []float64{0}}, {Values: []float64{0}}},
			b:        &BuiltinValues{Queued: 3},
			want:     "(queued > 0 = true) ? max(1, waiting) : waiting = 1 → 1 (0..16)",
		},
		"series": {
			replicas: "sum(series.running) / 2",
			results:  []Result{{Values: []float64{0}}, {Values: []float64{1, 2, 3}}},
			want:     "(sum(series.running) = 6) / (2) = 3 → 3 (0..16)",
		},
		"let falls back to the source": {
			replicas: "let w = waiting / 4; max(w, 1)",
			results:  []Result{{Values: []float64{8}}, {Values: []float64{0}}},
			want:     "let w = waiting / 4; max(w, 1) = 2 → 2 (0..16)",
		},
	} {
		t.Run(name, func(t *testing.T) {
			rs := mustParse(t, fmt.Sprintf(`
ruleSets:
- name: x
  queries:
    waiting: sum(w)
    running: sum(r)
  replicas: %q
  max: 16
`, tc.replicas))
			d, err := rs.EvaluateWith(tc.results, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if got := rs.Explain(tc.results, tc.b, d.Raw); got != tc.want {
				t.Errorf("Explain:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestRounding(t *testing.T) {
	rs := mustParse(t, "ruleSets:\n- name: r\n  replicas: '2'\n  min: 1\n  max: 16\n")
	for raw, want := range map[float64]string{
		4.2:  "4.2 → 5, within 1..16",
		4:    "4 → 4, within 1..16",
		20.5: "20.5 → 21, clamped to 16 (1..16)",
		0:    "0 → 0, clamped to 1 (1..16)",
	} {
		if got := rs.Rounding(raw); got != want {
			t.Errorf("Rounding(%v) = %q, want %q", raw, got, want)
		}
	}
}
