package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/k8s-nemesis/nemesis/e2e/internal/childproc"
)

// waitHTTP polls url until it answers 200, the process exits, or the
// deadline passes.
func waitHTTP(ctx context.Context, p *childproc.Process, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited (%v) before %s answered; see %s", p.Name(), p.Err(), url, p.Log())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %v: %w; see %s", url, timeout, last, p.Log())
		}
	}
}

// freeAddrs returns n distinct loopback addresses with free ports. The
// listeners are closed before returning, so another process could take a
// port in between; the benchmark then fails to start, which it reports.
func freeAddrs(n int) ([]string, error) {
	var addrs []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}
