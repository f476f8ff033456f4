package kube

import (
	"slices"
	"sync"
)

// ServiceURLs follows the endpoints of one Service as a list of base URLs,
// "scheme://address". It has the shape of demand.Sources, so that a scaler
// can watch every replica of the activator Service as replicas come and go.
type ServiceURLs struct {
	scheme string
	cancel func()

	mu      sync.Mutex
	urls    []string
	changed chan struct{}
}

// URLs subscribes to the endpoints of a Service. Terminating endpoints are
// listed too: a replica that is shutting down still holds requests and still
// reports them until it is gone.
func (s *ServiceEndpoints) URLs(namespace, name string, port int32, scheme string) *ServiceURLs {
	u := &ServiceURLs{scheme: scheme, changed: make(chan struct{})}
	u.cancel = s.Subscribe(namespace, name, port, u.update)
	return u
}

func (u *ServiceURLs) update(ready, terminating []string) {
	urls := make([]string, 0, len(ready)+len(terminating))
	for _, a := range slices.Concat(ready, terminating) {
		urls = append(urls, u.scheme+"://"+a)
	}
	slices.Sort(urls)
	u.mu.Lock()
	defer u.mu.Unlock()
	if slices.Equal(urls, u.urls) {
		return
	}
	u.urls = urls
	close(u.changed)
	u.changed = make(chan struct{})
}

// Addresses returns the current URLs and a channel closed at the next
// change.
func (u *ServiceURLs) Addresses() ([]string, <-chan struct{}) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.urls, u.changed
}

// Close stops following the Service.
func (u *ServiceURLs) Close() { u.cancel() }
