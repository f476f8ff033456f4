package externalscaler

// The built-ins current and ready: the scale target of the ScaledObject,
// read through kube.ScaleTargets over client-go's fakes, and through a
// counting fake where the test is about what is read.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
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

	"github.com/k8s-nemesis/nemesis/kube"
)

const targetRules = `
ruleSets:
  - name: target
    queries:
      load: sum(load{namespace="$namespace"})
    # Never scale in below what exists while pods are still starting.
    replicas: "ready < current ? max(current, load / 4) : load / 4"
    active: current > 0 || load > 0
    max: 10
    onError: fail
  - name: current-only
    replicas: current + 1
    max: 10
    onError: fail
  - name: held
    replicas: current
    max: 10
    staleAfter: 1m
  - name: shadowed
    queries:
      current: sum(kube_deployment_spec_replicas{namespace="$namespace"})
    replicas: current
    max: 10
    onError: fail
  - name: both-sources
    replicas: max(current, inflight / 4)
    max: 10
    onError: fail
`

// fakeCluster is a namespace "ml" with ScaledObject "chat" scaling
// Deployment chat-llm, behind client-go's fakes.
type fakeCluster struct {
	kube     *fake.Clientset
	targets  *kube.ScaleTargets
	mu       sync.Mutex
	replicas int32
}

func (c *fakeCluster) scale(replicas int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.replicas = replicas
}

func newFakeCluster(t *testing.T, pods ...runtime.Object) *fakeCluster {
	t.Helper()
	so := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
		"metadata": map[string]any{"name": "chat", "namespace": "ml"},
		"spec":     map[string]any{"scaleTargetRef": map[string]any{"name": "chat-llm"}},
	}}
	gvr := schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "scaledobjects"}
	c := &fakeCluster{kube: fake.NewClientset(pods...)}
	sc := &scalefake.FakeScaleClient{}
	sc.AddReactor("get", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		name := a.(k8stesting.GetAction).GetName()
		if name != "chat-llm" || a.GetNamespace() != "ml" {
			return true, nil, apierrors.NewNotFound(a.GetResource().GroupResource(), name)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return true, &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: c.replicas}, Status: autoscalingv1.ScaleStatus{Selector: "app=chat"}}, nil
	})
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, meta.RESTScopeNamespace)
	c.targets = kube.NewScaleTargets(kube.ScaleTargetClients{
		Kube:    c.kube,
		Dynamic: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "ScaledObjectList"}, so),
		Scales:  sc,
		Mapper:  mapper,
	}, kube.ScaleTargetsOptions{ScaleTTL: time.Nanosecond, Timeout: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.targets.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func readyPod(name string, lbls map[string]string, ready, terminating bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ml", Labels: lbls}}
	s := corev1.ConditionFalse
	if ready {
		s = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: s}}
	if terminating {
		now := metav1.Now()
		p.DeletionTimestamp, p.Finalizers = &now, []string{"test/keep"}
	}
	return p
}

