package activator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/k8s-nemesis/nemesis/internal/watch"
)

// Defaults for Options fields left zero.
const (
	DefaultReadHeaderTimeout       = 10 * time.Second
	DefaultIdleTimeout             = 90 * time.Second
	DefaultMaxHeaderBytes          = 64 << 10
	DefaultDialTimeout             = 3 * time.Second
	DefaultUpstreamIdleTimeout     = 60 * time.Second
	DefaultMaxIdleConnsPerEndpoint = 1024
	// DefaultMaxConnsPerEndpoint caps the connections to one endpoint, idle
	// and in use; requests beyond it wait for one.
	DefaultMaxConnsPerEndpoint = 1024
	// DefaultMaxConnections is the --max-connections default: about
	// 150 MiB of connections waiting for a request head, or a queue of
	// 10,000 held requests.
	DefaultMaxConnections = 10000
)

// DemandRecorder learns of every change in a service's in-flight and
// queued requests, as deltas: (+0, +1) when a request is queued, (+0, -1)
// when it leaves the queue, (+1, +0) when it is sent to an endpoint and
// (-1, +0) when it finishes. It is called on the hot path and must not
// block. Static routes report an empty namespace and service.
type DemandRecorder interface {
	Add(namespace, service string, inFlight, queued int64)
}

type noDemand struct{}

func (noDemand) Add(string, string, int64, int64) {}

// Options configure an Activator. Zero values take the defaults above.
type Options struct {
	Logger     *slog.Logger          // nil discards logs
	Registerer prometheus.Registerer // nil keeps the metrics unregistered
	// Services gives the endpoints of service routes; without it a service
	// route is a configuration error.
	Services ServiceEndpoints
	// Metrics runs the queries of metric routes; without it a metric route
	// is a configuration error.
	Metrics MetricQuerier
	// Demand learns of in-flight and queued requests; nil records nothing.
	Demand DemandRecorder
	// TracerProvider enables server and client spans; nil or a noop
	// provider disables tracing, which then costs nothing per request.
	TracerProvider trace.TracerProvider
	// Propagator writes the trace context upstream; nil means W3C
	// traceparent and baggage.
	Propagator propagation.TextMapPropagator

	ReadHeaderTimeout       time.Duration // the client's request head; default 10s
	IdleTimeout             time.Duration // an idle client keep-alive connection; default 90s
	MaxHeaderBytes          int           // the client's request head, larger → 431; default 64 KiB
	DialTimeout             time.Duration // connecting to an endpoint; default 3s
	UpstreamIdleTimeout     time.Duration // an idle upstream connection; default 60s
	MaxIdleConnsPerEndpoint int           // default 1024
	MaxConnsPerEndpoint     int           // default 1024; requests beyond it wait for a connection
	// MaxConnections caps the client connections the HTTP/1.1 server
	// serves at once, held requests' included; beyond it a new connection
	// is closed at once and counted. 0: no cap (the flag's default is
	// DefaultMaxConnections).
	MaxConnections int
}

// Activator routes, balances, queues and proxies requests. Create it with
// New, give it a configuration with Apply, serve Handler (or Server), and
// call Close when done.
type Activator struct {
	opts         Options
	logger       *slog.Logger
	m            *instruments
	demand       DemandRecorder
	tracer       trace.Tracer // nil: tracing disabled
	prop         propagation.TextMapPropagator
	dialer       net.Dialer
	upstreamIdle time.Duration
	maxIdle      int
	maxConns     int

	table atomic.Pointer[table]

	// scrapeClient scrapes the pods of score routes.
	scrapeClient *http.Client

	mu     sync.Mutex // serialises Apply and Close
	routes map[string]*route
	digest [32]byte
	closed bool

	loadMu sync.Mutex // guards the fields below
	// lastLoadErr is why the newest Load was refused, nil when it put its
	// file in force or found it in force already; lastLoadAt is when.
	lastLoadErr error
	lastLoadAt  time.Time

	hijackMu sync.Mutex
	hijacked map[net.Conn]struct{}
	upgrades sync.WaitGroup
}

