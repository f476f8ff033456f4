package activator

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// Status is a snapshot of the activator: the configuration in force, the
// outcome of the newest read of its file, and each route's queue and
// endpoints. It is what GET /api/v1/status serves (see RegisterAPI).
type Status struct {
	// ConfigVersion counts the configurations put in force since the
	// start, the one in force included: 1 for the first, 0 before any.
	ConfigVersion uint64 `json:"configVersion"`
	// LoadedAt is when the configuration in force was put in force.
	LoadedAt *time.Time `json:"loadedAt,omitempty"`
	// ConfigFile is the file the configuration in force was read from.
	ConfigFile string `json:"configFile,omitempty"`
	// LastReloadError is why the newest read of the configuration file
	// was refused, one problem a line, each with its file:line:column;
	// the configuration in force keeps serving. "" when the file read
	// last is in force.
	LastReloadError string `json:"lastReloadError"`
	// LastReloadAt is when the configuration file was last read (at the
	// start, on a change, and at every resync), whatever came of it.
	LastReloadAt *time.Time `json:"lastReloadAt,omitempty"`
	// Routes in the order of the configuration.
	Routes []RouteStatus `json:"routes"`
}

// RouteStatus is one route's settings, as configured, and its state.
type RouteStatus struct {
	Name string `json:"name"`
	// Match describes the requests the route takes, such as
	// `hosts: chat.example.com, *.chat.example.com; pathPrefix: /v1/;
	// headers: X-Model="llama"`, or "any request".
	Match  string `json:"match"`
	Policy string `json:"policy"`
	// Service is "namespace/name:port", "" for a route with static
	// endpoints.
	Service string `json:"service"`
	// QueueSize is the most requests held at once (queue.size, 0: none);
	// QueueTimeout how long one may wait (queue.timeout), as in the
	// configuration ("2m").
	QueueSize    int    `json:"queueSize"`
	QueueTimeout string `json:"queueTimeout"`
	// EndpointConcurrency caps the requests in flight per endpoint; 0: no
	// cap.
	EndpointConcurrency int `json:"endpointConcurrency"`
	// RequestTimeout and ResponseHeaderTimeout are timeouts.request and
	// timeouts.responseHeader ("0s": no limit).
	RequestTimeout        string `json:"requestTimeout"`
	ResponseHeaderTimeout string `json:"responseHeaderTimeout"`
	// QueueDepth is the requests held now.
	QueueDepth int `json:"queueDepth"`
	// OldestWait is how long the request first in line has waited, in
	// seconds; 0 when none is held.
	OldestWait float64 `json:"oldestWaitSeconds"`
	// InFlight is the requests proxied and not finished: the sum of the
	// endpoints' InFlight.
	InFlight int `json:"inFlight"`
	// Endpoints the route knows, by address.
	Endpoints []EndpointStatus `json:"endpoints"`
}

// The states of an endpoint in [EndpointStatus].
const (
	// EndpointReady: ready in its EndpointSlice (or static); it gets new
	// requests.
	EndpointReady = "ready"
	// EndpointTerminating: terminating in its EndpointSlice (its pod is
	// shutting down); it finishes its requests and gets no new ones.
	EndpointTerminating = "terminating"
	// EndpointDraining: no longer in its EndpointSlices as ready or
	// terminating (not ready, or deleted) while requests from this
	// activator are still in flight there; it is forgotten when they
	// finish, and gets no new ones.
	EndpointDraining = "draining"
)

// EndpointStatus is one endpoint of a route.
type EndpointStatus struct {
	// Address is host:port.
	Address string `json:"address"`
	// Pod is the pod behind the address, as its EndpointSlice names it;
	// only for service routes.
	Pod string `json:"pod,omitempty"`
	// State is EndpointReady, EndpointTerminating or EndpointDraining.
	State string `json:"state"`
	// InFlight is the requests this activator proxied to the endpoint
	// and that have not finished.
	InFlight int `json:"inFlight"`
	// Score is, on a policy score route, the ready endpoint's score as
	// the policy would compute it now (lower wins). Absent while its last
	// scrape failed or is older than score.scrape.staleAfter (the policy
	// then ranks it on its requests in flight alone), or when the
	// expression gives no finite number.
	Score *float64 `json:"score,omitempty"`
	// ScrapeAgeSeconds is, on a policy score route, the seconds since the last
	// scrape of the pod began, whether it succeeded or not; absent before
	// the first.
	ScrapeAgeSeconds *float64 `json:"scrapeAgeSeconds,omitempty"`
}

