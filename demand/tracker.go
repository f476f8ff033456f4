package demand

import (
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TrackerOptions configures a [Tracker]. Zero values take the defaults.
type TrackerOptions struct {
	// Logger receives the tracker's logs; default slog.Default().
	Logger *slog.Logger
	// Registerer receives the tracker's metrics; default none.
	Registerer prometheus.Registerer
	// Coalesce is how long a change other than a rise from zero waits
	// before it is sent, with the changes that follow it: so also the
	// shortest time between two such snapshots. Default 50ms.
	Coalesce time.Duration
	// Heartbeat is the longest time between two snapshots. Default 1s; keep
	// it well under the aggregators' silence timeout (3s).
	Heartbeat time.Duration
	// WriteTimeout disconnects a watcher that has not taken a snapshot for
	// this long. Default 10s.
	WriteTimeout time.Duration
	// MaxWatchers bounds the open watch streams. A watcher beyond it
	// displaces the oldest watcher of the remote address that holds the
	// most (see register), so that streams opened and left idle by any pod
	// that reaches the admin port cannot lock the scalers out. Default 64.
	MaxWatchers int
}

// Tracker counts the in-flight and queued requests of every service in one
// activator, and serves them to the scalers as a watch stream. Add is safe
// for concurrent use and cheap enough for the proxy's hot path.
type Tracker struct {
	id     string
	opts   TrackerOptions
	logger *slog.Logger
	m      *trackerMetrics

	// services is copied on write: a new service is rare, a lookup is on
	// every request.
	services atomic.Pointer[map[key]*counter]
	insertMu sync.Mutex

	// dirty is set by Add when anything changed and the publisher has not
	// seen it yet; kick wakes the publisher.
	dirty atomic.Bool
	kick  chan struct{}

	mu         sync.Mutex
	watchers   map[*watcher]struct{}
	joins      uint64 // watchers registered so far: their order
	joined     bool   // a watcher waits for its first snapshot
	publishing bool   // the publisher goroutine runs
	closed     bool
	done       chan struct{}

	// Publisher state: only the one running publisher touches it.
	seq  uint64
	last map[key]counts // as last published
}

// counter is one service's counts. armedInFlight (armedQueued) is true when
// the last snapshot sent showed in-flight (queued) at zero: then a rise is
// the wake-up edge, which Add signals at once. Once sent non-zero, further
// rises wait for the coalescing interval: the scalers know already.
type counter struct {
	inFlight, queued           atomic.Int64
	armedInFlight, armedQueued atomic.Bool
	_                          [40]byte // one 64-byte cache line per service
}

// watcher is one open watch stream.
type watcher struct {
	latest atomic.Pointer[[]byte] // the newest snapshot not yet written
	ready  chan struct{}          // cap 1: latest was set
	host   string                 // the remote IP address
	join   uint64                 // registration order
	gone   chan struct{}          // closed when displaced by a newer watcher
}

// NewTracker returns a tracker for the activator replica id (its pod name:
// unique among the replicas, so that aggregators count each once).
func NewTracker(id string, opts TrackerOptions) *Tracker {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Coalesce <= 0 {
		opts.Coalesce = 50 * time.Millisecond
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.MaxWatchers <= 0 {
		opts.MaxWatchers = 64
	}
	t := &Tracker{
		id:       id,
		opts:     opts,
		logger:   opts.Logger,
		m:        newTrackerMetrics(opts.Registerer),
		kick:     make(chan struct{}, 1),
		watchers: map[*watcher]struct{}{},
		done:     make(chan struct{}),
		last:     map[key]counts{},
	}
	empty := map[key]*counter{}
	t.services.Store(&empty)
	return t
}

// Add changes the counts of a service by the given deltas: +1 in flight when
// a request is sent to a pod, -1 when it ends; +1 queued when a request is
// held, -1 when it leaves the queue. A rise from zero is sent to the
// watchers at once; other changes within the coalescing interval.
func (t *Tracker) Add(namespace, service string, inFlight, queued int64) {
	c := t.counter(namespace, service)
	edge := false
	if inFlight != 0 {
		n := c.inFlight.Add(inFlight)
		edge = n > 0 && n-inFlight <= 0 && c.armedInFlight.Load()
	}
	if queued != 0 {
		n := c.queued.Add(queued)
		edge = edge || (n > 0 && n-queued <= 0 && c.armedQueued.Load())
	}
	// Under load dirty stays set between two snapshots, so most calls end
	// after one atomic load.
	if (!t.dirty.Load() && !t.dirty.Swap(true)) || edge {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
}

// Get returns the counts of a service in this activator.
func (t *Tracker) Get(namespace, service string) (inFlight, queued int64) {
	c, ok := (*t.services.Load())[key{namespace, service}]
	if !ok {
		return 0, 0
	}
	return c.inFlight.Load(), c.queued.Load()
}

func (t *Tracker) counter(namespace, service string) *counter {
	if c, ok := (*t.services.Load())[key{namespace, service}]; ok {
		return c
	}
	t.insertMu.Lock()
	defer t.insertMu.Unlock()
	old := *t.services.Load()
	if c, ok := old[key{namespace, service}]; ok {
		return c
	}
	c := &counter{}
	c.armedInFlight.Store(true)
	c.armedQueued.Store(true)
	next := make(map[key]*counter, len(old)+1)
	maps.Copy(next, old)
	next[key{namespace, service}] = c
	t.services.Store(&next)
	return c
}

// Handler serves the watch stream at [WatchPath]; mount it on the admin
// address, e.g. mux.Handle(demand.WatchPath, tracker.Handler()).
func (t *Tracker) Handler() http.Handler {
	return http.HandlerFunc(t.serveWatch)
}

// Close ends every watch stream and refuses new ones. http.Server.Shutdown
// waits for handlers to return and a watch stream never does by itself:
// call Close first, or register it with RegisterOnShutdown.
func (t *Tracker) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.closed = true
		close(t.done)
	}
}

func (t *Tracker) serveWatch(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != WatchPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed: use GET", http.StatusMethodNotAllowed)
		return
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	wt := &watcher{ready: make(chan struct{}, 1), host: host, gone: make(chan struct{})}
	if err := t.register(wt); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer t.unregister(wt)
	t.logger.Debug("scaler watching demand", "remote", r.RemoteAddr)

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-t.done:
			return
		case <-wt.gone:
			t.logger.Debug("demand watcher displaced by a newer one", "remote", r.RemoteAddr)
			return
		case <-wt.ready:
		}
		line := wt.latest.Swap(nil)
		if line == nil {
			continue
		}
		_ = rc.SetWriteDeadline(time.Now().Add(t.opts.WriteTimeout))
		if _, err := w.Write(*line); err != nil {
			t.logger.Debug("demand watcher gone", "remote", r.RemoteAddr, "err", err.Error())
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// register adds a watcher and starts the publisher if it is not running.
//
// With MaxWatchers open, the newcomer displaces the oldest watcher of the
// remote address that holds the most streams, counting the newcomer's own
// address first on a tie. The watch port is unauthenticated, and the
// server cannot tell a scaler from a pod that opened streams and never
// reads them (the kernel's buffers take hours of heartbeats): so one
// address can only ever displace itself once it holds the most, and a
// scaler, one stream per activator, is displaced only when every address
// holds as few streams as it does. Among the streams of one address
// (several pods behind one address, as with a mesh's sidecar) the newest
// win: idle streams opened once are displaced by a scaler reconnecting.
func (t *Tracker) register(wt *watcher) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errors.New("activator shutting down")
	}
	if len(t.watchers) >= t.opts.MaxWatchers {
		v := t.victim(wt.host)
		delete(t.watchers, v)
		close(v.gone)
		t.m.evicted.Inc()
	}
	t.joins++
	wt.join = t.joins
	t.watchers[wt] = struct{}{}
	t.m.watchers.Set(float64(len(t.watchers)))
	t.joined = true
	if !t.publishing {
		t.publishing = true
		go t.publish()
	}
	t.wake()
	return nil
}