// table is what a request needs to find its route, and what Status shows
// of the configuration in force.
type table struct {
	router *router
	cfg    *Config
	// routes run cfg.Routes, in the same order.
	routes []*route
	// version counts the configurations Apply put in force, this one
	// included; loadedAt is when it did.
	version  uint64
	loadedAt time.Time
}

// route is the running state of one configured route.
type route struct {
	a      *Activator
	cfg    *Route
	m      *routeInstruments
	policy Policy
	ns     string
	svc    string
	limit  int64 // in-flight requests per endpoint; 0: no cap

	ready atomic.Pointer[[]*Endpoint]

	mu     sync.Mutex // guards the fields below
	closed bool
	all    map[string]*Endpoint
	queue  waitQueue

	cancelSource func()
	cancelMetric context.CancelFunc

	// givingUp, when set, runs as a held request gives up (queue timeout,
	// client gone) and before it leaves the queue: a test seam that makes
	// a release race with the giving up. Set before the route serves.
	givingUp func()
}

// New returns an Activator without routes: every request gets 404 until
// Apply gives it a configuration.
func New(opts Options) *Activator {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Propagator == nil {
		opts.Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	setDefault := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	setDefault(&opts.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDefault(&opts.IdleTimeout, DefaultIdleTimeout)
	setDefault(&opts.DialTimeout, DefaultDialTimeout)
	setDefault(&opts.UpstreamIdleTimeout, DefaultUpstreamIdleTimeout)
	if opts.MaxHeaderBytes <= 0 {
		opts.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if opts.MaxIdleConnsPerEndpoint <= 0 {
		opts.MaxIdleConnsPerEndpoint = DefaultMaxIdleConnsPerEndpoint
	}
	if opts.MaxConnsPerEndpoint <= 0 {
		opts.MaxConnsPerEndpoint = DefaultMaxConnsPerEndpoint
	}
	a := &Activator{
		opts:         opts,
		logger:       opts.Logger,
		m:            newInstruments(opts.Registerer),
		demand:       opts.Demand,
		prop:         opts.Propagator,
		dialer:       net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second},
		upstreamIdle: opts.UpstreamIdleTimeout,
		maxIdle:      opts.MaxIdleConnsPerEndpoint,
		maxConns:     opts.MaxConnsPerEndpoint,
		routes:       map[string]*route{},
		hijacked:     map[net.Conn]struct{}{},
	}
	a.scrapeClient = &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: opts.DialTimeout}).DialContext,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}}
	if a.demand == nil {
		a.demand = noDemand{}
	}
	if tracingEnabled(opts.TracerProvider) {
		a.tracer = opts.TracerProvider.Tracer("github.com/k8s-nemesis/nemesis/activator")
	}
	a.table.Store(&table{router: newRouter(nil, nil), cfg: &Config{}})
	return a
}

func tracingEnabled(tp trace.TracerProvider) bool {
	if tp == nil {
		return false
	}
	switch tp.(type) {
	case noop.TracerProvider, *noop.TracerProvider:
		return false
	}
	return true
}

// Check reports the problems of cfg that depend on the Activator's
// options: service routes without a ServiceEndpoints, metric routes
// without a MetricQuerier.
func (a *Activator) Check(cfg *Config) error {
	var errs []*ConfigError
	for _, rc := range cfg.Routes {
		if rc.Service != nil && a.opts.Services == nil {
			errs = append(errs, &ConfigError{File: cfg.File, Line: rc.Line, Column: rc.Column, Route: rc.Name, Field: "service",
				Msg: "service routes need Kubernetes endpoints, which this activator does not watch (use endpoints, or run in a cluster)"})
		}
		if rc.Policy == PolicyMetric && a.opts.Metrics == nil {
			errs = append(errs, &ConfigError{File: cfg.File, Line: rc.Line, Column: rc.Column, Route: rc.Name, Field: "policy",
				Msg: "policy metric needs Prometheus, which this activator has no address of (--prometheus-url)"})
		}
	}
	return joinConfigErrors(errs)
}

