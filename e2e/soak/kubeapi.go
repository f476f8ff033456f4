package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// kubeAPI is the smallest Kubernetes API the activator's informers need:
// list and watch of the Services and EndpointSlices of one namespace, in
// JSON, with the watch-list protocol (sendInitialEvents) that client-go
// uses by default and the plain list it falls back to. It is the only way
// outside a cluster to flap an endpoint's readiness through the same code
// path a pod's readiness probe takes (EndpointSlice informer, then the
// route's endpoint update), without starting a kube-apiserver.
type kubeAPI struct {
	namespace string
	srv       *http.Server
	addr      string

	mu       sync.Mutex
	rv       int
	services map[string]*corev1.Service
	slices   map[string]*discoveryv1.EndpointSlice
	events   []apiEvent    // every change, in order
	changed  chan struct{} // closed and replaced on every change
}

// apiEvent is one change, kept for the watches that resume after it.
type apiEvent struct {
	rv       int
	resource string // "services" or "endpointslices"
	typ      string // ADDED, MODIFIED
	obj      any
}

// endpointState is what a flap sets an endpoint to.
type endpointState int

const (
	stateReady endpointState = iota
	stateNotReady
	stateTerminating
)

func (s endpointState) String() string {
	return [...]string{"ready", "not ready", "terminating"}[s]
}

func startKubeAPI(namespace string) (*kubeAPI, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	k := &kubeAPI{
		namespace: namespace,
		addr:      l.Addr().String(),
		services:  map[string]*corev1.Service{},
		slices:    map[string]*discoveryv1.EndpointSlice{},
		changed:   make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/services", func(w http.ResponseWriter, r *http.Request) {
		k.serve(w, r, "services")
	})
	mux.HandleFunc("GET /apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices", func(w http.ResponseWriter, r *http.Request) {
		k.serve(w, r, "endpointslices")
	})
	k.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go k.srv.Serve(l)
	return k, nil
}

func (k *kubeAPI) close() { k.srv.Close() }

// kubeconfig writes a kubeconfig for the API into path.
func (k *kubeAPI) kubeconfig(path string) error {
	return os.WriteFile(path, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: soak, cluster: {server: "http://%s"}}]
