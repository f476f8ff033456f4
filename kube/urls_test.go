package kube

import (
	"slices"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
)

func TestServiceURLs(t *testing.T) {
	e := newEnv(t, service("activator", port("admin", 9091, "admin")))
	es := slice("activator-1", "activator", discoveryv1.AddressTypeIPv4, slicePorts("admin", 9091),
		endpoint("10.0.0.2", "ready"), endpoint("10.0.0.1", "ready"))
	e.createSlice(es)
	u := e.se.URLs(ns, "activator", 9091, "http")
	defer u.Close()
	e.sync()

	wait := func(want ...string) {
		t.Helper()
		deadline := time.After(waitFor)
		for {
			urls, changed := u.Addresses()
			if slices.Equal(urls, want) {
				return
			}
			select {
			case <-changed:
			case <-deadline:
				t.Fatalf("URLs = %v, want %v", urls, want)
			}
		}
	}
	wait("http://10.0.0.1:9091", "http://10.0.0.2:9091")

	// A replica shutting down still reports its held requests: it stays.
	es.Endpoints = []discoveryv1.Endpoint{endpoint("10.0.0.1", "terminating"), endpoint("10.0.0.2", "ready"), endpoint("10.0.0.3", "ready")}
	e.updateSlice(es)
	wait("http://10.0.0.1:9091", "http://10.0.0.2:9091", "http://10.0.0.3:9091")

	es.Endpoints = []discoveryv1.Endpoint{endpoint("10.0.0.3", "ready")}
	e.updateSlice(es)
	wait("http://10.0.0.3:9091")
}
