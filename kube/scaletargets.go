package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/tools/cache"
)

// Defaults of ScaleTargetsOptions.
const (
	DefaultScaleTTL       = time.Second
	DefaultScaleTimeout   = 5 * time.Second
	DefaultScaleIdleAfter = 15 * time.Minute
)

// mapperResetEvery bounds how often an unknown kind of scale target makes
// the RESTMapper discover the API again (a CRD installed after start).
const mapperResetEvery = 30 * time.Second

// scaledObjects is the resource of KEDA's ScaledObjects.
func scaledObjects() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "scaledobjects"}
}

// ScaleTargetClients are the clients a [ScaleTargets] reads through.
type ScaleTargetClients struct {
	// Kube lists and watches pods.
	Kube kubernetes.Interface
	// Dynamic lists and watches ScaledObjects (keda.sh/v1alpha1).
	Dynamic dynamic.Interface
	// Scales reads the scale subresource of scale targets.
	Scales scale.ScalesGetter
	// Mapper maps the kind of a scale target to its resource. When it is
	// a meta.ResettableRESTMapper, an unknown kind resets it (at most every
	// 30 s), so that kinds of CRDs installed later are found.
	Mapper meta.RESTMapper
}

// NewScaleTargetClients returns the clients of cfg, with a RESTMapper and a
// scale client that discover the API server's resources when first used.
func NewScaleTargetClients(cfg *rest.Config) (ScaleTargetClients, error) {
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return ScaleTargetClients{}, fmt.Errorf("kube: kubernetes client: %w", err)
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return ScaleTargetClients{}, fmt.Errorf("kube: dynamic client: %w", err)
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return ScaleTargetClients{}, fmt.Errorf("kube: discovery client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))
	scales, err := scale.NewForConfig(cfg, mapper, dynamic.LegacyAPIPathResolverFunc, scale.NewDiscoveryScaleKindResolver(disco))
	if err != nil {
		return ScaleTargetClients{}, fmt.Errorf("kube: scale client: %w", err)
	}
	return ScaleTargetClients{Kube: kc, Dynamic: dc, Scales: scales, Mapper: mapper}, nil
}

// ScaleTargetsOptions configures a [ScaleTargets].
type ScaleTargetsOptions struct {
	// Logger receives the logs; nil discards.
	Logger *slog.Logger
	// Registerer receives the metrics; nil: not registered. Collectors
	// already registered there by another ScaleTargets are shared.
	Registerer prometheus.Registerer
	// ScaleTTL is how long one read of a scale subresource answers (the
	// scale subresource cannot be watched). Default DefaultScaleTTL.
	ScaleTTL time.Duration
	// Timeout bounds one Get: the wait for a namespace's informers to list
	// their objects, and the read of the scale subresource. Default
	// DefaultScaleTimeout.
	Timeout time.Duration
	// IdleAfter stops the informers of a namespace that no Get has asked
	// about for this long. Default DefaultScaleIdleAfter.
	IdleAfter time.Duration
	// Now is the clock of the scale cache; default time.Now.
	Now func() time.Time
}

// ScaleTargets reads the scale targets of KEDA ScaledObjects: how many
// replicas each has (spec.replicas of its scale subresource) and how many
// of its pods are ready.
//
// A ScaleTargets is safe for concurrent use.
type ScaleTargets struct {
	c       ScaleTargetClients
	opts    ScaleTargetsOptions
	logger  *slog.Logger
	m       *scaleInstruments
	group   singleflight.Group
	started chan struct{} // closed by Run

	mu         sync.Mutex
	runCtx     context.Context
	namespaces map[string]*targetWatch
	scales     map[scaleKey]*scaleEntry
	mapperAt   time.Time // last reset of the RESTMapper
}

// NewScaleTargets returns a reader of scale targets through c. It makes no
// call to the API server until the first Get.
func NewScaleTargets(c ScaleTargetClients, opts ScaleTargetsOptions) *ScaleTargets {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ScaleTTL <= 0 {
		opts.ScaleTTL = DefaultScaleTTL
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultScaleTimeout
	}
	if opts.IdleAfter <= 0 {
		opts.IdleAfter = DefaultScaleIdleAfter
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &ScaleTargets{
		c:          c,
		opts:       opts,
		logger:     opts.Logger,
		m:          newScaleInstruments(opts.Registerer),
		started:    make(chan struct{}),
		namespaces: make(map[string]*targetWatch),
		scales:     make(map[scaleKey]*scaleEntry),
	}
}

// Run lets Get start informers, stops those of namespaces that go idle, and
// blocks until ctx ends; it then stops them all and returns nil. Run may be
// called once; a second call returns an error at once.
func (s *ScaleTargets) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.runCtx != nil {
		s.mu.Unlock()
		return errors.New("kube: ScaleTargets.Run called twice")
	}
	s.runCtx = ctx
	s.mu.Unlock()
	close(s.started)

	tick := time.NewTicker(min(time.Minute, s.opts.IdleAfter))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.stopIdle(time.Time{})
			return nil
		case <-tick.C:
			s.stopIdle(s.opts.Now().Add(-s.opts.IdleAfter))
		}
	}
}

