package backtest

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// handResult is a replay of three steps of 15s over 45s, written by hand.
func handResult() *Result {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	return &Result{
		RuleSets: []string{"queue", "other"},
		Queries:  []Query{{Text: `sum(q{a="b"})`, Uses: []string{"queue.depth"}}, {Text: "x", Uses: []string{"other.x"}}},
		Start:    t0, End: t0.Add(45 * time.Second), Step: 15 * time.Second,
		BuiltinQueries: map[string]string{"inflight": "i", "queued": "q"},
		Actual:         "kube",
		Initial:        0,
		Steps: []Step{
			{Time: t0, Values: []Value{{4, true}, {math.NaN(), true}}, InFlight: 1, Queued: 0,
				RuleSets: []RuleSetStep{{Desired: 1, DesiredOK: true, Active: true, Replicas: 1, Ready: 0}, {Replicas: 0, Reason: "no_data"}},
				Actual:   Value{2, true}},
			{Time: t0.Add(15 * time.Second), Values: []Value{{}, {1.5, true}}, Queued: 2,
				RuleSets: []RuleSetStep{{Desired: 1, DesiredOK: true, Holding: true, Active: true, Reason: "no_data", Replicas: 1, Ready: 1}, {Desired: 2, DesiredOK: true, Active: true, Replicas: 2}},
				Actual:   Value{2, true}},
			{Time: t0.Add(30 * time.Second), Values: []Value{{0, true}, {0.5, true}},
				RuleSets: []RuleSetStep{{Desired: 0, DesiredOK: true, Replicas: 3, Ready: 1}, {Desired: 1, DesiredOK: true, Active: true, Replicas: 0}}},
		},
	}
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := handResult().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2026-12-01T10:00:00Z","values":{"sum(q{a=\"b\"})":4,"x":null},"builtins":{"inflight":1,"queued":0},"ruleSets":{"queue":{"desired":1,"active":true,"replicas":1,"error":""},"other":{"desired":null,"active":false,"replicas":0,"error":"no_data"}},"actual":2}
{"time":"2026-12-01T10:00:15Z","values":{"sum(q{a=\"b\"})":null,"x":1.5},"builtins":{"inflight":0,"queued":2},"ruleSets":{"queue":{"desired":1,"active":true,"replicas":1,"error":"no_data"},"other":{"desired":2,"active":true,"replicas":2,"error":""}},"actual":2}
{"time":"2026-12-01T10:00:30Z","values":{"sum(q{a=\"b\"})":0,"x":0.5},"builtins":{"inflight":0,"queued":0},"ruleSets":{"queue":{"desired":0,"active":false,"replicas":3,"error":""},"other":{"desired":1,"active":true,"replicas":0,"error":""}},"actual":null}
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	// Each line is a JSON object with exactly the contract's fields.
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if len(obj) != 5 || obj["time"] == nil || obj["values"] == nil || obj["builtins"] == nil || obj["ruleSets"] == nil || obj["actual"] == nil {
			t.Errorf("fields of %s", line)
		}
	}
}

func TestWriteCSV(t *testing.T) {
	var b bytes.Buffer
	if err := handResult().WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	want := `time,"sum(q{a=""b""})",x,inflight,queued,queue.desired,queue.active,queue.replicas,queue.error,other.desired,other.active,other.replicas,other.error,actual
2026-12-01T10:00:00Z,4,,1,0,1,true,1,,,false,0,no_data,2
2026-12-01T10:00:15Z,,1.5,0,2,1,true,1,no_data,2,true,2,,2
2026-12-01T10:00:30Z,0,0.5,0,0,0,false,3,,1,true,0,,
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestSummaries(t *testing.T) {
	got := handResult().Summaries()
	// queue: 1, 1, 3 replicas for 15s each: 5 × 15s = 75 replica-seconds;
	// changes 0→1 and 1→3; under actual (2) for 30s; at zero never.
	// other: 0, 2, 0: 30 replica-seconds, 0→2→0 two changes, at zero 30s,
	// under actual 15s, never over. actual: 2, 2 (null at 30s).
	want := []Summary{
		{Name: "queue", ReplicaHours: 75.0 / 3600, ScaleEvents: 2, Largest: 3, UnderActual: 30 * time.Second, HasActual: true},
		{Name: "other", ReplicaHours: 30.0 / 3600, ScaleEvents: 2, Largest: 2, AtZero: 30 * time.Second, Errors: 1, UnderActual: 15 * time.Second, HasActual: true},
		{Name: "actual", ReplicaHours: 60.0 / 3600, Largest: 2},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if math.Abs(g.ReplicaHours-w.ReplicaHours) > 1e-12 {
			t.Errorf("%s: replica-hours %v, want %v", w.Name, g.ReplicaHours, w.ReplicaHours)
		}
		g.ReplicaHours = w.ReplicaHours
		if g != w {
			t.Errorf("summary %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func TestWriteTable(t *testing.T) {
	r := handResult()
	// Two more steps like the third: the middle one changes nothing and is
	// omitted, the last is always shown.
	r.Steps = append(r.Steps[:2:2], r.Steps[2], r.Steps[2], r.Steps[2])
	r.Steps[3].Time = r.Steps[2].Time.Add(5 * time.Second)
	r.Steps[4].Time = r.Steps[2].Time.Add(10 * time.Second)
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`q1 = sum(q{a="b"})  (queue.depth)`,
		"inflight = i\nqueued = q\nactual = kube\n",
		"1 (held)",
		"(1 steps without a change omitted; csv and json give every step)",
		"RULE SET  REPLICA-HOURS",
		"5 steps of 15s from 2026-12-01T10:00:00Z to 2026-12-01T10:00:45Z",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "10:00:35Z") {
		t.Errorf("the unchanged step at 10:00:35 is shown:\n%s", out)
	}
}
