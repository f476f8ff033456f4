package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/sync/singleflight"
)

const (
	// DefaultTimeout bounds one HTTP request to Prometheus when
	// ClientConfig.Timeout is zero. It is well below KEDA's default polling
	// interval, so a hung Prometheus cannot stall a whole polling round.
	DefaultTimeout = 5 * time.Second

	// DefaultCacheTTL is how long a result is shared when
	// ClientConfig.CacheTTL is zero: long enough to absorb the burst of
	// identical queries that ScaledObjects polled together render, short
	// enough that scaling decisions work on fresh data.
	DefaultCacheTTL = 2 * time.Second

	tracerName = "github.com/k8s-nemesis/nemesis/metrics"
	spanName   = "prometheus.query"

	// roundTripperName labels the connection metrics that
	// prometheus/common/config's dialer reports.
	roundTripperName = "nemesis_prometheus"

	// maxErrorDetail caps how much of an error response body ends up in an
	// error message, so a proxy's HTML error page does not flood the logs.
	maxErrorDetail = 256
)

// ClientConfig configures the Prometheus client. Credentials come only from
// here (files, flags), never from ScaledObject metadata.
type ClientConfig struct {
	URL                   string            // base URL, e.g. http://prometheus:9090 (may have a path prefix, e.g. /prometheus or Mimir's /prometheus)
	BearerTokenFile       string            // re-read on each request (token rotation) — prometheus/common/config does this
	BasicAuthUsername     string            // user name for HTTP basic auth; needs BasicAuthPasswordFile
	BasicAuthPasswordFile string            // file holding the basic auth password, re-read on each request
	CAFile                string            // PEM bundle used to verify Prometheus' certificate instead of the system roots
	CertFile, KeyFile     string            // client certificate for mTLS to Prometheus
	InsecureSkipVerify    bool              // skip verification of Prometheus' certificate; for tests only
	Headers               map[string]string // extra headers on every request, e.g. X-Scope-OrgID
	Timeout               time.Duration     // per query, default 5s; bounds the whole HTTP request
	CacheTTL              time.Duration     // identical queries within this window share one result (success or error); default 2s; 0 after defaulting is not allowed — use a negative value to disable caching
	Now                   func() time.Time  // clock, for tests; default time.Now
}

// Result is an instant query's value, reduced to what rules need.
//
// A Result returned by Client.Query may be shared with other callers of the
// same query through the cache, so its slices and maps must be treated as
// read-only; copy them before modifying anything.
type Result struct {
	Scalar bool                // the query returned a scalar
	Values []float64           // one value per series of an instant vector (in Prometheus' order), or the scalar's value
	Labels []map[string]string // labels of each series (nil for a scalar), same order as Values
}

// Client sends instant queries to Prometheus, sharing identical queries
// between concurrent callers and across a short cache window. It is safe for
// concurrent use; create one per Prometheus and share it.
type Client struct {
	api     v1.API
	timeout time.Duration
	ttl     time.Duration // negative: caching disabled
	now     func() time.Time
	logger  *slog.Logger
	tracer  trace.Tracer
	metrics *instruments
	group   singleflight.Group

	// mu guards the fields below. The cache-hit path only reads, so it
	// takes the read lock and hits do not serialise behind each other.
	mu sync.RWMutex
	// cache holds the last answer per query string, success or error.
	cache map[string]cacheEntry
	// inflight holds the queries whose request is running. singleflight
	// does not say whether a caller started a request or joined one, which
	// queries_total needs; this set is changed together with the
	// singleflight key (see Query and finish), so it always agrees.
	inflight map[string]struct{}
	// nextSweep is when the cache is next scanned for expired entries.
	nextSweep time.Time

	// afterFinish, when set by a test, runs after a request's answer is
	// recorded but before singleflight hands it to the waiting callers:
	// the window in which a new caller must start a fresh request.
	afterFinish func(query string)
}

// cacheEntry is one remembered answer.
type cacheEntry struct {
	result  Result
	err     error
	expires time.Time
}

