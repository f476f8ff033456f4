package activator

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"golang.org/x/net/http/httpguts"
	"gopkg.in/yaml.v3"

	"github.com/k8s-nemesis/nemesis/internal/yamlpos"
	"github.com/k8s-nemesis/nemesis/rules"
)

// Defaults for fields a route leaves out; doc.go explains the choices.
const (
	DefaultPolicy                = PolicyLeastRequest
	DefaultMetricRefresh         = time.Second
	DefaultQueueSize             = 1000
	DefaultQueueTimeout          = 2 * time.Minute
	DefaultRequestTimeout        = 10 * time.Minute
	DefaultResponseHeaderTimeout = 5 * time.Minute

	// MaxQueueSize bounds queue.size, so that a typo cannot let held
	// requests take all memory.
	MaxQueueSize = 1_000_000
	// MaxEndpointConcurrency bounds endpointConcurrency.
	MaxEndpointConcurrency = 1_000_000
	// minMetricRefresh keeps a metric route from hammering Prometheus.
	minMetricRefresh = 100 * time.Millisecond

	// Defaults of a score route's scrape, those of the Gateway API
	// Inference Extension's endpoint picker.
	DefaultScrapePath       = "/metrics"
	DefaultScrapeInterval   = 50 * time.Millisecond
	DefaultScrapeTimeout    = 40 * time.Millisecond
	DefaultScrapeStaleAfter = 2 * time.Second
	// minScrapeInterval keeps a score route from hammering its pods.
	minScrapeInterval = 10 * time.Millisecond
	// MaxScoreMetrics bounds the metrics a score route names.
	MaxScoreMetrics = 16

	DefaultAffinityPrefixBytes = 2048
	DefaultAffinityLoadFactor  = 1.25
)

// scoreBuiltins returns the variables every score expression has besides
// its metrics, in the order they follow the metrics.
func scoreBuiltins() []string { return []string{"inflight", "sent", "age"} }

// PolicyName names a load-balancing policy.
type PolicyName string

// The policies a route may name.
const (
	PolicyRoundRobin   PolicyName = "round-robin"
	PolicyLeastRequest PolicyName = "least-request"
	PolicyRandom       PolicyName = "random"
	PolicyMetric       PolicyName = "metric"
	PolicyScore        PolicyName = "score"
)

// Config is one loaded, valid configuration. It is immutable once parsed.
type Config struct {
	// File is the file the configuration was read from.
	File string
	// Routes in the order written.
	Routes []*Route
	digest [sha256.Size]byte
}

// Route is one route of the configuration.
type Route struct {
	Name      string
	Match     Match
	Service   *ServiceRef // nil for a static route
	Endpoints []string    // static endpoints, host:port; empty for a service route
	Policy    PolicyName
	Metric    *MetricSpec   // only for PolicyMetric
	Score     *ScoreSpec    // only for PolicyScore
	Affinity  *AffinitySpec // only for PolicyScore; nil: none
	Queue     QueueSpec
	Timeouts  Timeouts
	// EndpointConcurrency caps the requests one endpoint has in flight
	// from this activator, like Knative's containerConcurrency; requests
	// beyond it wait in the queue for a free slot. 0: no cap.
	EndpointConcurrency int
	// Line and Column locate the route in File, for errors found later
	// (such as a service route without an endpoint source).
	Line, Column int
	index        int // position in Config.Routes
}

// Match says which requests a route takes. Empty fields match everything.
type Match struct {
	Hosts      []string          // lower case; "*.example.com" is a wildcard
	PathPrefix string            // "" or starting with '/'
	Headers    map[string]string // canonical header name → exact value
}

// ServiceRef names a port of a Kubernetes Service.
type ServiceRef struct {
	Namespace, Name string
	Port            int32
}

// MetricSpec is the query of the metric policy.
type MetricSpec struct {
	Query   string
	Refresh time.Duration
}

// ScoreSpec is the score policy: what to scrape from each pod and how to
// score it.
type ScoreSpec struct {
	Scrape ScrapeSpec
	// Metrics name the families of the pods' expositions the expressions
	// use, in the order written.
	Metrics []ScoreMetric
	// Filter, if not empty, says which pods are eligible; Expression
	// scores them, lower wins.
	Filter, Expression string

	// The compiled expressions; their variables are the metrics in
	// order, then scoreBuiltins. Not compared by sameBackend (the
	// sources are).
	filter, expression *rules.Formula
}

