package nodeagent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

type probeKind int

const (
	startupProbe probeKind = iota
	livenessProbe
	readinessProbe
)

func (k probeKind) String() string {
	switch k {
	case startupProbe:
		return "Startup"
	case livenessProbe:
		return "Liveness"
	default:
		return "Readiness"
	}
}

// probeUpdate is a change of a probe's verdict: readiness turning true or
// false, liveness or startup failing, startup succeeding.
type probeUpdate struct {
	kind probeKind
	ok   bool
	msg  string
}

// probeTarget is where a container's probes and hooks go.
type probeTarget struct {
	host  string // the pod's address
	ports []corev1.ContainerPort
}

func (w *worker) probeTarget(c *containerRun) probeTarget {
	return probeTarget{host: w.podIP(), ports: c.spec.Ports}
}

// probeWanted reports whether p is a probe the agent runs; others count as
// succeeding.
func probeWanted(p *corev1.Probe) bool {
	return p != nil && (p.HTTPGet != nil || p.TCPSocket != nil)
}

// warnUnsupportedProbes records a Warning event, once per pod, for each
// probe and hook of c the agent does not run.
func (w *worker) warnUnsupportedProbes(c *containerRun) {
	for _, p := range []struct {
		kind  probeKind
		probe *corev1.Probe
	}{{startupProbe, c.spec.StartupProbe}, {livenessProbe, c.spec.LivenessProbe}, {readinessProbe, c.spec.ReadinessProbe}} {
		if p.probe != nil && !probeWanted(p.probe) {
			w.warnOnce("Unsupported", c.fieldPath(), fmt.Sprintf("%s probe: only httpGet and tcpSocket probes are supported by the nemesis node agent; this one counts as succeeding", p.kind))
		}
	}
	if l := c.spec.Lifecycle; l != nil {
		if l.PostStart != nil {
			w.warnOnce("Unsupported", c.fieldPath(), "postStart hooks are not run by the nemesis node agent")
		}
		if l.PreStop != nil && l.PreStop.Sleep == nil && l.PreStop.HTTPGet == nil {
			w.warnOnce("Unsupported", c.fieldPath(), "preStop hook: only sleep and httpGet are supported by the nemesis node agent; it is skipped")
		}
	}
}

// startProbes starts the probes of c's running instance: its startup
// probe alone until that succeeds, then liveness and readiness. A
// container without a readiness probe is ready once started.
func (w *worker) startProbes(c *containerRun) {
	if c.init || c.probeCtx == nil {
		return
	}
	inst, ctx, started := c.instance, c.probeCtx, c.proc.started
	start := func(kind probeKind, p *corev1.Probe) {
		target := w.probeTarget(c)
		w.bg.Go(func() {
			runProber(ctx, kind, p, target, started, func(ok bool, msg string) {
				w.send(workerEvent{c: c, instance: inst, probe: &probeUpdate{kind: kind, ok: ok, msg: msg}})
			})
		})
	}
	if !c.started {
		start(startupProbe, c.spec.StartupProbe)
		return
	}
	if probeWanted(c.spec.LivenessProbe) {
		start(livenessProbe, c.spec.LivenessProbe)
	}
	if probeWanted(c.spec.ReadinessProbe) {
		start(readinessProbe, c.spec.ReadinessProbe)
	} else {
		c.ready = true
	}
}

func seconds(s, def int32) time.Duration {
	if s <= 0 {
		s = def
	}
	return time.Duration(s) * time.Second
}

// firstReadinessInterval is how often a readiness probe runs until it
// first succeeds. The kubelet probes on its period, but also triggers a
// readiness probe at every pod status sync while a started container is
// not ready yet, so new pods turn ready well within a period; this stands
// in for that.
const firstReadinessInterval = 100 * time.Millisecond

