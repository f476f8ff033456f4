package kube

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	scalefake "k8s.io/client-go/scale/fake"
	k8stesting "k8s.io/client-go/testing"
)

// fakeScales serves scale subresources by "resource.group/name" and counts
// the reads.
type fakeScales struct {
	mu       sync.Mutex
	replicas map[string]int32
	selector map[string]string
	reads    int
}

func (f *fakeScales) set(target string, replicas int32, selector string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replicas[target], f.selector[target] = replicas, selector
}

func (f *fakeScales) readCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

func (f *fakeScales) react(a k8stesting.Action) (bool, runtime.Object, error) {
	get := a.(k8stesting.GetAction)
	if a.GetSubresource() != "scale" {
		return true, nil, errors.New("not a scale subresource")
	}
	target := a.GetResource().GroupResource().String() + "/" + get.GetName()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	r, ok := f.replicas[target]
	if !ok {
		return true, nil, apierrors.NewNotFound(a.GetResource().GroupResource(), get.GetName())
	}
	return true, &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: get.GetName(), Namespace: a.GetNamespace()},
		Spec:       autoscalingv1.ScaleSpec{Replicas: r},
		Status:     autoscalingv1.ScaleStatus{Replicas: r, Selector: f.selector[target]},
	}, nil
}

// fakeClock is a settable clock.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

type scaleEnv struct {
	targets *ScaleTargets
	kube    *fake.Clientset
	dynamic *dynamicfake.FakeDynamicClient
	scales  *fakeScales
	clock   *fakeClock
	reg     *prometheus.Registry
}

func scaledObject(namespace, name string, ref map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keda.sh/v1alpha1",
		"kind":       "ScaledObject",
		"metadata":   map[string]any{"name": name, "namespace": namespace},
		"spec":       map[string]any{"minReplicaCount": int64(0)},
	}}
	if ref != nil {
		u.Object["spec"].(map[string]any)["scaleTargetRef"] = ref
	}
	return u
}

func testMapper() meta.RESTMapper {
	m := meta.NewDefaultRESTMapper(nil)
	m.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, meta.RESTScopeNamespace)
	m.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}, meta.RESTScopeNamespace)
	m.Add(schema.GroupVersionKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "Rollout"}, meta.RESTScopeNamespace)
	return m
}

// newScaleEnv runs a ScaleTargets over fakes holding objs (ScaledObjects
// and pods).
func newScaleEnv(t *testing.T, mapper meta.RESTMapper, objs ...runtime.Object) *scaleEnv {
	t.Helper()
	var sos, pods []runtime.Object
	for _, o := range objs {
		if _, ok := o.(*unstructured.Unstructured); ok {
			sos = append(sos, o)
		} else {
			pods = append(pods, o)
		}
	}
	e := &scaleEnv{
		kube:    fake.NewClientset(pods...),
		dynamic: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{scaledObjects(): "ScaledObjectList"}, sos...),
		scales:  &fakeScales{replicas: map[string]int32{}, selector: map[string]string{}},
		clock:   &fakeClock{},
		reg:     prometheus.NewPedanticRegistry(),
	}
	e.clock.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	sc := &scalefake.FakeScaleClient{}
	sc.AddReactor("get", "*", e.scales.react)
	if mapper == nil {
		mapper = testMapper()
	}
	e.targets = NewScaleTargets(ScaleTargetClients{Kube: e.kube, Dynamic: e.dynamic, Scales: sc, Mapper: mapper},
		ScaleTargetsOptions{Registerer: e.reg, Timeout: waitFor, Now: e.clock.now})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.targets.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return e
}

func (e *scaleEnv) get(t *testing.T, namespace, name string, withReady bool) (int64, int64) {
	t.Helper()
	cur, ready, err := e.targets.Get(t.Context(), namespace, name, withReady)
	if err != nil {
		t.Fatalf("Get(%s/%s): %v", namespace, name, err)
	}
	return cur, ready
}

