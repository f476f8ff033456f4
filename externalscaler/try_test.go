package externalscaler

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestTry(t *testing.T) {
	q := &byQuery{vals: map[string]float64{"waiting": 18, "running": 10, "queue": 7}}
	e := newUnitServer(t, recordRules, q, Options{})
	r := chatRef("chat")
	e.expect(t, r, 5, true)
	before := history(t, e, "chat")
	evals := testutil.ToFloat64(e.server.m.evaluations.WithLabelValues("chat"))

	// A candidate with its own query, rendered with the trigger's metadata.
	candidate := `ruleSets:
  - name: candidate
    queries:
      queue: sum(queue{namespace="$namespace", model="$model"})
    replicas: queue / 2
    max: 16
`
	rec, err := e.server.Try(context.Background(), []byte(candidate), "", "ns", "chat")
	if err != nil {
		t.Fatal(err)
	}
	if rec.RuleSet != "candidate" || rec.Replicas != 4 || rec.Error != "" || len(rec.Queries) != 1 ||
		rec.Queries[0].Query != `sum(queue{namespace="ns", model="llama"})` {
		t.Errorf("try: %+v", rec)
	}
	// The previous replicas are what the live rule set told KEDA.
	if want := "replicas 5 → 4: (queue = 7) / (2) = 3.5 → 4 (0..16)"; rec.Explanation != want {
		t.Errorf("explanation %q, want %q", rec.Explanation, want)
	}

	// Nothing changed: no record, no metric, the same answer.
	if after := history(t, e, "chat"); len(after) != len(before) {
		t.Errorf("%d records after the try, want %d", len(after), len(before))
	}
	if got := testutil.ToFloat64(e.server.m.evaluations.WithLabelValues("chat")); got != evals {
		t.Errorf("live evaluations %v after the try, want %v", got, evals)
	}
	if n := testutil.CollectAndCount(e.server.m.evaluations); n != 1 {
		t.Errorf("%d evaluation series after the try, want only the live rule set's", n)
	}
	if rs := e.server.RuleSets(); len(rs.RuleSets) != 1 || rs.RuleSets[0].Name != "chat" {
		t.Errorf("rule sets in force changed: %+v", rs)
	}

	// A failing query is the record's error, with its reason.
	q.err = errors.New("connection refused")
	rec, err = e.server.Try(context.Background(), []byte(candidate), "candidate", "ns", "chat")
	q.err = nil
	if err != nil || rec.Error == "" || rec.Reason == "" || rec.Queries[0].Error == "" {
		t.Errorf("failing query: err %v, record %+v", err, rec)
	}
}

func TestTryRefuses(t *testing.T) {
	q := &byQuery{vals: map[string]float64{"waiting": 18, "running": 10}}
	e := newUnitServer(t, recordRules, q, Options{})
	e.expect(t, chatRef("chat"), 5, true)
	two := "ruleSets:\n  - {name: a, replicas: '1', max: 2}\n  - {name: b, replicas: '2', max: 2}\n"
	for name, c := range map[string]struct {
		text, ruleSet, object string
		want                  string
		line, column          int
	}{
		"syntax":       {text: "ruleSets:\n  - name: x\n    replicas: nope +\n    max: 4\n", want: "try.yaml:3:", line: 3, column: 20},
		"unknown name": {text: "ruleSets:\n  - name: x\n    replicas: waiting\n    max: 4\n", want: "waiting", line: 3},
		"too big":      {text: "#" + strings.Repeat("x", TryMaxBytes), want: "at most 65536"},
		"several":      {text: two, want: "name the one to try"},
		"missing":      {text: two, ruleSet: "c", want: `no rule set "c"`},
		"template":     {text: "ruleSets:\n  - name: x\n    queries: {q: 'up{x=\"$nope\"}'}\n    replicas: q\n    max: 4\n", want: "nope"},
		"object":       {text: two, ruleSet: "a", object: "other", want: "unknown ScaledObject ns/other"},
	} {
		t.Run(name, func(t *testing.T) {
			object := c.object
			if object == "" {
				object = "chat"
			}
			_, err := e.server.Try(context.Background(), []byte(c.text), c.ruleSet, "ns", object)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			var te *TryError
			if c.object != "" {
				if !errors.Is(err, ErrUnknownScaledObject) || errors.As(err, &te) {
					t.Errorf("error %v: want ErrUnknownScaledObject", err)
				}
				return
			}
			if !errors.As(err, &te) {
				t.Fatalf("error %T, want *TryError", err)
			}
			if c.line > 0 {
				if len(te.Problems) == 0 || te.Problems[0].File != TryFile || te.Problems[0].Line != c.line || (c.column > 0 && te.Problems[0].Column != c.column) {
					t.Errorf("problems %+v, want %s:%d:%d", te.Problems, TryFile, c.line, c.column)
				}
			}
		})
	}
}
