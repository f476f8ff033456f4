package load

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Generator sends requests to URL with Host as the Host header: GETs, or
// POSTs of Body as JSON when Body is set (e.g. an OpenAI completion for
// llmsim).
type Generator struct {
	URL    string
	Host   string
	Body   []byte
	Client *http.Client

	inflight atomic.Int64

	mu         sync.Mutex
	ok, failed int64
	errs       map[string]int
	lat        []time.Duration
	first      time.Time // first response
	firstSet   bool
}

// NewGenerator returns a Generator with its own connection pool.
func NewGenerator(url, host string) *Generator {
	return &Generator{
		URL:  url,
		Host: host,
		Client: &http.Client{
			Timeout:   3 * time.Minute,
			Transport: &http.Transport{MaxIdleConnsPerHost: 1000, IdleConnTimeout: 30 * time.Second},
		},
		errs: map[string]int{},
	}
}

// Do sends one request and records its outcome.
func (g *Generator) Do(ctx context.Context) error {
	g.inflight.Add(1)
	defer g.inflight.Add(-1)
	start := time.Now()
	method, body := http.MethodGet, io.Reader(nil)
	if g.Body != nil {
		method, body = http.MethodPost, bytes.NewReader(g.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.URL, body)
	if err != nil {
		return err
	}
	req.Host = g.Host
	if g.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := g.Client.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("HTTP %s", resp.Status)
		}
	}
	if ctx.Err() != nil && err != nil {
		return ctx.Err() // stopped by the caller: neither success nor failure
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		g.failed++
		g.errs[err.Error()]++
		return err
	}
	g.ok++
	g.lat = append(g.lat, time.Since(start))
	if !g.firstSet {
		g.first, g.firstSet = time.Now(), true
	}
	return nil
}

// Burst sends n requests at once and waits for them all.
func (g *Generator) Burst(ctx context.Context, n int) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = g.Do(ctx)
		}()
	}
	wg.Wait()
}

// Workers keeps n workers sending requests back to back until ctx ends.
func (g *Generator) Workers(ctx context.Context, n int) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if g.Do(ctx) != nil && ctx.Err() == nil {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
}

// InFlight is the number of requests sent and not yet answered.
func (g *Generator) InFlight() int64 { return g.inflight.Load() }

// Stats are a generator's counts so far.
type Stats struct {
	OK, Failed    int64
	Errors        map[string]int
	P50, P99, Max time.Duration
	FirstResponse time.Time
}

// Stats returns the counts so far.
func (g *Generator) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := Stats{OK: g.ok, Failed: g.failed, Errors: map[string]int{}, FirstResponse: g.first}
	for k, v := range g.errs {
		s.Errors[k] = v
	}
	if n := len(g.lat); n > 0 {
		l := append([]time.Duration(nil), g.lat...)
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		s.P50, s.P99, s.Max = l[n/2], l[min(n-1, n*99/100)], l[n-1]
	}
	return s
}

func (s Stats) String() string {
	out := fmt.Sprintf("%d ok, %d failed, latency p50 %v p99 %v max %v", s.OK, s.Failed,
		s.P50.Round(time.Millisecond), s.P99.Round(time.Millisecond), s.Max.Round(time.Millisecond))
	for e, n := range s.Errors {
		out += fmt.Sprintf("; %d× %s", n, e)
	}
	return out
}
