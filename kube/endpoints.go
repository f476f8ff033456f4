package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// serviceIndex indexes EndpointSlices by the name of their Service (the
// kubernetes.io/service-name label); the informers are per namespace, so the
// name alone is unique.
const serviceIndex = "service"

// ServiceEndpoints tracks the endpoints of Services through EndpointSlice and
// Service informers.
//
// An endpoint is ready when its conditions.ready is true or unset (unset
// means ready, per the API) and it is not terminating. It is terminating when
// conditions.terminating is true, serving or not: it should finish the
// requests it has and get no new ones. Endpoints that are neither (not ready,
// not terminating: a starting or failing pod) are not reported at all.
//
// All EndpointSlices of a Service are merged, of both IPv4 and IPv6 address
// types (FQDN slices are ignored). An endpoint listed more than once (the same
// pod in the IPv4 and the IPv6 slice of a dual-stack Service, or in two
// slices while the controller moves it) is reported once: in the better
// state (ready before terminating), then from the Service's primary IP
// family. An address never appears in both lists. Both lists are sorted by
// address, then port.
//
// A ServiceEndpoints is safe for concurrent use.
type ServiceEndpoints struct {
	client kubernetes.Interface
	logger *slog.Logger
	m      *instruments

	mu         sync.Mutex
	runCtx     context.Context // set by Run; nil before
	namespaces map[string]*nsWatch
	subs       map[serviceKey]map[*subscription]struct{}
}

type serviceKey struct{ namespace, name string }

// NewServiceEndpoints returns a tracker that reads Services and
// EndpointSlices through client. Its metrics are registered on reg (nil:
// not registered); collectors already registered there by another
// ServiceEndpoints are shared. A nil logger discards.
//
// It panics if reg refuses the metrics for any other reason, which is a
// programming error (a clashing collector of another kind).
func NewServiceEndpoints(client kubernetes.Interface, logger *slog.Logger, reg prometheus.Registerer) *ServiceEndpoints {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &ServiceEndpoints{
		client:     client,
		logger:     logger,
		m:          newInstruments(reg),
		namespaces: make(map[string]*nsWatch),
		subs:       make(map[serviceKey]map[*subscription]struct{}),
	}
}

// Run starts the informers of the namespaces subscribed so far, and of those
// subscribed later as they come, and blocks until ctx ends; it then stops
// them all and returns nil. Run may be called once; a second call returns an
// error at once.
func (s *ServiceEndpoints) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.runCtx != nil {
		s.mu.Unlock()
		return errors.New("kube: ServiceEndpoints.Run called twice")
	}
	s.runCtx = ctx
	for _, w := range s.namespaces {
		w.start(ctx)
	}
	s.mu.Unlock()

	<-ctx.Done()

	s.mu.Lock()
	watches := make([]*nsWatch, 0, len(s.namespaces))
	for _, w := range s.namespaces {
		watches = append(watches, w)
	}
	s.mu.Unlock()
	for _, w := range watches {
		w.stop()
	}
	return nil
}

// WaitForSync blocks until the informers of every namespace subscribed at
// the time of the call have listed their objects and delivered them to the
// subscribers (each subscriber then has been offered the full state; see
// Subscribe), or ctx ends, which it returns as an error. A namespace whose
// last subscription is cancelled meanwhile counts as synced. It needs Run;
// with no subscriptions it returns nil at once. It waits on channels, not by
// polling.
func (s *ServiceEndpoints) WaitForSync(ctx context.Context) error {
	s.mu.Lock()
	watches := make([]*nsWatch, 0, len(s.namespaces))
	for _, w := range s.namespaces {
		watches = append(watches, w)
	}
	s.mu.Unlock()
	for _, w := range watches {
		select {
		case <-w.synced:
		case <-w.stopped:
		case <-ctx.Done():
			return fmt.Errorf("kube: waiting for the informers of namespace %q to sync: %w", w.namespace, context.Cause(ctx))
		}
	}
	return nil
}

