package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/k8s-nemesis/nemesis/kube"
)

// serviceProxies stand in for kube-proxy, which the local cluster lacks:
// each forwards the TCP connections of one local port to a ready endpoint of
// one Service port, chosen per connection, as kube-proxy's userspace mode
// did. Endpoints come from EndpointSlices through kube.ServiceEndpoints, so a
// pod that turns unready or terminating gets no new connections at once.
type serviceProxies struct {
	ctx    context.Context
	eps    *kube.ServiceEndpoints
	logger *slog.Logger

	mu    sync.Mutex
	addrs map[string]string
}

func newServiceProxies(ctx context.Context, client kubernetes.Interface, logger *slog.Logger) *serviceProxies {
	eps := kube.NewServiceEndpoints(client, logger.With("component", "service-proxy"), prometheus.NewRegistry())
	go func() { _ = eps.Run(ctx) }()
	return &serviceProxies{ctx: ctx, eps: eps, logger: logger, addrs: map[string]string{}}
}

func (s *serviceProxies) address(_ context.Context, namespace, name string, port int32) (string, error) {
	key := fmt.Sprintf("%s/%s:%d", namespace, name, port)
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.addrs[key]; ok {
		return a, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	var (
		mu    sync.Mutex
		ready []string
	)
	cancel := s.eps.Subscribe(namespace, name, port, func(r, _ []string) {
		mu.Lock()
		ready = r
		mu.Unlock()
	})
	go func() {
		<-s.ctx.Done()
		cancel()
		ln.Close()
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// Like kube-proxy, a connection that finds no ready
				// endpoint is refused (closed) at once.
				mu.Lock()
				var target string
				if len(ready) > 0 {
					target = ready[rand.IntN(len(ready))]
				}
				mu.Unlock()
				if target == "" {
					s.logger.Debug("service proxy: no ready endpoint", "service", key)
					return
				}
				u, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err != nil {
					s.logger.Debug("service proxy dial", "service", key, "target", target, "err", err)
					return
				}
				defer u.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(u, c); closeWrite(u); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, u); closeWrite(c); done <- struct{}{} }()
				<-done
				<-done
			}()
		}
	}()
	a := ln.Addr().String()
	s.addrs[key] = a
	return a, nil
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}
