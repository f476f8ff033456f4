package demand

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sources gives the activator replicas to watch. A discovery of the
// activator Service's endpoints implements it as well as a fixed list.
type Sources interface {
	// Addresses returns the base URL of every activator replica now (e.g.
	// http://10.0.3.7:9091), and a channel that is closed when the list
	// changes; a nil channel never fires.
	Addresses() ([]string, <-chan struct{})
}

// StaticSources is a fixed list of activator addresses.
type StaticSources []string

var _ Sources = StaticSources(nil)

// Addresses implements [Sources].
func (s StaticSources) Addresses() ([]string, <-chan struct{}) { return s, nil }

// WatchURL returns the watch stream URL of an activator address: a base
// URL such as http://activator-0.activator:9091 gets [WatchPath]; a URL
// with a path is kept as it is.
func WatchURL(addr string) (string, error) {
	u, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("activator address %q: %w", addr, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("activator address %q: want http://host:port or https://host:port", addr)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = WatchPath
	}
	return u.String(), nil
}

// AggregatorOptions configures an [Aggregator]. Zero values take the
// defaults.
type AggregatorOptions struct {
	// Logger receives the aggregator's logs; default slog.Default().
	Logger *slog.Logger
	// Registerer receives the aggregator's metrics; default none.
	Registerer prometheus.Registerer
	// Client makes the watch requests; default a client without timeouts
	// (the streams never end) and without compression (it would buffer).
	Client *http.Client
	// Silence is how long a stream may carry nothing before its activator
	// counts as gone and its counts drop out. Default 3s.
	Silence time.Duration
	// MinBackoff and MaxBackoff bound the wait before a reconnection.
	// Defaults 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
}

// Aggregator watches every activator replica and sums the demand of each
// service over all of them. Get and Changes are safe for concurrent use.
type Aggregator struct {
	src    Sources
	opts   AggregatorOptions
	logger *slog.Logger
	m      *aggregatorMetrics
	client *http.Client

	mu      sync.RWMutex
	streams map[string]*stream // by address
	sums    map[key]counts
	live    int // activators (distinct ids) counted
	waiters map[key]chan struct{}
}

// stream is the state of one activator address.
type stream struct {
	addr     string
	id       string
	seq      uint64
	services map[key]counts
	live     bool
	lastSeen time.Time
	expire   *time.Timer
	dupOf    string // the address counted instead, when both report one id
}

// NewAggregator returns an aggregator of the activators src names. It
// watches them once Run is called.
func NewAggregator(src Sources, opts AggregatorOptions) *Aggregator {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Silence <= 0 {
		opts.Silence = 3 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	client := opts.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DisableCompression = true
		client = &http.Client{Transport: tr}
	}
	return &Aggregator{
		src:     src,
		opts:    opts,
		logger:  opts.Logger,
		m:       newAggregatorMetrics(opts.Registerer),
		client:  client,
		streams: map[string]*stream{},
		sums:    map[key]counts{},
		waiters: map[key]chan struct{}{},
	}
}

// Get returns the in-flight and queued requests of a service summed over
// every live activator. known is false while no activator is live: then
// the zeros mean nothing.
func (a *Aggregator) Get(namespace, service string) (inFlight, queued int64, known bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	c := a.sums[key{namespace, service}]
	return c.inFlight, c.queued, a.live > 0
}

// Changes returns a channel that is closed when the service's summed
// in-flight or queued count next rises from zero: the moment a scale from
// zero must start. Take the channel before reading the counts, so that no
// rise falls between the two.
func (a *Aggregator) Changes(namespace, service string) <-chan struct{} {
	k := key{namespace, service}
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := a.waiters[k]
	if ch == nil {
		ch = make(chan struct{})
		a.waiters[k] = ch
	}
	return ch
}

// Activators returns how many activators are counted now.
func (a *Aggregator) Activators() int {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.live
}