// TestScaleTargetBuiltins evaluates current and ready read from the fakes.
func TestScaleTargetBuiltins(t *testing.T) {
	app := map[string]string{"app": "chat"}
	c := newFakeCluster(t,
		readyPod("a", app, true, false),
		readyPod("b", app, false, false),                            // starting
		readyPod("c", app, true, true),                              // terminating
		readyPod("d", map[string]string{"app": "web"}, true, false), // another workload
	)
	q := &fakeQuerier{}
	q.value(8)
	e := newUnitServer(t, targetRules, q, Options{ScaleTargets: c.targets})
	so := ref("ml", "chat", map[string]string{"ruleSet": "target"})

	// 3 replicas, 1 ready: hold 3 although load asks for 2.
	c.scale(3)
	e.expect(t, so, 3, true)
	// The pods become ready: load decides.
	for _, name := range []string{"b", "e"} {
		p := readyPod(name, app, true, false)
		var err error
		if name == "b" {
			_, err = c.kube.CoreV1().Pods("ml").UpdateStatus(t.Context(), p, metav1.UpdateOptions{})
		} else {
			_, err = c.kube.CoreV1().Pods("ml").Create(t.Context(), p, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.clock.Add(time.Second) // past ReuseFor
		got, _, err := e.replicas(so)
		if err == nil && got == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas %d, %v with 3 of 3 pods ready, want 2", got, err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// current follows a scale change.
	so2 := ref("ml", "chat", map[string]string{"ruleSet": "current-only"})
	c.scale(4)
	e.clock.Add(time.Second)
	e.expect(t, so2, 5, true)
	c.scale(0)
	e.clock.Add(time.Second)
	e.expect(t, so2, 1, true)
}

// TestScaleTargetErrors: a ScaledObject or target that cannot be read
// fails the evaluation with reason scale_target, and onError applies;
// never a silent 0.
func TestScaleTargetErrors(t *testing.T) {
	c := newFakeCluster(t)
	c.scale(2)
	q := &fakeQuerier{}
	q.value(1)
	e := newUnitServer(t, targetRules, q, Options{ScaleTargets: c.targets})

	err := e.expectCode(t, ref("ml", "missing", map[string]string{"ruleSet": "current-only"}), codes.Unavailable)
	if !strings.Contains(err.Error(), "ScaledObject ml/missing not found") {
		t.Errorf("error %q does not say the ScaledObject is missing", err)
	}
	if got := testutil.ToFloat64(e.server.m.errors.WithLabelValues("current-only", "scale_target")); got != 1 {
		t.Errorf("evaluation_errors_total{reason=scale_target} = %v, want 1", got)
	}

	// onError: hold rides out a failure after a good decision.
	held := ref("ml", "chat", map[string]string{"ruleSet": "held"})
	e.expect(t, held, 2, true)
	e.server.opts.ScaleTargets = failingTargets{errors.New("kube: listing scaledobjects.keda.sh in namespace ml: forbidden")}
	e.clock.Add(2 * time.Second)
	e.expect(t, held, 2, true)
	if got := testutil.ToFloat64(e.server.m.holding.WithLabelValues("ml", "chat", "held")); got != 1 {
		t.Errorf("holding = %v, want 1", got)
	}
	e.clock.Add(time.Minute)
	if err := e.expectCode(t, held, codes.Unavailable); !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("error %q does not carry the cause", err)
	}
}

// failingTargets fails every Get.
type failingTargets struct{ err error }

func (f failingTargets) Get(context.Context, string, string, bool) (int64, int64, error) {
	return 0, 0, f.err
}

// countingTargets answers every Get with fixed values and records the
// calls.
type countingTargets struct {
	mu    sync.Mutex
	calls []string
}

func (c *countingTargets) Get(_ context.Context, namespace, name string, withReady bool) (int64, int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	call := namespace + "/" + name
	if withReady {
		call += "+ready"
	}
	c.calls = append(c.calls, call)
	return 3, 2, nil
}

func (c *countingTargets) called() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

// TestScaleTargetReadsWhatIsUsed: only rule sets that use current or
// ready read the scale target, ready only when used; a query named
// current shadows the built-in.
func TestScaleTargetReadsWhatIsUsed(t *testing.T) {
	q := &fakeQuerier{}
	q.value(7)
	targets := &countingTargets{}
	e := newUnitServer(t, targetRules+unitRules[len("\nruleSets:\n"):], q, Options{ScaleTargets: targets})

	e.expect(t, ref("ml", "a", map[string]string{"ruleSet": "shadowed"}), 7, true)
	e.expect(t, ref("ml", "b", map[string]string{"ruleSet": "fail"}), 2, true)
	if got := targets.called(); len(got) != 0 {
		t.Errorf("read scale targets %v for rule sets that do not use them", got)
	}
	e.expect(t, ref("ml", "c", map[string]string{"ruleSet": "current-only"}), 4, true)
	e.expect(t, ref("ml", "d", map[string]string{"ruleSet": "target"}), 3, true)
	if got, want := targets.called(), []string{"ml/c", "ml/d+ready"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("reads %v, want %v", got, want)
	}
}

// TestScaleTargetWithoutKubernetes: no Kubernetes access is an error that
// says how to give it.
func TestScaleTargetWithoutKubernetes(t *testing.T) {
	q := &fakeQuerier{}
	q.value(1)
	d := newFakeDemand()
	d.set("ml", "so", 8, 0)
	e := newUnitServer(t, targetRules, q, Options{Demand: d})
	err := e.expectCode(t, ref("ml", "so", map[string]string{"ruleSet": "current-only"}), codes.Unavailable)
	if !strings.Contains(err.Error(), "--kubeconfig") {
		t.Errorf("error %q does not say to use --kubeconfig", err)
	}
	e.expectCode(t, ref("ml", "so", map[string]string{"ruleSet": "both-sources"}), codes.Unavailable)
	if got := testutil.ToFloat64(e.server.m.errors.WithLabelValues("both-sources", "scale_target")); got != 1 {
		t.Errorf("evaluation_errors_total{reason=scale_target} = %v, want 1", got)
	}
	// With both sources: both read.
	e = newUnitServer(t, targetRules, q, Options{Demand: d, ScaleTargets: &countingTargets{}})
	e.expect(t, ref("ml", "so", map[string]string{"ruleSet": "both-sources"}), 3, true)
}