// Subscribe calls update at once with the current state and again on every
// change (from informer events, never polling).
//
// port is the Service's port number (spec.ports[].port); it is resolved to
// the EndpointSlice port through the Service's port name (and targetPort), so
// the addresses are "podIP:targetPort" ("[ip6]:targetPort" for IPv6). When
// the Service does not exist, has no such port or has no EndpointSlices, both
// lists are empty.
//
// The first call to update happens in Subscribe itself, before it returns.
// The later ones come from a goroutine of this subscription, one at a time,
// never concurrently with each other, so a slow update delays only its own
// subscription and never the informers. Updates are coalesced: when the
// state changes several times while update runs, the next call gets the
// latest state only. update is only called when the state differs from what
// it got last. Until a namespace's informers have synced (see WaitForSync)
// its Services have no endpoints; the synced state then comes in one update,
// not piecemeal. update owns the slices it is given.
//
// cancel ends the subscription. It may be called more than once, and from
// within update. Once it has returned, no new call to update starts (one
// already running may still be finishing). Cancelling the last subscription
// in a namespace stops that namespace's informers; so when replacing the
// subscriptions of a namespace, subscribe the new ones before cancelling the
// old ones, to keep the cache warm.
func (s *ServiceEndpoints) Subscribe(namespace, name string, port int32, update func(ready, terminating []string)) (cancel func()) {
	key := serviceKey{namespace, name}
	sub := &subscription{
		key:    key,
		port:   port,
		update: update,
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}

	s.mu.Lock()
	w := s.namespaces[namespace]
	if w == nil {
		w = s.newNSWatch(namespace)
		s.namespaces[namespace] = w
		s.m.namespaces.Inc()
		if s.runCtx != nil {
			w.start(s.runCtx)
		}
	}
	w.subs++
	set := s.subs[key]
	if set == nil {
		set = make(map[*subscription]struct{})
		s.subs[key] = set
		s.m.services.Inc()
	}
	set[sub] = struct{}{}
	st := w.compute(name, port)
	sub.latest, sub.delivered = st, st
	s.mu.Unlock()
	if st.reason != "" {
		s.logger.Warn("subscribed service has no endpoints", "namespace", namespace, "service", name, "port", port, "reason", st.reason)
	}

	s.m.updates.Inc()
	update(slices.Clone(st.ready), slices.Clone(st.terminating))
	go sub.loop(s.m)

	var once sync.Once
	return func() { once.Do(func() { s.cancel(sub, w) }) }
}

// cancel removes sub, and stops w when sub was its last subscription.
func (s *ServiceEndpoints) cancel(sub *subscription, w *nsWatch) {
	s.mu.Lock()
	set := s.subs[sub.key]
	delete(set, sub)
	if len(set) == 0 {
		delete(s.subs, sub.key)
		s.m.services.Dec()
	}
	w.subs--
	last := w.subs == 0
	if last {
		delete(s.namespaces, w.namespace)
		s.m.namespaces.Dec()
	}
	s.mu.Unlock()

	sub.mu.Lock()
	sub.canceled = true
	sub.mu.Unlock()
	close(sub.done)

	if last {
		w.stop()
	}
}

// refresh recomputes the state of the subscriptions to Service name in w's
// namespace and wakes those whose state changed. It runs on informer
// goroutines; it never waits for a subscriber.
func (s *ServiceEndpoints) refresh(w *nsWatch, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.namespaces[w.namespace] != w || !w.isSynced() {
		// A stopped watch's last events, or the initial list: the sync
		// goroutine refreshes everything once the list is complete.
		return
	}
	s.refreshLocked(w, name)
}

