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

func TestPodName(t *testing.T) {
	e := newEnv(t, service("web", port("", 80, 8080)))
	es := slice("web-1", "web", discoveryv1.AddressTypeIPv4, slicePorts("", 8080),
		podEndpoint("10.0.0.1", "ready", "web-a"), endpoint("10.0.0.2", "ready"))
	e.createSlice(es)
	r := newRecorder(t)
	defer e.se.Subscribe(ns, "web", 80, r.update)()
	e.sync()
	r.waitFor(st([]string{"10.0.0.1:8080", "10.0.0.2:8080"}))
	if pod, ok := e.se.PodName(ns, "10.0.0.1:8080"); !ok || pod != "web-a" {
		t.Errorf("PodName(10.0.0.1:8080) = %q, %v; want web-a", pod, ok)
	}
	if pod, ok := e.se.PodName(ns, "10.0.0.2:8080"); ok {
		t.Errorf("PodName(10.0.0.2:8080) = %q; it has no targetRef", pod)
	}
	if _, ok := e.se.PodName("other", "10.0.0.1:8080"); ok {
		t.Error("PodName found a pod in another namespace")
	}
	// The address moves to a new pod.
	es.Endpoints = []discoveryv1.Endpoint{podEndpoint("10.0.0.1", "ready", "web-b"), endpoint("10.0.0.2", "ready")}
	e.updateSlice(es)
	deadline := time.Now().Add(waitFor)
	for pod, _ := e.se.PodName(ns, "10.0.0.1:8080"); pod != "web-b"; pod, _ = e.se.PodName(ns, "10.0.0.1:8080") {
		if time.Now().After(deadline) {
			t.Fatalf("PodName(10.0.0.1:8080) = %q, want web-b after the update", pod)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
