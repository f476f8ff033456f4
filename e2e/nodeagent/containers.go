package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// Restart back-off: 1 s, doubling up to 10 s (the kubelet's 10 s and
	// 5 min would make the suite wait), reset once a container ran for
	// twice the cap.
	initialBackoff = time.Second
	maxBackoff     = 10 * time.Second
	backoffReset   = 2 * maxBackoff
	// minStopGrace is what a container gets after SIGTERM at the least,
	// when its preStop hook used up the grace period, as the kubelet's
	// minimum.
	minStopGrace = 2 * time.Second
)

// containerRun is one container of a pod and its current process.
type containerRun struct {
	spec *corev1.Container
	init bool

	proc         *process // nil when not running
	instance     int      // counts starts; events of older instances are stale
	binary       string
	probeCtx     context.Context
	cancelProbes context.CancelFunc
	startedAt    metav1.Time
	killing      bool // a liveness or startup failure is stopping it

	lastTerm, prevTerm *corev1.ContainerStateTerminated
	restarts           int32
	ranBefore          bool // ran under an earlier agent: its first start is a restart
	everRan            bool
	ready, started     bool
	backoff            time.Duration
	nextStart          time.Time
	waitReason         string // why it is not running, when it is not back-off
	waitMessage        string
}

func newContainerRun(spec *corev1.Container, init bool, prev map[string]corev1.ContainerStatus) *containerRun {
	c := &containerRun{spec: spec, init: init}
	if st, ok := prev[spec.Name]; ok {
		c.restarts = st.RestartCount
		c.ranBefore = st.State.Running != nil || st.State.Terminated != nil || st.LastTerminationState.Terminated != nil
	}
	return c
}

func (c *containerRun) fieldPath() string {
	if c.init {
		return fmt.Sprintf("spec.initContainers{%s}", c.spec.Name)
	}
	return fmt.Sprintf("spec.containers{%s}", c.spec.Name)
}

func (c *containerRun) stopProbes() {
	if c.cancelProbes != nil {
		c.cancelProbes()
		c.cancelProbes = nil
	}
}

func containerID(pid int) string {
	return "nemesis://" + strconv.Itoa(pid)
}

// willRestart reports whether an exited container is to be started again.
func (w *worker) willRestart(c *containerRun) bool {
	if w.terminating || w.terminal != "" || c.proc != nil || c.lastTerm == nil {
		return false
	}
	switch w.spec.RestartPolicy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return c.lastTerm.ExitCode != 0
	default:
		if c.init {
			return c.lastTerm.ExitCode != 0
		}
		return true
	}
}

// anyNeverStarted reports whether some container has not run yet.
func (w *worker) anyNeverStarted() bool {
	for _, c := range w.all() {
		if !c.everRan {
			return true
		}
	}
	return false
}

// syncContainers runs the init containers one after another to success,
// then starts the containers and restarts the exited ones as the restart
// policy says, after their back-off. A pod whose containers have all
// stopped for good is finished: its sandbox goes. It returns when it wants
// to be called again.
func (w *worker) syncContainers(ctx context.Context, now time.Time) time.Time {
	next := now.Add(resyncPeriod)
	wake := func(t time.Time) {
		if t.Before(next) {
			next = t
		}
	}
	if !w.initDone {
		for _, c := range w.initCs {
			switch {
			case c.proc != nil:
				return next
			case c.lastTerm != nil && c.lastTerm.ExitCode == 0:
				continue
			case c.everRan && !w.willRestart(c):
				w.terminal = corev1.PodFailed
				w.log.Info("init container failed; pod failed", "container", c.spec.Name)
				w.teardownSandbox()
				return next
			case now.Before(c.nextStart):
				wake(c.nextStart)
				return next
			}
			w.startContainer(ctx, c, now)
			if c.proc == nil {
				wake(c.nextStart)
			}
			return next
		}
		w.initDone = true
	}
	finished := true
	for _, c := range w.cs {
		switch {
		case c.proc != nil:
			finished = false
		case !c.everRan || w.willRestart(c):
			finished = false
			if now.Before(c.nextStart) {
				wake(c.nextStart)
				continue
			}
			w.startContainer(ctx, c, now)
			if c.proc == nil {
				wake(c.nextStart)
			}
		}
	}
	if finished {
		w.terminal = w.exitPhase()
		w.log.Info("pod finished", "phase", w.terminal)
		w.teardownSandbox()
	}
	return next
}

