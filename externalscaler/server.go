package externalscaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/k8s-nemesis/nemesis/metrics"
	"github.com/k8s-nemesis/nemesis/rules"
)

// Querier runs one instant PromQL query. The scaler uses a caching,
// deduplicating [metrics.Client]; tests may use anything.
type Querier interface {
	Query(ctx context.Context, query string) (metrics.Result, error)
}

// Demand gives the requests of each service that the activators are
// proxying (in flight) and holding (queued), summed over every activator
// replica; [demand.Aggregator] implements it.
type Demand interface {
	// Get returns the counts of a service; known is false while no
	// activator reports, when the zeros mean nothing.
	Get(namespace, service string) (inFlight, queued int64, known bool)
	// Changes returns a channel closed when the service's in-flight or
	// queued count next rises from zero.
	Changes(namespace, service string) <-chan struct{}
}

// ScaleTargets gives the replicas and ready pods of the scale target of a
// ScaledObject; [kube.ScaleTargets] implements it.
type ScaleTargets interface {
	// Get returns the replicas of the scale target of ScaledObject
	// namespace/name and, when withReady is true, how many of its pods
	// are ready. It bounds its own wait; an error means the values are
	// unknown.
	Get(ctx context.Context, namespace, name string, withReady bool) (replicas, ready int64, err error)
}

// Rules gives the rule catalog in force; [RuleStore] implements it.
type Rules interface {
	Current() *Catalog
}