// stopIdle stops the namespaces last used before cutoff, and forgets the
// scales read before it; the zero cutoff stops everything.
func (s *ScaleTargets) stopIdle(cutoff time.Time) {
	var stop []*targetWatch
	s.mu.Lock()
	for ns, w := range s.namespaces {
		if cutoff.IsZero() || w.lastUsed.Before(cutoff) {
			stop = append(stop, w)
			delete(s.namespaces, ns)
			s.m.namespaces.Dec()
		}
	}
	for k, e := range s.scales {
		if cutoff.IsZero() || e.at.Before(cutoff) {
			delete(s.scales, k)
		}
	}
	s.mu.Unlock()
	for _, w := range stop {
		w.stop()
	}
}

// Get returns the replicas of the scale target of ScaledObject
// namespace/name (spec.replicas of its scale subresource) and, when
// withReady is true, how many of its pods are ready: pods of the namespace
// that match the scale subresource's status.selector, with condition Ready
// true and no deletionTimestamp. Without withReady, ready is 0 and no pod is
// watched.
//
// The first Get in a namespace starts its informers (ScaledObjects; pods
// with the first withReady) and waits for them to list. Every failure is an
// error that says what could not be read: no ScaledObject of that name, a
// scale target without a scale subresource, a denied list or get, a
// timeout. Get waits for Run to start, and everything it waits for is
// bounded by the Timeout option.
func (s *ScaleTargets) Get(ctx context.Context, namespace, name string, withReady bool) (replicas, ready int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	select {
	case <-s.started:
	case <-ctx.Done():
		return 0, 0, fmt.Errorf("kube: reading the scale target of ScaledObject %s/%s: not running yet: %w", namespace, name, context.Cause(ctx))
	}
	w, err := s.watch(namespace, withReady)
	if err != nil {
		return 0, 0, err
	}
	if err := w.scaledObjects.wait(ctx); err != nil {
		return 0, 0, err
	}
	ref, err := w.scaleTargetRef(name)
	if err != nil {
		return 0, 0, err
	}
	sc, err := s.scale(ctx, namespace, ref)
	if err != nil {
		return 0, 0, err
	}
	if !withReady {
		return sc.replicas, 0, nil
	}
	if sc.selector == "" {
		return 0, 0, fmt.Errorf("kube: the scale subresource of %s has no status.selector, so its pods are unknown", ref)
	}
	sel, err := labels.Parse(sc.selector)
	if err != nil {
		return 0, 0, fmt.Errorf("kube: the scale subresource of %s: status.selector %q: %w", ref, sc.selector, err)
	}
	if err := w.pods.wait(ctx); err != nil {
		return 0, 0, err
	}
	return sc.replicas, w.countReady(sel), nil
}

