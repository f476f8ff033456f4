package nodeagent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const (
	testNode      = "nemesis-test"
	testNamespace = "ns1"
	podServerImg  = "podserver:test"
)

var podsGVR = corev1.SchemeGroupVersion.WithResource("pods")

// podServerDir holds the binary of testdata/podserver; TestMain removes it.
var podServerDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nodeagent-podserver-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	podServerDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// podServer builds testdata/podserver once per test binary, when a test
// first needs it.
var podServer = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(podServerDir, "podserver")
	out, err := exec.Command("go", "build", "-o", bin, "./testdata/podserver").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building the pod server: %v: %s", err, out)
	}
	return bin, nil
})

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: the node agent makes network namespaces, veths and bridges, which needs root")
	}
}

func randHex(t *testing.T, n int) string {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)[:n]
}

// testEnv is a running agent on a bridge of its own, with a fake API.
type testEnv struct {
	t        *testing.T
	client   *fake.Clientset
	cfg      Config
	prefix   string
	stateDir string
	cancel   context.CancelFunc
	done     chan error
}

// freeSubnet picks a 10.x.0.0/16, x in 200..249, that no interface of the
// host has an address in.
func freeSubnet(t *testing.T) (netip.Prefix, netip.Addr) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		b := make([]byte, 1)
		_, _ = rand.Read(b)
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200 + b[0]%50, 0, 0}), 16)
		used := false
		for _, a := range addrs {
			if ipnet, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipnet.IP); ok && p.Contains(ip.Unmap()) {
					used = true
				}
			}
		}
		if !used {
			return p, netip.AddrFrom4([4]byte{10, p.Addr().As4()[1], 0, 1})
		}
	}
	t.Fatal("no free 10.x.0.0/16 subnet")
	return netip.Prefix{}, netip.Addr{}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// startAgent makes a bridge and starts an agent on it with a fake
// clientset. Everything is removed when the test ends, failed or not.
func startAgent(t *testing.T) *testEnv {
	t.Helper()
	requireRoot(t)
	bin, err := podServer()
	if err != nil {
		t.Fatal(err)
	}
	cidr, gateway := freeSubnet(t)
	prefix := "nmt" + randHex(t, 5)
	bridge := "nmtbr" + randHex(t, 6)
	run(t, "ip", "link", "add", bridge, "type", "bridge")
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "link", "del", bridge).CombinedOutput(); err != nil {
			t.Errorf("removing bridge %s: %v: %s", bridge, err, out)
		}
	})
	run(t, "ip", "addr", "add", netip.PrefixFrom(gateway, 16).String(), "dev", bridge)
	run(t, "ip", "link", "set", bridge, "up")

	client := fake.NewClientset()
	addFakeReactors(client)
	stateDir := t.TempDir()
	cfg := Config{
		Client:        client,
		NodeName:      testNode,
		Bridge:        bridge,
		Gateway:       gateway,
		PodCIDR:       cidr,
		Images:        map[string]string{podServerImg: bin, "shell": "/bin/sh"},
		StateDir:      stateDir,
		APIServerHost: gateway.String(),
		APIServerPort: 6443,
		CACert:        []byte("-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n"),
		NamePrefix:    prefix,
		Logger:        slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	env := &testEnv{t: t, client: client, cfg: cfg, prefix: prefix, stateDir: stateDir, cancel: cancel, done: make(chan error, 1)}
	go func() { env.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		env.stop()
		if err := Cleanup(prefix); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
	})
	env.eventually("the node is Ready with a lease", 10*time.Second, func() error {
		node, err := client.CoreV1().Nodes().Get(ctx, testNode, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !nodeReady(node) {
			return fmt.Errorf("node not Ready: %+v", node.Status.Conditions)
		}
		_, err = client.CoordinationV1().Leases(nodeLeaseNamespace).Get(ctx, testNode, metav1.GetOptions{})
		return err
	})
	if _, err := client.CoreV1().ServiceAccounts(testNamespace).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: testNamespace},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return env
}

// stop stops the agent and checks that Run returned nil in time.
func (e *testEnv) stop() {
	e.t.Helper()
	e.cancel()
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("Run: %v", err)
		}
		e.done <- nil // a second stop returns at once
	case <-time.After(30 * time.Second):
		e.t.Errorf("Run did not return 30 s after its context ended")
	}
}