// Options configures a [Server].
type Options struct {
	// Logger receives the server's logs; default slog.Default().
	Logger *slog.Logger
	// Registerer receives the server's metrics; default a new registry.
	Registerer prometheus.Registerer
	// TracerProvider makes the evaluation spans; default no tracing.
	TracerProvider trace.TracerProvider
	// ReuseFor is how long one evaluation answers further calls for the same
	// ScaledObject, so that KEDA's GetMetrics and IsActive pair, and the
	// HPA's reads through the metrics adapter, cost one evaluation. Default 1s.
	ReuseFor time.Duration
	// PushInterval is how often an open StreamIsActive re-evaluates. Default 1s.
	PushInterval time.Duration
	// ForgetAfter drops the state (last good decision, metrics) of a
	// ScaledObject that has not been asked for in this long. Default 15m.
	ForgetAfter time.Duration
	// MaxScaledObjects bounds the triggers whose state the server keeps (a
	// ScaledObject with two Nemesis triggers counts twice). The state is
	// keyed by the trigger's metadata, which any caller that reaches the
	// gRPC port chooses: beyond the bound a new trigger is refused with
	// ResourceExhausted until others are forgotten (ForgetAfter). Default
	// DefaultMaxScaledObjects.
	MaxScaledObjects int
	// Demand is the activators' demand signal: the values of the built-in
	// variables inflight and queued, and the wake-up of StreamIsActive.
	// Nil: no activator; rule sets that use inflight or queued fail.
	Demand Demand
	// ScaleTargets gives the values of the built-in variables current and
	// ready. Nil: no Kubernetes access; rule sets that use them fail.
	ScaleTargets ScaleTargets
	// Events receives a Kubernetes Event when a trigger's decision or
	// state changes (see the Reason constants), never on every call. Nil:
	// no Events.
	Events Events
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// DefaultMaxScaledObjects is the default of Options.MaxScaledObjects: far
// more triggers than one KEDA installation serves, and about 110 MB of
// state at most, decision records included (docs/operations.md).
const DefaultMaxScaledObjects = 10000

// Server implements KEDA's ExternalScaler gRPC service.
type Server struct {
	pb.UnimplementedExternalScalerServer

	rules  Rules
	q      Querier
	opts   Options
	logger *slog.Logger
	tracer trace.Tracer
	m      *scalerMetrics
	// flights runs one evaluation per trigger at a time (decideKey).
	flights *flights

	mu      sync.Mutex
	objects map[string]*object
	// unresolved are the triggers that could not be resolved, while
	// Options.Events is set: each makes one Event per problem.
	unresolved map[string]*unresolvedTrigger
	// swept is when forgetIdle last ran because the bound was reached: at
	// most once a second, so that calls refused at the bound do not each
	// scan every trigger under mu.
	swept time.Time

	// draining is closed by Drain.
	draining  chan struct{}
	drainOnce sync.Once
}

var _ pb.ExternalScalerServer = (*Server)(nil)

// object is what the server keeps about one ScaledObject trigger.
type object struct {
	namespace, name, ruleSet string
	// service is the Service whose demand the built-ins read.
	service string

	// The rule set and rendered queries, for one catalog version.
	version uint64
	rs      *rules.RuleSet
	queries []string
	// res is the same, shared by the records made under that version.
	res *resolved

	// The last answer, reused for ReuseFor.
	answer   answer
	answerAt time.Time

	// The answer last given to GetMetrics: the IsActive that KEDA sends
	// right after it gets the same evaluation's activity, even if the
	// answer above was replaced in between.
	pairAnswer answer
	pairAt     time.Time

	// The last good decision, for onError: hold.
	last rules.LastGood

	// shadows are the shadow rule sets (trigger metadata
	// shadowRuleSets), evaluated with the live one, never told to KEDA.
	shadows []*shadow

	// records are the newest evaluations; seq numbers them.
	records ring
	seq     uint32
	// calls counts the calls answered by the newest record: its seq in the
	// high 32 bits, the count in the low, so that a call counts itself
	// without s.mu (see countCall). It is folded into the record when the
	// next one is kept.
	calls atomic.Uint64

	// What the trigger last told KEDA (told, if toldOK) and the state of
	// its last evaluation, for Events.
	told   int64
	toldOK bool
	state  state

	lastSeen time.Time
}

// answer is what KEDA is told: a decision, or an error.
type answer struct {
	ruleSet  string
	decision rules.Decision
	holding  bool
	// seq is the evaluation's number among its trigger's records; 0 for
	// an answer that is no evaluation (the trigger could not be resolved).
	seq uint32
	err error
	// obj is the trigger whose record seq is.
	obj *object
}

// New returns a scaler serving the rules of r, querying through q.
func New(r Rules, q Querier, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.TracerProvider == nil {
		opts.TracerProvider = noop.NewTracerProvider()
	}
	if opts.ReuseFor <= 0 {
		opts.ReuseFor = time.Second
	}
	if opts.PushInterval <= 0 {
		opts.PushInterval = time.Second
	}
	if opts.ForgetAfter <= 0 {
		opts.ForgetAfter = 15 * time.Minute
	}
	if opts.MaxScaledObjects <= 0 {
		opts.MaxScaledObjects = DefaultMaxScaledObjects
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Server{
		rules:      r,
		q:          q,
		flights:    newFlights(),
		opts:       opts,
		logger:     opts.Logger,
		tracer:     opts.TracerProvider.Tracer("github.com/k8s-nemesis/nemesis/externalscaler"),
		m:          newScalerMetrics(opts.Registerer),
		objects:    map[string]*object{},
		unresolved: map[string]*unresolvedTrigger{},
		draining:   make(chan struct{}),
	}
}

// Drain ends every StreamIsActive stream and refuses new ones with
// Unavailable; it does not wait. Call it on shutdown after reporting
// NOT_SERVING and before GracefulStop, which would otherwise wait for the
// streams, which never end by themselves, for the whole shutdown timeout,
// while no demand or scale-target change reached KEDA through them: ended,
// they make KEDA reconnect, through a new connection once GracefulStop has
// sent GOAWAY, to a replica that serves. A stream that reported inactive
// looks once more before it ends, so that a rise of demand already seen
// (see Options.Demand) is still pushed.
func (s *Server) Drain() {
	s.drainOnce.Do(func() { close(s.draining) })
}

// errDraining is what a stream ends with on Drain: KEDA logs it and
// reconnects.
var errDraining = status.Error(grpccodes.Unavailable, "the scaler is shutting down: reconnect to another replica")

// objectKey identifies a trigger: the ScaledObject and its whole metadata,
// since two triggers of one object may name different rule sets or values.
func objectKey(ref *pb.ScaledObjectRef) string {
	keys := make([]string, 0, len(ref.ScalerMetadata))
	for k := range ref.ScalerMetadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(ref.Namespace)
	b.WriteByte(0)
	b.WriteString(ref.Name)
	for _, k := range keys {
		b.WriteByte(0)
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(ref.ScalerMetadata[k])
	}
	return b.String()
}

// resolve finds the rule set of ref and renders its queries, or returns a
// gRPC InvalidArgument error that says what is wrong with the ScaledObject.
// It does no I/O. Callers hold s.mu.
func (s *Server) resolve(key string, ref *pb.ScaledObjectRef) (*object, error) {
	cat := s.rules.Current()
	o := s.objects[key]
	if o != nil && o.version == cat.Version {
		o.lastSeen = s.opts.Now()
		return o, nil
	}
	name := ref.ScalerMetadata["ruleSet"]
	if name == "" {
		err := status.Errorf(grpccodes.InvalidArgument, "ScaledObject %s/%s: trigger metadata has no ruleSet: name one of %s", ref.Namespace, ref.Name, strings.Join(cat.Names(), ", "))
		s.noteUnresolved(key, ref, ReasonRuleSetMissing, "ResolveRuleSet", err)
		return nil, err
	}
	rs, ok := cat.RuleSet(name)
	if !ok {
		err := status.Errorf(grpccodes.InvalidArgument, "ScaledObject %s/%s: no rule set named %q: the scaler has %s", ref.Namespace, ref.Name, name, strings.Join(cat.Names(), ", "))
		s.noteUnresolved(key, ref, ReasonRuleSetMissing, "ResolveRuleSet", err)
		return nil, err
	}
	queries, err := rs.Render(ref.Namespace, ref.Name, ref.ScalerMetadata)
	if err != nil {
		err := status.Errorf(grpccodes.InvalidArgument, "ScaledObject %s/%s: rule set %q: %v", ref.Namespace, ref.Name, name, err)
		s.noteUnresolved(key, ref, ReasonEvaluationFailed, "RenderQueries", err)
		return nil, err
	}
	delete(s.unresolved, key)
	if o == nil {
		if !s.room() {
			s.m.refused.Inc()
			return nil, status.Errorf(grpccodes.ResourceExhausted, "ScaledObject %s/%s: the scaler already serves %d triggers, its limit (--max-scaled-objects); a trigger not asked for in %v is forgotten and frees its place", ref.Namespace, ref.Name, s.opts.MaxScaledObjects, s.opts.ForgetAfter)
		}
		o = &object{namespace: ref.Namespace, name: ref.Name, service: serviceOf(ref)}
		s.objects[key] = o
		s.m.triggers.Set(float64(len(s.objects)))
	} else if o.ruleSet != name {
		s.m.forget(o.namespace, o.name, o.ruleSet)
	}
	if o.rs != nil && o.rs != rs {
		o.answerAt = time.Time{} // the rules changed: do not reuse an answer
	}
	o.ruleSet, o.rs, o.queries, o.version = name, rs, queries, cat.Version
	o.res = &resolved{rs: rs, version: cat.Version, queries: queries, metadata: maps.Clone(ref.ScalerMetadata)}
	s.resolveShadows(o, ref, cat)
	o.lastSeen = s.opts.Now()
	return o, nil
}

// room reports whether one more trigger may be tracked. At the bound it
// first forgets the idle triggers, as Run would on its next tick, so that
// ScaledObjects deleted in the last minute do not keep new ones out.
// Callers hold s.mu.
func (s *Server) room() bool {
	if len(s.objects) < s.opts.MaxScaledObjects {
		return true
	}
	if now := s.opts.Now(); now.Sub(s.swept) >= time.Second {
		s.swept = now
		s.forgetIdleLocked()
	}
	return len(s.objects) < s.opts.MaxScaledObjects
}

// serviceOf names the Service whose demand a trigger reads: metadata
// service, else the ScaledObject's name. Its namespace is always the
// ScaledObject's, as for $namespace in templates, so that no ScaledObject
// can scale on another namespace's traffic.
func serviceOf(ref *pb.ScaledObjectRef) string {
	if s := ref.ScalerMetadata["service"]; s != "" {
		return s
	}
	return ref.Name
}

// waiting reports whether the activators hold requests for ref's service:
// then the trigger is active whatever its rule set says, so that a waiting
// request always wakes the service, even while Prometheus is down.
func (s *Server) waiting(ref *pb.ScaledObjectRef) bool {
	if s.opts.Demand == nil {
		return false
	}
	_, queued, known := s.opts.Demand.Get(ref.Namespace, serviceOf(ref))
	return known && queued > 0
}

// decide answers for ref, evaluating at most once per ReuseFor however many
// calls arrive together; fresh skips that reuse.
func (s *Server) decide(ctx context.Context, ref *pb.ScaledObjectRef, fresh bool) answer {
	if ref == nil {
		return answer{err: status.Error(grpccodes.InvalidArgument, "no ScaledObjectRef")}
	}
	return s.decideKey(ctx, objectKey(ref), ref, fresh)
}

func (s *Server) decideKey(ctx context.Context, key string, ref *pb.ScaledObjectRef, fresh bool) answer {
	// A fresh caller must not join an evaluation that started before what
	// it was woken for.
	flightKey := key
	if fresh {
		flightKey += "\x00fresh"
	}
	// The evaluation runs detached from the cancellation of the caller that
	// started it (see below); each caller stops waiting when its own ctx
	// ends.
	f := s.flights.do(flightKey, func() answer {
		s.mu.Lock()
		o, err := s.resolve(key, ref)
		if err != nil {
			s.mu.Unlock()
			return answer{err: err}
		}
		now := s.opts.Now()
		if !fresh && !o.answerAt.IsZero() && now.Sub(o.answerAt) < s.opts.ReuseFor {
			a := o.answer
			s.mu.Unlock()
			return a
		}
		rs, queries, service, res := o.rs, o.queries, o.service, o.res
		var shadows []*shadowRun
		for _, sh := range o.shadows {
			if sh.res != nil {
				shadows = append(shadows, &shadowRun{sh: sh, res: sh.res})
			}
		}
		s.mu.Unlock()

		// The evaluation serves every caller that joined it, so one caller
		// going away must not fail it; queries have their own timeout.
		ectx := context.WithoutCancel(ctx)
		q := s.q
		var wg sync.WaitGroup
		if len(shadows) > 0 {
			// The shadows run alongside, on the same query results.
			shared := newSharedQuerier(s.q)
			q = shared
			for _, run := range shadows {
				wg.Go(func() {
					run.d, run.err = s.evaluate(ectx, ref, shared, run.res.rs, run.res.queries, service, &run.in, evalShadow)
				})
			}
		}
		var in evaluation
		d, err := s.evaluate(ectx, ref, q, rs, queries, service, &in, evalLive)
		a, changed, ev := s.conclude(ctx, o, ref, res, d, err, &in)
		if changed != nil {
			s.announce(ref, changed, ev)
		}
		if len(shadows) > 0 {
			wg.Wait()
			s.concludeShadows(o, ref, shadows)
		}
		return a
	})
	select {
	case <-f.done:
		a := f.a
		if a.obj != nil && !a.obj.countCall(a.seq) {
			s.mu.Lock()
			a.obj.records.count(a.seq)
			s.mu.Unlock()
		}
		return a
	case <-ctx.Done():
		return answer{err: status.FromContextError(ctx.Err()).Err()}
	}
}

// conclude turns an evaluation of o's rule set (d, or its error err) into
// the answer and keeps its record. It returns the record as well when it
// answers differently from the one before and debug logging is on, or when
// it makes an Event (ev, its reason and action). It is a
// function of its own, apart from the evaluation's goroutine's first frame,
// so that its variables do not make that goroutine's stack grow further
// while the queries run.
func (s *Server) conclude(ctx context.Context, o *object, ref *pb.ScaledObjectRef, res *resolved, d rules.Decision, err error, in *evaluation) (answer, *view, [2]string) {
	waiting := in.readDemand && in.builtins.Queued > 0 // read just now: no second look
	if !in.readDemand {
		waiting = s.waiting(ref)
	}
	in.fail = newFailure(err, in) // rendered before s.mu, and only for an error

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	a, out := s.applyOnError(o, res.rs, d, err, now)
	a.ruleSet = res.rs.Name
	o.seq++
	a.seq, a.obj = o.seq, o
	o.answer, o.answerAt = a, now
	labels := []string{o.namespace, o.name, o.ruleSet}
	if a.err == nil {
		s.m.desired.WithLabelValues(labels...).Set(float64(a.decision.Replicas))
		s.m.active.WithLabelValues(labels...).Set(boolFloat(a.decision.Active))
	}
	s.m.holding.WithLabelValues(labels...).Set(boolFloat(a.holding))
	changed := o.keep(now, a.seq, res, out, waiting, in)
	var ev [2]string
	if s.opts.Events != nil {
		ev[0], ev[1] = o.noteEvent(o.records.last())
	}
	if (changed && s.logger.Enabled(ctx, slog.LevelDebug)) || ev[0] != "" {
		v := o.records.view(len(o.records.buf) - 1)
		if !changed {
			v.quiet = true
		}
		return a, &v, ev
	}
	return a, nil, ev
}

// announce logs, at debug, the record of a decision that changed, and emits
// its Event (ev: reason and action), if any.
func (s *Server) announce(ref *pb.ScaledObjectRef, v *view, ev [2]string) {
	if !v.quiet {
		s.logger.Debug("decision changed", "namespace", ref.Namespace, "scaledObject", ref.Name, "ruleSet", v.rec.res.rs.Name, "explanation", v.explain())
	}
	if ev[0] != "" {
		s.emit(ref, ev[0], ev[1], v)
	}
}

// keep records the evaluation numbered seq, made at now, whose answer is
// out, and reports whether it answers differently from the one before.
// Callers hold s.mu.
func (o *object) keep(now time.Time, seq uint32, res *resolved, out rules.Outcome, waiting bool, in *evaluation) (changed bool) {
	prev := o.records.last()
	rec := newRecord(now, seq, res, out, waiting, in, prev)
	changed = rec.changed(prev)
	// The calls counted for the record before this one join it.
	if c := o.calls.Swap(uint64(seq) << 32); prev != nil && uint32(c>>32) == prev.seq {
		prev.calls += uint32(c)
	}
	o.records.add(rec, in)
	return changed
}

// newRecord is the record of the evaluation numbered seq, made at now,
// whose answer is out; prev is the record before it, whose rendered error
// and odd queries it shares when they are the same.
func newRecord(now time.Time, seq uint32, res *resolved, out rules.Outcome, waiting bool, in *evaluation, prev *record) record {
	rec := record{at: now.UnixNano(), res: res, raw: out.Decision.Raw, replicas: out.Decision.Replicas, seq: seq,
		micros: uint32(min(in.duration.Microseconds(), math.MaxUint32))}
	for _, f := range [...]struct {
		on   bool
		flag recordFlags
	}{
		{out.Decision.Active, flagActive}, {out.Holding, flagHolding}, {out.Fixed, flagFixed}, {out.Err != nil, flagNoAnswer},
		{waiting, flagWaiting}, {in.results != nil, flagRan}, {in.readDemand, flagReadDemand}, {in.readTarget, flagReadTarget},
	} {
		if f.on {
			rec.flags |= f.flag
		}
	}
	if out.Err != nil {
		rec.replicas = 0
	}
	if f := in.fail; f != nil {
		if out.Err != nil {
			f.answerErr = out.Err.Error()
		}
		if out.Holding {
			f.heldSince = out.HeldSince.UnixNano()
		}
		if prev != nil && prev.fail != nil && prev.fail.equal(f) {
			f = prev.fail // the same error as before: shared
		}
		rec.fail = f
	}
	var prevOdd *oddQueries
	if prev != nil {
		prevOdd = prev.odd
	}
	rec.odd = oddOf(res.rs, in, prevOdd)
	return rec
}

// countCall counts one call answered by the record numbered seq, if that is
// the newest, without s.mu; false means it is not and the caller must count
// it in the ring, under s.mu.
func (o *object) countCall(seq uint32) bool {
	for {
		c := o.calls.Load()
		if uint32(c>>32) != seq {
			return false
		}
		if o.calls.CompareAndSwap(c, c+1) {
			return true
		}
	}
}

// callsOf is how many calls the record rec answered. Callers hold s.mu.
func (o *object) callsOf(rec *record) uint32 {
	if c := o.calls.Load(); uint32(c>>32) == rec.seq {
		return rec.calls + uint32(c)
	}
	return rec.calls
}

// active is what KEDA is told of the answer's activity, with waiting
// requests overriding it as rules.Outcome.Active says.
func (a answer) active(waiting bool) (active, ok bool) {
	return rules.Outcome{Decision: a.decision, Err: a.err}.Active(waiting)
}

// applyOnError turns an evaluation into an answer under the rule set's
// onError policy (rules.RuleSet.Decide), and logs what it did. Callers hold
// s.mu.
func (s *Server) applyOnError(o *object, rs *rules.RuleSet, d rules.Decision, err error, now time.Time) (answer, rules.Outcome) {
	out := rs.Decide(&o.last, now, d, err)
	if out.EvalErr == nil {
		return answer{decision: out.Decision}, out
	}
	log := s.logger.With("namespace", o.namespace, "scaledObject", o.name, "ruleSet", rs.Name, "err", out.EvalErr.Error())
	switch {
	case out.Fixed:
		log.Warn("evaluation failed; onError gives a fixed replica count", "replicas", out.Decision.Replicas)
	case out.Holding:
		log.Warn("evaluation failed; holding the last good decision", "replicas", out.Decision.Replicas, "age", now.Sub(out.HeldSince).Round(time.Millisecond).String(), "staleAfter", rs.StaleAfter.String())
	default:
		log.Error("evaluation failed; KEDA's fallback applies")
		return answer{err: status.Error(grpccodes.Unavailable, out.Err.Error())}, out
	}
	return answer{decision: out.Decision, holding: out.Holding}, out
}

// evalKind says whose evaluation it is, for the metrics and the trace.
type evalKind uint8

const (
	evalLive   evalKind = iota // the trigger's rule set: what KEDA is told
	evalShadow                 // a shadow rule set: recorded, never told
	evalTry                    // the status page's try form: counted nowhere
)

// evaluate runs the queries and the rule set once.
// It fills in with what it read, and its duration.
// Shadow evaluations are counted apart from the live ones; tries are not
// counted.
func (s *Server) evaluate(ctx context.Context, ref *pb.ScaledObjectRef, q Querier, rs *rules.RuleSet, queries []string, service string, in *evaluation, kind evalKind) (d rules.Decision, err error) {
	start := s.opts.Now()
	ctx, span := s.tracer.Start(ctx, "nemesis.evaluate", trace.WithAttributes(
		attribute.String("nemesis.rule_set", rs.Name),
		attribute.String("k8s.namespace.name", ref.Namespace),
		attribute.String("keda.scaled_object", ref.Name),
		attribute.Bool("nemesis.shadow", kind == evalShadow),
		attribute.Bool("nemesis.try", kind == evalTry),
	))
	defer func() {
		in.duration = s.opts.Now().Sub(start)
		switch kind {
		case evalShadow:
			s.m.shadowEvaluations.WithLabelValues(rs.Name).Inc()
		case evalLive:
			s.m.evaluations.WithLabelValues(rs.Name).Inc()
			s.m.duration.WithLabelValues(rs.Name).Observe(in.duration.Seconds())
		}
		if err != nil {
			switch kind {
			case evalShadow:
				s.m.shadowErrors.WithLabelValues(rs.Name, rules.Reason(err)).Inc()
			case evalLive:
				s.m.errors.WithLabelValues(rs.Name, rules.Reason(err)).Inc()
			}
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		} else {
			span.SetAttributes(attribute.Int64("nemesis.replicas", d.Replicas), attribute.Bool("nemesis.active", d.Active))
		}
		span.End()
	}()
	if rs.UsesDemand() && s.opts.Demand == nil {
		return rules.Decision{}, fmt.Errorf("%s: the scaler watches no activator (start it with --activator): %w", strings.Join(rs.Builtins, ", "), rules.ErrNoDemand)
	}
	usesTarget := rs.UsesScaleTarget()
	if usesTarget && s.opts.ScaleTargets == nil {
		return rules.Decision{}, fmt.Errorf("%s: the scaler has no Kubernetes access (start it with --kubeconfig, or run it in a cluster): %w", strings.Join(rs.Builtins, ", "), rules.ErrNoScaleTarget)
	}
	results := make([]rules.Result, len(queries))
	errs := make([]error, len(queries)+1)
	var builtins rules.BuiltinValues
	var wg sync.WaitGroup
	for i, query := range queries {
		wg.Go(func() {
			r, err := q.Query(ctx, query)
			if err != nil {
				errs[i] = &rules.QueryError{Query: rs.Queries[i].Name, Err: err}
				return
			}
			results[i] = rules.Result{Scalar: r.Scalar, Values: r.Values}
		})
	}
	if usesTarget {
		// Alongside the queries: it is I/O too.
		wg.Go(func() {
			current, ready, err := s.opts.ScaleTargets.Get(ctx, ref.Namespace, ref.Name, slices.Contains(rs.Builtins, "ready"))
			if err != nil {
				errs[len(queries)] = fmt.Errorf("reading the scale target of ScaledObject %s/%s: %w: %w", ref.Namespace, ref.Name, rules.ErrNoScaleTarget, err)
				return
			}
			builtins.Current, builtins.Ready = float64(current), float64(ready)
		})
	}
	wg.Wait()
	in.results = results
	if slices.ContainsFunc(errs[:len(queries)], func(e error) bool { return e != nil }) {
		in.errs = errs[:len(queries)]
	}
	in.readTarget = usesTarget && errs[len(queries)] == nil
	in.builtins = builtins
	if err := errors.Join(errs...); err != nil {
		return rules.Decision{}, err
	}
	if len(rs.Builtins) == 0 {
		return rs.Evaluate(results)
	}
	if usesTarget {
		span.SetAttributes(attribute.Float64("nemesis.current", builtins.Current), attribute.Float64("nemesis.ready", builtins.Ready))
	}
	if rs.UsesDemand() {
		// Read after the queries: the freshest counts.
		inFlight, queued, known := s.opts.Demand.Get(ref.Namespace, service)
		if !known {
			return rules.Decision{}, fmt.Errorf("%s of service %s/%s: no activator connected: %w", strings.Join(rs.Builtins, ", "), ref.Namespace, service, rules.ErrNoDemand)
		}
		span.SetAttributes(attribute.Int64("nemesis.inflight", inFlight), attribute.Int64("nemesis.queued", queued))
		builtins.InFlight, builtins.Queued = float64(inFlight), float64(queued)
		in.builtins.InFlight, in.builtins.Queued, in.readDemand = builtins.InFlight, builtins.Queued, true
	}
	return rs.EvaluateWith(results, &builtins)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metricName is the name of the one metric a trigger has. KEDA prefixes it
// with the trigger's index; HPAs need it lowercase, without '_' or '.'.
func metricName(ruleSet string) string {
	return "nemesis-" + strings.Map(func(r rune) rune {
		switch {
		case r == '_' || r == '.':
			return '-'
		case 'A' <= r && r <= 'Z':
			return r + ('a' - 'A')
		}
		return r
	}, ruleSet)
}

// GetMetricSpec returns the trigger's one metric with a target of 1 per
// replica, so that the HPA's desired count is exactly the metric value. It
// checks the trigger (rule set, metadata) but never calls Prometheus, so that
// KEDA can always build the HPA and its fallback can trip.
func (s *Server) GetMetricSpec(_ context.Context, ref *pb.ScaledObjectRef) (*pb.GetMetricSpecResponse, error) {
	if ref == nil {
		return nil, status.Error(grpccodes.InvalidArgument, "no ScaledObjectRef")
	}
	s.mu.Lock()
	o, err := s.resolve(objectKey(ref), ref)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &pb.GetMetricSpecResponse{MetricSpecs: []*pb.MetricSpec{{
		MetricName:      metricName(o.ruleSet),
		TargetSize:      1,
		TargetSizeFloat: 1,
	}}}, nil
}

// GetMetrics returns the desired replica count, rounded and clamped, as the
// metric value.
func (s *Server) GetMetrics(ctx context.Context, req *pb.GetMetricsRequest) (*pb.GetMetricsResponse, error) {
	ref := req.GetScaledObjectRef()
	if ref == nil {
		return nil, status.Error(grpccodes.InvalidArgument, "no ScaledObjectRef")
	}
	key := objectKey(ref)
	a := s.decideKey(ctx, key, ref, false)
	if a.err != nil {
		return nil, a.err
	}
	s.mu.Lock()
	if o := s.objects[key]; o != nil {
		o.pairAnswer, o.pairAt = a, s.opts.Now()
	}
	s.mu.Unlock()
	return &pb.GetMetricsResponse{MetricValues: []*pb.MetricValue{{
		MetricName: metricName(a.ruleSet),
		// KEDA reads the float only when it is above 0: set both.
		MetricValue:      a.decision.Replicas,
		MetricValueFloat: float64(a.decision.Replicas),
	}}}, nil
}

// IsActive returns the rule set's active expression. Right after a
// GetMetrics for the same trigger (within ReuseFor) it answers from the same
// evaluation, so that KEDA never pairs replicas from one evaluation with
// activity from another. While the activators hold requests for the
// trigger's service it answers true, whatever the rule set says or whether
// it can be evaluated.
func (s *Server) IsActive(ctx context.Context, ref *pb.ScaledObjectRef) (*pb.IsActiveResponse, error) {
	if ref == nil {
		return nil, status.Error(grpccodes.InvalidArgument, "no ScaledObjectRef")
	}
	key := objectKey(ref)
	s.mu.Lock()
	o := s.objects[key]
	if o != nil && !o.pairAt.IsZero() && s.opts.Now().Sub(o.pairAt) < s.opts.ReuseFor && o.version == s.rules.Current().Version {
		a := o.pairAnswer
		o.pairAt = time.Time{} // one IsActive per GetMetrics
		if !o.countCall(a.seq) {
			o.records.count(a.seq)
		}
		s.mu.Unlock()
		active, _ := a.active(s.waiting(ref)) // a paired answer is never an error
		return &pb.IsActiveResponse{Result: active}, nil
	}
	s.mu.Unlock()
	a := s.decideKey(ctx, key, ref, false)
	active, ok := a.active(s.waiting(ref))
	if !ok {
		return nil, a.err
	}
	return &pb.IsActiveResponse{Result: active}, nil
}

// StreamIsActive re-evaluates every PushInterval while KEDA keeps the stream
// open, and sends true the moment the rule set turns active (and false when
// it turns inactive, which KEDA reads as a hint only). While it reports
// inactive, a rise from zero of its service's demand (see Options.Demand)
// re-evaluates at once, without reusing an earlier answer; and queued
// requests make it active, as for IsActive.
func (s *Server) StreamIsActive(ref *pb.ScaledObjectRef, stream pb.ExternalScaler_StreamIsActiveServer) error {
	if ref == nil {
		return status.Error(grpccodes.InvalidArgument, "no ScaledObjectRef")
	}
	select {
	case <-s.draining:
		return errDraining
	default:
	}
	s.m.streams.Inc()
	defer s.m.streams.Dec()
	ctx := stream.Context()
	tick := time.NewTicker(s.opts.PushInterval)
	defer tick.Stop()
	// final: draining, this is the last look.
	var sent, last, fresh, final bool
	for {
		var wake <-chan struct{}
		if s.opts.Demand != nil {
			wake = s.opts.Demand.Changes(ref.Namespace, serviceOf(ref)) // before evaluating: no rise is lost
		}
		a := s.decide(ctx, ref, fresh)
		if status.Code(a.err) == grpccodes.InvalidArgument {
			return a.err
		}
		active, ok := a.active(s.waiting(ref))
		if ok && (!sent || active != last) {
			if err := stream.Send(&pb.IsActiveResponse{Result: active}); err != nil {
				return err
			}
			sent, last = true, active
		}
		if final {
			return errDraining
		}
		if sent && last {
			// Only a true acts at once on KEDA's side: while true stands,
			// demand need not wake this loop.
			wake = nil
		}
		fresh = false
		select {
		case <-ctx.Done():
			return nil
		case <-s.draining:
			// A rise that came with the drain, whether or not its wake-up
			// won this select, is pushed before the stream ends: KEDA is
			// slow to reconnect (2s backoff at first).
			select {
			case <-wake:
				fresh = true
			default:
			}
			if (sent && last) || (!fresh && !s.waiting(ref)) {
				return errDraining
			}
			final = true
		case <-tick.C:
		case <-wake:
			fresh = true
		}
	}
}

// Run forgets ScaledObjects that KEDA stopped asking about, until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	tick := time.NewTicker(min(time.Minute, s.opts.ForgetAfter))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			s.forgetIdle()
		}
	}
}

func (s *Server) forgetIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgetIdleLocked()
}

// forgetIdleLocked is forgetIdle for callers that hold s.mu.
func (s *Server) forgetIdleLocked() {
	now := s.opts.Now()
	defer func() { s.m.triggers.Set(float64(len(s.objects))) }()
	for k, o := range s.objects {
		if now.Sub(o.lastSeen) > s.opts.ForgetAfter {
			s.m.forget(o.namespace, o.name, o.ruleSet)
			for _, sh := range o.shadows {
				s.m.shadowDesired.DeleteLabelValues(o.namespace, o.name, sh.name)
			}
			delete(s.objects, k)
		}
	}
	for k, u := range s.unresolved {
		if now.Sub(u.lastSeen) > s.opts.ForgetAfter {
			delete(s.unresolved, k)
		}
	}
}