// ScrapeSpec says how the score policy scrapes a pod.
type ScrapeSpec struct {
	Path string
	// Port to scrape; 0: the endpoint's own.
	Port                          int
	Interval, Timeout, StaleAfter time.Duration
}

// ScoreMetric is one variable of a score expression: the sum of a metric
// family's series in a pod's exposition.
type ScoreMetric struct {
	Name, Family string
}

// AffinityKey says what a request's affinity key is read from.
type AffinityKey string

// The affinity keys.
const (
	AffinityBodyPrefix AffinityKey = "body-prefix"
	AffinityHeader     AffinityKey = "header"
)

// AffinitySpec sends requests with the same key to the same pod, with
// bounded loads.
type AffinitySpec struct {
	Key AffinityKey
	// Header is the header read for AffinityHeader, canonical.
	Header string
	// PrefixBytes of the body are hashed for AffinityBodyPrefix.
	PrefixBytes int
	// LoadFactor c: a key leaves its home pod when that pod has more than
	// c times the route's average requests in flight.
	LoadFactor float64
}

// QueueSpec bounds the requests held while no endpoint is ready.
type QueueSpec struct {
	Size    int
	Timeout time.Duration
}

// Timeouts bound the upstream exchange; zero means no limit.
type Timeouts struct {
	Request        time.Duration
	ResponseHeader time.Duration
}

// ConfigError is one problem in a configuration file. Its message has the
// form "file:line:column: route "x": field: message"; parts that do not
// apply are left out.
type ConfigError struct {
	File   string
	Line   int // 1-based
	Column int // 1-based
	Route  string
	Field  string
	Msg    string
}

// Error implements error.
func (e *ConfigError) Error() string {
	s := fmt.Sprintf("%s:%d:%d: ", e.File, e.Line, e.Column)
	if e.Route != "" {
		s += fmt.Sprintf("route %q: ", e.Route)
	}
	if e.Field != "" {
		s += e.Field + ": "
	}
	return s + e.Msg
}

// ConfigErrors returns the individual problems held by err, which may be a
// single *ConfigError or an errors.Join of them, in file order.
func ConfigErrors(err error) []*ConfigError {
	var out []*ConfigError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var e *ConfigError
		if errors.As(err, &e) {
			out = append(out, e)
		}
	}
	walk(err)
	sortConfigErrors(out)
	return out
}

func sortConfigErrors(errs []*ConfigError) {
	slices.SortStableFunc(errs, func(a, b *ConfigError) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
}

func joinConfigErrors(errs []*ConfigError) error {
	if len(errs) == 0 {
		return nil
	}
	sortConfigErrors(errs)
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	return errors.Join(list...)
}

// LoadConfig reads and checks the configuration file at path.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading activator config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig reads a configuration. file names it in errors. On problems
// it returns an error that joins one [*ConfigError] per problem.
func ParseConfig(file string, data []byte) (*Config, error) {
	p := &configParser{file: file, lines: strings.Split(string(data), "\n")}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := yamlpos.ErrorLine(err)
		return nil, joinConfigErrors([]*ConfigError{{File: file, Line: line, Column: 1, Msg: "invalid YAML: " + msg}})
	}
	if len(doc.Content) == 0 {
		return nil, joinConfigErrors([]*ConfigError{{File: file, Line: 1, Column: 1, Field: "routes", Msg: "required: the file is empty"}})
	}
	root := doc.Content[0]
	cfg := &Config{File: file, digest: sha256.Sum256(data)}
	haveRoutes := false
	seen := map[string]*Route{}
	for _, kv := range p.mapping(root, "", "") {
		if kv.key != "routes" {
			p.errorf(kv.k, "", kv.key, "unknown field: the top level holds only routes")
			continue
		}
		haveRoutes = true
		if kv.v.Tag == "!!null" {
			continue
		}
		if kv.v.Kind != yaml.SequenceNode {
			p.errorf(kv.v, "", "routes", "must be a list of routes")
			continue
		}
		for _, n := range kv.v.Content {
			rt := p.route(n)
			if rt == nil {
				continue
			}
			if prev, ok := seen[rt.Name]; ok {
				p.errorf(rt.nameNode, rt.Name, "name", "duplicate route name: also defined at %d:%d", prev.Line, prev.Column)
				continue
			}
			seen[rt.Name] = rt.Route
			rt.index = len(cfg.Routes)
			cfg.Routes = append(cfg.Routes, rt.Route)
			p.parsed = append(p.parsed, rt)
		}
	}
	if root.Kind == yaml.MappingNode && !haveRoutes {
		p.errorf(root, "", "routes", "required: a list of routes")
	}
	p.checkOverlaps()
	if len(p.errs) > 0 {
		return nil, joinConfigErrors(p.errs)
	}
	return cfg, nil
}

