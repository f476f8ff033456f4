package nodeagent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// workerEvent is something that happened to a container instance, sent to
// its pod's worker: the process exited, or a probe result changed.
type workerEvent struct {
	c        *containerRun
	instance int
	exited   *exitStatus
	probe    *probeUpdate
}

// worker runs one pod: its sandbox (network namespace, directory,
// volumes), its containers, their probes, its status and its termination.
// All of its state is owned by its run goroutine; other goroutines talk to
// it through latest, gone, notify and events.
type worker struct {
	a        *Agent
	uid      types.UID
	ns, name string
	log      *slog.Logger

	latest  atomic.Pointer[corev1.Pod] // newest pod from the informer
	gone    atomic.Bool                // the pod was deleted from the API
	notify  chan struct{}              // something changed: sync
	events  chan workerEvent
	stopped chan struct{} // closed when the worker stops taking events

	// Owned by the run goroutine.
	ctx          context.Context // the run context, for the goroutines it starts
	cur          *corev1.Pod     // newest known pod: the informer's or our last write
	spec         *corev1.PodSpec // the spec at start; the parts used do not change
	dir          string
	ip           netip.Addr
	ipReserved   bool
	net          *podNetwork
	sandboxReady bool
	autoSA       *bool // whether to mount a token at the service account path; nil: not decided
	initCs, cs   []*containerRun
	initDone     bool
	startTime    metav1.Time
	terminating  bool
	killDeadline time.Time
	terminal     corev1.PodPhase // Succeeded or Failed once the pod is finished
	tokens       map[tokenKey]*token
	reported     map[string]bool // warnings already made events
	bg           sync.WaitGroup  // stop and kill goroutines
}

func newWorker(a *Agent, pod *corev1.Pod) *worker {
	w := &worker{
		a:        a,
		uid:      pod.UID,
		ns:       pod.Namespace,
		name:     pod.Name,
		log:      a.log.With("pod", pod.Namespace+"/"+pod.Name),
		notify:   make(chan struct{}, 1),
		events:   make(chan workerEvent, 64),
		stopped:  make(chan struct{}),
		spec:     pod.Spec.DeepCopy(),
		tokens:   map[tokenKey]*token{},
		reported: map[string]bool{},
	}
	w.latest.Store(pod)
	w.dir = filepath.Join(a.stateDir, fmt.Sprintf("%s-%s_%s_%s", a.cfg.NamePrefix, pod.Namespace, pod.Name, shortUID(pod.UID)))
	prev := map[string]corev1.ContainerStatus{}
	for _, st := range append(append([]corev1.ContainerStatus(nil), pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		prev[st.Name] = st
	}
	for i := range w.spec.InitContainers {
		w.initCs = append(w.initCs, newContainerRun(&w.spec.InitContainers[i], true, prev))
	}
	for i := range w.spec.Containers {
		w.cs = append(w.cs, newContainerRun(&w.spec.Containers[i], false, prev))
	}
	w.initDone = len(w.initCs) == 0
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		// Finished before this agent started: nothing to run.
		w.terminal = pod.Status.Phase
	}
	if ip, err := netip.ParseAddr(pod.Status.PodIP); err == nil {
		w.ip = ip
	}
	return w
}

func shortUID(uid types.UID) string {
	s := string(uid)
	if len(s) > 8 {
		s = s[:8]
	}
	return s
}

// update hands the worker a newer pod from the informer.
func (w *worker) update(pod *corev1.Pod) {
	w.latest.Store(pod)
	w.poke()
}

// markGone tells the worker its pod was deleted from the API.
func (w *worker) markGone() {
	w.gone.Store(true)
	w.poke()
}

// poke makes the worker sync soon.
func (w *worker) poke() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// send delivers an event from a helper goroutine; it is dropped once the
// worker has stopped.
func (w *worker) send(ev workerEvent) {
	select {
	case w.events <- ev:
	case <-w.stopped:
	}
}

// run syncs the pod whenever something changes until the pod is finished
// and deleted, or ctx ends; then it kills what is left and removes what it
// made.
func (w *worker) run(ctx context.Context) {
	w.ctx = ctx
	defer w.cleanup()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next, finished := w.sync(ctx)
		if finished || ctx.Err() != nil {
			return
		}
		timer.Reset(max(time.Until(next), 0))
		select {
		case <-ctx.Done():
			return
		case <-w.notify:
		case ev := <-w.events:
			w.handle(ev)
		case <-timer.C:
		}
		for drained := false; !drained; { // take in all that is pending, sync once
			select {
			case ev := <-w.events:
				w.handle(ev)
			case <-w.notify:
			default:
				drained = true
			}
		}
	}
}