// NewClient validates cfg and returns a client for the Prometheus at
// cfg.URL. Its metrics are registered on reg; a nil reg keeps them
// unregistered. A nil logger discards logs and a nil tp disables tracing.
func NewClient(cfg ClientConfig, logger *slog.Logger, reg prometheus.Registerer, tp trace.TracerProvider) (*Client, error) {
	endpoint, err := cfg.validate()
	if err != nil {
		return nil, fmt.Errorf("validating prometheus client config: %w", err)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ttl := cfg.CacheTTL
	if ttl == 0 {
		ttl = DefaultCacheTTL
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}

	httpCfg := cfg.httpClientConfig()
	if err := httpCfg.Validate(); err != nil {
		return nil, fmt.Errorf("validating prometheus http client config: %w", err)
	}
	rt, err := config.NewRoundTripperFromConfig(httpCfg, roundTripperName)
	if err != nil {
		return nil, fmt.Errorf("building prometheus http transport: %w", err)
	}
	apiClient, err := api.NewClient(api.Config{
		Address: endpoint.String(),
		Client:  &http.Client{Transport: rt, CheckRedirect: checkRedirect},
	})
	if err != nil {
		return nil, fmt.Errorf("creating prometheus api client: %w", err)
	}
	m, err := newInstruments(reg)
	if err != nil {
		return nil, err
	}
	return &Client{
		api:      v1.NewAPI(apiClient),
		timeout:  timeout,
		ttl:      ttl,
		now:      now,
		logger:   logger,
		tracer:   tp.Tracer(tracerName),
		metrics:  m,
		cache:    make(map[string]cacheEntry),
		inflight: make(map[string]struct{}),
	}, nil
}

// validate checks cfg before anything is built from it and returns the
// parsed URL. It rejects settings that would otherwise only fail, or
// silently misbehave, at the first query.
func (cfg ClientConfig) validate() (*url.URL, error) {
	endpoint, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("timeout must not be negative, got %s", cfg.Timeout)
	}
	if cfg.BearerTokenFile != "" && (cfg.BasicAuthUsername != "" || cfg.BasicAuthPasswordFile != "") {
		return nil, errors.New("bearer token file and basic auth are mutually exclusive")
	}
	if (cfg.BasicAuthUsername == "") != (cfg.BasicAuthPasswordFile == "") {
		return nil, errors.New("basic auth needs both a username and a password file")
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("a client certificate needs both a cert file and a key file")
	}
	for _, f := range []struct{ what, path string }{
		{"bearer token file", cfg.BearerTokenFile},
		{"basic auth password file", cfg.BasicAuthPasswordFile},
		{"ca file", cfg.CAFile},
		{"cert file", cfg.CertFile},
		{"key file", cfg.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		// Only existence is checked: the secrets themselves are read by
		// prometheus/common/config, per request for tokens and passwords so
		// that rotation needs no restart.
		info, err := os.Stat(f.path)
		if err != nil {
			return nil, fmt.Errorf("checking %s: %w", f.what, err)
		}
		if info.IsDir() {
			return nil, fmt.Errorf("checking %s: %s is a directory", f.what, f.path)
		}
	}
	for name, value := range cfg.Headers {
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, fmt.Errorf("header %q: invalid header name", name)
		}
		if !httpguts.ValidHeaderFieldValue(value) {
			return nil, fmt.Errorf("header %q: invalid header value", name)
		}
	}
	return endpoint, nil
}

// parseURL checks that raw is an absolute http(s) URL that can serve as the
// base of the query API. Error messages use the redacted form so that a
// password embedded by mistake does not end up in logs.
func parseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("prometheus url is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, credentials included: keep only
		// the reason.
		if uerr, ok := errors.AsType[*url.Error](err); ok {
			err = uerr.Err
		}
		return nil, fmt.Errorf("parsing prometheus url: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("prometheus url %q: scheme must be http or https", u.Redacted())
	case u.Host == "":
		return nil, fmt.Errorf("prometheus url %q: host is missing", u.Redacted())
	case u.User != nil:
		return nil, fmt.Errorf("prometheus url %q: credentials must not be part of the url, use the basic auth or bearer token file settings", u.Redacted())
	case u.RawQuery != "" || u.ForceQuery:
		// The query API sends its parameters in the request body; a query
		// string on the base URL would be mixed into them.
		return nil, fmt.Errorf("prometheus url %q: must not have a query string", u.Redacted())
	case u.Fragment != "":
		return nil, fmt.Errorf("prometheus url %q: must not have a fragment", u.Redacted())
	}
	return u, nil
}

// httpClientConfig translates cfg for prometheus/common/config, which
// handles TLS (including reloading changed certificate files) and re-reads
// the token and password files on every request.
func (cfg ClientConfig) httpClientConfig() config.HTTPClientConfig {
	hc := config.HTTPClientConfig{
		FollowRedirects: true,
		EnableHTTP2:     true,
		TLSConfig: config.TLSConfig{
			CAFile:             cfg.CAFile,
			CertFile:           cfg.CertFile,
			KeyFile:            cfg.KeyFile,
			InsecureSkipVerify: cfg.InsecureSkipVerify,
		},
	}
	if cfg.BearerTokenFile != "" {
		// Authorization.CredentialsFile is what the deprecated
		// BearerTokenFile field turns into after Validate.
		hc.Authorization = &config.Authorization{Type: "Bearer", CredentialsFile: cfg.BearerTokenFile}
	}
	if cfg.BasicAuthUsername != "" {
		hc.BasicAuth = &config.BasicAuth{Username: cfg.BasicAuthUsername, PasswordFile: cfg.BasicAuthPasswordFile}
	}
	if len(cfg.Headers) > 0 {
		headers := make(map[string]config.Header, len(cfg.Headers))
		for name, value := range cfg.Headers {
			headers[name] = config.Header{Values: []string{value}}
		}
		hc.HTTPHeaders = &config.Headers{Headers: headers}
	}
	return hc
}

