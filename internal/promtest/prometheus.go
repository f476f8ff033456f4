package promtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	// binaryEnv names the environment variable with the Prometheus binary.
	binaryEnv = "NEMESIS_PROMETHEUS_BIN"
	// defaultScrapeInterval is used when Options.ScrapeInterval is zero.
	defaultScrapeInterval = time.Second
	// readyTimeout bounds how long Start and Restart wait for readiness.
	readyTimeout = 30 * time.Second
	// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout = 5 * time.Second
	// pollInterval is how often readiness and queries are polled.
	pollInterval = 50 * time.Millisecond
	// requestTimeout bounds each HTTP request to Prometheus.
	requestTimeout = 5 * time.Second
	// logTailSize is how much of the process's output is kept.
	logTailSize = 64 << 10
	// maxBody bounds the HTTP response bodies read from Prometheus.
	maxBody = 64 << 20
	// jobName is the scrape job of the fixture targets.
	jobName = "fixture"
)

// Options configures [Start]. The zero value is usable: a Prometheus
// scraping nothing, with a 1s interval, in a temporary directory.
type Options struct {
	// Binary is the Prometheus binary, a path or a name looked up in $PATH.
	// Default: $NEMESIS_PROMETHEUS_BIN, else "prometheus" from $PATH.
	Binary string
	// ScrapeTargets are host:port addresses of exporters (such as
	// [Exporter.Addr]) scraped at /metrics by the job "fixture". Hosts must
	// be loopback addresses or "localhost".
	ScrapeTargets []string
	// ScrapeInterval is the global scrape and rule evaluation interval, and
	// the scrape timeout, in whole milliseconds. Default 1s; use 200ms–1s in
	// tests.
	ScrapeInterval time.Duration
	// Dir holds prometheus.yml and the TSDB (in Dir/data). Default: a new
	// temporary directory, removed by [Server.Stop]. A caller's Dir is
	// created if needed and never removed.
	Dir string
	// Stdout and Stderr, if set, receive the process's output (write errors
	// are ignored). Either way the last 64KiB of output is kept and included
	// in start errors.
	Stdout, Stderr io.Writer
}

// Server is a running Prometheus process listening on 127.0.0.1, started by
// [Start] or [StartServer]. Its methods are safe for concurrent use.
type Server struct {
	binary    string
	dir       string
	tempDir   bool // dir was created by Start and is removed by Stop
	config    string
	addr      string // 127.0.0.1:PORT, fixed for the Server's lifetime
	targets   []string
	stdout    io.Writer
	stderr    io.Writer
	logs      *tailBuffer
	transport *http.Transport
	client    *http.Client
	pid       atomic.Int64

	mu         sync.Mutex
	proc       *process // nil when not running
	dirRemoved bool
}

// process is one started Prometheus process.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // cmd.Wait's result, set before done is closed
}

// Start starts Prometheus on a free port of 127.0.0.1 with a generated
// prometheus.yml, and waits until /-/ready answers 200 and every scrape
// target has been scraped successfully (health "up"). It gives up after 30s
// or when ctx ends, stopping the process and returning an error that
// includes its log tail. The process outlives ctx: stop it with
// [Server.Stop].
func Start(ctx context.Context, opts Options) (*Server, error) {
	interval := opts.ScrapeInterval
	if interval == 0 {
		interval = defaultScrapeInterval
	}
	if interval < time.Millisecond {
		return nil, fmt.Errorf("promtest: scrape interval %v: must be at least 1ms", interval)
	}
	for _, t := range opts.ScrapeTargets {
		if err := checkLoopback(t); err != nil {
			return nil, err
		}
	}
	binary, err := findBinary(opts.Binary)
	if err != nil {
		return nil, err
	}
	transport := &http.Transport{
		Proxy:               nil, // loopback only, never through a proxy
		DialContext:         (&net.Dialer{Timeout: requestTimeout}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	s := &Server{
		binary:    binary,
		config:    renderConfig(interval, opts.ScrapeTargets),
		targets:   append([]string(nil), opts.ScrapeTargets...),
		stdout:    opts.Stdout,
		stderr:    opts.Stderr,
		logs:      &tailBuffer{},
		transport: transport,
		client:    &http.Client{Transport: transport},
	}
	if opts.Dir == "" {
		s.dir, err = os.MkdirTemp("", "promtest-")
		if err != nil {
			return nil, fmt.Errorf("promtest: create temp dir: %w", err)
		}
		s.tempDir = true
	} else if s.dir, err = filepath.Abs(opts.Dir); err != nil {
		return nil, fmt.Errorf("promtest: dir %s: %w", opts.Dir, err)
	}
	if err := s.prepareDir(); err != nil {
		return nil, errors.Join(err, s.removeDir())
	}
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, errors.Join(err, s.removeDir())
		}
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		bindFailed, err := s.launch(ctx)
		if err == nil {
			return s, nil
		}
		if !bindFailed || attempt > 0 {
			transport.CloseIdleConnections()
			return nil, errors.Join(err, s.removeDir())
		}
	}
}