// sync brings the pod one step closer to what its object asks for and
// reports its status. It returns when to sync again at the latest, and
// whether the worker is done.
func (w *worker) sync(ctx context.Context) (time.Time, bool) {
	now := time.Now()
	if pod := w.latest.Load(); pod != nil && (w.cur == nil || !olderThan(pod, w.cur)) {
		w.cur = pod
	}
	if w.gone.Load() {
		w.log.Info("pod deleted from the API; stopping its containers")
		return now, true
	}
	if w.cur.DeletionTimestamp != nil && !w.terminating {
		w.beginTermination(now)
	}
	if w.terminating {
		return w.syncTerminating(ctx, now)
	}
	if w.terminal != "" {
		next := now.Add(resyncPeriod)
		if err := w.writeStatus(ctx); err != nil {
			next = now.Add(time.Second)
		}
		return next, false
	}
	return w.syncRunning(ctx, now), false
}

// olderThan reports whether a's resourceVersion is lower than b's. Resource
// versions are opaque, but etcd's are integers; when either is not, the
// informer's copy wins.
func olderThan(a, b *corev1.Pod) bool {
	x, err1 := strconv.ParseUint(a.ResourceVersion, 10, 64)
	y, err2 := strconv.ParseUint(b.ResourceVersion, 10, 64)
	return err1 == nil && err2 == nil && x < y
}

// syncRunning makes the sandbox, writes the volumes, starts and restarts
// containers and reports the status.
func (w *worker) syncRunning(ctx context.Context, now time.Time) time.Time {
	next := now.Add(resyncPeriod)
	if w.startTime.IsZero() {
		w.startTime = metav1.NewTime(now).Rfc3339Copy()
	}
	if err := w.ensureSandbox(ctx); err != nil {
		if ctx.Err() != nil {
			return next
		}
		if w.warnOnce("FailedCreatePodSandBox", "", fmt.Sprintf("Failed to create pod sandbox: %v", err)) {
			w.log.Warn("creating the pod sandbox failed; retrying", "err", err)
		}
		_ = w.writeStatus(ctx)
		return now.Add(2 * time.Second)
	}
	if err := w.syncVolumes(ctx); err != nil {
		if ctx.Err() != nil {
			return next
		}
		if w.warnOnce("FailedMount", "", fmt.Sprintf("MountVolume.SetUp failed: %v", err)) {
			w.log.Warn("setting up volumes failed; retrying", "err", err)
		}
		if w.anyNeverStarted() {
			// A container must not start without its volumes; running ones
			// keep their last good version.
			_ = w.writeStatus(ctx)
			return now.Add(time.Second)
		}
		next = now.Add(time.Second)
	}
	if t := w.tokenRefreshAt(); !t.IsZero() && t.Before(next) {
		next = t
	}
	if t := w.syncContainers(ctx, now); t.Before(next) {
		next = t
	}
	if err := w.writeStatus(ctx); err != nil && now.Add(time.Second).Before(next) {
		next = now.Add(time.Second)
	}
	return next
}

// ensureSandbox makes the pod's directory and network namespace once.
func (w *worker) ensureSandbox(ctx context.Context) error {
	if w.sandboxReady {
		return nil
	}
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return fmt.Errorf("making the pod directory: %w", err)
	}
	if w.spec.HostNetwork {
		w.ip = w.a.cfg.Gateway
		w.sandboxReady = true
		return nil
	}
	if !w.ipReserved {
		ip, err := w.a.ipam.allocate(w.ns+"/"+w.name, w.ip)
		if err != nil {
			return err
		}
		w.ip, w.ipReserved = ip, true
	}
	n, err := setupNetwork(ctx, w.a.tools.ip, w.a.cfg.NamePrefix, string(w.uid), w.a.cfg.Bridge,
		w.ip, w.a.cfg.PodCIDR.Bits(), w.a.cfg.Gateway)
	if err != nil {
		return err
	}
	w.net = n
	w.sandboxReady = true
	w.log.Debug("pod sandbox ready", "ip", w.ip, "netns", n.netns)
	return nil
}