// TestScaleTargetsCurrent: current follows the scale subresource, read at
// most once per TTL.
func TestScaleTargetsCurrent(t *testing.T) {
	e := newScaleEnv(t, nil,
		scaledObject("ml", "chat", map[string]any{"name": "chat-llm"}),
		scaledObject("ml", "db", map[string]any{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"}),
		scaledObject("ml", "canary", map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "canary"}),
	)
	e.scales.set("deployments.apps/chat-llm", 3, "app=chat")
	e.scales.set("statefulsets.apps/db", 2, "app=db")
	e.scales.set("rollouts.argoproj.io/canary", 7, "app=canary")

	// scaleTargetRef without apiVersion and kind: apps/v1 Deployment.
	if cur, _ := e.get(t, "ml", "chat", false); cur != 3 {
		t.Fatalf("current = %d, want 3", cur)
	}
	if cur, _ := e.get(t, "ml", "db", false); cur != 2 {
		t.Errorf("StatefulSet: current = %d, want 2", cur)
	}
	if cur, _ := e.get(t, "ml", "canary", false); cur != 7 {
		t.Errorf("Rollout: current = %d, want 7", cur)
	}

	// The target scales: within the TTL the cached value answers, without
	// another read; after it, the new value.
	e.scales.set("deployments.apps/chat-llm", 5, "app=chat")
	reads := e.scales.readCount()
	if cur, _ := e.get(t, "ml", "chat", false); cur != 3 {
		t.Errorf("within the TTL: current = %d, want the cached 3", cur)
	}
	if got := e.scales.readCount(); got != reads {
		t.Errorf("%d reads within the TTL, want none", got-reads)
	}
	e.clock.advance(DefaultScaleTTL)
	if cur, _ := e.get(t, "ml", "chat", false); cur != 5 {
		t.Errorf("after the TTL: current = %d, want 5", cur)
	}
	e.scales.set("deployments.apps/chat-llm", 0, "app=chat")
	e.clock.advance(DefaultScaleTTL)
	if cur, _ := e.get(t, "ml", "chat", false); cur != 0 {
		t.Errorf("scaled to zero: current = %d, want 0", cur)
	}

	// Concurrent callers share one read.
	e.clock.advance(DefaultScaleTTL)
	reads = e.scales.readCount()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { _, _, _ = e.targets.Get(context.Background(), "ml", "chat", false) })
	}
	wg.Wait()
	if got := e.scales.readCount() - reads; got != 1 {
		t.Errorf("20 concurrent Gets made %d reads, want 1", got)
	}
	if got := testutil.ToFloat64(e.targets.m.reads.WithLabelValues("success")); got != 6 {
		t.Errorf("scale_reads_total{result=success} = %v, want 6", got)
	}

	// Without ready, no pod is listed or watched.
	for _, a := range e.kube.Actions() {
		if a.GetResource().Resource == "pods" {
			t.Errorf("pods read without withReady: %v", a)
		}
	}
}

func pod(namespace, name string, lbls map[string]string, ready bool, deleting bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: lbls}}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
		{Type: corev1.PodReady, Status: status},
	}
	if deleting {
		now := metav1.Now()
		p.DeletionTimestamp = &now
		p.Finalizers = []string{"test/keep"}
	}
	return p
}