// testWriter sends the agent's logs to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// addFakeReactors fills in what the fake clientset lacks of the API
// server: the Binding subresource sets spec.nodeName, status updates
// change only the status (as the status subresource does), and the
// TokenRequest subresource returns a token.
func addFakeReactors(client *fake.Clientset) {
	tracker := client.Tracker()
	client.PrependReactor("create", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		ca, ok := action.(k8stesting.CreateAction)
		if !ok || ca.GetSubresource() != "binding" {
			return false, nil, nil
		}
		b := ca.GetObject().(*corev1.Binding)
		obj, err := tracker.Get(podsGVR, ca.GetNamespace(), b.Name)
		if err != nil {
			return true, nil, err
		}
		pod := obj.(*corev1.Pod).DeepCopy()
		if pod.Spec.NodeName != "" {
			return true, nil, apierrors.NewConflict(podsGVR.GroupResource(), b.Name, fmt.Errorf("pod %s is already assigned to node %q", b.Name, pod.Spec.NodeName))
		}
		pod.Spec.NodeName = b.Target.Name
		pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{
			Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now().Rfc3339Copy(),
		})
		return true, b, tracker.Update(podsGVR, pod, ca.GetNamespace())
	})
	client.PrependReactor("update", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		ua, ok := action.(k8stesting.UpdateAction)
		if !ok || ua.GetSubresource() != "status" {
			return false, nil, nil
		}
		in := ua.GetObject().(*corev1.Pod)
		obj, err := tracker.Get(podsGVR, ua.GetNamespace(), in.Name)
		if err != nil {
			return true, nil, err
		}
		pod := obj.(*corev1.Pod).DeepCopy()
		if pod.UID != in.UID {
			return true, nil, apierrors.NewConflict(podsGVR.GroupResource(), in.Name, fmt.Errorf("UID mismatch"))
		}
		pod.Status = *in.Status.DeepCopy()
		if err := tracker.Update(podsGVR, pod, ua.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, pod, nil
	})
	client.PrependReactor("create", "serviceaccounts", func(action k8stesting.Action) (bool, runtime.Object, error) {
		ca, ok := action.(k8stesting.CreateAction)
		if !ok || ca.GetSubresource() != "token" {
			return false, nil, nil
		}
		tr := ca.GetObject().(*authenticationv1.TokenRequest).DeepCopy()
		ref := tr.Spec.BoundObjectRef
		if ref == nil || ref.Kind != "Pod" || ref.UID == "" {
			return true, nil, apierrors.NewBadRequest("token request not bound to a pod")
		}
		tr.Status = authenticationv1.TokenRequestStatus{
			Token:               fmt.Sprintf("token-of-%s-for-%s-%s", ca.GetNamespace(), ref.Name, strings.Join(tr.Spec.Audiences, ",")),
			ExpirationTimestamp: metav1.NewTime(time.Now().Add(time.Duration(*tr.Spec.ExpirationSeconds) * time.Second)),
		}
		return true, tr, nil
	})
}

// eventually polls check every 20 ms until it returns nil, and fails the
// test with its last error after timeout.
func (e *testEnv) eventually(what string, timeout time.Duration, check func() error) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not after %v: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *testEnv) getPod(name string) (*corev1.Pod, error) {
	return e.client.CoreV1().Pods(testNamespace).Get(context.Background(), name, metav1.GetOptions{})
}

func (e *testEnv) createPod(pod *corev1.Pod) {
	e.t.Helper()
	if pod.Namespace == "" {
		pod.Namespace = testNamespace
	}
	if pod.UID == "" {
		pod.UID = types.UID("uid-" + pod.Name + "-" + randHex(e.t, 8))
	}
	if _, err := e.client.CoreV1().Pods(pod.Namespace).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// deleteGracefully does what the API server does on a graceful delete of a
// pod bound to a node: it sets deletionTimestamp and
// deletionGracePeriodSeconds and leaves removal to the kubelet.
func (e *testEnv) deleteGracefully(name string, grace int64) {
	e.t.Helper()
	obj, err := e.client.Tracker().Get(podsGVR, testNamespace, name)
	if err != nil {
		e.t.Fatal(err)
	}
	pod := obj.(*corev1.Pod).DeepCopy()
	now := metav1.Now()
	pod.DeletionTimestamp = &now
	pod.DeletionGracePeriodSeconds = &grace
	if err := e.client.Tracker().Update(podsGVR, pod, testNamespace); err != nil {
		e.t.Fatal(err)
	}
}

// podServerPod is a pod running the test's HTTP server on port 8080.
func podServerPod(name string, args ...string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyAlways,
			Containers: []corev1.Container{{
				Name:  "server",
				Image: podServerImg,
				Args:  args,
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			}},
		},
	}
}

// httpGetBody GETs url from the host and returns the body of a 200.
func httpGetBody(url string) (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b), nil
}

func podCondition(pod *corev1.Pod, typ corev1.PodConditionType) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == typ {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

func isReady(pod *corev1.Pod) bool {
	c := podCondition(pod, corev1.PodReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

// netnsNames lists the network namespaces and links whose names start with
// prefix.
func netnsNames(t *testing.T, prefix string) []string {
	t.Helper()
	var names []string
	for _, args := range [][]string{{"netns", "list"}, {"-o", "link", "show"}} {
		out, err := exec.Command("ip", args...).Output()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(out)) {
			f := strings.Fields(line)
			for _, name := range f[:min(len(f), 2)] {
				name = strings.TrimSuffix(name, ":")
				name, _, _ = strings.Cut(name, "@")
				if strings.HasPrefix(name, prefix) {
					names = append(names, name)
				}
			}
		}
	}
	return names
}

func (e *testEnv) events(reason string) []corev1.Event {
	list, err := e.client.CoreV1().Events(testNamespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []corev1.Event
	for _, ev := range list.Items {
		if ev.Reason == reason {
			out = append(out, ev)
		}
	}
	return out
}

// execInNetns starts a long sleep in a network namespace; it is killed
// when the test ends if it still runs.
func execInNetns(t *testing.T, netns string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", netns, "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	time.Sleep(100 * time.Millisecond) // let ip enter the namespace and exec sleep
	return cmd
}

// processGone returns nil if pid has exited: no such process, or a zombie
// waiting for init (orphans are reaped by PID 1, in its own time).
func processGone(pid int) error {
	err := syscall.Kill(pid, 0)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	b, rerr := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if rerr != nil {
		return nil
	}
	// "pid (comm) S ...": the state follows the last ')'.
	if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
		return nil
	}
	return fmt.Errorf("process %d is still running (kill: %v)", pid, err)
}
