package externalscaler

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestTriggersCappedByDefault: the state kept per trigger is keyed by
// metadata any caller chooses, so the number of triggers tracked has a
// default cap, and a trigger beyond it gets a clear ResourceExhausted.
func TestTriggersCappedByDefault(t *testing.T) {
	q := &fakeQuerier{}
	q.value(4)
	e := newUnitServer(t, unitRules, q, Options{})
	ctx := context.Background()
	for i := range 10000 {
		if _, err := e.server.GetMetricSpec(ctx, ref("ml", "so", map[string]string{"ruleSet": "fail", "x": fmt.Sprint(i)})); err != nil {
			t.Fatalf("trigger %d: %v", i, err)
		}
	}
	_, err := e.server.GetMetricSpec(ctx, ref("ml", "so", map[string]string{"ruleSet": "fail", "x": "one too many"}))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("trigger 10,001: %v, want ResourceExhausted", err)
	}
	for _, want := range []string{"10000", "--max-scaled-objects", "ml/so"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// A trigger already tracked is still served, evaluations included.
	e.expect(t, ref("ml", "so", map[string]string{"ruleSet": "fail", "x": "7"}), 1, true)
	if got := gatherSum(t, e.reg, "nemesis_scaler_triggers_refused_total", nil); got != 1 {
		t.Errorf("nemesis_scaler_triggers_refused_total = %v, want 1", got)
	}
}

// TestTriggersCapForgetsIdle: at the bound, triggers not asked for in
// ForgetAfter (ScaledObjects deleted, metadata changed) are forgotten at
// once, without waiting for Run's next tick, so that churn does not fill
// the bound; while they are recent, a new trigger is refused.
func TestTriggersCapForgetsIdle(t *testing.T) {
	q := &fakeQuerier{}
	q.value(4)
	e := newUnitServer(t, unitRules, q, Options{MaxScaledObjects: 3, ForgetAfter: 10 * time.Minute})
	ctx := context.Background()
	spec := func(name string) error {
		_, err := e.server.GetMetricSpec(ctx, ref("ml", name, map[string]string{"ruleSet": "fail"}))
		return err
	}
	for _, name := range []string{"a", "b", "c"} {
		e.expect(t, ref("ml", name, map[string]string{"ruleSet": "fail"}), 1, true)
	}
	if got := gatherSum(t, e.reg, "nemesis_scaler_desired_replicas", map[string]string{"scaled_object": "a"}); got != 1 {
		t.Fatalf("desired_replicas of a = %v, want 1", got)
	}
	if err := spec("d"); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("d, a fourth trigger with a bound of 3: %v, want ResourceExhausted", err)
	}
	// a and b go away; c is still asked for.
	e.clock.Add(6 * time.Minute)
	e.expect(t, ref("ml", "c", map[string]string{"ruleSet": "fail"}), 1, true)
	e.clock.Add(5 * time.Minute)
	for _, name := range []string{"d", "e"} {
		if err := spec(name); err != nil {
			t.Fatalf("%s, after a and b went unused for 11m: %v", name, err)
		}
	}
	if err := spec("f"); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("f, with c, d and e in use: %v, want ResourceExhausted", err)
	}
	if got := gatherSum(t, e.reg, "nemesis_scaler_triggers", nil); got != 3 {
		t.Errorf("nemesis_scaler_triggers = %v, want 3", got)
	}
	if got := gatherSum(t, e.reg, "nemesis_scaler_triggers_refused_total", nil); got != 2 {
		t.Errorf("nemesis_scaler_triggers_refused_total = %v, want 2", got)
	}
	// The state of a forgotten trigger goes with it, its metrics too.
	if got := gatherSum(t, e.reg, "nemesis_scaler_desired_replicas", map[string]string{"scaled_object": "a"}); got != 0 {
		t.Errorf("desired_replicas of the forgotten a = %v", got)
	}
}