// watch returns the informers of namespace, starting them as needed.
func (s *ScaleTargets) watch(namespace string, withPods bool) (*targetWatch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.runCtx.Err(); err != nil {
		return nil, fmt.Errorf("kube: reading scale targets: stopped: %w", err)
	}
	w := s.namespaces[namespace]
	if w == nil {
		w = s.newTargetWatch(namespace)
		s.namespaces[namespace] = w
		s.m.namespaces.Inc()
	}
	w.lastUsed = s.opts.Now()
	if withPods && w.pods == nil {
		w.startPods(s.c.Kube)
	}
	return w, nil
}

// targetRef is a ScaledObject's spec.scaleTargetRef, with KEDA's defaults.
type targetRef struct {
	apiVersion, kind, name string
}

func (r targetRef) String() string { return fmt.Sprintf("%s %s (%s)", r.kind, r.name, r.apiVersion) }

// scaleKey identifies a scale subresource.
type scaleKey struct {
	namespace string
	resource  schema.GroupResource
	name      string
}

// scaleEntry is one read of a scale subresource, good or not.
type scaleEntry struct {
	at       time.Time
	replicas int64
	selector string
	err      error
}

// scale reads the scale subresource of ref, at most once per ScaleTTL
// however many callers ask; a failed read is reused as long, so that an
// outage does not multiply requests.
func (s *ScaleTargets) scale(ctx context.Context, namespace string, ref targetRef) (scaleEntry, error) {
	gr, err := s.resource(ref)
	if err != nil {
		return scaleEntry{}, err
	}
	key := scaleKey{namespace, gr, ref.name}
	s.mu.Lock()
	e := s.scales[key]
	s.mu.Unlock()
	if e != nil && s.opts.Now().Sub(e.at) < s.opts.ScaleTTL {
		return *e, e.err
	}
	ch := s.group.DoChan(namespace+"/"+gr.String()+"/"+ref.name, func() (any, error) {
		// A flight that ended between the look above and this one has
		// stored a fresh entry: use it, not a second read.
		s.mu.Lock()
		e := s.scales[key]
		s.mu.Unlock()
		if e != nil && s.opts.Now().Sub(e.at) < s.opts.ScaleTTL {
			return e, nil
		}
		// Detached from the caller that happens to read for all: bounded
		// by the Timeout option alone.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
		defer cancel()
		e = &scaleEntry{}
		sc, err := s.c.Scales.Scales(namespace).Get(ctx, gr, ref.name, metav1.GetOptions{})
		if err != nil {
			s.m.reads.WithLabelValues("error").Inc()
			e.err = fmt.Errorf("kube: reading the scale subresource of %s in namespace %s: %w", ref, namespace, err)
		} else {
			s.m.reads.WithLabelValues("success").Inc()
			e.replicas, e.selector = int64(sc.Spec.Replicas), sc.Status.Selector
		}
		e.at = s.opts.Now()
		s.mu.Lock()
		s.scales[key] = e
		s.mu.Unlock()
		return e, nil
	})
	select {
	case r := <-ch:
		e := r.Val.(*scaleEntry)
		return *e, e.err
	case <-ctx.Done():
		return scaleEntry{}, fmt.Errorf("kube: reading the scale subresource of %s in namespace %s: %w", ref, namespace, context.Cause(ctx))
	}
}