// victim is the watcher a newcomer from host displaces (see register).
// Callers hold t.mu, with at least one watcher registered; it runs only
// at the cap, over at most MaxWatchers watchers.
func (t *Tracker) victim(host string) *watcher {
	per := make(map[string]int, 8)
	for wt := range t.watchers {
		per[wt.host]++
	}
	hog := host
	for h, n := range per {
		if n > per[hog] {
			hog = h
		}
	}
	var v *watcher
	for wt := range t.watchers {
		if wt.host == hog && (v == nil || wt.join < v.join) {
			v = wt
		}
	}
	return v
}

func (t *Tracker) unregister(wt *watcher) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.watchers, wt)
	t.m.watchers.Set(float64(len(t.watchers)))
	t.wake() // so that the publisher stops when it was the last
}

func (t *Tracker) wake() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// publish runs while there are watchers: it decides when to build and send
// a snapshot.
func (t *Tracker) publish() {
	heartbeat := time.NewTimer(t.opts.Heartbeat)
	defer heartbeat.Stop()
	coalesce := time.NewTimer(time.Hour)
	coalesce.Stop()
	defer coalesce.Stop()
	pending := false // a coalesced snapshot is due when coalesce fires
	for {
		var fired, beat bool
		select {
		case <-t.kick:
		case <-coalesce.C:
			fired = true
		case <-heartbeat.C:
			beat = true
		case <-t.done:
		}
		t.mu.Lock()
		if len(t.watchers) == 0 || t.closed {
			t.publishing = false
			t.mu.Unlock()
			return
		}
		join := t.joined
		t.joined = false
		t.mu.Unlock()

		if fired {
			pending = false
		}
		if pending && !join && !beat {
			// Woken by an edge while a coalesced snapshot is due: build one
			// to look, but leave dirty set for the one that is due, so that
			// Add does not wake this loop on every change meanwhile.
			snap := t.build()
			if t.rose(snap) {
				t.send(snap, kindEdge)
				heartbeat.Reset(t.opts.Heartbeat)
			}
			continue
		}
		t.dirty.Store(false)
		snap := t.build()
		kind := ""
		switch {
		case join:
			kind = kindInitial
		case beat:
			kind = kindHeartbeat
		case t.rose(snap):
			kind = kindEdge
		case fired && t.changed(snap):
			kind = kindCoalesced
		case fired:
			// Due, and nothing to send (changes that cancelled out).
		default:
			// The first change since the last snapshot: look again a whole
			// interval later, never now, and leave dirty set meanwhile so
			// that Add does not wake this loop on every call. Now is the
			// instant of a change, and under closed-loop load the first
			// change after a quiet spell is a request that just ended, its
			// client's next not yet arrived: a snapshot built now would
			// show one request too few for a whole interval (a quarter of
			// the time with clients in step at 200ms a request). An
			// interval after a change is as good a time as any other.
			pending = true
			coalesce.Reset(t.opts.Coalesce)
		}
		if kind != "" {
			t.send(snap, kind)
			heartbeat.Reset(t.opts.Heartbeat)
		}
	}
}