users: [{name: soak, user: {}}]
contexts: [{name: soak, context: {cluster: soak, user: soak, namespace: %s}}]
current-context: soak
`, k.addr, k.namespace), 0o600)
}

// addService creates a Service with one TCP port named http, and one
// EndpointSlice per backend (each backend listens on its own port, so each
// needs its own slice: a slice's ports apply to all its endpoints).
func (k *kubeAPI) addService(name string, port int32, backends []string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{Kind: "Service", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: k.namespace},
		Spec: corev1.ServiceSpec{
			Ports:      []corev1.ServicePort{{Name: "http", Port: port, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http")}},
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
		},
	}
	k.put("services", name, svc, "ADDED")
	for i, b := range backends {
		host, p, err := net.SplitHostPort(b)
		if err != nil {
			return err
		}
		pn, err := strconv.Atoi(p)
		if err != nil {
			return err
		}
		slice := &discoveryv1.EndpointSlice{
			TypeMeta: metav1.TypeMeta{Kind: "EndpointSlice", APIVersion: "discovery.k8s.io/v1"},
			ObjectMeta: metav1.ObjectMeta{Name: sliceName(name, i), Namespace: k.namespace,
				Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{
				Addresses:  []string{host},
				Conditions: conditions(stateReady),
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: k.namespace, Name: fmt.Sprintf("%s-pod-%d", name, i)},
			}},
			Ports: []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(pn)), Protocol: ptr(corev1.ProtocolTCP)}},
		}
		k.put("endpointslices", slice.Name, slice, "ADDED")
	}
	return nil
}

func sliceName(svc string, i int) string { return fmt.Sprintf("%s-%d", svc, i) }

func ptr[T any](v T) *T { return &v }

func conditions(s endpointState) discoveryv1.EndpointConditions {
	return discoveryv1.EndpointConditions{
		Ready:       ptr(s == stateReady),
		Serving:     ptr(s != stateNotReady),
		Terminating: ptr(s == stateTerminating),
	}
}

// setState changes backend i of service svc to s, as the endpoint
// controller does when a pod's readiness changes.
func (k *kubeAPI) setState(svc string, i int, s endpointState) {
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.slices[sliceName(svc, i)]
	next := old.DeepCopy()
	next.Endpoints[0].Conditions = conditions(s)
	k.put("endpointslices", next.Name, next, "MODIFIED")
}

// put stores obj under a new resource version and wakes the watches. The
// caller holds k.mu.
func (k *kubeAPI) put(resource, name string, obj any, typ string) {
	k.rv++
	rv := strconv.Itoa(k.rv)
	switch o := obj.(type) {
	case *corev1.Service:
		o.ResourceVersion = rv
		k.services[name] = o
	case *discoveryv1.EndpointSlice:
		o.ResourceVersion = rv
		k.slices[name] = o
	}
	k.events = append(k.events, apiEvent{rv: k.rv, resource: resource, typ: typ, obj: obj})
	close(k.changed)
	k.changed = make(chan struct{})
}

// snapshot returns the objects of resource and the current resource
// version.
func (k *kubeAPI) snapshot(resource string) ([]any, int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var items []any
	if resource == "services" {
		for _, s := range k.services {
			items = append(items, s)
		}
	} else {
		for _, s := range k.slices {
			items = append(items, s)
		}
	}
	return items, k.rv
}

func (k *kubeAPI) serve(w http.ResponseWriter, r *http.Request, resource string) {
	if r.PathValue("ns") != k.namespace {
		http.Error(w, "no such namespace", http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	w.Header().Set("Content-Type", "application/json")
	if q.Get("watch") != "true" && q.Get("watch") != "1" {
		items, rv := k.snapshot(resource)
		kind := map[string]string{"services": "ServiceList", "endpointslices": "EndpointSliceList"}[resource]
		apiVersion := map[string]string{"services": "v1", "endpointslices": "discovery.k8s.io/v1"}[resource]
		json.NewEncoder(w).Encode(map[string]any{
			"kind": kind, "apiVersion": apiVersion,
			"metadata": map[string]string{"resourceVersion": strconv.Itoa(rv)},
			"items":    items,
		})
		return
	}
	k.watch(w, r, resource)
}

// watch streams events as newline-delimited JSON. With sendInitialEvents
// it first sends every object as ADDED, then the bookmark that ends the
// initial events; otherwise it resumes after the resourceVersion asked.
func (k *kubeAPI) watch(w http.ResponseWriter, r *http.Request, resource string) {
	q := r.URL.Query()
	fl := w.(http.Flusher)
	enc := json.NewEncoder(w)
	from, _ := strconv.Atoi(q.Get("resourceVersion"))
	if q.Get("sendInitialEvents") == "true" {
		items, rv := k.snapshot(resource)
		for _, o := range items {
			if enc.Encode(map[string]any{"type": "ADDED", "object": o}) != nil {
				return
			}
		}
		kind := map[string]string{"services": "Service", "endpointslices": "EndpointSlice"}[resource]
		apiVersion := map[string]string{"services": "v1", "endpointslices": "discovery.k8s.io/v1"}[resource]
		if enc.Encode(map[string]any{"type": "BOOKMARK", "object": map[string]any{
			"kind": kind, "apiVersion": apiVersion,
			"metadata": map[string]any{"resourceVersion": strconv.Itoa(rv),
				"annotations": map[string]string{metav1.InitialEventsAnnotationKey: "true"}},
		}}) != nil {
			return
		}
		from = rv
	}
	fl.Flush()
	timeout := 10 * time.Minute
	if s, err := strconv.Atoi(q.Get("timeoutSeconds")); err == nil && s > 0 {
		timeout = time.Duration(s) * time.Second
	}
	end := time.NewTimer(timeout)
	defer end.Stop()
	for {
		k.mu.Lock()
		var todo []apiEvent
		for _, e := range k.events {
			if e.rv > from && e.resource == resource {
				todo = append(todo, e)
			}
		}
		if n := len(k.events); n > 0 {
			from = max(from, k.events[n-1].rv)
		}
		changed := k.changed
		k.mu.Unlock()
		for _, e := range todo {
			if enc.Encode(map[string]any{"type": e.typ, "object": e.obj}) != nil {
				return
			}
		}
		if len(todo) > 0 {
			fl.Flush()
		}
		select {
		case <-changed:
		case <-end.C:
			return
		case <-r.Context().Done():
			return
		}
	}
}
