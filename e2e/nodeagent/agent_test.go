package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestAgentRunsPod follows one pod through its life: bound, given an
// address, started with its environment, token and ConfigMap volume,
// Ready once its readiness endpoint is, reachable through the bridge,
// kept in step with a ConfigMap edit, and on graceful deletion given its
// preStop hook and SIGTERM, torn down and deleted.
func TestAgentRunsPod(t *testing.T) {
	e := startAgent(t)
	ctx := context.Background()
	cfgDir := filepath.Join(t.TempDir(), "etc", "rules")
	if _, err := e.client.CoreV1().ConfigMaps(testNamespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "rules", Namespace: testNamespace},
		Data:       map[string]string{"rules.yaml": "version: 1"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	pod := podServerPod("web")
	c := &pod.Spec.Containers[0]
	c.Env = []corev1.EnvVar{
		{Name: "GREETING", Value: "hello"},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: "RULES_VERSION", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "rules"}, Key: "rules.yaml"}}},
	}
	c.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http")}},
		PeriodSeconds: 1,
	}
	c.LivenessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1,
	}
	c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
		HTTPGet: &corev1.HTTPGetAction{Path: "/prestop", Port: intstr.FromString("http")},
	}}
	c.VolumeMounts = []corev1.VolumeMount{{Name: "rules", MountPath: cfgDir}}
	pod.Spec.Volumes = []corev1.Volume{{Name: "rules", VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "rules"}},
	}}}
	grace := int64(5)
	pod.Spec.TerminationGracePeriodSeconds = &grace
	e.createPod(pod)

	var podIP netip.Addr
	e.eventually("the pod is bound, addressed and running", 30*time.Second, func() error {
		p, err := e.getPod("web")
		if err != nil {
			return err
		}
		if p.Spec.NodeName != testNode {
			return fmt.Errorf("nodeName %q", p.Spec.NodeName)
		}
		if p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("phase %q", p.Status.Phase)
		}
		if podIP, err = netip.ParseAddr(p.Status.PodIP); err != nil {
			return err
		}
		return nil
	})
	p, _ := e.getPod("web")
	if !e.cfg.PodCIDR.Contains(podIP) || podIP == e.cfg.Gateway || podIP.As4()[2] == 0 {
		t.Fatalf("pod IP %v: want an address of %v from .1.1 upward", podIP, e.cfg.PodCIDR)
	}
	if p.Status.HostIP != e.cfg.Gateway.String() || p.Status.StartTime == nil {
		t.Fatalf("hostIP %q, startTime %v", p.Status.HostIP, p.Status.StartTime)
	}
	if isReady(p) {
		t.Fatal("Ready before the readiness endpoint is")
	}
	cs := p.Status.ContainerStatuses
	if len(cs) != 1 || cs[0].State.Running == nil || !strings.HasPrefix(cs[0].ContainerID, "nemesis://") || cs[0].Ready {
		t.Fatalf("container status %+v", cs)
	}

	base := "http://" + netip.AddrPortFrom(podIP, 8080).String()
	e.eventually("the pod answers from the host", 10*time.Second, func() error {
		_, err := httpGetBody(base + "/healthz")
		return err
	})
	for what, want := range map[string]string{
		"/env?name=GREETING":                              "hello",
		"/env?name=POD_NAME":                              "web",
		"/env?name=POD_IP":                                podIP.String(),
		"/env?name=RULES_VERSION":                         "version: 1",
		"/env?name=KUBERNETES_SERVICE_HOST":               e.cfg.Gateway.String(),
		"/env?name=KUBERNETES_SERVICE_PORT":               "6443",
		"/hostname":                                       "web",
		"/file?path=" + serviceAccountPath + "/token":     "token-of-ns1-for-web-",
		"/file?path=" + serviceAccountPath + "/namespace": testNamespace,
		"/file?path=" + serviceAccountPath + "/ca.crt":    string(e.cfg.CACert),
		"/file?path=" + cfgDir + "/rules.yaml":            "version: 1",
	} {
		got, err := httpGetBody(base + what)
		if err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", what, got, err, want)
		}
	}

	// Readiness: Ready soon after the endpoint turns OK.
	resp, err := http.Post(base+"/set-ready", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	turned := time.Now()
	e.eventually("the pod turns Ready", 10*time.Second, func() error {
		p, err := e.getPod("web")
		if err != nil {
			return err
		}
		if !isReady(p) || !p.Status.ContainerStatuses[0].Ready {
			return errors.New("not Ready")
		}
		return nil
	})
	t.Logf("Ready %v after the readiness endpoint turned OK", time.Since(turned).Round(time.Millisecond))

	// A ConfigMap edit reaches the mounted volume.
	cm, _ := e.client.CoreV1().ConfigMaps(testNamespace).Get(ctx, "rules", metav1.GetOptions{})
	cm = cm.DeepCopy()
	cm.Data["rules.yaml"] = "version: 2"
	if _, err := e.client.CoreV1().ConfigMaps(testNamespace).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	edited := time.Now()
	e.eventually("the pod sees the ConfigMap edit", 10*time.Second, func() error {
		got, err := httpGetBody(base + "/file?path=" + cfgDir + "/rules.yaml")
		if err != nil {
			return err
		}
		if got != "version: 2" {
			return fmt.Errorf("rules.yaml %q", got)
		}
		return nil
	})
	t.Logf("ConfigMap edit seen in the pod after %v", time.Since(edited).Round(time.Millisecond))

	// Graceful deletion.
	pidText, err := httpGetBody(base + "/pid")
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(pidText)
	e.deleteGracefully("web", grace)
	e.eventually("the pod object is deleted", 30*time.Second, func() error {
		_, err := e.getPod("web")
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %v", err)
	})
	log, err := os.ReadFile(filepath.Join(e.stateDir, "ns1_web_server.log"))
	if err != nil {
		t.Fatal(err)
	}
	preStop, sigterm := strings.Index(string(log), "preStop hook called"), strings.Index(string(log), "got SIGTERM")
	if preStop < 0 || sigterm < preStop || !strings.Contains(string(log), "podserver stopped") {
		t.Errorf("the container did not get its preStop hook, then SIGTERM; its log:\n%s", log)
	}
	if err := processGone(pid); err != nil {
		t.Error(err)
	}
	if left := netnsNames(t, e.prefix); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if len(e.events("Started")) == 0 || len(e.events("Scheduled")) == 0 || len(e.events("Killing")) == 0 {
		t.Errorf("missing Scheduled, Started or Killing events")
	}
}