// startContainer starts one container. When it cannot, the container
// waits with a reason (ErrImagePull, CreateContainerConfigError,
// RunContainerError), a Warning event is recorded, and nextStart says when
// to try again.
func (w *worker) startContainer(ctx context.Context, c *containerRun, now time.Time) {
	fail := func(reason, msg string, retry time.Duration) {
		c.waitReason, c.waitMessage = reason, msg
		c.nextStart = now.Add(retry)
		if w.warnOnce("Failed", c.fieldPath(), msg) {
			w.log.Warn("container not started", "container", c.spec.Name, "reason", reason, "message", msg)
		}
	}
	if c.init && c.spec.RestartPolicy != nil && *c.spec.RestartPolicy == corev1.ContainerRestartPolicyAlways {
		fail("CreateContainerConfigError", fmt.Sprintf("Error: init container %q: sidecar containers (restartPolicy Always) are not supported by the nemesis node agent", c.spec.Name), time.Hour)
		return
	}
	// The image map never changes: a missing binary is retried only slowly.
	bin, ok := w.a.cfg.Images[c.spec.Image]
	if !ok {
		fail("ErrImagePull", fmt.Sprintf("Failed to pull image %q: the nemesis node agent has no binary for this image", c.spec.Image), time.Minute)
		return
	}
	if err := checkExecutable(bin); err != nil {
		fail("ErrImagePull", fmt.Sprintf("Failed to pull image %q: %v", c.spec.Image, err), time.Minute)
		return
	}
	env, err := w.containerEnv(c.spec)
	if err != nil {
		fail("CreateContainerConfigError", fmt.Sprintf("Error: %v", err), time.Second)
		return
	}
	mounts, err := w.containerMounts(c.spec)
	if err != nil {
		fail("CreateContainerConfigError", fmt.Sprintf("Error: %v", err), time.Second)
		return
	}
	dir := c.spec.WorkingDir
	if dir == "" {
		dir = w.dir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fail("CreateContainerConfigError", fmt.Sprintf("Error: working directory: %v", err), time.Second)
		return
	}
	var args []string
	if len(c.spec.Command) > 1 {
		args = append(args, c.spec.Command[1:]...)
	}
	args = append(args, c.spec.Args...)
	for i, s := range args {
		args[i] = expandVars(s, env.lookup)
	}

	inst := c.instance + 1
	proc, err := startProcess(launch{
		argv:    w.wrap(bin, args, mounts),
		env:     env.list(),
		dir:     dir,
		logPath: filepath.Join(w.a.stateDir, fmt.Sprintf("%s_%s_%s.log", w.ns, w.name, c.spec.Name)),
	}, func(p *process) {
		st := p.exit
		w.send(workerEvent{c: c, instance: inst, exited: &st})
	})
	if err != nil {
		c.backoff = nextBackoff(c.backoff)
		fail("RunContainerError", fmt.Sprintf("Error: %v", err), c.backoff)
		return
	}
	c.instance = inst
	if c.everRan || c.ranBefore {
		c.restarts++
	}
	c.ranBefore = false
	c.everRan = true
	c.proc = proc
	c.binary = bin
	c.killing = false
	c.startedAt = metav1.NewTime(now).Rfc3339Copy()
	c.waitReason, c.waitMessage = "", ""
	c.ready = false
	c.started = !probeWanted(c.spec.StartupProbe)
	c.probeCtx, c.cancelProbes = context.WithCancel(ctx)
	w.warnUnsupportedProbes(c)
	w.startProbes(c)
	w.log.Info("container started", "container", c.spec.Name, "pid", proc.pid, "restarts", c.restarts)
	w.event(c, corev1.EventTypeNormal, "Started", fmt.Sprintf("Started container %s", c.spec.Name))
}

func nextBackoff(cur time.Duration) time.Duration {
	if cur == 0 {
		return initialBackoff
	}
	return min(2*cur, maxBackoff)
}