// Apply puts cfg in force. Routes whose backend, policy, queue and
// timeouts are unchanged keep their state (endpoints, connections, queue,
// counters); only their match may change. A changed route is rebuilt, and
// takes over its predecessor's endpoints with their in-flight counts and
// connections. Removed routes are closed: their held requests get 503,
// their in-flight requests finish.
func (a *Activator) Apply(cfg *Config) error {
	if err := a.Check(cfg); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errors.New("applying configuration: the activator is closed")
	}
	next := make(map[string]*route, len(cfg.Routes))
	list := make([]*route, len(cfg.Routes))
	var created []*route
	for i, rc := range cfg.Routes {
		if old, ok := a.routes[rc.Name]; ok && sameBackend(old.cfg, rc) {
			// The router takes the new match from cfg; the rest is the same.
			next[rc.Name] = old
			list[i] = old
			continue
		}
		r := a.newRoute(rc)
		next[rc.Name] = r
		list[i] = r
		created = append(created, r)
	}
	a.table.Store(&table{router: newRouter(cfg.Routes, list), cfg: cfg, routes: list,
		version: a.table.Load().version + 1, loadedAt: time.Now()})
	// A route rebuilt under the same name takes over its predecessor's
	// endpoints, with their requests in flight and their connections,
	// before it subscribes: its first endpoint update keeps those still
	// ready, and the cap and least-request go on from their true counts.
	for _, r := range created {
		if old := a.routes[r.cfg.Name]; old != nil && old.m.labels == r.m.labels {
			old.handOver(r)
		}
	}
	// Start the new routes after they are reachable, so that a static
	// route's synchronous update finds its queue in place (it is empty).
	for _, r := range created {
		r.start()
	}
	used := map[[3]string]bool{}
	for _, r := range next {
		used[r.m.labels] = true
	}
	for name, old := range a.routes {
		if cur, ok := next[name]; ok && cur == old {
			continue
		}
		old.close(!used[old.m.labels])
	}
	a.routes = next
	a.digest = cfg.digest
	a.m.routes.Set(float64(len(next)))
	a.m.reloadSuccess.SetToCurrentTime()
	// A refused file is older than the configuration now in force.
	a.loadMu.Lock()
	a.lastLoadErr = nil
	a.loadMu.Unlock()
	a.m.reloadFailed.Set(0)
	return nil
}

// sameBackend reports whether two versions of a route differ at most in
// their match and position.
func sameBackend(a, b *Route) bool {
	ac, bc := *a, *b
	ac.Match, bc.Match = Match{}, Match{}
	ac.Line, ac.Column, ac.index = 0, 0, 0
	bc.Line, bc.Column, bc.index = 0, 0, 0
	// Compiled expressions hold closures, which DeepEqual never finds
	// equal: compare their sources.
	for _, r := range []*Route{&ac, &bc} {
		if r.Score != nil {
			sc := *r.Score
			sc.filter, sc.expression = nil, nil
			r.Score = &sc
		}
	}
	return reflect.DeepEqual(ac, bc)
}

func (a *Activator) newRoute(rc *Route) *route {
	r := &route{a: a, cfg: rc, all: map[string]*Endpoint{}, limit: int64(rc.EndpointConcurrency)}
	if rc.Service != nil {
		r.ns, r.svc = rc.Service.Namespace, rc.Service.Name
	}
	r.m = a.m.forRoute(rc.Name, r.ns, r.svc)
	pods, _ := a.opts.Services.(PodNamer)
	r.policy = newPolicy(rc, a.opts.Metrics, pods, r.m, a.scrapeClient, a.logger)
	empty := []*Endpoint{}
	r.ready.Store(&empty)
	return r
}