// Status returns a snapshot of the activator. It takes each route's lock
// only to copy its queue depth and endpoint set; counts are read
// atomically after, so that numbers of different endpoints may be a few
// microseconds apart.
func (a *Activator) Status() Status {
	t := a.table.Load()
	st := Status{ConfigVersion: t.version, ConfigFile: t.cfg.File, Routes: make([]RouteStatus, len(t.routes))}
	if loaded := t.loadedAt; !loaded.IsZero() {
		st.LoadedAt = &loaded
	}
	a.loadMu.Lock()
	err, at := a.lastLoadErr, a.lastLoadAt
	a.loadMu.Unlock()
	if err != nil {
		st.LastReloadError = err.Error()
	}
	if !at.IsZero() {
		st.LastReloadAt = &at
	}
	pods, _ := a.opts.Services.(PodNamer)
	for i, r := range t.routes {
		// A route kept across reloads keeps its first Route: the match
		// in force is the table's.
		st.Routes[i] = r.status(t.cfg.Routes[i], pods)
	}
	return st
}

// status returns the route's state; rc is its configuration in force.
func (r *route) status(rc *Route, pods PodNamer) RouteStatus {
	rs := RouteStatus{
		Name:                  rc.Name,
		Match:                 matchString(rc.Match),
		Policy:                string(rc.Policy),
		QueueSize:             rc.Queue.Size,
		QueueTimeout:          model.Duration(rc.Queue.Timeout).String(),
		EndpointConcurrency:   rc.EndpointConcurrency,
		RequestTimeout:        model.Duration(rc.Timeouts.Request).String(),
		ResponseHeaderTimeout: model.Duration(rc.Timeouts.ResponseHeader).String(),
	}
	if s := rc.Service; s != nil {
		rs.Service = fmt.Sprintf("%s/%s:%d", s.Namespace, s.Name, s.Port)
	}
	type known struct {
		ep    *Endpoint
		state string
	}
	var since time.Time
	r.mu.Lock()
	eps := make([]known, 0, len(r.all))
	for _, ep := range r.all {
		// The flags change under r.mu (updateEndpoints).
		state := EndpointReady
		switch {
		case ep.gone.Load():
			state = EndpointDraining
		case ep.notReady.Load():
			state = EndpointTerminating
		}
		eps = append(eps, known{ep, state})
	}
	rs.QueueDepth = r.queue.n
	if r.queue.head != nil {
		since = r.queue.head.since
	}
	r.mu.Unlock()

	if !since.IsZero() {
		rs.OldestWait = time.Since(since).Seconds()
	}
	slices.SortFunc(eps, func(a, b known) int { return strings.Compare(a.ep.addr, b.ep.addr) })
	sp, _ := r.policy.(*scorePolicy)
	rs.Endpoints = make([]EndpointStatus, len(eps))
	for i, k := range eps {
		es := EndpointStatus{Address: k.ep.addr, State: k.state, InFlight: int(k.ep.inFlight.Load())}
		rs.InFlight += es.InFlight
		if pods != nil && rc.Service != nil {
			es.Pod, _ = pods.PodName(rc.Service.Namespace, k.ep.addr)
		}
		if sp != nil {
			es.Score, es.ScrapeAgeSeconds = sp.scrapeStatus(k.ep, k.state == EndpointReady)
		}
		rs.Endpoints[i] = es
	}
	return rs
}

// scrapeStatus returns the age of ep's last scrape and, if withScore and
// the scrape is good and fresh, the score Pick would give ep now.
func (p *scorePolicy) scrapeStatus(ep *Endpoint, withScore bool) (score, age *float64) {
	for {
		sc := ep.scrape.Load()
		if sc == nil {
			return nil, nil
		}
		// A scrape by the policy of the route before a reload counts
		// from that policy's epoch.
		secs := time.Since(sc.owner.epoch.Add(time.Duration(sc.at))).Seconds()
		now := p.now()
		if !withScore || sc.owner != p || sc.vals == nil || now-sc.at > p.stale {
			return nil, &secs
		}
		fp := p.frames.Get().(*[]float64)
		c, _ := p.rate(ep, *fp, now, true)
		p.frames.Put(fp)
		// rate read the scrape again: if a new one came in meanwhile,
		// the score may be of that one, so take it from the start.
		if ep.scrape.Load() != sc {
			continue
		}
		if math.IsInf(c.score, 0) || math.IsNaN(c.score) {
			return nil, &secs
		}
		return &c.score, &secs
	}
}

// matchString describes a route's match as configured.
func matchString(m Match) string {
	var parts []string
	if len(m.Hosts) > 0 {
		parts = append(parts, "hosts: "+strings.Join(m.Hosts, ", "))
	}
	if m.PathPrefix != "" {
		parts = append(parts, "pathPrefix: "+m.PathPrefix)
	}
	if len(m.Headers) > 0 {
		hdrs := make([]string, 0, len(m.Headers))
		for k, v := range m.Headers {
			hdrs = append(hdrs, fmt.Sprintf("%s=%q", k, v))
		}
		slices.Sort(hdrs)
		parts = append(parts, "headers: "+strings.Join(hdrs, ", "))
	}
	if len(parts) == 0 {
		return "any request"
	}
	return strings.Join(parts, "; ")
}

// RegisterAPI serves the activator's status on mux as JSON (see
// docs/operations.md):
//
//	GET /api/v1/status  the configuration in force, its reload state, and each route's queue and endpoints
func (a *Activator) RegisterAPI(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(a.Status()) // the client went away; nothing to tell it
	})
}