// runProber probes every period from initialDelaySeconds after the
// container started until ctx ends, and reports verdict changes the
// kubelet's way: readiness starts false and flips after successThreshold
// successes or failureThreshold failures in a row; liveness reports each
// run of failureThreshold failures; startup reports its first success or
// its failure, then stops.
func runProber(ctx context.Context, kind probeKind, p *corev1.Probe, target probeTarget, started time.Time, report func(ok bool, msg string)) {
	period := seconds(p.PeriodSeconds, 10)
	timeout := seconds(p.TimeoutSeconds, 1)
	successThreshold := int(max(p.SuccessThreshold, 1))
	failureThreshold := int(p.FailureThreshold)
	if failureThreshold <= 0 {
		failureThreshold = 3
	}
	delay := time.NewTimer(time.Until(started.Add(time.Duration(p.InitialDelaySeconds) * time.Second)))
	select {
	case <-ctx.Done():
		delay.Stop()
		return
	case <-delay.C:
	}
	client := newProbeClient()
	defer client.CloseIdleConnections()
	wait := time.NewTimer(time.Hour)
	defer wait.Stop()
	ready, everReady := false, false
	successes, failures := 0, 0
	for {
		next := time.Now().Add(period)
		if kind == readinessProbe && !everReady {
			next = time.Now().Add(min(period, firstReadinessInterval))
		}
		ok, msg := probeOnce(ctx, client, p.ProbeHandler, target, timeout)
		if ctx.Err() != nil {
			return
		}
		if ok {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
		}
		switch kind {
		case readinessProbe:
			if !ready && successes >= successThreshold {
				ready, everReady = true, true
				report(true, "")
			} else if ready && failures >= failureThreshold {
				ready = false
				report(false, msg)
			}
		case livenessProbe:
			if failures >= failureThreshold {
				report(false, msg)
				failures = 0
			}
		case startupProbe:
			if ok {
				report(true, "")
				return
			}
			if failures >= failureThreshold {
				report(false, msg)
				return
			}
		}
		wait.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case <-wait.C:
		}
	}
}

func newProbeClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		// The kubelet does not check the certificates of HTTPS probes.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
}

// probeOnce runs one probe; handlers other than httpGet and tcpSocket
// succeed.
func probeOnce(ctx context.Context, client *http.Client, h corev1.ProbeHandler, target probeTarget, timeout time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case h.HTTPGet != nil:
		if err := httpGet(ctx, client, h.HTTPGet, target); err != nil {
			return false, err.Error()
		}
		return true, ""
	case h.TCPSocket != nil:
		port, err := resolvePort(h.TCPSocket.Port, target.ports)
		if err != nil {
			return false, err.Error()
		}
		host := h.TCPSocket.Host
		if host == "" {
			host = target.host
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	default:
		return true, ""
	}
}

// httpGet makes the request of an httpGet probe or hook; a status from 200
// to 399 is a success.
func httpGet(ctx context.Context, client *http.Client, g *corev1.HTTPGetAction, target probeTarget) error {
	port, err := resolvePort(g.Port, target.ports)
	if err != nil {
		return err
	}
	host := g.Host
	if host == "" {
		host = target.host
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	p := g.Path
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, strconv.Itoa(port))+p, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/1.37")
	req.Header.Set("Accept", "*/*")
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	return nil
}

// resolvePort turns a probe's port, a number or the name of a container
// port, into a number.
func resolvePort(p intstr.IntOrString, ports []corev1.ContainerPort) (int, error) {
	n := 0
	if p.Type == intstr.Int {
		n = p.IntValue()
	} else {
		for _, cp := range ports {
			if cp.Name == p.StrVal {
				n = int(cp.ContainerPort)
			}
		}
		if n == 0 {
			v, err := strconv.Atoi(p.StrVal)
			if err != nil {
				return 0, fmt.Errorf("port %q: no container port of that name", p.StrVal)
			}
			n = v
		}
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %s: out of range", p.String())
	}
	return n, nil
}

// runHook runs a preStop hook: sleep and httpGet are supported, others
// are skipped with an error.
func runHook(ctx context.Context, h *corev1.LifecycleHandler, target probeTarget) error {
	switch {
	case h.Sleep != nil:
		t := time.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	case h.HTTPGet != nil:
		client := newProbeClient()
		defer client.CloseIdleConnections()
		return httpGet(ctx, client, h.HTTPGet, target)
	default:
		return errors.New("only sleep and httpGet hooks are supported by the nemesis node agent")
	}
}