type configParser struct {
	file   string
	lines  []string
	errs   []*ConfigError
	parsed []*parsedRoute
}

// parsedRoute keeps the nodes needed for checks across routes.
type parsedRoute struct {
	*Route
	nameNode  *yaml.Node
	matchNode *yaml.Node
}

func (p *configParser) errorf(n *yaml.Node, route, field, format string, args ...any) {
	line, col := 1, 1
	if n != nil {
		line, col = n.Line, n.Column
	}
	p.errs = append(p.errs, &ConfigError{File: p.file, Line: line, Column: col, Route: route, Field: field, Msg: fmt.Sprintf(format, args...)})
}

type keyValue struct {
	key  string
	k, v *yaml.Node
}

// mapping returns the entries of a mapping node, reporting duplicate keys.
func (p *configParser) mapping(n *yaml.Node, route, field string) []keyValue {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, route, field, "must be a mapping")
		return nil
	}
	var out []keyValue
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		full := k.Value
		if field != "" {
			full = field + "." + k.Value
		}
		if seen[k.Value] {
			p.errorf(k, route, full, "duplicate key")
			continue
		}
		seen[k.Value] = true
		out = append(out, keyValue{key: k.Value, k: k, v: v})
	}
	return out
}

// scalar returns the text of a scalar node, reporting any other kind.
func (p *configParser) scalar(n *yaml.Node, route, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, route, field, "must be a single value, not a list or mapping")
		return "", false
	}
	if n.Tag == "!!null" {
		p.errorf(n, route, field, "must not be empty")
		return "", false
	}
	return n.Value, true
}

// list returns the items of a sequence of scalars.
func (p *configParser) list(n *yaml.Node, route, field string) ([]string, []*yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, route, field, "must be a list")
		return nil, nil
	}
	var vals []string
	var nodes []*yaml.Node
	for _, item := range n.Content {
		if s, ok := p.scalar(item, route, field); ok {
			vals = append(vals, s)
			nodes = append(nodes, item)
		}
	}
	return vals, nodes
}

func (p *configParser) duration(n *yaml.Node, route, field string, allowZero bool) (time.Duration, bool) {
	s, ok := p.scalar(n, route, field)
	if !ok {
		return 0, false
	}
	d, err := model.ParseDuration(s)
	if err != nil || (d == 0 && !allowZero) {
		if allowZero {
			p.errorf(n, route, field, "%q is not a duration such as 500ms, 30s or 2m (0 for no limit)", s)
		} else {
			p.errorf(n, route, field, "%q is not a positive duration such as 500ms, 30s or 2m", s)
		}
		return 0, false
	}
	return time.Duration(d), true
}

// isName reports whether s is a valid route name: letters, digits, '-',
// '_' and '.', starting and ending with a letter or digit. Route names are
// label values and log fields; keeping them plain keeps both readable.
func isName(s string) bool {
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
	if s == "" || len(s) > 253 || !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// isDNSLabel reports whether s is an RFC 1123 label, as Kubernetes wants
// for namespace and Service names.
func isDNSLabel(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(s)-1
		if !ok {
			return false
		}
	}
	return true
}