// StartServer is [Start] for tests. It fails tb (Fatalf, never Skip) if
// Prometheus is missing or does not start, and registers a cleanup that
// stops it, logging its output tail first if the test failed. In -short mode
// it skips tb, as a real Prometheus takes a second or more to start.
func StartServer(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if testing.Short() {
		tb.Skip("promtest: skipping: the test starts a real Prometheus, which is slow (-short)")
	}
	if _, err := findBinary(opts.Binary); err != nil {
		tb.Fatalf("%v", err)
	}
	s, err := Start(tb.Context(), opts)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("promtest: prometheus output tail:\n%s", s.logs.since(0))
		}
		if err := s.Stop(); err != nil {
			tb.Errorf("%v", err)
		}
	})
	return s
}

// URL returns the server's base URL, http://127.0.0.1:PORT. It stays the
// same across [Server.Restart].
func (s *Server) URL() string {
	return "http://" + s.addr
}

// Pid returns the process id of the current Prometheus process, or of the
// last one once stopped or killed.
func (s *Server) Pid() int {
	return int(s.pid.Load())
}

// Stop stops Prometheus: SIGTERM, then SIGKILL if it has not exited within
// 5s. It then removes the directory if Start created it (so a later
// [Server.Restart] starts with no data). Stop is safe to call more than once
// and after [Server.Kill].
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.proc != nil {
		err = s.terminate(s.proc)
		s.proc = nil
	}
	s.transport.CloseIdleConnections()
	return errors.Join(err, s.removeDir())
}

// Kill sends SIGKILL to Prometheus now, simulating an outage, and waits for
// it to exit. The data directory is kept, so [Server.Restart] brings the
// same server back with its data. Killing a stopped server does nothing.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.proc != nil {
		err = s.kill(s.proc)
		s.proc = nil
	}
	s.transport.CloseIdleConnections()
	return err
}

// Restart starts Prometheus again on the same port and directory, after
// [Server.Stop] or [Server.Kill] (a running server is stopped gracefully
// first, keeping its data), and waits as [Start] does: for /-/ready and for
// every scrape target to be up. Data survives a Kill and a graceful
// restart; after Stop a temporary directory was removed and is recreated
// empty.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		if err := s.terminate(s.proc); err != nil {
			return err
		}
		s.proc = nil
	}
	if s.dirRemoved {
		if err := s.prepareDir(); err != nil {
			return err
		}
		s.dirRemoved = false
	}
	bindFailed, err := s.launch(ctx)
	if bindFailed {
		// The old process's port may take a moment to be released.
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
		_, err = s.launch(ctx)
	}
	return err
}