// start subscribes to the route's endpoints and starts its metric refresh.
func (r *route) start() {
	var src EndpointSource = StaticEndpoints(r.cfg.Endpoints)
	if r.cfg.Service != nil {
		src = serviceSource{svc: r.a.opts.Services, ref: *r.cfg.Service}
	}
	cancel := src.Subscribe(r.updateEndpoints)
	r.mu.Lock()
	r.cancelSource = cancel
	r.mu.Unlock()
	if mp, ok := r.policy.(*metricPolicy); ok {
		ctx, cancel := context.WithCancel(context.Background())
		r.cancelMetric = cancel
		go mp.run(ctx, r)
	}
}

// close stops the route: no more endpoint updates, held requests get 503
// (or go on under the route now in force), idle connections close. forget
// drops its metric series too. After handOver, it ends the subscriptions.
func (r *route) close(forget bool) {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		r.queue.releaseAll()
	}
	cancel, cancelMetric := r.cancelSource, r.cancelMetric
	r.cancelSource, r.cancelMetric = nil, nil
	eps := r.all
	r.all = map[string]*Endpoint{}
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if cancelMetric != nil {
		cancelMetric()
	}
	if f, ok := r.policy.(endpointFollower); ok {
		f.stop()
	}
	for _, ep := range eps {
		ep.pool.close()
	}
	if forget {
		r.m.forget()
	}
}

// handOver closes the route for next, which replaces it under the same
// name and metric labels and has not started: next takes over the
// endpoints, their in-flight counts and connection pools. Held requests go
// on under next (see ServeHTTP). The subscriptions stay until close, so
// that next subscribes while the EndpointSlice cache is warm.
func (r *route) handOver(next *route) {
	r.mu.Lock()
	// Both locks: a request finishing (done) sees the endpoint's route
	// and that route's state change together.
	next.mu.Lock()
	r.closed = true
	r.queue.releaseAll()
	for _, ep := range r.all {
		ep.route.Store(next)
	}
	next.all, r.all = r.all, map[string]*Endpoint{}
	next.mu.Unlock()
	r.mu.Unlock()
}

// Close stops every route. Requests in flight finish on their own.
func (a *Activator) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	for _, r := range a.routes {
		r.close(false)
	}
	a.routes = map[string]*route{}
	a.scrapeClient.CloseIdleConnections()
}

// Config returns the configuration in force.
func (a *Activator) Config() *Config { return a.table.Load().cfg }

// ServeHTTP routes and proxies one request.
func (a *Activator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// A parked request (only ever served by Server's own response, with
	// tracing off) counts its time in the queue and was first in line.
	released := false
	if rw, ok := w.(*response); ok && !rw.c.heldSince.IsZero() {
		start, released = rw.c.heldSince, true
	}
	rt := a.table.Load().router.match(r.Host, r.URL.Path, r.Header)
	if rt == nil {
		a.m.unmatched.Inc()
		h := w.Header()
		h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		h["X-Content-Type-Options"] = []string{"nosniff"}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, "no route for host %q and path %q\n", r.Host, r.URL.Path)
		return
	}
	code := rt.serve(w, r, released)
	if code == statusRouteGone {
		// A reload replaced the route while the request was held: the
		// request goes on under the configuration now in force.
		if next := a.table.Load().router.match(r.Host, r.URL.Path, r.Header); next != nil && next != rt {
			rt = next
			code = rt.serve(w, r, false)
		}
		if code == statusRouteGone {
			code = rt.fail(w, http.StatusServiceUnavailable, "the route was removed", nil)
		}
	}
	if code == statusAborted {
		rt.m.code(http.StatusBadGateway).Inc()
		rt.m.duration.Observe(time.Since(start).Seconds())
		// The response started and cannot be completed: make the client
		// see a broken connection rather than a short, valid-looking body.
		panic(http.ErrAbortHandler)
	}
	rt.m.code(code).Inc()
	rt.m.duration.Observe(time.Since(start).Seconds())
}

// statusAborted is what serve returns when the response was cut off after
// its head; the metrics record it as 502.
const statusAborted = -1