// TestScaleTargetsReady: ready counts the pods that match the scale
// subresource's selector, are Ready and are not terminating.
func TestScaleTargetsReady(t *testing.T) {
	chat := map[string]string{"app": "chat", "tier": "gpu"}
	e := newScaleEnv(t, nil,
		scaledObject("ml", "chat", map[string]any{"name": "chat-llm"}),
		pod("ml", "ready-1", chat, true, false),
		pod("ml", "ready-2", chat, true, false),
		pod("ml", "starting", chat, false, false),
		pod("ml", "terminating", chat, true, true),
		pod("ml", "other-app", map[string]string{"app": "web"}, true, false),
		pod("ml", "other-tier", map[string]string{"app": "chat", "tier": "cpu"}, true, false),
		pod("other", "other-namespace", chat, true, false),
		pod("ml", "no-conditions", chat, false, false),
	)
	e.scales.set("deployments.apps/chat-llm", 4, "app=chat,tier in (gpu)")

	cur, ready := e.get(t, "ml", "chat", true)
	if cur != 4 || ready != 2 {
		t.Fatalf("current, ready = %d, %d, want 4, 2", cur, ready)
	}

	// Pods change: the informer sees it at once (the scale read is cached,
	// the pod count is not).
	p := pod("ml", "starting", chat, true, false)
	if _, err := e.kube.CoreV1().Pods("ml").UpdateStatus(t.Context(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.kube.CoreV1().Pods("ml").Delete(t.Context(), "ready-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kube.CoreV1().Pods("ml").Create(t.Context(), pod("ml", "new", chat, true, false), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitFor)
	for {
		if _, ready = e.get(t, "ml", "chat", true); ready == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ready = %d after the pod changes, want 3", ready)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Only the namespaces in use are watched.
	for _, a := range e.kube.Actions() {
		if a.GetVerb() == "list" && a.GetNamespace() != "ml" {
			t.Errorf("listed %s in namespace %q", a.GetResource().Resource, a.GetNamespace())
		}
	}
	if got := testutil.ToFloat64(e.targets.m.namespaces); got != 1 {
		t.Errorf("scale_target_namespaces = %v, want 1", got)
	}
}

// TestScaleTargetsErrors: whatever cannot be read is an error that says
// what, never a zero.
func TestScaleTargetsErrors(t *testing.T) {
	e := newScaleEnv(t, nil,
		scaledObject("ml", "chat", map[string]any{"name": "chat-llm"}),
		scaledObject("ml", "gone", map[string]any{"name": "deleted"}),
		scaledObject("ml", "noref", nil),
		scaledObject("ml", "unknown-kind", map[string]any{"apiVersion": "example.com/v1", "kind": "Thing", "name": "x"}),
		scaledObject("ml", "bad-version", map[string]any{"apiVersion": "a/b/c", "name": "x"}),
		scaledObject("ml", "no-selector", map[string]any{"kind": "StatefulSet", "name": "db"}),
	)
	e.scales.set("deployments.apps/chat-llm", 1, "app=chat")
	e.scales.set("statefulsets.apps/db", 1, "")
	cases := map[string]struct {
		name      string
		withReady bool
		want      string
	}{
		"no ScaledObject":       {"missing", false, "ScaledObject ml/missing not found"},
		"no target":             {"gone", false, `reading the scale subresource of Deployment deleted (apps/v1) in namespace ml: deployments.apps "deleted" not found`},
		"no scaleTargetRef":     {"noref", false, "ScaledObject ml/noref has no spec.scaleTargetRef.name"},
		"unknown kind":          {"unknown-kind", false, "scale target Thing x (example.com/v1): no matches for kind"},
		"bad apiVersion":        {"bad-version", false, "scale target Deployment x (a/b/c)"},
		"no selector for ready": {"no-selector", true, "the scale subresource of StatefulSet db (apps/v1) has no status.selector"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cur, ready, err := e.targets.Get(t.Context(), "ml", tc.name, tc.withReady)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Get = %d, %d, %v; want an error with %q", cur, ready, err, tc.want)
			}
		})
	}
	// The same target without ready is fine.
	if cur, _ := e.get(t, "ml", "no-selector", false); cur != 1 {
		t.Errorf("current = %d, want 1", cur)
	}
	// A failed read is cached for the TTL too.
	reads := e.scales.readCount()
	_, _, _ = e.targets.Get(t.Context(), "ml", "gone", false)
	if got := e.scales.readCount(); got != reads {
		t.Errorf("a failed read was repeated within the TTL")
	}
}

// TestScaleTargetsListDenied: a list that fails (RBAC, no KEDA CRD) fails
// Get at once with the API server's reason, rather than after the timeout.
func TestScaleTargetsListDenied(t *testing.T) {
	e := newScaleEnv(t, nil)
	e.dynamic.PrependReactor("list", "scaledobjects", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(scaledObjects().GroupResource(), "", errors.New("no RBAC"))
	})
	// The first Get comes before the first failed list: it waits for it.
	start := time.Now()
	_, _, err := e.targets.Get(t.Context(), "ml", "chat", false)
	if d := time.Since(start); d > time.Second {
		t.Errorf("first Get took %v, want it to fail with the first failed list", d)
	}
	if err == nil || !strings.Contains(err.Error(), "listing scaledobjects.keda.sh in namespace ml") || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("Get: %v, want the list's forbidden error", err)
	}
	start = time.Now()
	if _, _, err := e.targets.Get(t.Context(), "ml", "chat", false); err == nil {
		t.Fatal("Get succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Get took %v with a known list error, want it at once", d)
	}
}