// checkRedirect follows redirects only within the configured origin: the
// credential round trippers add the token or password to every request they
// see, including a redirected one, and those must not leave for another host
// or travel over plain HTTP.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return fmt.Errorf("refusing redirect from %s://%s to another origin %s://%s", first.Scheme, first.Host, req.URL.Scheme, req.URL.Host)
	}
	return nil
}

// Query runs an instant query at Prometheus' current time.
//
// Identical query strings are answered once per cache window: a caller
// within CacheTTL of a completed request gets its result or its error, and
// callers arriving while a request runs wait for that request instead of
// sending their own. The request runs under its own timeout, detached from
// the cancellation of whichever caller started it; each caller stops
// waiting when its own ctx ends. The returned Result may be shared and must
// be treated as read-only.
//
// Errors start with "querying prometheus". A request that exceeded
// ClientConfig.Timeout matches errors.Is(err, context.DeadlineExceeded), and
// a query that returns a range vector or a string is an error as well.
func (c *Client) Query(ctx context.Context, query string) (Result, error) {
	// Fast path: a fresh cached answer, read-locked and allocation-free.
	if c.ttl > 0 {
		c.mu.RLock()
		e, ok := c.cache[query]
		c.mu.RUnlock()
		if ok && c.now().Before(e.expires) {
			c.metrics.queriesFromCache.Inc()
			return e.result, e.err
		}
	}
	// Starting or joining a request for a caller that has already given up
	// would only load Prometheus.
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("querying prometheus: %w", err)
	}

	c.mu.Lock()
	if c.ttl > 0 {
		// Another request may have completed since the read lock was let go.
		if e, ok := c.cache[query]; ok {
			if c.now().Before(e.expires) {
				c.mu.Unlock()
				c.metrics.queriesFromCache.Inc()
				return e.result, e.err
			}
			delete(c.cache, query)
			c.metrics.cacheEntries.Set(float64(len(c.cache)))
		}
	}
	// DoChan is called under mu, and finish removes the singleflight key
	// under mu too, so inflight tells exactly whether this call starts the
	// request or joins the running one.
	_, joined := c.inflight[query]
	if !joined {
		c.inflight[query] = struct{}{}
	}
	ch := c.group.DoChan(query, func() (any, error) {
		return c.fetch(ctx, query)
	})
	c.mu.Unlock()
	if joined {
		c.metrics.queriesShared.Inc()
	} else {
		c.metrics.queriesUpstream.Inc()
	}

	select {
	case r := <-ch:
		res, _ := r.Val.(Result)
		return res, r.Err
	case <-ctx.Done():
		// The request carries on for the other callers and the cache.
		return Result{}, fmt.Errorf("querying prometheus: %w", ctx.Err())
	}
}

// fetch sends one request to Prometheus and records its answer in the cache.
// It runs once per singleflight call, on behalf of every caller waiting for
// it, so it must not depend on the starting caller's cancellation; it still
// inherits that caller's context values, such as the trace to join.
func (c *Client) fetch(parent context.Context, query string) (Result, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), c.timeout)
	defer cancel()
	ctx, span := c.tracer.Start(ctx, spanName,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.query.text", query)),
	)
	defer span.End()

	// Durations use the real clock: Now is there to move cache windows in
	// tests, not to measure latency.
	start := time.Now()
	// A zero time lets Prometheus evaluate at its own current time, so
	// clock skew between Nemesis and Prometheus cannot shift the window.
	value, warnings, err := c.api.Query(ctx, query, time.Time{})
	c.metrics.duration.Observe(time.Since(start).Seconds())
	if len(warnings) > 0 {
		c.logger.DebugContext(ctx, "prometheus returned warnings", "query", query, "warnings", []string(warnings))
	}

	var res Result
	outcome := outcomeSuccess
	if err != nil {
		outcome, err = c.wrapError(err)
	} else if res, err = toResult(value); err != nil {
		err = fmt.Errorf("querying prometheus: %w", err)
		outcome = outcomeError
	}
	c.metrics.request(outcome).Inc()
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	c.finish(query, res, err)
	if c.afterFinish != nil {
		c.afterFinish(query)
	}
	return res, err
}

