package activator

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// BenchmarkProxy measures one proxied GET through the activator to a local
// backend, over keep-alive connections at both ends: ns/op and allocs/op
// are the activator's cost plus a client's and a backend's.
func BenchmarkProxy(b *testing.B) {
	body := []byte("hello, world\n")
	be := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go be.Serve(l)
	b.Cleanup(func() { be.Close() })

	h := startActivator(b, fmt.Sprintf("routes:\n  - name: bench\n    endpoints: [%q]\n", l.Addr().String()), Options{})
	keepAliveLoad(b, h.url+"/", len(body))
}

// keepAliveLoad sends GETs to url from 16 client goroutines per core over
// keep-alive connections, a load like wrk's, so that ns/op reads as
// throughput rather than one request's latency; each answer must be 200
// with n bytes.
func keepAliveLoad(b *testing.B, url string, n int) {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, n)
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		for pb.Next() {
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			got, _ := io.ReadFull(resp.Body, buf)
			resp.Body.Close()
			if resp.StatusCode != 200 || got != n {
				b.Errorf("status %d, %d bytes", resp.StatusCode, got)
				return
			}
		}
	})
}

// BenchmarkProxyPolicy is BenchmarkProxy through a least-request and a
// score route to the same four backends, each serving a model server's
// exposition (12 histograms) on /metrics, scraped every 50 ms on the
// score route: the bound is score within 5 % of least-request.
// The scrapes run beside the load, so their cost is in ns/op.
func BenchmarkProxyPolicy(b *testing.B) {
	body := []byte("hello, world\n")
	expo := vllmLikeExposition(12)
	var addrs []string
	for range 4 {
		be := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/metrics" {
				w.Header().Set("Content-Type", "text/plain; version=0.0.4")
				w.Write(expo)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			w.Write(body)
		})}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go be.Serve(l)
		b.Cleanup(func() { be.Close() })
		addrs = append(addrs, l.Addr().String())
	}
	for _, pol := range []string{"least-request", "score"} {
		b.Run(pol, func(b *testing.B) {
			cfg := fmt.Sprintf("routes:\n  - name: bench\n    endpoints: [%s]\n    policy: %s\n", quoteList(addrs), pol)
			if pol == "score" {
				cfg += "    score:\n      scrape: {interval: 50ms, timeout: 40ms, staleAfter: 2s}\n" +
					"      metrics: {waiting: vllm:num_requests_waiting, running: vllm:num_requests_running, kv: vllm:kv_cache_usage_perc}\n" +
					"      filter: waiting < 5 && kv < 0.8\n" +
					"      expression: 2 * waiting + 20 * kv + inflight\n"
			}
			h := startActivator(b, cfg, Options{})
			keepAliveLoad(b, h.url+"/", len(body))
		})
	}
}

// BenchmarkHandler measures the activator's handler alone: a request
// served in-process (no client connection) and proxied to a local backend.
func BenchmarkHandler(b *testing.B) {
	body := []byte("hello, world\n")
	be := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go be.Serve(l)
	b.Cleanup(func() { be.Close() })
	h := startActivator(b, fmt.Sprintf("routes:\n  - name: bench\n    endpoints: [%q]\n", l.Addr().String()), Options{})
	req, _ := http.NewRequest(http.MethodGet, "http://example.com/", nil)
	req.RemoteAddr = "127.0.0.1:5555"
	req.RequestURI = "/"
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h)
		w.code = 0
		h.a.ServeHTTP(w, req)
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
