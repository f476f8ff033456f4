package externalscaler

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"google.golang.org/grpc/codes"

	"github.com/k8s-nemesis/nemesis/kube"
)

// eventsEnv is a unit server whose Events go through kube.Events to a fake
// clientset.
type eventsEnv struct {
	*unitEnv
	q      *byQuery
	client *fake.Clientset
}

// newEventsServer serves recordRules with Events written to a fake
// clientset, whose reactors setup may add, through kube.Events with opts.
func newEventsServer(t *testing.T, opts kube.EventsOptions, setup func(*fake.Clientset)) *eventsEnv {
	t.Helper()
	client := fake.NewClientset()
	if setup != nil {
		setup(client)
	}
	q := &byQuery{vals: map[string]float64{"waiting": 18, "running": 10}}
	ev := &lateEvents{}
	e := newUnitServer(t, recordRules, q, Options{Events: ev})
	opts.Logger, opts.Registerer = newTestLogger(e.logs), e.reg
	ev.Events = kube.NewEvents(client, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ev.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Events.Run: %v", err)
		}
	})
	return &eventsEnv{unitEnv: e, q: q, client: client}
}

// lateEvents lets newEventsServer make the kube.Events after the server,
// with the server's logger and registry.
type lateEvents struct{ *kube.Events }

// poll evaluates r once more after ReuseFor, as KEDA's next poll would.
func (e *eventsEnv) poll(t *testing.T, r string, want int64) {
	t.Helper()
	e.clock.Add(2 * time.Second)
	e.expect(t, chatRef(r), want, true)
}

// events lists the Events written, oldest first.
func (e *eventsEnv) events(t *testing.T) []eventsv1.Event {
	t.Helper()
	l, err := e.client.EventsV1().Events("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	evs := l.Items
	slices.SortFunc(evs, func(a, b eventsv1.Event) int { return a.EventTime.Compare(b.EventTime.Time) })
	return evs
}

// counter sums the metric name, of reason if not "".
func (e *eventsEnv) counter(t *testing.T, name, reason string) float64 {
	match := map[string]string{}
	if reason != "" {
		match["reason"] = reason
	}
	return gatherSum(t, e.reg, name, match)
}

func TestEventsOnChange(t *testing.T) {
	e := newEventsServer(t, kube.EventsOptions{}, nil)
	e.expect(t, chatRef("chat"), 5, true) // the first decision: no Event
	e.q.vals["waiting"] = 26
	e.poll(t, "chat", 7)
	for range 50 {
		e.poll(t, "chat", 7) // unchanged: no Event
	}
	if got := e.counter(t, "nemesis_scaler_events_total", ""); got != 1 {
		t.Fatalf("%v Events emitted after one change and 50 unchanged polls, want 1", got)
	}
	e.q.vals["waiting"] = 9
	e.poll(t, "chat", 3)

	want := []struct{ reason, action, typ, note string }{
		{ReasonScaledUp, "ScaleUpTo7", "Normal", "replicas 5 → 7: max(waiting / 4 = 6.5, running / 8 = 1.25) = 6.5 → 7 (0..16)"},
		{ReasonScaledDown, "ScaleDownTo3", "Normal", "replicas 7 → 3: max(waiting / 4 = 2.25, running / 8 = 1.25) = 2.25 → 3 (0..16)"},
	}
	var evs []eventsv1.Event
	eventually(t, 30*time.Second, func() (bool, string) {
		evs = e.events(t)
		return len(evs) >= len(want), "Events written: " + strings.Join(reasons(evs), ", ")
	})
	if len(evs) != len(want) {
		t.Fatalf("Events %v, want %d", reasons(evs), len(want))
	}
	for i, w := range want {
		ev := evs[i]
		if ev.Reason != w.reason || ev.Action != w.action || ev.Type != w.typ || ev.Note != w.note {
			t.Errorf("Event %d: reason %q, action %q, type %q, note %q; want %q, %q, %q, %q", i, ev.Reason, ev.Action, ev.Type, ev.Note, w.reason, w.action, w.typ, w.note)
		}
		reg := ev.Regarding
		if reg.APIVersion != "keda.sh/v1alpha1" || reg.Kind != "ScaledObject" || reg.Namespace != "ns" || reg.Name != "chat" {
			t.Errorf("Event %d regards %+v, want ScaledObject ns/chat", i, reg)
		}
		if ev.ReportingController != kube.DefaultEventsController {
			t.Errorf("Event %d: reportingController %q", i, ev.ReportingController)
		}
	}
	if got := e.counter(t, "nemesis_scaler_events_dropped_total", ""); got != 0 {
		t.Errorf("%v Events dropped, want 0", got)
	}
}

func reasons(evs []eventsv1.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Reason+" "+ev.Action)
	}
	return out
}

