package kube

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
)

// runEvents runs ev until the test ends.
func runEvents(t *testing.T, ev *Events) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ev.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestEventsRegarding: the Event regards the ScaledObject, with its UID.
func TestEventsRegarding(t *testing.T) {
	so := scaledObject("ml", "chat", nil)
	so.SetUID(types.UID("0b5e-uid"))
	client := fake.NewClientset()
	ev := NewEvents(client, EventsOptions{
		Dynamic: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{scaledObjects(): "ScaledObjectList"}, so),
	})
	runEvents(t, ev)
	ev.Emit("ml", "chat", "NemesisScaledUp", "ScaleUpTo5", "replicas 3 → 5", false)
	ev.Emit("ml", "gone", "NemesisScaledUp", "ScaleUpTo1", "replicas 0 → 1", false)

	deadline := time.Now().Add(30 * time.Second)
	for {
		l, err := client.EventsV1().Events("ml").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Items) == 2 {
			for _, e := range l.Items {
				r := e.Regarding
				if r.APIVersion != "keda.sh/v1alpha1" || r.Kind != "ScaledObject" || r.Namespace != "ml" {
					t.Errorf("regarding %+v", r)
				}
				switch r.Name {
				case "chat":
					if r.UID != "0b5e-uid" || e.Note != "replicas 3 → 5" || e.Type != "Normal" || e.Action != "ScaleUpTo5" {
						t.Errorf("Event of chat: %+v", e)
					}
				case "gone":
					// Not found: the Event goes without UID.
					if r.UID != "" {
						t.Errorf("Event of gone: UID %q", r.UID)
					}
				}
				if e.ReportingController != DefaultEventsController || !strings.HasPrefix(e.ReportingInstance, DefaultEventsController+"-") {
					t.Errorf("reporting %q, %q", e.ReportingController, e.ReportingInstance)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Events written, want 2", len(l.Items))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEventsQueueFull: Emit never waits; beyond the queue, Events are
// dropped and counted by reason, and logged once.
func TestEventsQueueFull(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	// Not running: nothing drains the queue.
	ev := NewEvents(fake.NewClientset(), EventsOptions{Queue: 3, Logger: logger, Registerer: reg})
	for range 10 {
		ev.Emit("ml", "chat", "NemesisHolding", "Hold", "x", true)
	}
	if got := testutil.ToFloat64(ev.m.emitted.WithLabelValues("NemesisHolding")); got != 10 {
		t.Errorf("emitted %v, want 10", got)
	}
	if got := testutil.ToFloat64(ev.m.dropped.WithLabelValues("NemesisHolding")); got != 7 {
		t.Errorf("dropped %v, want 7", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestCountingSinkNeverRetried: every failure reaches the broadcaster as
// an API status, which it does not retry; a missing series is passed on
// uncounted, for the broadcaster to create it again.
func TestCountingSinkNeverRetried(t *testing.T) {
	ev := NewEvents(fake.NewClientset(), EventsOptions{})
	for name, c := range map[string]struct {
		err         error
		patch       bool
		wantDropped float64
	}{
		"transport":       {errors.New("dial tcp: connection refused"), false, 1},
		"timeout":         {context.DeadlineExceeded, false, 1},
		"forbidden":       {apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "", errors.New("no")), false, 1},
		"series gone":     {apierrors.NewNotFound(schema.GroupResource{Resource: "events"}, "x"), true, 0},
		"patch forbidden": {apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "", errors.New("no")), true, 1},
	} {
		t.Run(name, func(t *testing.T) {
			before := testutil.ToFloat64(ev.m.dropped.WithLabelValues(name))
			s := &countingSink{e: ev}
			evt := eventWithReason(name)
			_, err := s.write(context.Background(), evt, c.patch, func(context.Context) (*eventsv1.Event, error) { return nil, c.err })
			if _, ok := err.(*apierrors.StatusError); !ok {
				t.Errorf("error %T %v, want an *apierrors.StatusError", err, err)
			}
			if got := testutil.ToFloat64(ev.m.dropped.WithLabelValues(name)) - before; got != c.wantDropped {
				t.Errorf("dropped %v, want %v", got, c.wantDropped)
			}
		})
	}
	// A write beyond InFlight is dropped at once.
	for range cap(ev.slots) {
		ev.slots <- struct{}{}
	}
	_, err := (&countingSink{e: ev}).write(context.Background(), eventWithReason("busy"), false, func(context.Context) (*eventsv1.Event, error) {
		t.Error("written beyond InFlight")
		return nil, nil
	})
	if !apierrors.IsTooManyRequests(err) {
		t.Errorf("busy: %v", err)
	}
}

func eventWithReason(reason string) *eventsv1.Event {
	return &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: "x"}, Reason: reason}
}