// resource maps the kind of ref to its resource.
func (s *ScaleTargets) resource(ref targetRef) (schema.GroupResource, error) {
	gv, err := schema.ParseGroupVersion(ref.apiVersion)
	if err != nil {
		return schema.GroupResource{}, fmt.Errorf("kube: scale target %s: %w", ref, err)
	}
	gk := schema.GroupKind{Group: gv.Group, Kind: ref.kind}
	m, err := s.c.Mapper.RESTMapping(gk, gv.Version)
	if meta.IsNoMatchError(err) {
		if r, ok := s.c.Mapper.(meta.ResettableRESTMapper); ok && s.mayResetMapper() {
			r.Reset()
			m, err = s.c.Mapper.RESTMapping(gk, gv.Version)
		}
	}
	if err != nil {
		return schema.GroupResource{}, fmt.Errorf("kube: scale target %s: %w", ref, err)
	}
	return m.Resource.GroupResource(), nil
}

func (s *ScaleTargets) mayResetMapper() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	if !s.mapperAt.IsZero() && now.Sub(s.mapperAt) < mapperResetEvery {
		return false
	}
	s.mapperAt = now
	return true
}

// targetWatch is the informers of one namespace.
type targetWatch struct {
	namespace     string
	logger        *slog.Logger
	ctx           context.Context
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	scaledObjects *watchedList
	pods          *watchedList // nil until a Get asks for ready pods

	lastUsed time.Time // guarded by ScaleTargets.mu
}

func (s *ScaleTargets) newTargetWatch(namespace string) *targetWatch {
	ctx, cancel := context.WithCancel(s.runCtx)
	w := &targetWatch{namespace: namespace, logger: s.logger.With("namespace", namespace), ctx: ctx, cancel: cancel}
	inf := dynamicinformer.NewFilteredDynamicInformer(s.c.Dynamic, scaledObjects(), namespace, 0, cache.Indexers{}, nil).Informer()
	w.scaledObjects = w.run(inf, trimScaledObject, "scaledobjects.keda.sh")
	w.logger.Debug("watching scaledobjects")
	return w
}

// startPods starts the pod informer. Callers hold ScaleTargets.mu.
func (w *targetWatch) startPods(client kubernetes.Interface) {
	inf := coreinformers.NewFilteredPodInformer(client, w.namespace, 0, cache.Indexers{}, nil)
	w.pods = w.run(inf, trimPod, "pods")
	w.logger.Debug("watching pods")
}

// run starts inf until the watch stops.
func (w *targetWatch) run(inf cache.SharedIndexInformer, transform cache.TransformFunc, what string) *watchedList {
	l := newWatchedList(inf, what, w.namespace)
	// Neither fails before the informer starts.
	_ = inf.SetTransform(transform)
	_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, r *cache.Reflector, err error) {
		l.setErr(err)
		w.logger.Warn("kubernetes list/watch failed; retrying", "resource", r.TypeDescription(), "err", err)
	})
	w.wg.Go(func() { inf.RunWithContext(w.ctx) })
	return l
}

// stop ends the informers and waits for their goroutines.
func (w *targetWatch) stop() {
	w.cancel()
	w.wg.Wait()
	w.logger.Debug("stopped watching scale targets")
}

// scaleTargetRef reads the scaleTargetRef of ScaledObject name.
func (w *targetWatch) scaleTargetRef(name string) (targetRef, error) {
	obj, exists, err := w.scaledObjects.inf.GetIndexer().GetByKey(w.namespace + "/" + name)
	if err != nil {
		return targetRef{}, fmt.Errorf("kube: ScaledObject %s/%s: %w", w.namespace, name, err)
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !exists || !ok {
		return targetRef{}, fmt.Errorf("kube: ScaledObject %s/%s not found", w.namespace, name)
	}
	ref := targetRef{apiVersion: "apps/v1", kind: "Deployment"}
	if v, _, _ := unstructured.NestedString(u.Object, "spec", "scaleTargetRef", "apiVersion"); v != "" {
		ref.apiVersion = v
	}
	if v, _, _ := unstructured.NestedString(u.Object, "spec", "scaleTargetRef", "kind"); v != "" {
		ref.kind = v
	}
	ref.name, _, _ = unstructured.NestedString(u.Object, "spec", "scaleTargetRef", "name")
	if ref.name == "" {
		return targetRef{}, fmt.Errorf("kube: ScaledObject %s/%s has no spec.scaleTargetRef.name", w.namespace, name)
	}
	return ref, nil
}

// countReady counts the ready, not terminating pods that match sel.
func (w *targetWatch) countReady(sel labels.Selector) int64 {
	var n int64
	for _, obj := range w.pods.inf.GetStore().List() {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.DeletionTimestamp != nil || !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				n++
				break
			}
		}
	}
	return n
}