func (s *ServiceEndpoints) refreshLocked(w *nsWatch, name string) {
	set := s.subs[serviceKey{w.namespace, name}]
	if len(set) == 0 {
		return
	}
	byPort := make(map[int32]endpointState, 1)
	for sub := range set {
		st, ok := byPort[sub.port]
		if !ok {
			st = w.compute(name, sub.port)
			byPort[sub.port] = st
		}
		if sub.offer(st) && st.reason != "" {
			s.logger.Warn("subscribed service has no endpoints", "namespace", w.namespace, "service", name, "port", sub.port, "reason", st.reason)
		}
	}
}

// refreshNamespace recomputes every subscription in w's namespace, once its
// informers have synced.
func (s *ServiceEndpoints) refreshNamespace(w *nsWatch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.namespaces[w.namespace] != w {
		return
	}
	for key := range s.subs {
		if key.namespace == w.namespace {
			s.refreshLocked(w, key.name)
		}
	}
}

// endpointState is what a subscriber gets.
// PodName returns the pod behind an endpoint address ("ip:port") of a
// subscribed Service in namespace, as its EndpointSlice's targetRef names
// it. The activator's metric policy uses it to match series labelled by pod.
func (s *ServiceEndpoints) PodName(namespace, address string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, subs := range s.subs {
		if key.namespace != namespace {
			continue
		}
		for sub := range subs {
			sub.mu.Lock()
			pod, ok := sub.latest.pods[address]
			sub.mu.Unlock()
			if ok {
				return pod, true
			}
		}
	}
	return "", false
}

type endpointState struct {
	ready, terminating []string
	pods               map[string]string // address → pod name, where known
	// reason says why a synced Service has no endpoints at all ("" when it
	// has some, or when the cause is just that no pod is there).
	reason string
}

func (a endpointState) equal(b endpointState) bool {
	return slices.Equal(a.ready, b.ready) && slices.Equal(a.terminating, b.terminating)
}

// subscription is one Subscribe call.
type subscription struct {
	key    serviceKey
	port   int32
	update func(ready, terminating []string)
	wake   chan struct{} // capacity 1: "latest has changed"
	done   chan struct{} // closed by cancel

	mu        sync.Mutex
	latest    endpointState // the newest state computed
	delivered endpointState // the state update was last called with
	canceled  bool
}

// offer records st as the latest state and wakes the delivery goroutine if
// it differs from the previous latest. It never blocks. It reports whether
// the reason for having no endpoints changed.
func (sub *subscription) offer(st endpointState) (reasonChanged bool) {
	sub.mu.Lock()
	reasonChanged = st.reason != sub.latest.reason
	changed := !st.equal(sub.latest)
	if changed || reasonChanged || !maps.Equal(st.pods, sub.latest.pods) {
		sub.latest = st
	}
	sub.mu.Unlock()
	if changed {
		select {
		case sub.wake <- struct{}{}:
		default: // already woken: it will read the latest state
		}
	}
	return reasonChanged
}

// loop delivers the latest state to update until the subscription is
// cancelled.
func (sub *subscription) loop(m *instruments) {
	for {
		select {
		case <-sub.wake:
		case <-sub.done:
			return
		}
		sub.mu.Lock()
		if sub.canceled {
			sub.mu.Unlock()
			return
		}
		st := sub.latest
		if st.equal(sub.delivered) {
			sub.mu.Unlock()
			continue
		}
		sub.delivered = st
		sub.mu.Unlock()
		m.updates.Inc()
		sub.update(slices.Clone(st.ready), slices.Clone(st.terminating))
	}
}

// nsWatch is the informers of one namespace.
type nsWatch struct {
	owner     *ServiceEndpoints
	namespace string
	logger    *slog.Logger
	factory   informers.SharedInformerFactory
	services  cache.SharedIndexInformer
	slices    cache.SharedIndexInformer
	svcReg    cache.ResourceEventHandlerRegistration
	sliceReg  cache.ResourceEventHandlerRegistration

	synced  chan struct{} // closed when both handlers have seen the initial list
	stopped chan struct{} // closed by stop

	// Guarded by ServiceEndpoints.mu.
	subs    int
	started bool
	cancel  context.CancelFunc

	stopOnce sync.Once
}