// beginTermination starts stopping the pod's containers: each runs its
// preStop hook, gets SIGTERM, and SIGKILL at the end of the grace period.
func (w *worker) beginTermination(now time.Time) {
	w.terminating = true
	grace := 30 * time.Second
	if s := w.cur.DeletionGracePeriodSeconds; s != nil {
		grace = time.Duration(*s) * time.Second
	}
	w.killDeadline = now.Add(grace)
	w.log.Info("pod deleted; stopping its containers", "grace", grace)
	for _, c := range w.all() {
		if c.proc == nil {
			continue
		}
		w.event(c, corev1.EventTypeNormal, "Killing", fmt.Sprintf("Stopping container %s", c.spec.Name))
		w.stopContainer(c, w.killDeadline)
	}
}

// syncTerminating waits for the containers of a deleted pod to exit, then
// reports their final status, removes the sandbox and deletes the pod
// object (grace period 0, UID precondition), as the kubelet does.
func (w *worker) syncTerminating(ctx context.Context, now time.Time) (time.Time, bool) {
	for _, c := range w.all() {
		if c.proc != nil {
			_ = w.writeStatus(ctx) // readiness keeps being reported
			return now.Add(time.Second), false
		}
	}
	if w.terminal == "" {
		w.terminal = w.exitPhase()
	}
	w.teardownSandbox()
	if err := w.writeStatus(ctx); err != nil && !apierrors.IsNotFound(err) {
		w.log.Debug("final status not written", "err", err)
	}
	zero := int64(0)
	err := w.a.cfg.Client.CoreV1().Pods(w.ns).Delete(ctx, w.name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero,
		Preconditions:      &metav1.Preconditions{UID: &w.uid},
	})
	switch {
	case err == nil, apierrors.IsNotFound(err), apierrors.IsConflict(err):
		w.log.Info("pod terminated and deleted")
		return now, true
	case ctx.Err() != nil:
		return now, true
	default:
		w.log.Warn("deleting the terminated pod failed; retrying", "err", err)
		return now.Add(time.Second), false
	}
}

// exitPhase is the terminal phase of a pod whose containers have all
// stopped: Succeeded if every container ran and exited 0.
func (w *worker) exitPhase() corev1.PodPhase {
	for _, c := range w.cs {
		if !c.everRan || c.lastTerm == nil || c.lastTerm.ExitCode != 0 {
			return corev1.PodFailed
		}
	}
	return corev1.PodSucceeded
}

// teardownSandbox removes the pod's network namespace and frees its
// address. The address stays in the pod's status.
func (w *worker) teardownSandbox() {
	for _, c := range w.all() {
		c.stopProbes()
	}
	if w.net != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := teardownNetwork(ctx, w.a.tools.ip, w.net); err != nil {
			w.log.Warn("removing the pod network failed", "err", err)
		}
		cancel()
		w.net = nil
	}
	if w.ipReserved {
		w.a.ipam.release(w.ip)
		w.ipReserved = false
	}
	w.sandboxReady = false
}

// cleanup kills every process of the pod (SIGTERM, SIGKILL after
// shutdownGrace), waits for the goroutines the worker started, and
// removes the sandbox and the pod directory.
func (w *worker) cleanup() {
	close(w.stopped)
	var wg sync.WaitGroup
	for _, c := range w.all() {
		c.stopProbes()
		if p := c.proc; p != nil {
			wg.Go(func() { p.stop(shutdownGrace) })
		}
	}
	wg.Wait()
	w.bg.Wait()
	w.teardownSandbox()
	if err := os.RemoveAll(w.dir); err != nil {
		w.log.Warn("removing the pod directory failed", "err", err)
	}
}

// all returns the init containers, then the others.
func (w *worker) all() []*containerRun {
	return append(append([]*containerRun(nil), w.initCs...), w.cs...)
}

// event records an event about c (or the pod when c is nil).
func (w *worker) event(c *containerRun, typ, reason, msg string) {
	fieldPath := ""
	if c != nil {
		fieldPath = c.fieldPath()
	}
	w.a.events.podEvent(w.cur, componentKubelet, fieldPath, typ, reason, msg)
}

// warnOnce records a Warning event unless the same one was recorded
// already for this pod; it reports whether it did.
func (w *worker) warnOnce(reason, fieldPath, msg string) bool {
	key := reason + "\x00" + fieldPath + "\x00" + msg
	if w.reported[key] {
		return false
	}
	w.reported[key] = true
	w.a.events.podEvent(w.cur, componentKubelet, fieldPath, corev1.EventTypeWarning, reason, msg)
	return true
}