func TestEventsOnErrors(t *testing.T) {
	e := newEventsServer(t, kube.EventsOptions{}, nil)
	r := chatRef("chat")
	e.expect(t, r, 5, true)
	e.q.err = errors.New("querying prometheus: connection refused")
	for range 5 {
		e.poll(t, "chat", 5) // holding: one Event
	}
	e.clock.Add(6 * time.Minute) // past staleAfter: no answer
	for range 5 {
		e.clock.Add(2 * time.Second)
		e.expectCode(t, r, codes.Unavailable)
	}
	e.q.err = nil
	e.poll(t, "chat", 5) // good again, as told before: no Event
	e.q.vals["waiting"] = 0
	e.q.vals["running"] = 0
	e.clock.Add(2 * time.Second)
	e.expect(t, r, 0, false)

	// A trigger naming a rule set the scaler does not have, asked many
	// times: one Event.
	missing := ref("ns", "other", map[string]string{"ruleSet": "nope"})
	for range 10 {
		e.clock.Add(2 * time.Second)
		e.expectCode(t, missing, codes.InvalidArgument)
	}

	want := []string{ReasonHolding, ReasonEvaluationFailed, ReasonScaledDown, ReasonRuleSetMissing}
	var evs []eventsv1.Event
	eventually(t, 30*time.Second, func() (bool, string) {
		evs = e.events(t)
		return len(evs) >= len(want), "Events written: " + strings.Join(reasons(evs), ", ")
	})
	var got []string
	for _, ev := range evs {
		got = append(got, ev.Reason)
		if ev.Reason != ReasonScaledDown && ev.Type != "Warning" {
			t.Errorf("%s: type %q, want Warning", ev.Reason, ev.Type)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Events %v, want %v", got, want)
	}
	if n := evs[0].Note; !strings.HasPrefix(n, "replicas 5 (holding 5 since ") || !strings.HasSuffix(n, "connection refused") {
		t.Errorf("holding note %q", n)
	}
	if n := evs[1].Note; !strings.HasPrefix(n, "no replicas (onError: hold, nothing young enough to hold") {
		t.Errorf("failure note %q", n)
	}
	if n := evs[3].Note; evs[3].Regarding.Name != "other" || !strings.Contains(n, `no rule set named "nope"`) {
		t.Errorf("missing rule set: regarding %s, note %q", evs[3].Regarding.Name, n)
	}
}

func TestEventsRefused(t *testing.T) {
	forbidden := func(c *fake.Clientset) {
		deny := func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "events.k8s.io", Resource: "events"}, "", errors.New("RBAC: access denied"))
		}
		c.PrependReactor("create", "events", deny)
		c.PrependReactor("patch", "events", deny)
	}
	e := newEventsServer(t, kube.EventsOptions{}, forbidden)
	e.expect(t, chatRef("chat"), 5, true)
	for i, waiting := range []float64{26, 9, 26, 9} {
		e.q.vals["waiting"] = waiting
		want := int64(7)
		if waiting == 9 {
			want = 3
		}
		e.poll(t, "chat", want) // the evaluation is unaffected
		eventually(t, 30*time.Second, func() (bool, string) {
			got := e.counter(t, "nemesis_scaler_events_dropped_total", "")
			return got == float64(i+1), "dropped: " + strings.TrimSpace(strings.Repeat("I", int(got)))
		})
	}
	if got := e.counter(t, "nemesis_scaler_events_total", ""); got != 4 {
		t.Errorf("%v Events emitted, want 4", got)
	}
	if got := e.counter(t, "nemesis_scaler_events_dropped_total", ReasonScaledUp); got != 2 {
		t.Errorf("%v ScaledUp Events dropped, want 2", got)
	}
	if n := warnings(e.logs.String(), "a Kubernetes Event was dropped"); n != 1 {
		t.Errorf("%d warnings of dropped Events, want 1:\n%s", n, e.logs.String())
	}
	if !strings.Contains(e.logs.String(), "cause=forbidden") {
		t.Errorf("the warning does not say the cause is forbidden:\n%s", e.logs.String())
	}
}

// warnings counts the log lines at level WARN with msg.
func warnings(logs, msg string) int {
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, msg) {
			n++
		}
	}
	return n
}