// WaitForValue polls the instant query every 50ms until it returns exactly
// one sample, or a scalar, whose value equals want (a NaN want matches a
// NaN value). When ctx ends it returns an error with the last result seen,
// so ctx should carry a deadline. An invalid query fails at once.
func (s *Server) WaitForValue(ctx context.Context, query string, want float64) error {
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	last := "none"
	for {
		res, err := s.query(ctx, query)
		switch {
		case err != nil && ctx.Err() != nil:
			// The error is ctx's end; keep the previous result.
		case err != nil:
			if apiErr := (*apiError)(nil); errors.As(err, &apiErr) && apiErr.errorType == "bad_data" {
				return fmt.Errorf("promtest: waiting for %s == %s: %w", query, formatValue(want), err)
			}
			last = "error: " + err.Error()
		default:
			last = res.String()
			if v, ok := res.single(); ok && (v == want || math.IsNaN(v) && math.IsNaN(want)) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promtest: waiting for %s == %s: %w (last result: %s)", query, formatValue(want), ctx.Err(), last)
		case <-ticker.C:
		}
	}
}

// QueryRequests returns Prometheus' own count of instant-query API
// requests, sum(prometheus_http_requests_total{handler="/api/v1/query"}),
// read from its /metrics endpoint rather than through a query, which would
// count itself. Prometheus counts a request just after answering it, so the
// count may briefly lag the responses a client has received.
func (s *Server) QueryRequests(ctx context.Context) (float64, error) {
	body, code, err := s.get(ctx, "/metrics")
	if err != nil {
		return 0, fmt.Errorf("promtest: query requests: %w", err)
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("promtest: query requests: GET /metrics: status %d", code)
	}
	const metric = "prometheus_http_requests_total"
	var sum float64
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+"{") && !strings.HasPrefix(line, metric+" ") {
			continue
		}
		name, labels, value, err := parseSampleLine(line)
		if err != nil {
			return 0, fmt.Errorf("promtest: query requests: %w", err)
		}
		if name == metric && labels["handler"] == "/api/v1/query" {
			sum += value
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("promtest: query requests: read /metrics: %w", err)
	}
	return sum, nil
}

// prepareDir creates the directory, its data directory and prometheus.yml.
func (s *Server) prepareDir() error {
	if err := os.MkdirAll(filepath.Join(s.dir, "data"), 0o755); err != nil {
		return fmt.Errorf("promtest: create data dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "prometheus.yml"), []byte(s.config), 0o644); err != nil {
		return fmt.Errorf("promtest: write config: %w", err)
	}
	return nil
}

// removeDir removes the directory if Start created it and it is not removed
// yet.
func (s *Server) removeDir() error {
	if !s.tempDir || s.dirRemoved {
		return nil
	}
	s.dirRemoved = true
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("promtest: remove dir: %w", err)
	}
	return nil
}

