package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/k8s-nemesis/nemesis/internal/promtest"
)

func TestRangeChunks(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		start, end time.Time
		step       time.Duration
		want       []RangeChunk
	}{
		"one instant": {
			start: t0, end: t0, step: 15 * time.Second,
			want: []RangeChunk{{t0, t0}},
		},
		"exactly the limit": {
			start: t0, end: t0.Add(10999 * time.Second), step: time.Second,
			want: []RangeChunk{{t0, t0.Add(10999 * time.Second)}},
		},
		"one instant over the limit": {
			start: t0, end: t0.Add(11000 * time.Second), step: time.Second,
			want: []RangeChunk{{t0, t0.Add(10999 * time.Second)}, {t0.Add(11000 * time.Second), t0.Add(11000 * time.Second)}},
		},
		"end off the grid stops at the last instant": {
			start: t0, end: t0.Add(40 * time.Second), step: 15 * time.Second,
			want: []RangeChunk{{t0, t0.Add(30 * time.Second)}},
		},
		"a week at 15s": {
			start: t0, end: t0.Add(7 * 24 * time.Hour), step: 15 * time.Second,
			want: []RangeChunk{
				{t0, t0.Add(10999 * 15 * time.Second)},
				{t0.Add(11000 * 15 * time.Second), t0.Add(21999 * 15 * time.Second)},
				{t0.Add(22000 * 15 * time.Second), t0.Add(32999 * 15 * time.Second)},
				{t0.Add(33000 * 15 * time.Second), t0.Add(40320 * 15 * time.Second)},
			},
		},
		"end before start": {start: t0, end: t0.Add(-time.Second), step: time.Second},
		"zero step":        {start: t0, end: t0.Add(time.Hour)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := RangeChunks(tc.start, tc.end, tc.step)
			if len(got) != len(tc.want) {
				t.Fatalf("RangeChunks() = %v, want %v", got, tc.want)
			}
			for i := range got {
				if !got[i].Start.Equal(tc.want[i].Start) || !got[i].End.Equal(tc.want[i].End) {
					t.Errorf("chunk %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// TestRangeChunksCoverTheGrid checks, over many windows, that the chunks
// hold every instant of the step grid once, each within Prometheus' limit.
func TestRangeChunksCoverTheGrid(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, step := range []time.Duration{time.Millisecond, 7 * time.Millisecond, time.Second, 15 * time.Second} {
		for _, n := range []int64{0, 1, 10998, 10999, 11000, 11001, 21999, 22000, 33001} {
			for _, extra := range []time.Duration{0, step / 2} {
				end := t0.Add(time.Duration(n)*step + extra)
				next := t0
				for i, c := range RangeChunks(t0, end, step) {
					if !c.Start.Equal(next) {
						t.Fatalf("step %v, n %d: chunk %d starts at %v, want %v", step, n, i, c.Start, next)
					}
					if points := c.End.Sub(c.Start)/step + 1; points > MaxPointsPerSeries || c.End.Sub(c.Start)%step != 0 {
						t.Fatalf("step %v, n %d: chunk %d holds %d points (%v..%v)", step, n, i, points, c.Start, c.End)
					}
					next = c.End.Add(step)
				}
				if want := t0.Add(time.Duration(n+1) * step); !next.Equal(want) {
					t.Errorf("step %v, n %d, extra %v: chunks end before %v, want %v", step, n, extra, next, want)
				}
			}
		}
	}
}

// rangeProm is a fake query_range endpoint that answers time() and refuses
// windows over Prometheus' limit as Prometheus does, recording each request.
type rangeProm struct {
	delay time.Duration

	mu   sync.Mutex
	seen []*http.Request
}

func (p *rangeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.seen = append(p.seen, r.Clone(context.Background()))
	p.mu.Unlock()
	if p.delay > 0 {
		select {
		case <-time.After(p.delay):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	start, _ := strconv.ParseFloat(r.Form.Get("start"), 64)
	end, _ := strconv.ParseFloat(r.Form.Get("end"), 64)
	step, _ := strconv.ParseFloat(r.Form.Get("step"), 64)
	if r.URL.Path != "/api/v1/query_range" || r.Form.Get("query") != "time()" || step <= 0 {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"fake: unexpected request"}`)
		return
	}
	startMs, endMs, stepMs := int64(math.Round(start*1000)), int64(math.Round(end*1000)), int64(math.Round(step*1000))
	if (endMs-startMs)/stepMs > 11000 {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"}`)
		return
	}
	var values []string
	for ts := startMs; ts <= endMs; ts += stepMs {
		sec := fmt.Sprintf("%d.%03d", ts/1000, ts%1000)
		values = append(values, fmt.Sprintf(`[%s,"%s"]`, sec, sec))
	}
	fmt.Fprintf(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[%s]}]}}`, strings.Join(values, ","))
}

func (p *rangeProm) requests() []*http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*http.Request(nil), p.seen...)
}

// checkTimeSeries checks a time() answer: one series, one point per
// instant of the grid from start to end, each worth its own timestamp.
func checkTimeSeries(t *testing.T, got []Series, start, end time.Time, step time.Duration) {
	t.Helper()
	if len(got) != 1 {
		t.Fatalf("got %d series, want 1", len(got))
	}
	want := int(end.Sub(start)/step) + 1
	if len(got[0].Points) != want {
		t.Fatalf("got %d points, want %d", len(got[0].Points), want)
	}
	for i, p := range got[0].Points {
		at := start.Add(time.Duration(i) * step)
		if !p.T.Equal(at) {
			t.Fatalf("point %d at %v, want %v", i, p.T, at)
		}
		if sec := float64(at.UnixMilli()) / 1000; p.V != sec {
			t.Fatalf("point %d = %v, want %v", i, p.V, sec)
		}
	}
}

func TestQueryRangeChunkedRequests(t *testing.T) {
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "token", "token-1\n")
	fake := &rangeProm{delay: 600 * time.Millisecond}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	recorder := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	reg := prometheus.NewRegistry()
	// Three requests of 600ms each take longer than the timeout of 1.5s:
	// the timeout bounds each request, not the call. (900ms of slack a
	// request: a loaded CI machine once took over 100ms more.)
	c, err := NewClient(ClientConfig{URL: srv.URL, Timeout: 1500 * time.Millisecond, BearerTokenFile: tokenFile,
		Headers: map[string]string{"X-Scope-OrgID": "tenant-a"}}, nil, reg, tp)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(25 * time.Second)
	got, err := c.QueryRange(t.Context(), "time()", start, end, time.Millisecond)
	if err != nil {
		t.Fatalf("QueryRange(): %v", err)
	}
	checkTimeSeries(t, got, start, end, time.Millisecond)

	reqs := fake.requests()
	chunks := RangeChunks(start, end, time.Millisecond)
	if len(reqs) != 3 || len(chunks) != 3 {
		t.Fatalf("%d requests for %d chunks, want 3", len(reqs), len(chunks))
	}
	for i, r := range reqs {
		for param, want := range map[string]time.Time{"start": chunks[i].Start, "end": chunks[i].End} {
			f, _ := strconv.ParseFloat(r.Form.Get(param), 64)
			if got := int64(math.Round(f * 1000)); got != want.UnixMilli() {
				t.Errorf("request %d: %s %s, want %v", i, param, r.Form.Get(param), want)
			}
		}
		if got := r.Form.Get("step"); got != "0.001" {
			t.Errorf("request %d: step %s, want 0.001", i, got)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer token-1" {
			t.Errorf("request %d: Authorization %q", i, got)
		}
		if got := r.Header.Get("X-Scope-OrgID"); got != "tenant-a" {
			t.Errorf("request %d: X-Scope-OrgID %q", i, got)
		}
	}
	if got := counter(c.metrics.requestsSuccess); got != 3 {
		t.Errorf("requests_total{outcome=success} = %v, want 3", got)
	}
	var spans int
	for _, s := range recorder.Ended() {
		if s.Name() == rangeSpanName {
			spans++
			found := false
			for _, kv := range s.Attributes() {
				found = found || kv == attribute.String("db.query.text", "time()")
			}
			if !found {
				t.Errorf("span attributes %v lack the query", s.Attributes())
			}
		}
	}
	if spans != 3 {
		t.Errorf("%d %s spans, want one per request, 3", spans, rangeSpanName)
	}

	// A request slower than the timeout fails the call.
	fake.delay = 3 * time.Second
	_, err = c.QueryRange(t.Context(), "time()", start, start.Add(time.Second), time.Second)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "querying prometheus: ") {
		t.Errorf("slow request: err = %v, want a deadline error starting with querying prometheus", err)
	}
	if got := counter(c.metrics.requestsTimeout); got != 1 {
		t.Errorf("requests_total{outcome=timeout} = %v, want 1", got)
	}
}

func TestQueryRangeErrors(t *testing.T) {
	fake := &rangeProm{}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	c, _, _ := newTestClient(t, ClientConfig{URL: srv.URL})
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		query      string
		start, end time.Time
		step       time.Duration
		want       string
	}{
		"zero step":          {query: "time()", start: t0, end: t0, want: "querying prometheus: step 0s must be positive"},
		"end before start":   {query: "time()", start: t0, end: t0.Add(-time.Second), step: time.Second, want: "querying prometheus: end 2026-11-30T23:59:59Z is before start 2026-12-01T00:00:00Z"},
		"prometheus refuses": {query: "up", start: t0, end: t0, step: time.Second, want: "querying prometheus: bad_data: fake: unexpected request"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := c.QueryRange(t.Context(), tc.query, tc.start, tc.end, tc.step)
			if err == nil || err.Error() != tc.want {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestQueryRangePrometheus runs QueryRange against a real Prometheus over
// windows that need several requests, and proves that Prometheus does
// refuse the same window in one request.
func TestQueryRangePrometheus(t *testing.T) {
	exp := promtest.StartExporter(t)
	srv := promtest.StartServer(t, promtest.Options{ScrapeTargets: []string{exp.Addr()}, ScrapeInterval: 200 * time.Millisecond})
	exp.Set("backtest_load", map[string]string{"pod": "a"}, 3)
	exp.Set("backtest_load", map[string]string{"pod": "b"}, 5)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := srv.WaitForValue(ctx, `count(backtest_load)`, 2); err != nil {
		t.Fatal(err)
	}
	c, _, _ := newTestClient(t, ClientConfig{URL: srv.URL()})

	// time() needs no data, so its window can lie anywhere: 25,001
	// instants, three requests.
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	end := start.Add(25 * time.Second)
	got, err := c.QueryRange(ctx, "time()", start, end, time.Millisecond)
	if err != nil {
		t.Fatalf("QueryRange(time()): %v", err)
	}
	checkTimeSeries(t, got, start, end, time.Millisecond)
	if n := counter(c.metrics.requestsSuccess); n != 3 {
		t.Errorf("%v requests for a window of 25,001 instants, want 3", n)
	}

	// The gauges, over a window that starts now: the lookback carries each
	// series' last sample to every instant, joined across two requests.
	start = time.Now().Truncate(time.Millisecond)
	end = start.Add(12 * time.Second)
	series, err := c.QueryRange(ctx, "backtest_load", start, end, time.Millisecond)
	if err != nil {
		t.Fatalf("QueryRange(backtest_load): %v", err)
	}
	if len(series) != 2 {
		t.Fatalf("got %d series, want 2", len(series))
	}
	for _, s := range series {
		want := map[string]float64{"a": 3, "b": 5}[s.Labels["pod"]]
		if s.Labels["__name__"] != "backtest_load" || want == 0 {
			t.Fatalf("unexpected labels %v", s.Labels)
		}
		if len(s.Points) != 12001 {
			t.Fatalf("series %v: %d points, want 12001", s.Labels, len(s.Points))
		}
		for i, p := range s.Points {
			if at := start.Add(time.Duration(i) * time.Millisecond); !p.T.Equal(at) || p.V != want {
				t.Fatalf("series %v: point %d = %v at %v, want %v at %v", s.Labels, i, p.V, p.T, want, at)
			}
		}
	}

	// The same window in one request is refused: the limit is real.
	q := url.Values{"query": {"time()"}, "start": {strconv.FormatInt(start.Unix(), 10)},
		"end": {strconv.FormatInt(start.Unix()+12, 10)}, "step": {"0.001"}}
	resp, err := http.Get(srv.URL() + "/api/v1/query_range?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Error string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body.Error, "11,000 points") {
		t.Errorf("one request of 12,001 instants: status %d, error %q; want 400 and Prometheus' limit", resp.StatusCode, body.Error)
	}
}