func (s *ServiceEndpoints) newNSWatch(namespace string) *nsWatch {
	w := &nsWatch{
		owner:     s,
		namespace: namespace,
		logger:    s.logger.With("namespace", namespace),
		factory:   informers.NewSharedInformerFactoryWithOptions(s.client, 0, informers.WithNamespace(namespace)),
		synced:    make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	w.services = w.factory.Core().V1().Services().Informer()
	w.slices = w.factory.InformerFor(&discoveryv1.EndpointSlice{}, func(client kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return discoveryinformers.NewFilteredEndpointSliceInformer(client, namespace, resync,
			cache.Indexers{serviceIndex: indexByServiceName},
			func(o *metav1.ListOptions) { o.LabelSelector = discoveryv1.LabelServiceName })
	})
	for _, inf := range []cache.SharedIndexInformer{w.services, w.slices} {
		// Neither fails before the informer starts.
		_ = inf.SetTransform(stripManagedFields)
		_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, r *cache.Reflector, err error) {
			w.logger.Warn("kubernetes list/watch failed; retrying", "resource", r.TypeDescription(), "err", err)
		})
	}
	var err error
	w.svcReg, err = w.services.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.onService(w, obj) },
		UpdateFunc: func(_, obj any) { s.onService(w, obj) },
		DeleteFunc: func(obj any) { s.onService(w, obj) },
	})
	if err != nil { // only when the informer has been stopped
		panic(err)
	}
	w.sliceReg, err = w.slices.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { s.onSlice(w, obj) },
		UpdateFunc: func(old, obj any) {
			if o, n := sliceService(old), sliceService(obj); o != n && o != "" {
				s.refresh(w, o)
			}
			s.onSlice(w, obj)
		},
		DeleteFunc: func(obj any) { s.onSlice(w, obj) },
	})
	if err != nil {
		panic(err)
	}
	return w
}

// start runs the informers until ctx ends or stop is called. It is called
// with ServiceEndpoints.mu held.
func (w *nsWatch) start(parent context.Context) {
	if w.started {
		return
	}
	w.started = true
	ctx, cancel := context.WithCancel(parent)
	w.cancel = cancel
	w.factory.StartWithContext(ctx)
	w.logger.Debug("watching services and endpointslices")
	began := time.Now()
	go func() {
		if !cache.WaitFor(ctx, "", w.svcReg.HasSyncedChecker(), w.sliceReg.HasSyncedChecker()) {
			return
		}
		w.logger.Debug("informers synced", "duration", time.Since(began))
		close(w.synced)
		w.owner.refreshNamespace(w)
	}()
}

// stop ends the informers and waits for their goroutines. It must not be
// called with ServiceEndpoints.mu held (the event handlers take it).
func (w *nsWatch) stop() {
	w.stopOnce.Do(func() {
		close(w.stopped)
		if w.cancel != nil {
			w.cancel()
		}
		w.factory.Shutdown()
		w.logger.Debug("stopped watching services and endpointslices")
	})
}

func (w *nsWatch) isSynced() bool {
	select {
	case <-w.synced:
		return true
	default:
		return false
	}
}

func (s *ServiceEndpoints) onService(w *nsWatch, obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if svc, ok := obj.(*corev1.Service); ok {
		s.refresh(w, svc.Name)
	}
}

func (s *ServiceEndpoints) onSlice(w *nsWatch, obj any) {
	if name := sliceService(obj); name != "" {
		s.refresh(w, name)
	}
}

// sliceService returns the Service an EndpointSlice (or its tombstone)
// belongs to, "" if none.
func sliceService(obj any) string {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if es, ok := obj.(*discoveryv1.EndpointSlice); ok {
		return es.Labels[discoveryv1.LabelServiceName]
	}
	return ""
}