// Run watches the activators, following changes of the list, until ctx
// ends; then every count drops out.
func (a *Aggregator) Run(ctx context.Context) error {
	workers := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	defer func() {
		for _, cancel := range workers {
			cancel()
		}
		wg.Wait()
	}()
	for {
		addrs, changed := a.src.Addresses()
		want := make(map[string]bool, len(addrs))
		for _, addr := range addrs {
			u, err := WatchURL(addr)
			if err != nil {
				a.logger.Error("ignoring an activator address", "err", err.Error())
				continue
			}
			want[u] = true
		}
		for u, cancel := range workers {
			if !want[u] {
				cancel()
				delete(workers, u)
			}
		}
		for u := range want {
			if workers[u] == nil {
				wctx, cancel := context.WithCancel(ctx)
				workers[u] = cancel
				// Registered here, in the order of the list changes, not
				// when the goroutine starts: an address removed and added
				// back at once has two workers, and the old one, if it
				// registered last, would unregister the new one's stream on
				// its way out, so that its snapshots were all dropped.
				st := &stream{addr: u}
				a.mu.Lock()
				a.streams[u] = st
				a.mu.Unlock()
				wg.Go(func() { a.watch(wctx, st) })
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// watch keeps the stream of st, registered by Run, open until ctx ends.
func (a *Aggregator) watch(ctx context.Context, st *stream) {
	defer a.remove(st)

	log := a.logger.With("activator", st.addr)
	backoff := a.opts.MinBackoff
	failing := false
	for {
		got, reason, err := a.stream(ctx, st)
		if ctx.Err() != nil {
			return
		}
		a.m.errors.WithLabelValues(reason).Inc()
		switch {
		case got || !failing:
			log.Warn("demand stream from activator broke; reconnecting", "err", err.Error(), "backoff", backoff.String())
		default:
			log.Debug("demand stream from activator still failing", "err", err.Error(), "backoff", backoff.String())
		}
		failing = true
		if got {
			backoff = a.opts.MinBackoff
		}
		// ±20 % so that scalers do not reconnect in step.
		wait := time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, a.opts.MaxBackoff)
	}
}

// maxLine bounds one snapshot line: 1 MiB holds some 10,000 services.
const maxLine = 1 << 20

// stream reads one connection to st's activator until it breaks or stays
// silent. It reports whether a snapshot arrived, and why it ended.
func (a *Aggregator) stream(ctx context.Context, st *stream) (got bool, reason string, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Silence, from the connection attempt on, ends the connection; the
	// expiry timer (see apply) drops the counts.
	var silent bool
	var silentMu sync.Mutex
	watchdog := time.AfterFunc(a.opts.Silence, func() {
		silentMu.Lock()
		silent = true
		silentMu.Unlock()
		cancel()
	})
	defer watchdog.Stop()
	isSilent := func() bool {
		silentMu.Lock()
		defer silentMu.Unlock()
		return silent
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, st.addr, nil)
	if err != nil {
		return false, "connect", err
	}
	req.Header.Set("Accept", contentType)
	resp, err := a.client.Do(req)
	if err != nil {
		if isSilent() {
			return false, "silent", fmt.Errorf("no answer within %v", a.opts.Silence)
		}
		return false, "connect", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return false, "status", fmt.Errorf("GET %s: %s: %s", st.addr, resp.Status, strings.TrimSpace(string(body)))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for sc.Scan() {
		watchdog.Reset(a.opts.Silence)
		id, seq, services, err := decodeSnapshot(sc.Bytes())
		if err != nil {
			return got, "decode", err
		}
		a.apply(st, id, seq, services)
		got = true
	}
	switch {
	case isSilent():
		return got, "silent", fmt.Errorf("nothing received for %v", a.opts.Silence)
	case sc.Err() != nil:
		return got, "read", sc.Err()
	}
	return got, "ended", errors.New("the activator ended the stream")
}

// apply makes a decoded snapshot the state of st's activator.
func (a *Aggregator) apply(st *stream, id string, seq uint64, services map[key]counts) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.streams[st.addr] != st {
		return // removed meanwhile
	}
	if st.id != "" && st.id != id {
		a.logger.Info("another activator answers at this address", "activator", st.addr, "was", st.id, "now", id)
	}
	st.id, st.seq, st.services, st.live, st.lastSeen = id, seq, services, true, time.Now()
	if st.expire == nil {
		st.expire = time.AfterFunc(a.opts.Silence, func() { a.expireStream(st) })
	} else {
		st.expire.Reset(a.opts.Silence)
	}
	a.recompute()
}

// expireStream drops the counts of an activator that stayed silent.
func (a *Aggregator) expireStream(st *stream) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.streams[st.addr] != st || !st.live || time.Since(st.lastSeen) < a.opts.Silence {
		return // removed, or a snapshot arrived as the timer fired
	}
	a.logger.Warn("activator silent; its demand counts drop out", "activator", st.addr, "id", st.id, "silence", a.opts.Silence.String())
	st.live, st.services = false, nil
	a.recompute()
}

func (a *Aggregator) remove(st *stream) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if st.expire != nil {
		st.expire.Stop()
	}
	if a.streams[st.addr] == st {
		delete(a.streams, st.addr)
		a.recompute()
	}
}

// recompute sums the live activators' counts, each activator id once, and
// wakes the waiters of every service whose sum rose from zero. Callers hold
// a.mu.
func (a *Aggregator) recompute() {
	counted := map[string]*stream{}
	for _, st := range a.streams {
		if !st.live {
			continue
		}
		// Two addresses of one activator: count the smaller address.
		if other := counted[st.id]; other == nil || st.addr < other.addr {
			counted[st.id] = st
		}
	}
	sums := make(map[key]counts, len(a.sums))
	for _, st := range a.streams {
		if !st.live {
			continue
		}
		if c := counted[st.id]; c != st {
			if st.dupOf != c.addr {
				st.dupOf = c.addr
				a.logger.Warn("two addresses reach one activator; counting it once", "id", st.id, "counted", c.addr, "ignored", st.addr)
			}
			continue
		}
		st.dupOf = ""
		for k, c := range st.services {
			s := sums[k]
			s.inFlight += c.inFlight
			s.queued += c.queued
			sums[k] = s
		}
	}
	for k, n := range sums {
		if a.sums[k].rose(n) {
			if ch := a.waiters[k]; ch != nil {
				close(ch)
				delete(a.waiters, k)
			}
		}
	}
	a.sums, a.live = sums, len(counted)
	a.m.connected.Set(float64(a.live))
}

// aggregatorMetrics are the scaler side's instruments.
type aggregatorMetrics struct {
	connected prometheus.Gauge
	errors    *prometheus.CounterVec
}

func newAggregatorMetrics(reg prometheus.Registerer) *aggregatorMetrics {
	m := &aggregatorMetrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "nemesis", Subsystem: "demand", Name: "connected_activators",
			Help: "Activator replicas whose demand counts are live (a snapshot within the silence timeout).",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "nemesis", Subsystem: "demand", Name: "stream_errors_total",
			Help: "Demand watch streams that failed or ended, by reason (connect, status, decode, read, silent, ended).",
		}, []string{"reason"}),
	}
	for _, r := range []string{"connect", "status", "decode", "read", "silent", "ended"} {
		m.errors.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.connected, m.errors)
	}
	return m
}