// launch starts a process on s.addr and waits for it to be ready; on
// failure the process is killed and bindFailed tells whether it could not
// listen on the port. On success s.proc is the new process.
func (s *Server) launch(ctx context.Context) (bindFailed bool, err error) {
	mark := s.logs.mark()
	cmd := exec.Command(s.binary,
		"--web.listen-address="+s.addr,
		"--storage.tsdb.path="+filepath.Join(s.dir, "data"),
		"--config.file="+filepath.Join(s.dir, "prometheus.yml"),
		"--storage.tsdb.retention.time=1h",
		"--web.enable-lifecycle",
		"--log.level=warn",
	)
	cmd.Dir = s.dir
	cmd.Stdout = s.output(s.stdout)
	cmd.Stderr = s.output(s.stderr)
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = time.Second // output pipes are closed at most 1s after exit
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("promtest: start %s: %w", s.binary, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.pid.Store(int64(cmd.Process.Pid))
	if err := s.waitReady(ctx, p); err != nil {
		_ = s.kill(p)
		tail := s.logs.since(mark)
		if tail == "" {
			tail = "(no output)"
		}
		return strings.Contains(tail, "address already in use"),
			fmt.Errorf("promtest: prometheus (pid %d) on %s: %w; output tail:\n%s", cmd.Process.Pid, s.addr, err, tail)
	}
	s.proc = p
	return false, nil
}

// output returns the writer for one of the process's output streams.
func (s *Server) output(w io.Writer) io.Writer {
	if w == nil {
		return s.logs
	}
	return io.MultiWriter(s.logs, ignoreErrors{w})
}

// waitReady waits until p is ready and all targets are up, p exits, or
// ctx or readyTimeout ends.
func (s *Server) waitReady(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	status := "not polled yet"
	for {
		select {
		case <-p.done:
			return fmt.Errorf("exited before becoming ready: %v", p.err)
		default:
		}
		st, ok := s.readiness(ctx)
		if ok {
			return nil
		}
		if ctx.Err() == nil {
			status = st
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before becoming ready: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("waiting for readiness (at most %v): %w (last status: %s)", readyTimeout, ctx.Err(), status)
		case <-ticker.C:
		}
	}
}

// readiness reports whether Prometheus is ready and has scraped every
// target successfully, and if not, why.
func (s *Server) readiness(ctx context.Context) (status string, ok bool) {
	_, code, err := s.get(ctx, "/-/ready")
	if err != nil {
		return err.Error(), false
	}
	if code != http.StatusOK {
		return fmt.Sprintf("GET /-/ready: status %d", code), false
	}
	if len(s.targets) == 0 {
		return "", true
	}
	body, code, err := s.get(ctx, "/api/v1/targets?state=active")
	if err != nil {
		return err.Error(), false
	}
	if code != http.StatusOK {
		return fmt.Sprintf("GET /api/v1/targets: status %d", code), false
	}
	var resp struct {
		Data struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return fmt.Sprintf("GET /api/v1/targets: decode: %v", err), false
	}
	for _, want := range s.targets {
		found := false
		for _, t := range resp.Data.ActiveTargets {
			if t.Labels["job"] != jobName || t.Labels["instance"] != want {
				continue
			}
			found = true
			if t.Health != "up" {
				return fmt.Sprintf("target %s: health %q, last error %q", want, t.Health, t.LastError), false
			}
		}
		if !found {
			return fmt.Sprintf("target %s: not discovered yet", want), false
		}
	}
	return "", true
}

// terminate stops p with SIGTERM, then SIGKILL after stopTimeout, and waits
// for it to exit.
func (s *Server) terminate(p *process) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return s.kill(p)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
		return s.kill(p)
	}
}

// kill sends SIGKILL to p and waits for it to exit.
func (s *Server) kill(p *process) error {
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("promtest: kill prometheus (pid %d): %w", p.cmd.Process.Pid, err)
	}
	<-p.done
	return nil
}

// get fetches path from the server, returning the body and status code.
func (s *Server) get(ctx context.Context, path string) (body []byte, code int, err error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+path, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", path, err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: read body: %w", path, err)
	}
	return body, resp.StatusCode, nil
}

// queryResult is the result of an instant query.
type queryResult struct {
	resultType string // "vector", "scalar", "matrix" or "string"
	samples    []sample
	series     int // number of series of a matrix
	str        string
}

// sample is one sample of a vector result, or a scalar (no labels).
type sample struct {
	metric map[string]string
	value  float64
}

// single returns the value of a scalar or of a one-sample vector.
func (r queryResult) single() (float64, bool) {
	if (r.resultType == "vector" || r.resultType == "scalar") && len(r.samples) == 1 {
		return r.samples[0].value, true
	}
	return 0, false
}

// String describes the result briefly for error messages.
func (r queryResult) String() string {
	switch r.resultType {
	case "scalar":
		return "scalar " + formatValue(r.samples[0].value)
	case "matrix":
		return fmt.Sprintf("matrix of %d series", r.series)
	case "string":
		return "string " + strconv.Quote(r.str)
	}
	if len(r.samples) == 0 {
		return "empty vector"
	}
	const maxShown = 5
	parts := make([]string, 0, min(len(r.samples), maxShown)+1)
	for i, smp := range r.samples {
		if i == maxShown {
			parts = append(parts, fmt.Sprintf("... (%d samples)", len(r.samples)))
			break
		}
		parts = append(parts, formatMetric(smp.metric)+" "+formatValue(smp.value))
	}
	return "vector [" + strings.Join(parts, ", ") + "]"
}