// TestAgentRestarts checks restart policies: a crashing container is
// restarted with back-off and counted; one that may not restart leaves
// its pod Succeeded or Failed with the exit code.
func TestAgentRestarts(t *testing.T) {
	e := startAgent(t)
	tests := map[string]struct {
		policy       corev1.RestartPolicy
		exitCode     string
		wantPhase    corev1.PodPhase
		wantRestarts int32
	}{
		"always restarts":          {policy: corev1.RestartPolicyAlways, exitCode: "3", wantPhase: corev1.PodRunning, wantRestarts: 2},
		"on failure, success ends": {policy: corev1.RestartPolicyOnFailure, exitCode: "0", wantPhase: corev1.PodSucceeded},
		"never, failure ends":      {policy: corev1.RestartPolicyNever, exitCode: "3", wantPhase: corev1.PodFailed},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			podName := strings.ReplaceAll(strings.ReplaceAll(name, " ", "-"), ",", "")
			pod := podServerPod(podName, "--exit-after=200ms", "--exit-code="+tc.exitCode, "--listen=127.0.0.1:8080")
			pod.Spec.RestartPolicy = tc.policy
			e.createPod(pod)
			e.eventually("the pod gets to its phase and restarts", 30*time.Second, func() error {
				p, err := e.getPod(podName)
				if err != nil {
					return err
				}
				if p.Status.Phase != tc.wantPhase || len(p.Status.ContainerStatuses) != 1 {
					return fmt.Errorf("phase %q", p.Status.Phase)
				}
				cs := p.Status.ContainerStatuses[0]
				if cs.RestartCount < tc.wantRestarts {
					return fmt.Errorf("restartCount %d", cs.RestartCount)
				}
				term := cs.State.Terminated
				if tc.wantPhase == corev1.PodRunning {
					term = cs.LastTerminationState.Terminated
				}
				if term == nil || strconv.Itoa(int(term.ExitCode)) != tc.exitCode {
					return fmt.Errorf("terminated state %+v", term)
				}
				return nil
			})
		})
	}
}