// watchedList is one informer and the last error of its list/watch.
type watchedList struct {
	inf             cache.SharedIndexInformer
	what, namespace string

	mu     sync.Mutex
	err    error
	failed chan struct{} // closed on the next error
}

func newWatchedList(inf cache.SharedIndexInformer, what, namespace string) *watchedList {
	return &watchedList{inf: inf, what: what, namespace: namespace, failed: make(chan struct{})}
}

func (l *watchedList) setErr(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.err = err
	close(l.failed)
	l.failed = make(chan struct{})
}

// lastErr returns a channel closed on the next error, and the last one.
func (l *watchedList) lastErr() (<-chan struct{}, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed, l.err
}

// wait blocks until the informer has listed its objects. While it has not,
// an error of its list fails at once (the informer keeps retrying), so
// that a denied list or a missing CRD does not cost every caller the whole
// timeout.
func (l *watchedList) wait(ctx context.Context) error {
	done := l.inf.HasSyncedChecker().Done()
	select {
	case <-done:
		return nil
	default:
	}
	failed, err := l.lastErr()
	if err == nil {
		select {
		case <-done:
			return nil
		case <-failed:
			_, err = l.lastErr()
		case <-ctx.Done():
			return fmt.Errorf("kube: waiting for the list of %s in namespace %s: %w", l.what, l.namespace, context.Cause(ctx))
		}
	}
	return fmt.Errorf("kube: listing %s in namespace %s: %w", l.what, l.namespace, err)
}

// trimScaledObject keeps of a ScaledObject what Get reads: its name and
// its scaleTargetRef.
func trimScaledObject(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	md := map[string]any{"name": u.GetName(), "namespace": u.GetNamespace(), "resourceVersion": u.GetResourceVersion(), "uid": string(u.GetUID())}
	out := &unstructured.Unstructured{Object: map[string]any{"apiVersion": u.GetAPIVersion(), "kind": u.GetKind(), "metadata": md}}
	if ref, ok, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "scaleTargetRef"); ok {
		out.Object["spec"] = map[string]any{"scaleTargetRef": ref}
	}
	return out, nil
}

// trimPod keeps of a pod what countReady reads: labels, deletion and the
// Ready condition.
func trimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
		Labels: p.Labels, DeletionTimestamp: p.DeletionTimestamp,
	}}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			out.Status.Conditions = []corev1.PodCondition{{Type: c.Type, Status: c.Status}}
			break
		}
	}
	return out, nil
}

// scaleInstruments are the metrics of ScaleTargets.
type scaleInstruments struct {
	namespaces prometheus.Gauge
	reads      *prometheus.CounterVec
}

func newScaleInstruments(reg prometheus.Registerer) *scaleInstruments {
	m := &scaleInstruments{
		namespaces: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "nemesis", Subsystem: "kube", Name: "scale_target_namespaces",
			Help: "Namespaces whose ScaledObjects (and pods, where ready is used) are watched for the built-ins current and ready.",
		}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "nemesis", Subsystem: "kube", Name: "scale_reads_total",
			Help: "Reads of scale subresources from the API server, by result (success, error); reads within the scale cache's TTL are not counted.",
		}, []string{"result"}),
	}
	m.reads.WithLabelValues("success")
	m.reads.WithLabelValues("error")
	if reg != nil {
		m.namespaces = register(reg, m.namespaces)
		m.reads = register(reg, m.reads)
	}
	return m
}
