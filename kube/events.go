package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/klog/v2"
)

// Defaults of EventsOptions.
const (
	DefaultEventsQueue       = 256
	DefaultEventsQPS         = 10
	DefaultEventsBurst       = 50
	DefaultEventsInFlight    = 4
	DefaultEventsCallTimeout = 5 * time.Second
	// DefaultEventsController is the Events' reportingController.
	DefaultEventsController = "nemesis-scaler"
)

// EventsOptions configures an [Events].
type EventsOptions struct {
	// Logger receives the logs; nil discards.
	Logger *slog.Logger
	// Registerer receives the metrics; nil: not registered.
	Registerer prometheus.Registerer
	// Dynamic reads the UID of a ScaledObject before its Event is written,
	// so that `kubectl describe scaledobject`, which selects Events by
	// UID, shows it. Nil: Events carry no UID (kubectl get events still
	// finds them by name).
	Dynamic dynamic.Interface
	// Queue bounds the Events waiting to be written: beyond, Emit drops.
	// Default DefaultEventsQueue.
	Queue int
	// QPS and Burst bound the rate of Events handed to the broadcaster.
	// Defaults DefaultEventsQPS and DefaultEventsBurst.
	QPS   float32
	Burst int
	// InFlight bounds the writes to the API server at once: a write beyond
	// is dropped at once. Default DefaultEventsInFlight.
	InFlight int
	// CallTimeout bounds one write to the API server (and one read of a
	// UID). Default DefaultEventsCallTimeout.
	CallTimeout time.Duration
	// Controller is the Events' reportingController. Default
	// DefaultEventsController.
	Controller string
}

// Events writes Kubernetes Events regarding KEDA ScaledObjects through
// client-go's events.k8s.io/v1 broadcaster (k8s.io/client-go/tools/events),
// which merges repeats of an Event into a series.
//
// Emit never blocks: an Event goes into a bounded queue, which Run drains
// at a bounded rate. An Event that finds the queue full, or that the API
// server refuses, or does not accept within CallTimeout, or that would
// exceed InFlight writes, is dropped and counted in
// nemesis_scaler_events_dropped_total; the broadcaster never retries it, so
// that a slow API server holds no goroutines. Each kind of failure is logged
// once at warning level, the rest at debug.
//
// An Events is safe for concurrent use.
type Events struct {
	client kubernetes.Interface
	opts   EventsOptions
	logger *slog.Logger
	m      *eventInstruments
	queue  chan pendingEvent
	slots  chan struct{} // writes in flight

	mu     sync.Mutex
	logged map[string]bool // the kinds of failure logged at warning level
}

// pendingEvent is an Event waiting in the queue.
type pendingEvent struct {
	namespace, name, reason, action, note string
	warning                               bool
}

// NewEvents returns an Events that writes through client. It makes no
// call to the API server until Run.
func NewEvents(client kubernetes.Interface, opts EventsOptions) *Events {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultEventsQueue
	}
	if opts.QPS <= 0 {
		opts.QPS = DefaultEventsQPS
	}
	if opts.Burst <= 0 {
		opts.Burst = DefaultEventsBurst
	}
	if opts.InFlight <= 0 {
		opts.InFlight = DefaultEventsInFlight
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = DefaultEventsCallTimeout
	}
	if opts.Controller == "" {
		opts.Controller = DefaultEventsController
	}
	return &Events{
		client: client,
		opts:   opts,
		logger: opts.Logger,
		m:      newEventInstruments(opts.Registerer),
		queue:  make(chan pendingEvent, opts.Queue),
		slots:  make(chan struct{}, opts.InFlight),
		logged: map[string]bool{},
	}
}

// Emit queues an Event of reason regarding ScaledObject namespace/name,
// with action (what was done, machine-readable) and note (for humans); a
// warning is of type Warning, else Normal. It never blocks: when the queue
// is full, the Event is dropped.
func (e *Events) Emit(namespace, name, reason, action, note string, warning bool) {
	e.m.emitted.WithLabelValues(reason).Inc()
	select {
	case e.queue <- pendingEvent{namespace, name, reason, action, note, warning}:
	default:
		e.dropped(reason, "queue_full", fmt.Errorf("the queue of %d Events is full", e.opts.Queue))
	}
}

// Run writes the queued Events until ctx ends; Events still queued then are
// lost. It returns an error only if the broadcaster cannot start.
func (e *Events) Run(ctx context.Context) error {
	b := events.NewBroadcaster(&countingSink{e: e, inner: &events.EventSinkImpl{Interface: e.client.EventsV1()}})
	defer b.Shutdown()
	// The broadcaster logs through klog each Event it fails to write:
	// countingSink logs instead, once per kind of failure.
	if err := b.StartRecordingToSinkWithContext(klog.NewContext(ctx, logr.Discard())); err != nil {
		return fmt.Errorf("kube: starting the Event broadcaster: %w", err)
	}
	rec := b.NewRecorder(scheme.Scheme, e.opts.Controller)
	limit := flowcontrol.NewTokenBucketRateLimiter(e.opts.QPS, e.opts.Burst)
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-e.queue:
			if limit.Wait(ctx) != nil {
				return nil
			}
			typ := corev1.EventTypeNormal
			if p.warning {
				typ = corev1.EventTypeWarning
			}
			rec.Eventf(e.regarding(ctx, p.namespace, p.name), nil, typ, p.reason, p.action, "%s", p.note)
		}
	}
}