// TestAgentLivenessRestart checks that a failing liveness probe restarts
// the container.
func TestAgentLivenessRestart(t *testing.T) {
	e := startAgent(t)
	pod := podServerPod("sick", "--healthy-for=500ms")
	grace := int64(1)
	pod.Spec.TerminationGracePeriodSeconds = &grace
	pod.Spec.Containers[0].LivenessProbe = &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
		PeriodSeconds:    1,
		FailureThreshold: 1,
	}
	e.createPod(pod)
	e.eventually("the container is restarted", 30*time.Second, func() error {
		p, err := e.getPod("sick")
		if err != nil {
			return err
		}
		if len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].RestartCount < 1 {
			return errors.New("not restarted")
		}
		return nil
	})
	if len(e.events("Unhealthy")) == 0 {
		t.Error("no Unhealthy event")
	}
}

// TestAgentUnknownImage checks that a pod whose image has no binary waits
// with ErrImagePull and a Warning event, and does not hurt the agent.
func TestAgentUnknownImage(t *testing.T) {
	e := startAgent(t)
	pod := podServerPod("nope")
	pod.Spec.Containers[0].Image = "registry.example/nope:1"
	e.createPod(pod)
	e.eventually("the container waits with ErrImagePull", 10*time.Second, func() error {
		p, err := e.getPod("nope")
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodPending || len(p.Status.ContainerStatuses) != 1 {
			return fmt.Errorf("phase %q", p.Status.Phase)
		}
		if w := p.Status.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "ErrImagePull" {
			return fmt.Errorf("state %+v", p.Status.ContainerStatuses[0].State)
		}
		if len(e.events("Failed")) == 0 {
			return errors.New("no Failed event")
		}
		return nil
	})
	// The agent still runs pods.
	e.createPod(podServerPod("fine", "--ready"))
	e.eventually("another pod runs", 30*time.Second, func() error {
		p, err := e.getPod("fine")
		if err != nil {
			return err
		}
		if !isReady(p) {
			return errors.New("not Ready")
		}
		return nil
	})
}

// TestAgentHostNetwork checks a hostNetwork pod: it runs in the host's
// namespace with the gateway as its address.
func TestAgentHostNetwork(t *testing.T) {
	e := startAgent(t)
	port := 20000 + int(time.Now().UnixNano()%20000)
	pod := podServerPod("hostnet", "--ready", "--listen="+netip.AddrPortFrom(e.cfg.Gateway, uint16(port)).String())
	pod.Spec.HostNetwork = true
	pod.Spec.Containers[0].Ports[0].ContainerPort = int32(port)
	pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}},
		PeriodSeconds: 1,
	}
	e.createPod(pod)
	e.eventually("the pod is Ready at the gateway address", 30*time.Second, func() error {
		p, err := e.getPod("hostnet")
		if err != nil {
			return err
		}
		if p.Status.PodIP != e.cfg.Gateway.String() || !isReady(p) {
			return fmt.Errorf("podIP %q, ready %v", p.Status.PodIP, isReady(p))
		}
		return nil
	})
	got, err := httpGetBody(fmt.Sprintf("http://%s/file?path=%s/namespace", netip.AddrPortFrom(e.cfg.Gateway, uint16(port)), serviceAccountPath))
	if err != nil || got != testNamespace {
		t.Errorf("service account namespace file: %q, %v", got, err)
	}
}