// build reads every counter.
func (t *Tracker) build() map[key]counts {
	services := *t.services.Load()
	snap := make(map[key]counts, len(t.last)+1)
	for k, c := range services {
		// A negative count is a caller's bug; never send it.
		n := counts{inFlight: max(c.inFlight.Load(), 0), queued: max(c.queued.Load(), 0)}
		if !n.zero() {
			snap[k] = n
		}
	}
	return snap
}

// arm sets the edge flags of every counter from the snapshot just sent. A
// count sent as zero is armed and then read again: a rise that raced with
// the snapshot, and so saw the flag still unarmed, shows here and wakes the
// publisher.
func (t *Tracker) arm(sent map[key]counts) {
	missed := false
	for k, c := range *t.services.Load() {
		n := sent[k]
		missed = armField(&c.armedInFlight, &c.inFlight, n.inFlight) || missed
		missed = armField(&c.armedQueued, &c.queued, n.queued) || missed
	}
	if missed {
		t.wake()
	}
}

func armField(armed *atomic.Bool, v *atomic.Int64, sent int64) (missed bool) {
	if sent > 0 {
		if armed.Load() {
			armed.Store(false)
		}
		return false
	}
	if !armed.Load() {
		armed.Store(true)
		return v.Load() > 0
	}
	return false
}