// regarding is the reference of ScaledObject namespace/name, with its UID
// when it can be read.
func (e *Events) regarding(ctx context.Context, namespace, name string) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{}
	obj.SetAPIVersion("keda.sh/v1alpha1")
	obj.SetKind("ScaledObject")
	obj.SetNamespace(namespace)
	obj.SetName(name)
	if e.opts.Dynamic == nil {
		return obj
	}
	ctx, cancel := context.WithTimeout(ctx, e.opts.CallTimeout)
	defer cancel()
	so, err := e.opts.Dynamic.Resource(scaledObjects()).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		e.logOnce("uid", "cannot read the ScaledObject of an Event: it goes without UID, and kubectl describe does not show it", "namespace", namespace, "scaledObject", name, "err", err)
		return obj
	}
	obj.SetUID(so.GetUID())
	return obj
}

// dropped counts an Event of reason lost for cause, and logs it.
func (e *Events) dropped(reason, cause string, err error) {
	e.m.dropped.WithLabelValues(reason).Inc()
	e.logOnce(cause, "a Kubernetes Event was dropped; further drops of this kind are logged at debug level (nemesis_scaler_events_dropped_total counts them)", "reason", reason, "cause", cause, "err", err)
}

// logOnce logs msg at warning level the first time for kind, then at debug.
func (e *Events) logOnce(kind, msg string, args ...any) {
	e.mu.Lock()
	first := !e.logged[kind]
	e.logged[kind] = true
	e.mu.Unlock()
	if first {
		e.logger.Warn(msg, args...)
	} else {
		e.logger.Debug(msg, args...)
	}
}

// countingSink writes Events through inner, bounded by e's slots and
// CallTimeout, counts those lost, and turns every failure into one the
// broadcaster does not retry.
type countingSink struct {
	e     *Events
	inner events.EventSink
}

var _ events.EventSink = (*countingSink)(nil)

func (s *countingSink) Create(ctx context.Context, ev *eventsv1.Event) (*eventsv1.Event, error) {
	return s.write(ctx, ev, false, func(ctx context.Context) (*eventsv1.Event, error) { return s.inner.Create(ctx, ev) })
}

func (s *countingSink) Update(ctx context.Context, ev *eventsv1.Event) (*eventsv1.Event, error) {
	return s.write(ctx, ev, false, func(ctx context.Context) (*eventsv1.Event, error) { return s.inner.Update(ctx, ev) })
}

func (s *countingSink) Patch(ctx context.Context, ev *eventsv1.Event, data []byte) (*eventsv1.Event, error) {
	return s.write(ctx, ev, true, func(ctx context.Context) (*eventsv1.Event, error) { return s.inner.Patch(ctx, ev, data) })
}

func (s *countingSink) write(ctx context.Context, ev *eventsv1.Event, patch bool, call func(context.Context) (*eventsv1.Event, error)) (*eventsv1.Event, error) {
	select {
	case s.e.slots <- struct{}{}:
	default:
		err := fmt.Errorf("%d writes of Events are in flight already", cap(s.e.slots))
		s.e.dropped(ev.Reason, "busy", err)
		return nil, apierrors.NewTooManyRequests(err.Error(), 0)
	}
	defer func() { <-s.e.slots }()
	ctx, cancel := context.WithTimeout(ctx, s.e.opts.CallTimeout)
	defer cancel()
	out, err := call(ctx)
	if err == nil {
		return out, nil
	}
	if patch && apierrors.IsNotFound(err) {
		// The series' first Event is gone: the broadcaster creates it
		// again, which is counted then.
		return nil, err
	}
	cause := "refused"
	switch {
	case apierrors.IsForbidden(err):
		cause = "forbidden"
		err = fmt.Errorf("%w (the scaler needs create and patch on events in the API group events.k8s.io; the Helm chart grants them)", err)
	case errors.Is(err, context.DeadlineExceeded) || apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err):
		cause = "timeout"
	}
	s.e.dropped(ev.Reason, cause, err)
	var status *apierrors.StatusError
	if errors.As(err, &status) {
		return nil, status
	}
	// Not an API status (the server was not reached, or too late): the
	// broadcaster would retry it 12 times, 10 s apart, one goroutine each.
	return nil, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusServiceUnavailable, Reason: metav1.StatusReasonServiceUnavailable, Message: err.Error()}}
}

// eventInstruments are the metrics of an Events.
type eventInstruments struct {
	emitted, dropped *prometheus.CounterVec
}

func newEventInstruments(reg prometheus.Registerer) *eventInstruments {
	m := &eventInstruments{
		emitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "nemesis", Subsystem: "scaler", Name: "events_total",
			Help: "Kubernetes Events the scaler emitted on ScaledObjects, by reason, including those then dropped.",
		}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "nemesis", Subsystem: "scaler", Name: "events_dropped_total",
			Help: "Kubernetes Events lost, by reason: the queue was full, or the API server refused the Event (e.g. no RBAC permission) or did not accept it in time.",
		}, []string{"reason"}),
	}
	if reg != nil {
		m.emitted = register(reg, m.emitted)
		m.dropped = register(reg, m.dropped)
	}
	return m
}