func TestEventsSlowAPIServerDoesNotBlock(t *testing.T) {
	release := make(chan struct{})
	blocked := make(chan struct{}, 1)
	slow := func(c *fake.Clientset) {
		c.PrependReactor("*", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
			select {
			case blocked <- struct{}{}:
			default:
			}
			<-release
			return true, nil, apierrors.NewServiceUnavailable("too late")
		})
	}
	// One Event a second reaches the API server: an Emit that waited for
	// room in the queue would make the 200 evaluations take minutes.
	e := newEventsServer(t, kube.EventsOptions{Queue: 8, QPS: 1, Burst: 2, InFlight: 1, CallTimeout: time.Hour}, slow)
	t.Cleanup(func() { close(release) }) // before Run's cleanup, which runs first: LIFO
	e.expect(t, chatRef("chat"), 5, true)

	const changes = 200
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range changes {
			e.q.vals["waiting"] = float64(26 - 17*(i%2)) // 7, 3, 7, ...
			e.clock.Add(2 * time.Second)
			if _, _, err := e.replicas(chatRef("chat")); err != nil {
				t.Errorf("evaluation %d: %v", i, err)
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("evaluations did not complete while the API server hangs on Events")
	}
	select {
	case <-blocked:
	case <-time.After(30 * time.Second):
		t.Fatal("no Event reached the API server")
	}
	if got := e.counter(t, "nemesis_scaler_events_total", ""); got != changes {
		t.Errorf("%v Events emitted, want %d", got, changes)
	}
	// With one write hanging, the others that reach the API server, or
	// find the queue of 8 full, are lost, and counted. (Those alike but for
	// their note are merged by the broadcaster into the series of the
	// first: neither written nor lost.)
	eventually(t, 30*time.Second, func() (bool, string) {
		return e.counter(t, "nemesis_scaler_events_dropped_total", "") > 0, "no Event dropped"
	})
	if n := warnings(e.logs.String(), "a Kubernetes Event was dropped"); n == 0 || n > 3 {
		t.Errorf("%d warnings of dropped Events, want one per cause (busy, queue_full, and timeout at most):\n%s", n, e.logs.String())
	}
}

func TestEventOf(t *testing.T) {
	good := func(n int64) *record { return &record{replicas: n} }
	fail := &failure{err: "x"}
	holding := &record{replicas: 5, fail: fail, flags: flagHolding}
	fixed := &record{replicas: 2, fail: fail, flags: flagFixed}
	none := &record{fail: fail, flags: flagNoAnswer}
	for name, c := range map[string]struct {
		rec                   *record
		before                state
		told                  int64
		toldOK                bool
		wantReason, wantActon string
	}{
		"first good":            {good(5), stateNone, 0, false, "", ""},
		"up":                    {good(5), stateGood, 3, true, ReasonScaledUp, "ScaleUpTo5"},
		"down":                  {good(0), stateGood, 3, true, ReasonScaledDown, "ScaleDownTo0"},
		"same":                  {good(3), stateGood, 3, true, "", ""},
		"recovered, same":       {good(5), stateHolding, 5, true, "", ""},
		"recovered, up":         {good(6), stateNoAnswer, 5, true, ReasonScaledUp, "ScaleUpTo6"},
		"starts holding":        {holding, stateGood, 5, true, ReasonHolding, "Hold"},
		"still holding":         {holding, stateHolding, 5, true, "", ""},
		"hold went stale":       {none, stateHolding, 5, true, ReasonEvaluationFailed, "Evaluate"},
		"still no answer":       {none, stateNoAnswer, 5, true, "", ""},
		"fails, fixed":          {fixed, stateGood, 5, true, ReasonEvaluationFailed, "Evaluate"},
		"still fixed":           {fixed, stateFixed, 2, true, "", ""},
		"first fails, no hold":  {none, stateNone, 0, false, ReasonEvaluationFailed, "Evaluate"},
		"fixed after no answer": {fixed, stateNoAnswer, 5, true, ReasonEvaluationFailed, "Evaluate"},
	} {
		t.Run(name, func(t *testing.T) {
			reason, action := eventOf(c.rec, c.before, c.told, c.toldOK)
			if reason != c.wantReason || action != c.wantActon {
				t.Errorf("eventOf = %q, %q; want %q, %q", reason, action, c.wantReason, c.wantActon)
			}
		})
	}
}

func TestCutNote(t *testing.T) {
	long := strings.Repeat("é", 600) // 1,200 bytes
	got := cutNote(long)
	if len(got) > maxNote || !strings.HasSuffix(got, "…") || !strings.HasPrefix(long, strings.TrimSuffix(got, "…")) {
		t.Errorf("cutNote: %d bytes, %q…", len(got), got[:20])
	}
	if got := cutNote("short"); got != "short" {
		t.Errorf("cutNote(short) = %q", got)
	}
}