// serve waits for an endpoint if need be and proxies. released says the
// request was held and released already: it goes before those held.
func (rt *route) serve(w http.ResponseWriter, r *http.Request, released bool) int {
	ready := rt.readyEndpoints()
	if released && !rt.hasRoom(ready) || !released && !rt.mayGo(ready) {
		var code int
		if ready, code = rt.waitReady(r.Context(), released); ready == nil {
			switch code {
			case statusClientGone, statusRouteGone:
				return code
			case http.StatusGatewayTimeout:
				return rt.fail(w, code, "no endpoint became ready in time", nil)
			default:
				return rt.fail(w, code, "no ready endpoint and the queue is full", nil)
			}
		}
	}
	return rt.proxy(w, r, ready)
}

// Handler returns the proxy handler: the Activator itself, wrapped in an
// otelhttp server span when tracing is enabled.
func (a *Activator) Handler() http.Handler {
	if a.tracer == nil {
		return a
	}
	return otelhttp.NewHandler(a, "activator",
		otelhttp.WithTracerProvider(a.opts.TracerProvider),
		otelhttp.WithPropagators(a.prop),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method }))
}

// Shutdown stops srv gracefully: no new connections, then in-flight and
// held requests finish, upgraded connections too, until ctx ends; then
// whatever is left is closed.
func (a *Activator) Shutdown(ctx context.Context, srv *Server) error {
	err := srv.Shutdown(ctx)
	upgrades := make(chan struct{})
	go func() { a.upgrades.Wait(); close(upgrades) }()
	select {
	case <-upgrades:
	case <-ctx.Done():
	}
	if err != nil || ctx.Err() != nil {
		_ = srv.Close()
		a.hijackMu.Lock()
		for c := range a.hijacked {
			c.Close()
		}
		a.hijackMu.Unlock()
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

func (a *Activator) trackHijacked(c net.Conn, add bool) {
	a.hijackMu.Lock()
	if add {
		a.hijacked[c] = struct{}{}
		a.upgrades.Add(1)
	} else {
		delete(a.hijacked, c)
		a.upgrades.Done()
	}
	a.hijackMu.Unlock()
}

// Load reads the configuration file and applies it. A file identical to
// the one in force is not applied again. Status reports the outcome.
func (a *Activator) Load(path string) (changed bool, err error) {
	changed, err = a.load(path)
	a.loadMu.Lock()
	a.lastLoadErr, a.lastLoadAt = err, time.Now()
	a.loadMu.Unlock()
	if err != nil {
		a.m.reloadFailed.Set(1)
	} else {
		a.m.reloadFailed.Set(0)
	}
	return changed, err
}

func (a *Activator) load(path string) (changed bool, err error) {
	cfg, err := LoadConfig(path)
	if err == nil {
		err = a.Check(cfg)
	}
	if err != nil {
		return false, err
	}
	a.mu.Lock()
	same := a.digest == cfg.digest
	a.mu.Unlock()
	if same {
		return false, nil
	}
	return true, a.Apply(cfg)
}

// reload is Load for the watcher: problems are logged one per line and
// counted, and the configuration in force stays.
func (a *Activator) reload(path string) {
	changed, err := a.Load(path)
	if err != nil {
		a.m.reloads.WithLabelValues("failure").Inc()
		for _, line := range strings.Split(err.Error(), "\n") {
			a.logger.Error("configuration rejected; the running one stays", "problem", line)
		}
		return
	}
	if !changed {
		return
	}
	a.m.reloads.WithLabelValues("success").Inc()
	a.logger.Info("configuration reloaded", "file", path, "routes", len(a.Config().Routes))
}

// Watch reloads the configuration file whenever it changes, until ctx
// ends (see [watch.Dirs]: the directory is watched, so a ConfigMap's
// symlink swap is seen), and every resync as a safety net (0: never).
func (a *Activator) Watch(ctx context.Context, path string, resync time.Duration) error {
	if info, err := os.Stat(path); err == nil && info.IsDir() {
		return fmt.Errorf("watching activator config: %s is a directory", path)
	}
	return watch.Dirs(ctx, []string{path}, resync, a.logger, func() { a.reload(path) })
}