// TestAgentStopKillsEverything checks that when Run returns, the pods'
// processes are dead and their namespaces and veths gone.
func TestAgentStopKillsEverything(t *testing.T) {
	e := startAgent(t)
	var pids []int
	for _, name := range []string{"a", "b"} {
		e.createPod(podServerPod(name, "--ready"))
	}
	for _, name := range []string{"a", "b"} {
		e.eventually("pod "+name+" runs", 30*time.Second, func() error {
			p, err := e.getPod(name)
			if err != nil {
				return err
			}
			if len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Running == nil {
				return errors.New("not running")
			}
			pid, err := strconv.Atoi(strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "nemesis://"))
			if err != nil {
				return err
			}
			pids = append(pids, pid)
			return nil
		})
	}
	if len(netnsNames(t, e.prefix)) != 4 { // two namespaces, two veths
		t.Fatalf("namespaces and veths: %v", netnsNames(t, e.prefix))
	}
	e.stop()
	for _, pid := range pids {
		if err := processGone(pid); err != nil {
			t.Error(err)
		}
	}
	if left := netnsNames(t, e.prefix); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestCleanup checks that Cleanup removes a dead run's namespaces, veths
// and the processes in them, and nothing else.
func TestCleanup(t *testing.T) {
	requireRoot(t)
	prefix := "nmt" + randHex(t, 5)
	other := "nmo" + randHex(t, 5)
	netns, veth := networkNames(prefix, "some-uid")
	otherNetns, _ := networkNames(other, "some-uid")
	t.Cleanup(func() {
		_ = Cleanup(prefix)
		_ = Cleanup(other)
	})
	run(t, "ip", "netns", "add", netns)
	run(t, "ip", "netns", "add", otherNetns)
	run(t, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
	cmd := execInNetns(t, netns)

	if err := Cleanup(prefix); err != nil {
		t.Fatal(err)
	}
	if left := netnsNames(t, prefix); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if got := netnsNames(t, other); len(got) != 1 {
		t.Errorf("another prefix's namespace: %v", got)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("the process in the namespace survived")
	}
	if err := Cleanup("-bad"); err == nil {
		t.Error("a bad prefix was accepted")
	}
}

// TestAgentKillsAfterGrace checks that a container ignoring SIGTERM gets
// SIGKILL after the grace period, with the rest of its process group.
func TestAgentKillsAfterGrace(t *testing.T) {
	e := startAgent(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "stubborn", Namespace: testNamespace},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:    "sh",
			Image:   "shell",
			Command: []string{"sh", "-c", "trap '' TERM; sleep 600 & echo $! > child.pid; wait; wait"},
		}}},
	}
	e.createPod(pod)
	var pid int
	e.eventually("the pod runs", 30*time.Second, func() error {
		p, err := e.getPod("stubborn")
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Running == nil {
			return fmt.Errorf("phase %q", p.Status.Phase)
		}
		pid, err = strconv.Atoi(strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "nemesis://"))
		return err
	})
	var childPid int
	e.eventually("the container's child is started", 10*time.Second, func() error {
		matches, _ := filepath.Glob(filepath.Join(e.stateDir, "*stubborn*", "child.pid"))
		if len(matches) != 1 {
			return errors.New("no child.pid")
		}
		b, err := os.ReadFile(matches[0])
		if err != nil {
			return err
		}
		childPid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err
	})
	deleted := time.Now()
	e.deleteGracefully("stubborn", 1)
	e.eventually("the pod object is deleted", 30*time.Second, func() error {
		if _, err := e.getPod("stubborn"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there: %v", err)
		}
		return nil
	})
	if took := time.Since(deleted); took < minStopGrace {
		t.Errorf("deleted after %v: SIGTERM was not ignored for the minimum grace", took)
	}
	for _, p := range []int{pid, childPid} {
		e.eventually(fmt.Sprintf("process %d is dead", p), 10*time.Second, func() error { return processGone(p) })
	}
}
