//go:build linux

package activator

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A held request whose body is not read yet (chunked, or longer than what
// is read before parking) leaves the queue as soon as its client goes
// away, long before the queue timeout: it must not stay as demand.
func TestHeldUnreadBodyClientGone(t *testing.T) {
	heads := map[string]string{
		"chunked": "POST /v1/completions HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
		"large":   fmt.Sprintf("POST /v1/completions HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n%s", 2*MaxRetryBodyBytes, strings.Repeat("p", 1000)),
	}
	for _, mode := range holdModes() {
		for name, head := range heads {
			t.Run(mode.name+"/"+name, func(t *testing.T) {
				demand := newFakeDemand()
				opts := mode.opts
				opts.Services, opts.Demand = newFakeServices(), demand
				h := startActivator(t, fmt.Sprintf(serviceRoute, 10, "30s"), opts)
				c := dialH1(t, h)
				c.send(head)
				eventually(t, "queued", func() bool { return queued(t, h) == 1 })
				left := time.Now()
				c.nc.Close()
				deadline := time.Now().Add(2 * time.Second)
				for queued(t, h) != 0 {
					if time.Now().After(deadline) {
						t.Fatalf("the request is still queued %v after its client left (queue timeout 30s)", time.Since(left).Round(time.Millisecond))
					}
					time.Sleep(5 * time.Millisecond)
				}
				if _, q := demand.get("ml/chat"); q != 0 {
					t.Errorf("queued demand %d after the client left", q)
				}
				eventually(t, "499 counted", func() bool {
					v, _ := metricValue(t, h.reg, "nemesis_activator_requests_total", map[string]string{"route": "cold", "code": fmt.Sprint(statusClientGone)})
					return v == 1
				})
			})
		}
	}
}