// hostOK reports whether s is a host name or IPv4 address to match
// against, optionally with a leading "*." wildcard.
func hostOK(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	if s == "" || len(s) > 253 || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// route reads one route; it returns nil when the route is unusable.
func (p *configParser) route(n *yaml.Node) *parsedRoute {
	rt := &parsedRoute{Route: &Route{
		Policy:   DefaultPolicy,
		Queue:    QueueSpec{Size: DefaultQueueSize, Timeout: DefaultQueueTimeout},
		Timeouts: Timeouts{Request: DefaultRequestTimeout, ResponseHeader: DefaultResponseHeaderTimeout},
		Line:     n.Line, Column: n.Column,
	}}
	entries := p.mapping(n, "", "")
	if n.Kind != yaml.MappingNode {
		return nil // reported by mapping
	}
	// The name first, so that every other problem can name the route.
	for _, kv := range entries {
		if kv.key == "name" {
			if s, ok := p.scalar(kv.v, "", "name"); ok {
				if !isName(s) {
					p.errorf(kv.v, "", "name", "%q is not a valid name: use letters, digits, '-', '_' and '.', starting and ending with a letter or digit", s)
				}
				rt.Name = s
			}
			rt.nameNode = kv.v
		}
	}
	if rt.nameNode == nil {
		p.errorf(n, "", "name", "required")
		rt.nameNode = n
	}
	name := rt.Name
	errsBefore := len(p.errs)
	var serviceNode, endpointsNode, metricNode, policyNode, scoreNode, affinityNode *yaml.Node
	for _, kv := range entries {
		switch kv.key {
		case "name":
		case "match":
			rt.matchNode = kv.v
			if kv.v.Tag != "!!null" {
				p.match(rt.Route, kv.v)
			}
		case "service":
			serviceNode = kv.v
			rt.Service = p.service(name, kv.v)
		case "endpoints":
			endpointsNode = kv.v
			vals, nodes := p.list(kv.v, name, "endpoints")
			seen := map[string]bool{}
			for i, ep := range vals {
				if msg := checkEndpoint(ep); msg != "" {
					p.errorf(nodes[i], name, "endpoints", "%q %s", ep, msg)
					continue
				}
				if seen[ep] {
					p.errorf(nodes[i], name, "endpoints", "%q is listed twice", ep)
					continue
				}
				seen[ep] = true
				rt.Endpoints = append(rt.Endpoints, ep)
			}
			if len(kv.v.Content) == 0 && kv.v.Kind == yaml.SequenceNode {
				p.errorf(kv.v, name, "endpoints", "the list is empty")
			}
		case "policy":
			policyNode = kv.v
			if s, ok := p.scalar(kv.v, name, "policy"); ok {
				switch pn := PolicyName(s); pn {
				case PolicyRoundRobin, PolicyLeastRequest, PolicyRandom, PolicyMetric, PolicyScore:
					rt.Policy = pn
				default:
					p.errorf(kv.v, name, "policy", "%q is not round-robin, least-request, random, metric or score", s)
				}
			}
		case "metric":
			metricNode = kv.v
			rt.Metric = p.metric(name, kv.v)
		case "score":
			scoreNode = kv.v
			rt.Score = p.score(name, kv.v)
		case "affinity":
			affinityNode = kv.v
			rt.Affinity = p.affinity(name, kv.v)
		case "queue":
			for _, q := range p.mapping(kv.v, name, "queue") {
				switch q.key {
				case "size":
					s, ok := p.scalar(q.v, name, "queue.size")
					if !ok {
						continue
					}
					v, err := strconv.Atoi(s)
					if err != nil || v < 0 || v > MaxQueueSize {
						p.errorf(q.v, name, "queue.size", "%q is not a whole number between 0 and %d", s, MaxQueueSize)
						continue
					}
					rt.Queue.Size = v
				case "timeout":
					if d, ok := p.duration(q.v, name, "queue.timeout", false); ok {
						rt.Queue.Timeout = d
					}
				default:
					p.errorf(q.k, name, "queue."+q.key, "unknown field: queue has size and timeout")
				}
			}
		case "endpointConcurrency":
			s, ok := p.scalar(kv.v, name, "endpointConcurrency")
			if !ok {
				continue
			}
			v, err := strconv.Atoi(s)
			if err != nil || v < 0 || v > MaxEndpointConcurrency {
				p.errorf(kv.v, name, "endpointConcurrency", "%q is not a whole number between 0 (no cap) and %d", s, MaxEndpointConcurrency)
				continue
			}
			rt.EndpointConcurrency = v
		case "timeouts":
			for _, t := range p.mapping(kv.v, name, "timeouts") {
				switch t.key {
				case "request":
					if d, ok := p.duration(t.v, name, "timeouts.request", true); ok {
						rt.Timeouts.Request = d
					}
				case "responseHeader":
					if d, ok := p.duration(t.v, name, "timeouts.responseHeader", true); ok {
						rt.Timeouts.ResponseHeader = d
					}
				default:
					p.errorf(t.k, name, "timeouts."+t.key, "unknown field: timeouts has request and responseHeader")
				}
			}
		default:
			p.errorf(kv.k, name, kv.key, "unknown field: a route has name, match, service, endpoints, policy, metric, score, affinity, queue, endpointConcurrency and timeouts")
		}
	}
	switch {
	case serviceNode == nil && endpointsNode == nil:
		p.errorf(n, name, "service", "required: a service {namespace, name, port} or a list of endpoints")
	case serviceNode != nil && endpointsNode != nil:
		p.errorf(endpointsNode, name, "endpoints", "a route has either service or endpoints, not both")
	}
	switch {
	case rt.Policy == PolicyMetric && metricNode == nil:
		node := policyNode
		p.errorf(node, name, "metric", "required for policy: metric: a query giving one value per pod")
	case rt.Policy != PolicyMetric && metricNode != nil:
		p.errorf(metricNode, name, "metric", "only for policy: metric (the policy is %s)", rt.Policy)
	}
	switch {
	case rt.Policy == PolicyScore && scoreNode == nil:
		p.errorf(policyNode, name, "score", "required for policy: score: the metrics to scrape and the expression that scores a pod")
	case rt.Policy != PolicyScore && scoreNode != nil:
		p.errorf(scoreNode, name, "score", "only for policy: score (the policy is %s)", rt.Policy)
	}
	if rt.Policy != PolicyScore && affinityNode != nil {
		p.errorf(affinityNode, name, "affinity", "only for policy: score (the policy is %s)", rt.Policy)
	}
	if len(p.errs) > errsBefore {
		return nil
	}
	return rt
}

// checkEndpoint returns why ep is not a usable host:port, or "".
func checkEndpoint(ep string) string {
	host, port, err := net.SplitHostPort(ep)
	if err != nil || host == "" {
		return "is not host:port"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "has no port between 1 and 65535"
	}
	return ""
}

func (p *configParser) match(rt *Route, n *yaml.Node) {
	for _, kv := range p.mapping(n, rt.Name, "match") {
		switch kv.key {
		case "hosts":
			vals, nodes := p.list(kv.v, rt.Name, "match.hosts")
			seen := map[string]bool{}
			for i, h := range vals {
				lh := strings.ToLower(h)
				if !hostOK(lh) {
					p.errorf(nodes[i], rt.Name, "match.hosts", "%q is not a host name (without port) or a wildcard such as *.example.com", h)
					continue
				}
				if seen[lh] {
					p.errorf(nodes[i], rt.Name, "match.hosts", "%q is listed twice", h)
					continue
				}
				seen[lh] = true
				rt.Match.Hosts = append(rt.Match.Hosts, lh)
			}
		case "pathPrefix":
			if s, ok := p.scalar(kv.v, rt.Name, "match.pathPrefix"); ok {
				if !strings.HasPrefix(s, "/") || strings.ContainsAny(s, "?# \t") {
					p.errorf(kv.v, rt.Name, "match.pathPrefix", "%q must start with '/' and hold no query, fragment or spaces", s)
					continue
				}
				rt.Match.PathPrefix = s
			}
		case "headers":
			entries := p.mapping(kv.v, rt.Name, "match.headers")
			if len(entries) > 0 {
				rt.Match.Headers = map[string]string{}
			}
			for _, h := range entries {
				field := "match.headers." + h.key
				if !httpguts.ValidHeaderFieldName(h.key) {
					p.errorf(h.k, rt.Name, field, "%q is not a valid header name", h.key)
					continue
				}
				v, ok := p.scalar(h.v, rt.Name, field)
				if !ok {
					continue
				}
				if !httpguts.ValidHeaderFieldValue(v) {
					p.errorf(h.v, rt.Name, field, "%q is not a valid header value", v)
					continue
				}
				key := textproto.CanonicalMIMEHeaderKey(h.key)
				if _, dup := rt.Match.Headers[key]; dup {
					p.errorf(h.k, rt.Name, field, "header %q is listed twice (names are case-insensitive)", h.key)
					continue
				}
				rt.Match.Headers[key] = v
			}
		default:
			p.errorf(kv.k, rt.Name, "match."+kv.key, "unknown field: match has hosts, pathPrefix and headers")
		}
	}
}

func (p *configParser) service(route string, n *yaml.Node) *ServiceRef {
	s := &ServiceRef{}
	entries := p.mapping(n, route, "service")
	if n.Kind != yaml.MappingNode {
		return nil // reported by mapping
	}
	var haveNS, haveName, havePort bool
	for _, kv := range entries {
		field := "service." + kv.key
		switch kv.key {
		case "namespace", "name":
			v, ok := p.scalar(kv.v, route, field)
			if kv.key == "namespace" {
				haveNS = true
			} else {
				haveName = true
			}
			if !ok {
				continue
			}
			if !isDNSLabel(v) {
				p.errorf(kv.v, route, field, "%q is not a Kubernetes name: lower-case letters, digits and '-', at most 63", v)
				continue
			}
			if kv.key == "namespace" {
				s.Namespace = v
			} else {
				s.Name = v
			}
		case "port":
			havePort = true
			v, ok := p.scalar(kv.v, route, field)
			if !ok {
				continue
			}
			port, err := strconv.Atoi(v)
			if err != nil || port < 1 || port > 65535 {
				p.errorf(kv.v, route, field, "%q is not a port number between 1 and 65535", v)
				continue
			}
			s.Port = int32(port)
		default:
			p.errorf(kv.k, route, field, "unknown field: service has namespace, name and port")
		}
	}
	for _, f := range []struct {
		have bool
		name string
	}{{haveNS, "namespace"}, {haveName, "name"}, {havePort, "port"}} {
		if !f.have {
			p.errorf(n, route, "service."+f.name, "required")
		}
	}
	return s
}

func (p *configParser) metric(route string, n *yaml.Node) *MetricSpec {
	m := &MetricSpec{Refresh: DefaultMetricRefresh}
	entries := p.mapping(n, route, "metric")
	if n.Kind != yaml.MappingNode {
		return nil // reported by mapping
	}
	haveQuery := false
	for _, kv := range entries {
		field := "metric." + kv.key
		switch kv.key {
		case "query":
			haveQuery = true
			q, ok := p.scalar(kv.v, route, field)
			if !ok {
				continue
			}
			expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
			if err != nil {
				msg := err.Error()
				var perrs parser.ParseErrors
				if errors.As(err, &perrs) && len(perrs) > 0 {
					msg = perrs[0].Err.Error()
				}
				p.errorf(kv.v, route, field, "invalid PromQL: %s", msg)
				continue
			}
			if expr.Type() != parser.ValueTypeVector {
				p.errorf(kv.v, route, field, "must give an instant vector with one series per pod, not a %s", expr.Type())
				continue
			}
			m.Query = q
		case "refresh":
			if d, ok := p.duration(kv.v, route, field, false); ok {
				if d < minMetricRefresh {
					p.errorf(kv.v, route, field, "%s is below the minimum of %s", d, minMetricRefresh)
					continue
				}
				m.Refresh = d
			}
		default:
			p.errorf(kv.k, route, field, "unknown field: metric has query and refresh")
		}
	}
	if !haveQuery {
		p.errorf(n, route, "metric.query", "required")
	}
	return m
}

// checkOverlaps reports routes that can never match because an earlier
// route has the same host, pathPrefix and headers.
func (p *configParser) checkOverlaps() {
	seen := map[string]*parsedRoute{}
	for _, rt := range p.parsed {
		hosts := rt.Match.Hosts
		if len(hosts) == 0 {
			hosts = []string{""}
		}
		hdrs := make([]string, 0, len(rt.Match.Headers))
		for k, v := range rt.Match.Headers {
			hdrs = append(hdrs, k+"\x00"+v)
		}
		slices.Sort(hdrs)
		for _, h := range hosts {
			key := h + "\x01" + rt.Match.PathPrefix + "\x01" + strings.Join(hdrs, "\x01")
			if prev, ok := seen[key]; ok && prev != rt {
				node := rt.matchNode
				if node == nil {
					node = rt.nameNode
				}
				if h == "" {
					p.errorf(node, rt.Name, "match", "route %q (%d:%d) matches the same requests first, so this route would never get any", prev.Name, prev.Line, prev.Column)
				} else {
					p.errorf(node, rt.Name, "match", "for host %q, route %q (%d:%d) matches the same requests first, so this route would never get them", h, prev.Name, prev.Line, prev.Column)
				}
				break
			}
			seen[key] = rt
		}
	}
}