// finish ends the in-flight request for query and caches its answer.
func (c *Client) finish(query string, res Result, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.inflight, query)
	// Forgetting the key here, under mu, rather than when singleflight
	// does it after fetch returns, keeps inflight and the group in step: a
	// caller that finds no cache entry and no inflight entry really starts a
	// new request.
	c.group.Forget(query)
	if c.ttl <= 0 {
		return
	}
	now := c.now()
	// Expired entries are swept at most once per TTL, on insert: the cost
	// is amortised over the inserts, and the cache never holds more than
	// the distinct queries of about two windows. No goroutine is needed, so
	// the client needs no Close.
	if !now.Before(c.nextSweep) {
		for q, e := range c.cache {
			if !now.Before(e.expires) {
				delete(c.cache, q)
			}
		}
		c.nextSweep = now.Add(c.ttl)
	}
	c.cache[query] = cacheEntry{result: res, err: err, expires: now.Add(c.ttl)}
	c.metrics.cacheEntries.Set(float64(len(c.cache)))
}

// unexpectedTypePrefix starts client_golang's error for result types it
// does not decode (a PromQL string), so that error can read like the one for
// a range vector. Should the library word it differently, its own error
// still comes through, only less tidy.
const unexpectedTypePrefix = `unexpected value type "`

// wrapError turns an error from the query API into the error callers see
// and the outcome label of the request.
func (c *Client) wrapError(err error) (string, error) {
	if errors.Is(err, context.DeadlineExceeded) {
		return outcomeTimeout, fmt.Errorf("querying prometheus: no answer within %s: %w", c.timeout, err)
	}
	// client_golang reports the type in its message; how it wraps it varies
	// between versions.
	if _, rest, ok := strings.Cut(err.Error(), unexpectedTypePrefix); ok {
		if typ, _, ok := strings.Cut(rest, `"`); ok {
			return outcomeError, fmt.Errorf("querying prometheus: %w", wrongTypeError(typ))
		}
	}
	apiErr, ok := errors.AsType[*v1.Error](err)
	if !ok {
		return outcomeError, fmt.Errorf("querying prometheus: %w", err)
	}
	outcome := outcomeError
	if apiErr.Type == v1.ErrTimeout {
		outcome = outcomeTimeout
	}
	if apiErr.Detail == "" {
		return outcome, fmt.Errorf("querying prometheus: %w", err)
	}
	// Non-2xx answers other than 400 and 422 keep only the status in the
	// error and the body in Detail. Prometheus still sends its JSON error
	// there (a 503 for a query that timed out in the engine), and its
	// message is what explains the failure.
	var body struct {
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}
	if json.Unmarshal([]byte(apiErr.Detail), &body) == nil && body.Error != "" {
		if body.ErrorType == string(v1.ErrTimeout) {
			outcome = outcomeTimeout
		}
		return outcome, fmt.Errorf("querying prometheus: %w: %s: %s", err, body.ErrorType, body.Error)
	}
	return outcome, fmt.Errorf("querying prometheus: %w: %s", err, shorten(apiErr.Detail))
}

// shorten squeezes whitespace out of an error body and truncates it to
// maxErrorDetail bytes on a rune boundary.
func shorten(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxErrorDetail {
		return s
	}
	cut := maxErrorDetail
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// wrongTypeError reports a query whose result rules cannot use.
func wrongTypeError(typ string) error {
	return fmt.Errorf("query must return an instant vector or a scalar, got %s", typ)
}

// toResult reduces a query value to a Result.
func toResult(value model.Value) (Result, error) {
	switch v := value.(type) {
	case model.Vector:
		// Non-nil even when empty: an empty vector is a valid answer
		// ("no series matched"), distinct from an error.
		res := Result{
			Values: make([]float64, len(v)),
			Labels: make([]map[string]string, len(v)),
		}
		for i, s := range v {
			if s.Histogram != nil {
				return Result{}, fmt.Errorf("series %s has a native histogram value, rules need floats (use e.g. histogram_quantile or histogram_count)", s.Metric)
			}
			// NaN and ±Inf pass through unchanged: what they mean for
			// scaling is the rules' decision, not the client's.
			res.Values[i] = float64(s.Value)
			labels := make(map[string]string, len(s.Metric))
			for name, val := range s.Metric {
				labels[string(name)] = string(val)
			}
			res.Labels[i] = labels
		}
		return res, nil
	case *model.Scalar:
		return Result{Scalar: true, Values: []float64{float64(v.Value)}}, nil
	case nil:
		return Result{}, errors.New("prometheus returned no result")
	default:
		return Result{}, wrongTypeError(value.Type().String())
	}
}
