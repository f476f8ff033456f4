package promtest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// Exporter is an HTTP server on 127.0.0.1 serving /metrics in the
// Prometheus text exposition format (version 0.0.4), with gauge series whose
// values the caller sets. It is safe for concurrent use.
//
// The output is deterministic: metric names sorted, one "# TYPE name gauge"
// line per name, then that name's series sorted by their label sets, each
// with its labels sorted by name.
type Exporter struct {
	ln      net.Listener
	srv     *http.Server
	served  chan struct{} // closed when srv.Serve has returned
	scrapes atomic.Int64

	mu     sync.Mutex
	series map[string]gauge // by seriesKey

	closeOnce sync.Once
	closeErr  error
}

// gauge is one series of the exporter.
type gauge struct {
	name   string
	labels string // rendered label set, "" or `{a="x",b="y"}`
	value  float64
}

// NewExporter starts an exporter listening on 127.0.0.1 on a free port.
// Close it with [Exporter.Close].
func NewExporter() (*Exporter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("promtest: exporter: listen: %w", err)
	}
	e := &Exporter{
		ln:     ln,
		served: make(chan struct{}),
		series: make(map[string]gauge),
	}
	e.srv = &http.Server{
		Handler:           http.HandlerFunc(e.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		defer close(e.served)
		_ = e.srv.Serve(ln) // always returns an error; http.ErrServerClosed after Close
	}()
	return e, nil
}

// StartExporter is [NewExporter] for tests: it fails tb on error and closes
// the exporter when the test and its subtests complete.
func StartExporter(tb testing.TB) *Exporter {
	tb.Helper()
	e, err := NewExporter()
	if err != nil {
		tb.Fatalf("%v", err)
	}
	tb.Cleanup(func() {
		if err := e.Close(); err != nil {
			tb.Errorf("%v", err)
		}
	})
	return e
}

// Addr returns the exporter's address as host:port (127.0.0.1:PORT), the
// form [Options.ScrapeTargets] takes.
func (e *Exporter) Addr() string {
	return e.ln.Addr().String()
}

// Set creates or updates the gauge series name{labels} with value. NaN,
// +Inf and -Inf are rendered as "NaN", "+Inf" and "-Inf". Labels with an
// empty value are dropped, as Prometheus treats them as absent.
//
// Set panics if name is not a valid metric name, a label name is not a valid
// label name (or starts with the reserved "__"), or a label value is not
// valid UTF-8: Prometheus would reject the whole scrape.
func (e *Exporter) Set(name string, labels map[string]string, value float64) {
	key, rendered := seriesKey(name, labels)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.series[key] = gauge{name: name, labels: rendered, value: value}
}

// Delete removes the series name{labels}, if present; a Prometheus scraping
// the exporter then marks it stale. It panics on invalid names like
// [Exporter.Set].
func (e *Exporter) Delete(name string, labels map[string]string) {
	key, _ := seriesKey(name, labels)
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.series, key)
}

// Reset removes all series.
func (e *Exporter) Reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.series)
}

// Scrapes returns how many times /metrics has been served. A scrape counted
// after a change (Set, Delete, Reset) returned saw that change, so a test
// can read n := Scrapes() after a change and wait for Scrapes() > n.
// Prometheus commits the scraped samples a moment after the response, so a
// query should still poll (see [Server.WaitForValue]).
func (e *Exporter) Scrapes() int64 {
	return e.scrapes.Load()
}

// Close stops the exporter and closes its connections. It is safe to call
// more than once.
func (e *Exporter) Close() error {
	e.closeOnce.Do(func() {
		err := e.srv.Close()
		<-e.served
		if err != nil && !errors.Is(err, net.ErrClosed) {
			e.closeErr = fmt.Errorf("promtest: exporter: close: %w", err)
		}
	})
	return e.closeErr
}

// serveHTTP serves /metrics.
func (e *Exporter) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/metrics" {
		http.NotFound(w, r)
		return
	}
	e.mu.Lock()
	// Counted under the same lock as the snapshot: a scrape counted after a
	// change sees it.
	e.scrapes.Add(1)
	body := e.render()
	e.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// render returns the exposition of all series. e.mu must be held.
func (e *Exporter) render() []byte {
	all := make([]gauge, 0, len(e.series))
	for _, g := range e.series {
		all = append(all, g)
	}
	slices.SortFunc(all, func(a, b gauge) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(a.labels, b.labels)
	})
	var buf bytes.Buffer
	for i, g := range all {
		if i == 0 || all[i-1].name != g.name {
			fmt.Fprintf(&buf, "# TYPE %s gauge\n", g.name)
		}
		buf.WriteString(g.name)
		buf.WriteString(g.labels)
		buf.WriteByte(' ')
		buf.WriteString(formatValue(g.value))
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// seriesKey validates name and labels and returns the series' identity and
// its rendered label set.
func seriesKey(name string, labels map[string]string) (key, rendered string) {
	if !validMetricName(name) {
		panic(fmt.Sprintf("promtest: exporter: invalid metric name %q", name))
	}
	names := make([]string, 0, len(labels))
	for k, v := range labels {
		if !validLabelName(k) || strings.HasPrefix(k, "__") {
			panic(fmt.Sprintf("promtest: exporter: metric %s: invalid label name %q", name, k))
		}
		if !utf8.ValidString(v) {
			panic(fmt.Sprintf("promtest: exporter: metric %s: label %s: value %q is not valid UTF-8", name, k, v))
		}
		if v != "" {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return name, ""
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteString(`="`)
		b.WriteString(escapeLabelValue(labels[k]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	rendered = b.String()
	return name + rendered, rendered
}

// escapeLabelValue escapes backslash, double quote and newline as the text
// format requires.
func escapeLabelValue(v string) string {
	if !strings.ContainsAny(v, "\\\"\n") {
		return v
	}
	var b strings.Builder
	for _, r := range v {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// formatValue renders a sample value in the text format.
func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// validMetricName reports whether s matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func validMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9'
		if !ok {
			return false
		}
	}
	return true
}

// validLabelName reports whether s matches [a-zA-Z_][a-zA-Z0-9_]*.
func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9'
		if !ok {
			return false
		}
	}
	return true
}
