package rules

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	t0 := time.Unix(1000, 0)
	good := Decision{Replicas: 5, Raw: 4.2, Active: true}
	failed := fmt.Errorf("query %q returned no series: %w", "q", ErrNoData)
	type step struct {
		at      time.Duration
		err     error
		want    Decision
		holding bool
		fixed   bool
		wantErr bool
	}
	for name, tc := range map[string]struct {
		onError string
		steps   []step
	}{
		"hold within staleAfter, then fail": {"hold", []step{
			{at: 0, want: good},
			{at: time.Minute, err: failed, want: good, holding: true},
			{at: 2 * time.Minute, err: failed, want: good, holding: true}, // exactly staleAfter
			{at: 2*time.Minute + time.Second, err: failed, wantErr: true},
			{at: 3 * time.Minute, want: good},
			{at: 4 * time.Minute, err: failed, want: good, holding: true},
		}},
		"hold with nothing to hold": {"hold", []step{
			{at: 0, err: failed, wantErr: true},
		}},
		"fail": {"fail", []step{
			{at: 0, want: good},
			{at: time.Second, err: failed, wantErr: true},
		}},
		"fixed count": {"2", []step{
			{at: 0, want: good},
			{at: time.Second, err: failed, want: Decision{Replicas: 2, Raw: 2, Active: true}, fixed: true},
		}},
		"fixed zero is inactive": {"0", []step{
			{at: 0, err: failed, want: Decision{}, fixed: true},
		}},
	} {
		t.Run(name, func(t *testing.T) {
			rs := mustParse(t, "ruleSets:\n- name: d\n  replicas: '2'\n  max: 9\n  onError: '"+tc.onError+"'\n  staleAfter: 2m\n")
			var last LastGood
			for i, s := range tc.steps {
				d := Decision{}
				if s.err == nil {
					d = good
				}
				out := rs.Decide(&last, t0.Add(s.at), d, s.err)
				if (out.Err != nil) != s.wantErr {
					t.Fatalf("step %d: Err = %v, want an error: %t", i, out.Err, s.wantErr)
				}
				if !errors.Is(out.EvalErr, s.err) || (s.err == nil) != (out.EvalErr == nil) {
					t.Errorf("step %d: EvalErr = %v, want %v", i, out.EvalErr, s.err)
				}
				if s.wantErr {
					if !errors.Is(out.Err, ErrNoData) || Reason(out.Err) != "no_data" {
						t.Errorf("step %d: Err = %v (reason %q), want it to wrap no_data", i, out.Err, Reason(out.Err))
					}
					continue
				}
				if out.Decision != s.want || out.Holding != s.holding || out.Fixed != s.fixed {
					t.Errorf("step %d: got %+v holding %t fixed %t, want %+v holding %t fixed %t", i, out.Decision, out.Holding, out.Fixed, s.want, s.holding, s.fixed)
				}
			}
		})
	}
}

func TestOutcomeActiveWaitingOverrides(t *testing.T) {
	for name, tc := range map[string]struct {
		out            Outcome
		waiting        bool
		wantActive, ok bool
	}{
		"inactive decision":           {Outcome{}, false, false, true},
		"active decision":             {Outcome{Decision: Decision{Active: true}}, false, true, true},
		"waiting wakes":               {Outcome{}, true, true, true},
		"error":                       {Outcome{Err: ErrNoData}, false, false, false},
		"waiting wakes despite error": {Outcome{Err: ErrNoData}, true, true, true},
	} {
		t.Run(name, func(t *testing.T) {
			active, ok := tc.out.Active(tc.waiting)
			if active != tc.wantActive || ok != tc.ok {
				t.Errorf("Active(%t) = %t, %t; want %t, %t", tc.waiting, active, ok, tc.wantActive, tc.ok)
			}
		})
	}
}

func TestReasonOfQueryError(t *testing.T) {
	err := fmt.Errorf("evaluating: %w", &QueryError{Query: "q", Err: errors.New("connection refused")})
	if got := Reason(err); got != "prometheus" {
		t.Errorf("Reason = %q, want prometheus", got)
	}
	if got := Reason(nil); got != "" {
		t.Errorf("Reason(nil) = %q, want empty", got)
	}
}
