package rules

import "testing"

// BenchmarkEvaluate measures the hot path of a typical two-query rule set,
// compiled once, as the scaler runs it on every poll.
func BenchmarkEvaluate(b *testing.B) {
	rs := mustParse(b, `
ruleSets:
- name: chat
  queries:
    waiting: sum(w)
    running: sum(r)
  replicas: max(waiting / 4, running / 8)
  active: waiting > 0 || running > 0
  max: 16
`)
	results := []Result{{Values: []float64{9}}, {Values: []float64{17}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rs.Evaluate(results); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRender measures filling the templates for one ScaledObject.
func BenchmarkRender(b *testing.B) {
	rs := mustParse(b, `
ruleSets:
- name: chat
  queries:
    waiting: sum(vllm:num_requests_waiting{namespace="$namespace", model_name="$model"})
  replicas: waiting
  max: 16
`)
	md := map[string]string{"model": "llama-3-8b"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rs.Render("ml", "chat", md); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvaluateVM measures a rule that needs expr's VM (a list of
// series), for comparison with the fast path above.
func BenchmarkEvaluateVM(b *testing.B) {
	rs := mustParse(b, `
ruleSets:
- name: pods
  queries:
    perPod: max by (pod) (x)
  replicas: "len(series.perPod) == 0 ? 0 : max(series.perPod) * len(series.perPod) / 10"
  max: 20
`)
	results := []Result{{Values: []float64{12, 30, 4}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rs.Evaluate(results); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvaluateBuiltins is BenchmarkEvaluate with the demand built-ins
// next to a query: the scaler's hot path for activator-fronted services.
func BenchmarkEvaluateBuiltins(b *testing.B) {
	rs := mustParse(b, `
ruleSets:
- name: chat
  queries:
    waiting: sum(w)
  replicas: max(waiting / 4, inflight / 8)
  active: queued > 0 || inflight > 0 || waiting > 0
  max: 16
`)
	results := []Result{{Values: []float64{9}}}
	builtins := &BuiltinValues{InFlight: 17, Queued: 1}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rs.EvaluateWith(results, builtins); err != nil {
			b.Fatal(err)
		}
	}
}