// resettableMapper learns a kind only once reset, like a discovery mapper
// after a CRD is installed.
type resettableMapper struct {
	meta.RESTMapper
	resets atomic.Int32
}

func (m *resettableMapper) Reset() {
	m.resets.Add(1)
	m.RESTMapper = testMapper()
}

// TestScaleTargetsNewKind: a kind the RESTMapper does not know resets it,
// so that CRDs installed after start are found; but not on every call.
func TestScaleTargetsNewKind(t *testing.T) {
	mapper := &resettableMapper{RESTMapper: meta.NewDefaultRESTMapper(nil)}
	e := newScaleEnv(t, mapper,
		scaledObject("ml", "canary", map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "canary"}),
		scaledObject("ml", "thing", map[string]any{"apiVersion": "example.com/v1", "kind": "Thing", "name": "x"}))
	e.scales.set("rollouts.argoproj.io/canary", 2, "app=canary")
	if cur, _ := e.get(t, "ml", "canary", false); cur != 2 {
		t.Errorf("current = %d, want 2", cur)
	}
	for range 3 {
		if _, _, err := e.targets.Get(t.Context(), "ml", "thing", false); err == nil {
			t.Error("Get of an unknown kind succeeded")
		}
	}
	if got := mapper.resets.Load(); got != 1 {
		t.Errorf("%d resets, want 1 within 30s", got)
	}
}

// TestScaleTargetsLifecycle: Get waits for Run; idle namespaces stop;
// Run once.
func TestScaleTargetsLifecycle(t *testing.T) {
	so := scaledObject("ml", "chat", map[string]any{"name": "chat-llm"})
	clock := &fakeClock{}
	sc := &scalefake.FakeScaleClient{}
	scales := &fakeScales{replicas: map[string]int32{"deployments.apps/chat-llm": 1}, selector: map[string]string{"deployments.apps/chat-llm": "app=chat"}}
	sc.AddReactor("get", "*", scales.react)
	st := NewScaleTargets(ScaleTargetClients{
		Kube:    fake.NewClientset(),
		Dynamic: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{scaledObjects(): "ScaledObjectList"}, so),
		Scales:  sc,
		Mapper:  testMapper(),
	}, ScaleTargetsOptions{Timeout: 50 * time.Millisecond, Now: clock.now})

	if _, _, err := st.Get(t.Context(), "ml", "chat", false); err == nil || !strings.Contains(err.Error(), "not running yet") {
		t.Errorf("Get before Run: %v, want not running yet", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	got := make(chan error, 1)
	go func() { _, _, err := st.Get(context.Background(), "ml", "chat", true); got <- err }()
	if err := <-got; err != nil {
		t.Fatalf("Get: %v", err)
	}
	if err := st.Run(ctx); err == nil {
		t.Error("second Run succeeded")
	}

	clock.advance(time.Minute)
	st.stopIdle(clock.now().Add(-2 * time.Minute))
	if n := testutil.ToFloat64(st.m.namespaces); n != 1 {
		t.Errorf("namespaces = %v after a recent use, want 1", n)
	}
	st.stopIdle(clock.now())
	if n := testutil.ToFloat64(st.m.namespaces); n != 0 {
		t.Errorf("namespaces = %v after idling, want 0", n)
	}
	// Used again: started again.
	if _, _, err := st.Get(t.Context(), "ml", "chat", false); err != nil {
		t.Errorf("Get after idling: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if _, _, err := st.Get(context.Background(), "ml", "chat", false); err == nil {
		t.Error("Get after Run ended succeeded")
	}
}