// query runs an instant query at the server's current time.
func (s *Server) query(ctx context.Context, q string) (queryResult, error) {
	body, code, err := s.get(ctx, "/api/v1/query?query="+url.QueryEscape(q))
	if err != nil {
		return queryResult{}, fmt.Errorf("query %s: %w", q, err)
	}
	var resp struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return queryResult{}, fmt.Errorf("query %s: status %d: decode: %w", q, code, err)
	}
	if resp.Status != "success" {
		return queryResult{}, fmt.Errorf("query %s: status %d: %w", q, code, &apiError{errorType: resp.ErrorType, msg: resp.Error})
	}
	res := queryResult{resultType: resp.Data.ResultType}
	switch res.resultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  json.RawMessage   `json:"value"`
		}
		if err := json.Unmarshal(resp.Data.Result, &vec); err != nil {
			return queryResult{}, fmt.Errorf("query %s: decode vector: %w", q, err)
		}
		for _, v := range vec {
			val, _, err := decodePoint(v.Value)
			if err != nil {
				return queryResult{}, fmt.Errorf("query %s: %w", q, err)
			}
			res.samples = append(res.samples, sample{metric: v.Metric, value: val})
		}
	case "scalar":
		val, _, err := decodePoint(resp.Data.Result)
		if err != nil {
			return queryResult{}, fmt.Errorf("query %s: %w", q, err)
		}
		res.samples = []sample{{value: val}}
	case "string":
		_, str, err := decodePoint(resp.Data.Result)
		if err != nil {
			return queryResult{}, fmt.Errorf("query %s: %w", q, err)
		}
		res.str = str
	case "matrix":
		var m []json.RawMessage
		if err := json.Unmarshal(resp.Data.Result, &m); err != nil {
			return queryResult{}, fmt.Errorf("query %s: decode matrix: %w", q, err)
		}
		res.series = len(m)
	default:
		return queryResult{}, fmt.Errorf("query %s: unknown result type %q", q, res.resultType)
	}
	return res, nil
}

// apiError is an error answer of the Prometheus HTTP API.
type apiError struct {
	errorType string // such as "bad_data" for an invalid query
	msg       string
}

// Error returns the error type and message.
func (e *apiError) Error() string {
	return e.errorType + ": " + e.msg
}

// decodePoint decodes a [timestamp, "value"] pair, returning the value both
// parsed as a float (0 if it is no number) and as the raw string.
func decodePoint(raw json.RawMessage) (float64, string, error) {
	var pair []json.RawMessage
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
		return 0, "", fmt.Errorf("decode point %s: want [timestamp, value]", raw)
	}
	var str string
	if err := json.Unmarshal(pair[1], &str); err != nil {
		return 0, "", fmt.Errorf("decode point %s: %w", raw, err)
	}
	v, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return 0, str, nil
	}
	return v, str, nil
}

// formatMetric renders a result's label set as name{label="value",...}.
func formatMetric(metric map[string]string) string {
	keys := make([]string, 0, len(metric))
	for k := range metric {
		if k != "__name__" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(metric["__name__"])
	if len(keys) > 0 || b.Len() == 0 {
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=\"%s\"", k, escapeLabelValue(metric[k]))
		}
		b.WriteByte('}')
	}
	return b.String()
}

// parseSampleLine parses a sample line of the text format:
// name{label="value",...} value [timestamp].
func parseSampleLine(line string) (name string, labels map[string]string, value float64, err error) {
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return "", nil, 0, fmt.Errorf("parse sample %q: no metric name", line)
	}
	name, rest := line[:i], line[i:]
	labels = map[string]string{}
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, " ,")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.IndexByte(rest, '=')
			if eq <= 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
				return "", nil, 0, fmt.Errorf("parse sample %q: bad label", line)
			}
			key := strings.TrimSpace(rest[:eq])
			rest = rest[eq+2:]
			var val strings.Builder
			closed := false
			for j := 0; j < len(rest); j++ {
				c := rest[j]
				if c == '"' {
					rest = rest[j+1:]
					closed = true
					break
				}
				if c == '\\' && j+1 < len(rest) {
					j++
					switch rest[j] {
					case 'n':
						val.WriteByte('\n')
					default: // \\ and \"
						val.WriteByte(rest[j])
					}
					continue
				}
				val.WriteByte(c)
			}
			if !closed {
				return "", nil, 0, fmt.Errorf("parse sample %q: unterminated label value", line)
			}
			labels[key] = val.String()
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return "", nil, 0, fmt.Errorf("parse sample %q: no value", line)
	}
	value, err = strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return "", nil, 0, fmt.Errorf("parse sample %q: %w", line, err)
	}
	return name, labels, value, nil
}