func indexByServiceName(obj any) ([]string, error) {
	if name := sliceService(obj); name != "" {
		return []string{name}, nil
	}
	return nil, nil
}

// stripManagedFields drops metadata.managedFields, which this package never
// reads, from cached objects.
func stripManagedFields(obj any) (any, error) {
	if o, ok := obj.(runtime.Object); ok {
		if acc, err := meta.Accessor(o); err == nil {
			acc.SetManagedFields(nil)
		}
	}
	return obj, nil
}

// compute reads the Service and its EndpointSlices from the caches.
func (w *nsWatch) compute(name string, port int32) endpointState {
	if !w.isSynced() {
		return endpointState{}
	}
	obj, exists, err := w.services.GetIndexer().GetByKey(w.namespace + "/" + name)
	if err != nil || !exists {
		return endpointState{reason: "service not found"}
	}
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return endpointState{reason: "service not found"}
	}
	sp, ok := servicePort(svc, port)
	if !ok {
		return endpointState{reason: "service has no port " + strconv.Itoa(int(port))}
	}
	primary := discoveryv1.AddressTypeIPv4
	if len(svc.Spec.IPFamilies) > 0 && svc.Spec.IPFamilies[0] == corev1.IPv6Protocol {
		primary = discoveryv1.AddressTypeIPv6
	}

	objs, err := w.slices.GetIndexer().ByIndex(serviceIndex, name)
	if err != nil {
		return endpointState{reason: err.Error()}
	}
	best := make(map[string]candidate) // by endpoint identity
	for _, obj := range objs {
		es, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok {
			continue
		}
		if es.AddressType != discoveryv1.AddressTypeIPv4 && es.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		target, ok := slicePort(es, sp)
		if !ok {
			continue
		}
		for i := range es.Endpoints {
			c, ok := newCandidate(&es.Endpoints[i], es.AddressType, target, es.AddressType == primary)
			if !ok {
				continue
			}
			id := "addr/" + c.addr.String()
			if ref := es.Endpoints[i].TargetRef; ref != nil && ref.Kind == "Pod" && ref.Name != "" {
				id = "pod/" + ref.Name
				c.pod = ref.Name
			}
			if old, seen := best[id]; !seen || c.better(old) {
				best[id] = c
			}
		}
	}

	// Two identities with one address (an IP reused by a new pod while the
	// old one terminates): the better state wins.
	byAddr := make(map[netip.AddrPort]candidate, len(best))
	for _, c := range best {
		if old, seen := byAddr[c.addr]; !seen || old.terminating && !c.terminating {
			byAddr[c.addr] = c
		}
	}
	var ready, terminating []netip.AddrPort
	var pods map[string]string
	for ap, c := range byAddr {
		if c.terminating {
			terminating = append(terminating, ap)
		} else {
			ready = append(ready, ap)
		}
		if c.pod != "" {
			if pods == nil {
				pods = make(map[string]string, len(byAddr))
			}
			pods[render([]netip.AddrPort{ap})[0]] = c.pod
		}
	}
	return endpointState{ready: render(ready), terminating: render(terminating), pods: pods}
}

// servicePort finds the Service's port with number port, TCP preferred
// (one port number may be declared for TCP and for UDP).
func servicePort(svc *corev1.Service, port int32) (corev1.ServicePort, bool) {
	var found *corev1.ServicePort
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if p.Port != port {
			continue
		}
		if protocol(p.Protocol) == corev1.ProtocolTCP {
			return *p, true
		}
		if found == nil {
			found = p
		}
	}
	if found == nil {
		return corev1.ServicePort{}, false
	}
	return *found, true
}