func checkExecutable(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if info.IsDir() || info.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// handle takes in an event of a container instance: its exit, or a probe
// result.
func (w *worker) handle(ev workerEvent) {
	c := ev.c
	if ev.instance != c.instance || c.proc == nil {
		return // an earlier instance
	}
	if ev.exited != nil {
		w.containerExited(c, *ev.exited)
		return
	}
	p := ev.probe
	switch p.kind {
	case startupProbe:
		if p.ok {
			c.started = true
			w.startProbes(c)
			return
		}
		w.failedProbe(c, "Startup", p.msg)
	case livenessProbe:
		w.failedProbe(c, "Liveness", p.msg)
	case readinessProbe:
		c.ready = p.ok
		if !p.ok {
			w.event(c, corev1.EventTypeWarning, "Unhealthy", "Readiness probe failed: "+p.msg)
		}
	}
}

// failedProbe kills a container that failed its startup or liveness probe;
// it restarts as its restart policy says.
func (w *worker) failedProbe(c *containerRun, kind, msg string) {
	if c.killing || w.terminating {
		return
	}
	c.killing = true
	w.event(c, corev1.EventTypeWarning, "Unhealthy", kind+" probe failed: "+msg)
	w.event(c, corev1.EventTypeNormal, "Killing", fmt.Sprintf("Container %s failed %s probe, will be restarted", c.spec.Name, lower(kind)))
	grace := 30 * time.Second
	if s := w.spec.TerminationGracePeriodSeconds; s != nil {
		grace = time.Duration(*s) * time.Second
	}
	probe := c.spec.LivenessProbe
	if kind == "Startup" {
		probe = c.spec.StartupProbe
	}
	if probe != nil && probe.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*probe.TerminationGracePeriodSeconds) * time.Second
	}
	c.stopProbes()
	w.stopContainer(c, time.Now().Add(grace))
}

func lower(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]+'a'-'A') + s[1:]
}

// containerExited records the end of a container's process and its
// back-off before a restart.
func (w *worker) containerExited(c *containerRun, st exitStatus) {
	proc := c.proc
	c.proc = nil
	c.stopProbes()
	c.ready, c.started, c.killing = false, false, false
	reason := "Completed"
	if st.code != 0 {
		reason = "Error"
	}
	if st.err != nil {
		w.log.Warn("waiting for a container failed", "container", c.spec.Name, "err", st.err)
	}
	c.prevTerm, c.lastTerm = c.lastTerm, &corev1.ContainerStateTerminated{
		ExitCode:    st.code,
		Signal:      st.signal,
		Reason:      reason,
		StartedAt:   c.startedAt,
		FinishedAt:  metav1.NewTime(st.finished).Rfc3339Copy(),
		ContainerID: containerID(proc.pid),
	}
	if st.finished.Sub(proc.started) >= backoffReset {
		c.backoff = 0
	}
	c.backoff = nextBackoff(c.backoff)
	c.nextStart = st.finished.Add(c.backoff)
	w.log.Info("container exited", "container", c.spec.Name, "exitCode", st.code, "signal", st.signal)
	if w.willRestart(c) {
		w.event(c, corev1.EventTypeWarning, "BackOff", fmt.Sprintf("Back-off %v restarting failed container %s in pod %s_%s(%s)", c.backoff, c.spec.Name, w.name, w.ns, w.uid))
	}
}

// stopContainer stops a container in the background: its preStop hook
// (bounded by deadline), SIGTERM, and SIGKILL at deadline, or at least
// minStopGrace after SIGTERM.
func (w *worker) stopContainer(c *containerRun, deadline time.Time) {
	proc := c.proc
	var hook *corev1.LifecycleHandler
	if c.spec.Lifecycle != nil {
		hook = c.spec.Lifecycle.PreStop
	}
	target := w.probeTarget(c)
	pod, fieldPath := w.cur, c.fieldPath()
	w.bg.Go(func() {
		if hook != nil {
			ctx, cancel := context.WithDeadline(w.ctx, deadline)
			err := runHook(ctx, hook, target)
			cancel()
			if err != nil && w.ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
				w.a.events.podEvent(pod, componentKubelet, fieldPath, corev1.EventTypeWarning, "FailedPreStopHook",
					fmt.Sprintf("PreStopHook failed: %v", err))
			}
		}
		proc.stop(max(time.Until(deadline), minStopGrace))
	})
}