// findBinary resolves the Prometheus binary to an absolute path.
func findBinary(bin string) (string, error) {
	if bin == "" {
		bin = os.Getenv(binaryEnv)
	}
	if bin == "" {
		bin = "prometheus"
	}
	path, err := exec.LookPath(bin)
	if err == nil {
		path, err = filepath.Abs(path)
	}
	if err != nil {
		return "", fmt.Errorf("promtest: prometheus not found: run `go tool task test`, which installs it, or set %s: %w", binaryEnv, err)
	}
	return path, nil
}

// checkLoopback returns an error unless target is host:port with a
// loopback host.
func checkLoopback(target string) error {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return fmt.Errorf("promtest: scrape target %q: %w", target, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("promtest: scrape target %q: not a loopback address", target)
	}
	return nil
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("promtest: find free port: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		return 0, fmt.Errorf("promtest: find free port: %w", err)
	}
	return port, nil
}

// renderConfig returns prometheus.yml: one job scraping targets, with
// interval as scrape interval, scrape timeout and evaluation interval.
func renderConfig(interval time.Duration, targets []string) string {
	d := strconv.FormatInt(interval.Milliseconds(), 10) + "ms"
	var b strings.Builder
	b.WriteString("# Generated by promtest.\n")
	b.WriteString("global:\n")
	fmt.Fprintf(&b, "  scrape_interval: %s\n", d)
	fmt.Fprintf(&b, "  scrape_timeout: %s\n", d)
	fmt.Fprintf(&b, "  evaluation_interval: %s\n", d)
	if len(targets) > 0 {
		b.WriteString("scrape_configs:\n")
		fmt.Fprintf(&b, "  - job_name: %s\n", jobName)
		b.WriteString("    metrics_path: /metrics\n")
		b.WriteString("    static_configs:\n")
		b.WriteString("      - targets:\n")
		for _, t := range targets {
			fmt.Fprintf(&b, "          - %s\n", strconv.Quote(t))
		}
	}
	return b.String()
}

// tailBuffer keeps the last logTailSize bytes written to it.
type tailBuffer struct {
	mu      sync.Mutex
	buf     []byte
	written int64 // total bytes ever written
}

// Write appends p, dropping old output beyond logTailSize.
func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.written += int64(len(p))
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*logTailSize {
		b.buf = b.buf[:copy(b.buf, b.buf[len(b.buf)-logTailSize:])]
	}
	return len(p), nil
}

// mark returns a position for since.
func (b *tailBuffer) mark() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.written
}

// since returns the kept output (at most logTailSize bytes) written after
// mark.
func (b *tailBuffer) since(mark int64) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	kept := b.buf
	if len(kept) > logTailSize {
		kept = kept[len(kept)-logTailSize:]
	}
	start := mark - (b.written - int64(len(kept)))
	if start <= 0 {
		if mark < b.written-int64(len(kept)) {
			return "[...]\n" + string(kept)
		}
		return string(kept)
	}
	return string(kept[start:])
}

// ignoreErrors is a writer that never fails, so a failing caller's writer
// cannot stall the process's output pipe.
type ignoreErrors struct{ w io.Writer }

// Write writes p to the underlying writer, ignoring errors.
func (w ignoreErrors) Write(p []byte) (int, error) {
	_, _ = w.w.Write(p)
	return len(p), nil
}