// slicePort finds the port of an EndpointSlice that serves the Service port
// sp: the one with the same name and protocol (the EndpointSlice controller
// names slice ports after Service ports and resolves the targetPort, named
// or numbered, into the number). A matching slice port without a number
// (allowed in hand-made slices: "all ports") means the targetPort when it is
// a number, else the Service port.
func slicePort(es *discoveryv1.EndpointSlice, sp corev1.ServicePort) (uint16, bool) {
	for _, p := range es.Ports {
		if deref(p.Name) != sp.Name || protocol(deref(p.Protocol)) != protocol(sp.Protocol) {
			continue
		}
		if p.Port != nil {
			return validPort(*p.Port)
		}
		if sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal != 0 {
			return validPort(sp.TargetPort.IntVal)
		}
		return validPort(sp.Port)
	}
	return 0, false
}

func validPort(p int32) (uint16, bool) {
	if p < 1 || p > 65535 {
		return 0, false
	}
	return uint16(p), true
}

func protocol(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// candidate is one endpoint of one slice.
type candidate struct {
	addr        netip.AddrPort
	terminating bool
	primary     bool   // from a slice of the Service's primary IP family
	pod         string // the pod behind the endpoint, when its targetRef says
}

// newCandidate returns the endpoint's first address (the API makes all its
// addresses fungible) with the target port, and whether the endpoint is
// reported at all.
func newCandidate(ep *discoveryv1.Endpoint, family discoveryv1.AddressType, port uint16, primary bool) (candidate, bool) {
	terminating := ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
	ready := (ep.Conditions.Ready == nil || *ep.Conditions.Ready) && !terminating
	if !ready && !terminating || len(ep.Addresses) == 0 {
		return candidate{}, false
	}
	ip, err := netip.ParseAddr(ep.Addresses[0])
	if err != nil || ip.Zone() != "" {
		return candidate{}, false
	}
	if family == discoveryv1.AddressTypeIPv4 {
		if ip = ip.Unmap(); !ip.Is4() {
			return candidate{}, false
		}
	} else if !ip.Is6() || ip.Is4In6() {
		return candidate{}, false
	}
	return candidate{addr: netip.AddrPortFrom(ip, port), terminating: terminating, primary: primary}, true
}

// better reports whether c should be reported instead of old for the same
// endpoint: better state, then primary family, then lower address.
func (c candidate) better(old candidate) bool {
	if c.terminating != old.terminating {
		return !c.terminating // ready beats terminating
	}
	if c.primary != old.primary {
		return c.primary
	}
	return c.addr.Compare(old.addr) < 0
}

// render sorts addresses (IPv4 before IPv6, numerically, then by port) and
// formats them as host:port, IPv6 in brackets.
func render(aps []netip.AddrPort) []string {
	if len(aps) == 0 {
		return nil
	}
	slices.SortFunc(aps, func(a, b netip.AddrPort) int { return a.Compare(b) })
	out := make([]string, len(aps))
	for i, ap := range aps {
		out[i] = net.JoinHostPort(ap.Addr().String(), strconv.Itoa(int(ap.Port())))
	}
	return out
}

// instruments are the package's metrics.
type instruments struct {
	services   prometheus.Gauge
	namespaces prometheus.Gauge
	updates    prometheus.Counter
}

func newInstruments(reg prometheus.Registerer) *instruments {
	m := &instruments{
		services: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "nemesis", Subsystem: "kube", Name: "subscribed_services",
			Help: "Services with at least one endpoint subscription.",
		}),
		namespaces: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "nemesis", Subsystem: "kube", Name: "watched_namespaces",
			Help: "Namespaces whose Services and EndpointSlices are watched (those with subscriptions).",
		}),
		updates: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "nemesis", Subsystem: "kube", Name: "endpoint_updates_total",
			Help: "Endpoint sets delivered to subscribers (the first one of each subscription, then one per change; coalesced changes count once).",
		}),
	}
	if reg != nil {
		m.services = register(reg, m.services)
		m.namespaces = register(reg, m.namespaces)
		m.updates = register(reg, m.updates)
	}
	return m
}

// register registers c on reg, or returns the collector already registered
// in its place.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic("kube: registering metrics: " + err.Error())
}