// rose reports whether a count in snap rose from zero since the last
// snapshot sent.
func (t *Tracker) rose(snap map[key]counts) bool {
	for k, n := range snap {
		if t.last[k].rose(n) {
			return true
		}
	}
	return false
}

func (t *Tracker) changed(snap map[key]counts) bool {
	return !maps.Equal(snap, t.last)
}

const (
	kindInitial   = "initial"
	kindEdge      = "edge"
	kindCoalesced = "coalesced"
	kindHeartbeat = "heartbeat"
)

// send encodes snap and hands it to every watcher, replacing any snapshot a
// slow watcher has not taken yet.
func (t *Tracker) send(snap map[key]counts, kind string) {
	t.seq++
	s := Snapshot{Activator: t.id, Seq: t.seq, Services: make([]ServiceDemand, 0, len(snap)+len(t.last))}
	for k, n := range snap {
		s.Services = append(s.Services, ServiceDemand{Namespace: k.namespace, Service: k.service, InFlight: n.inFlight, Queued: n.queued})
	}
	for k := range t.last {
		if _, ok := snap[k]; !ok {
			s.Services = append(s.Services, ServiceDemand{Namespace: k.namespace, Service: k.service})
		}
	}
	sortServices(s.Services)
	t.last = snap
	t.arm(snap)
	line, err := json.Marshal(&s)
	if err != nil {
		t.logger.Error("encoding a demand snapshot", "err", err.Error()) // cannot happen: plain types
		return
	}
	line = append(line, '\n')
	t.m.snapshots.WithLabelValues(kind).Inc()
	t.mu.Lock()
	defer t.mu.Unlock()
	for wt := range t.watchers {
		if wt.latest.Swap(&line) != nil {
			t.m.dropped.Inc()
		}
		select {
		case wt.ready <- struct{}{}:
		default:
		}
	}
}

// trackerMetrics are the activator side's instruments.
type trackerMetrics struct {
	watchers  prometheus.Gauge
	snapshots *prometheus.CounterVec
	dropped   prometheus.Counter
	evicted   prometheus.Counter
}

func newTrackerMetrics(reg prometheus.Registerer) *trackerMetrics {
	m := &trackerMetrics{
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "nemesis", Subsystem: "demand", Name: "watchers",
			Help: "Open demand watch streams (one per scaler replica).",
		}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "nemesis", Subsystem: "demand", Name: "snapshots_sent_total",
			Help: "Demand snapshots built for the watchers, by kind: initial (a watcher joined), edge (a count rose from zero), coalesced, heartbeat.",
		}, []string{"kind"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "nemesis", Subsystem: "demand", Name: "snapshots_dropped_total",
			Help: "Snapshots replaced by a newer one before a slow watcher took them.",
		}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "nemesis", Subsystem: "demand", Name: "watchers_displaced_total",
			Help: "Watch streams ended to make room for a newer one when MaxWatchers were open: the oldest of the remote address holding the most.",
		}),
	}
	for _, k := range []string{kindInitial, kindEdge, kindCoalesced, kindHeartbeat} {
		m.snapshots.WithLabelValues(k)
	}
	if reg != nil {
		reg.MustRegister(m.watchers, m.snapshots, m.dropped, m.evicted)
	}
	return m
}
