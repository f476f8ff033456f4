//go:build e2e

package scenarios

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kedacore/keda/v2/pkg/scalers"
	"github.com/kedacore/keda/v2/pkg/scalers/scalersconfig"
	v2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/k8s-nemesis/nemesis/e2e/stack"
)

// pushActive opens a StreamIsActive stream to the scaler with KEDA's own
// push client, as KEDA's operator does for the ScaledObject, and returns a
// function that reports when the first true arrived.
func pushActive(t *testing.T, namespace string) func() time.Time {
	t.Helper()
	cfg := &scalersconfig.ScalerConfig{
		ScalableObjectName:      "sample",
		ScalableObjectNamespace: namespace,
		ScalableObjectType:      "ScaledObject",
		TriggerType:             "external-push",
		TriggerMetadata:         map[string]string{"scalerAddress": env.scaler, "ruleSet": "sample", "service": "sample"},
		ResolvedEnv:             map[string]string{},
		AuthParams:              map[string]string{},
		MetricType:              v2.AverageValueMetricType,
	}
	s, err := scalers.NewExternalPushScaler(cfg)
	if err != nil {
		t.Fatalf("NewExternalPushScaler: %v", err)
	}
	ctx, cancel := context.WithCancel(env.ctx)
	active := make(chan bool, 64)
	go s.Run(ctx, active)
	var (
		mu    sync.Mutex
		first time.Time
	)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case a := <-active:
				mu.Lock()
				if a && first.IsZero() {
					first = time.Now()
				}
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = s.Close(context.Background())
	})
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return first
	}
}

// Scenario 1: 200 concurrent requests reach the activators while the app has
// zero replicas; all succeed.
func TestScaleFromZero(t *testing.T) {
	ns := nsFromZero
	app(t, ns, "sample", 30)
	waitUntil(t, 30*time.Second, "zero replicas", replicasAre(t, ns, 0))
	activeAt := pushActive(t, ns)
	time.Sleep(2 * time.Second) // the stream is open and has said false
	if !activeAt().IsZero() {
		t.Fatalf("StreamIsActive said true before any request")
	}
	tl := watchDeployment(t, ns)
	readyAt := readyWatch(t, ns)
	g := generator(ns)
	start := time.Now()
	scaled := make(chan time.Time, 1)
	go func() {
		for env.ctx.Err() == nil {
			d, err := env.c.Client.AppsV1().Deployments(ns).Get(env.ctx, "sample", metav1.GetOptions{})
			if err == nil && *d.Spec.Replicas >= 1 {
				scaled <- time.Now()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	g.Burst(env.ctx, 200)
	var scaledAt time.Time
	select {
	case scaledAt = <-scaled:
	default:
	}
	took := time.Since(start)
	st := g.Stats()
	t.Logf("200 requests: %s; all answered after %v", st, took.Round(time.Millisecond))
	t.Logf("replicas: %s", tl)
	if st.OK != 200 || st.Failed != 0 {
		t.Fatalf("want 200 ok and 0 failed, got %s", st)
	}
	a, r := activeAt(), readyAt()
	if a.IsZero() || r.IsZero() || scaledAt.IsZero() {
		t.Fatalf("missing a time: active %v, scaled %v, ready %v", a, scaledAt, r)
	}
	env.report("from-zero", "200/200 ok; first request → StreamIsActive true %v, → Deployment scaled %v, → pod Ready %v, → first response %v; all 200 answered in %v (p50 %v, p99 %v)",
		a.Sub(start).Round(time.Millisecond), scaledAt.Sub(start).Round(time.Millisecond), r.Sub(start).Round(time.Millisecond),
		st.FirstResponse.Sub(start).Round(time.Millisecond), took.Round(time.Millisecond), st.P50.Round(time.Millisecond), st.P99.Round(time.Millisecond))
}

// Scenario 2: rising load lifts the rule's replicas one at a time; KEDA,
// the HPA and the Deployment follow. Then `nemesis rules backtest` replays
// the scenario from Prometheus, and its simulation of KEDA and the HPA must
// agree with what they really did.
func TestScaleOut(t *testing.T) {
	ns := nsScaleOut
	const cooldown = 30
	app(t, ns, "demand", cooldown)
	tl := watchDeployment(t, ns)
	g := generator(ns)
	ctx, stop := context.WithCancel(env.ctx)
	defer stop()
	var wg sync.WaitGroup
	var steps []string
	// 3, 7, 11, then 15 workers: the top of each replica's band of 4
	// requests of rule set demand, (inflight + queued) / 4. The scaler's
	// live counts used to dip by 2 at a quarter of its polls (14 read as
	// 12 while every Prometheus sample said 14): a demand snapshot was
	// taken just after a request ended and before its client's next one
	// arrived (fixed in demand.Tracker). Real momentary dips of one or two
	// remain, and a sample may be one too high: from the top of a band
	// both stay in it.
	for i, want := range []int32{1, 2, 3, 4} {
		workers := 4
		if i == 0 {
			workers = 3
		}
		wg.Add(1)
		go func() { defer wg.Done(); g.Workers(ctx, workers) }()
		took := waitUntil(t, 2*time.Minute, fmt.Sprintf("%d ready replicas", want), replicasAre(t, ns, want))
		steps = append(steps, fmt.Sprintf("load %d → %d ready in %v", g.InFlight(), want, took.Round(100*time.Millisecond)))
		// Long enough at each level for the backtest to be judged on
		// steady states as well as on transitions: three HPA syncs.
		time.Sleep(15 * time.Second)
	}
	stop()
	end := time.Now()
	wg.Wait()
	st := g.Stats()
	t.Logf("replicas: %s", tl)
	t.Logf("load: %s", st)
	if st.Failed != 0 {
		t.Fatalf("failed requests: %s", st)
	}
	// Prometheus scrapes every 2 s: let it see the end of the window.
	time.Sleep(5 * time.Second)
	bt := checkBacktest(t, ns, "demand", cooldown, tl, end)
	ev := checkScaleOutEvents(t, ns, []int32{1, 2, 3, 4})
	desc := describeScaledObject(t, ns, []int32{1, 2, 3, 4})
	env.report("scale-out", "%s; %s; %s; %s; %s", strings.Join(steps, ", "), st, bt, ev, desc)
}

// Scenario 3: load falls, replicas follow it down while pods terminate
// under load, then reach zero after the cooldown; no request fails.
func TestScaleInToZero(t *testing.T) {
	ns := nsScaleIn
	const cooldown = 15
	app(t, ns, "sample", cooldown)
	tl := watchDeployment(t, ns)
	g := generator(ns)
	ctx16, stop16 := context.WithCancel(env.ctx)
	ctx4, stop4 := context.WithCancel(env.ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); g.Workers(ctx16, 12) }()
	go func() { defer wg.Done(); g.Workers(ctx4, 4) }()
	waitUntil(t, 2*time.Minute, "4 ready replicas", replicasAre(t, ns, 4))
	time.Sleep(3 * time.Second)
	stop16() // 16 → 4 workers
	toOne := waitUntil(t, 2*time.Minute, "1 replica under load", replicasAre(t, ns, 1))
	time.Sleep(5 * time.Second) // the terminated pods are gone; keep serving
	stop4()
	wg.Wait()
	stopped := time.Now()
	waitUntil(t, 2*time.Minute, "zero replicas", replicasAre(t, ns, 0))
	st := g.Stats()
	t.Logf("replicas: %s", tl)
	t.Logf("load: %s", st)
	if st.Failed != 0 {
		t.Fatalf("failed requests while scaling in: %s", st)
	}
	env.report("scale-in", "4→1 under load in %v with %d requests, 0 failed; load stopped → 0 replicas in %v (cooldownPeriod %ds)",
		toOne.Round(100*time.Millisecond), st.OK, time.Since(stopped).Round(100*time.Millisecond), cooldown)
}

// Scenario 4: the rule set lives in a ConfigMap; a valid edit changes the
// decisions, an invalid edit is refused and the last good rules keep
// serving.
func TestRulesConfigMap(t *testing.T) {
	ns := nsRules
	app(t, ns, "fixed", 30)
	waitUntil(t, time.Minute, "1 replica from the fixed rule", replicasAre(t, ns, 1))
	edit := func(replicas string) time.Time {
		cm, err := env.c.Client.CoreV1().ConfigMaps("nemesis").Get(env.ctx, "nemesis-rules", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rules := cm.Data["rules.yaml"]
		i := strings.Index(rules, "- name: fixed")
		j := strings.Index(rules[i:], "replicas: ") + i
		k := strings.Index(rules[j:], "\n") + j
		cm.Data["rules.yaml"] = rules[:j] + "replicas: " + replicas + rules[k:]
		if _, err := env.c.Client.CoreV1().ConfigMaps("nemesis").Update(env.ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		return time.Now()
	}
	defer edit("unit * 1")
	decided := func(want float64) func() (bool, string) {
		return func() (bool, string) {
			v, ok := scalerMetric(t, "nemesis_scaler_desired_replicas", map[string]string{"namespace": ns})
			return ok && v == want, fmt.Sprintf("desired %v (found %v)", v, ok)
		}
	}
	edit("unit * 3")
	toDecision := waitUntil(t, time.Minute, "the scaler to decide 3", decided(3))
	toPods := waitUntil(t, 2*time.Minute, "3 ready replicas", replicasAre(t, ns, 3))
	toPods += toDecision

	failedBefore, _ := scalerMetric(t, "nemesis_rules_reloads_total", map[string]string{"result": "failure"})
	edit("unit * (")
	waitUntil(t, time.Minute, "the invalid edit to be refused", func() (bool, string) {
		v, ok := scalerMetric(t, "nemesis_rules_last_reload_failed", nil)
		return ok && v == 1, fmt.Sprintf("last_reload_failed %v", v)
	})
	failedAfter, _ := scalerMetric(t, "nemesis_rules_reloads_total", map[string]string{"result": "failure"})
	// The last good rules keep serving: 3 replicas for the next 15 s.
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		if ok, got := replicasAre(t, ns, 3)(); !ok {
			t.Fatalf("after an invalid edit the replicas changed: %s", got)
		}
		if ok, got := decided(3)(); !ok {
			t.Fatalf("after an invalid edit the decision changed: %s", got)
		}
	}
	logLine := scalerLogLine(t, "rules.yaml:")
	if logLine == "" {
		t.Fatalf("no scaler log line names rules.yaml:line:column")
	}
	t.Logf("scaler log: %s", logLine)
	edit("unit * 2")
	back := waitUntil(t, 2*time.Minute, "2 ready replicas after a valid edit", replicasAre(t, ns, 2))
	env.report("rules-cm", "edit → scaler decides 3 in %v, → 3 pods ready in %v; invalid edit refused (reload errors %v→%v, decisions held 15 s); valid edit → 2 pods in %v",
		toDecision.Round(100*time.Millisecond), toPods.Round(100*time.Millisecond), failedBefore, failedAfter, back.Round(100*time.Millisecond))
}

// Scenario 5: while Prometheus is down the replicas are held, not dropped;
// decisions resume afterwards.
func TestPrometheusOutage(t *testing.T) {
	ns := nsOutage
	app(t, ns, "sample", 10)
	g := generator(ns)
	ctx, stop := context.WithCancel(env.ctx)
	done := make(chan struct{})
	go func() { defer close(done); g.Workers(ctx, 6) }() // 6/4 → 2 replicas, away from a boundary
	waitUntil(t, 2*time.Minute, "2 ready replicas", replicasAre(t, ns, 2))
	time.Sleep(3 * time.Second)

	env.c.StopPrometheus()
	stopped := time.Now()
	restarted := false
	defer func() {
		if !restarted {
			_ = env.c.StartPrometheus(context.Background())
		}
	}()
	waitUntil(t, time.Minute, "the scaler to hold", func() (bool, string) {
		v, ok := scalerMetric(t, "nemesis_scaler_holding", map[string]string{"namespace": ns})
		return ok && v == 1, fmt.Sprintf("holding %v", v)
	})
	toHold := time.Since(stopped)
	held, _ := scalerMetric(t, "nemesis_scaler_desired_replicas", map[string]string{"namespace": ns})
	stop() // no load: without the outage, the rule would now say 0
	<-done
	// The last good decision stands; KEDA and the HPA converge on it if the
	// load moved between the last scrape and the outage.
	waitUntil(t, time.Minute, "the held decision's replicas", replicasAre(t, ns, int32(held)))
	for end := time.Now().Add(40 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		if ok, got := replicasAre(t, ns, int32(held))(); !ok {
			t.Fatalf("replicas changed during the outage (held decision %v): %s", held, got)
		}
	}
	errs, _ := scalerMetric(t, "nemesis_scaler_evaluation_errors_total", map[string]string{"rule_set": "sample"})
	if err := env.c.StartPrometheus(env.ctx); err != nil {
		t.Fatal(err)
	}
	restarted = true
	back := time.Now()
	resumed := waitUntil(t, 2*time.Minute, "the scaler to stop holding", func() (bool, string) {
		v, ok := scalerMetric(t, "nemesis_scaler_holding", map[string]string{"namespace": ns})
		return ok && v == 0, fmt.Sprintf("holding %v", v)
	})
	// Decisions follow the load again. (Scale to zero right after the
	// outage is not asserted: Prometheus keeps the last samples of a pod
	// deleted before it scraped it again for its lookback delta, 5 min;
	// see docs/rules.md, "Series of vanished pods".)
	ctx, stop = context.WithCancel(env.ctx)
	done = make(chan struct{})
	go func() { defer close(done); g.Workers(ctx, 16) }()
	toFour := waitUntil(t, 2*time.Minute, "4 ready replicas under new load", replicasAre(t, ns, 4))
	stop()
	<-done
	st := g.Stats()
	if st.Failed != 0 {
		t.Fatalf("failed requests: %s", st)
	}
	env.report("prom-outage", "holding %v after Prometheus stopped; load stopped, %v replicas held through %v of outage (%v evaluation errors); after restart holding ended in %v and new load (16 clients) reached 4 ready replicas in %v; %s",
		toHold.Round(100*time.Millisecond), held, back.Sub(stopped).Round(time.Second), errs, resumed.Round(100*time.Millisecond), toFour.Round(100*time.Millisecond), st)
}

// Scenario 6: both activator replicas are replaced (a rollout restart)
// while load runs through them; no request fails.
func TestActivatorRestart(t *testing.T) {
	ns := nsRestart
	app(t, ns, "sample", 30)
	warm := generator(ns)
	warmCtx, stopWarm := context.WithCancel(env.ctx)
	warmDone := make(chan struct{})
	go func() { defer close(warmDone); warm.Workers(warmCtx, 8) }()
	waitUntil(t, 2*time.Minute, "2 ready replicas", replicasAre(t, ns, 2))
	// The rollout's own load, counted apart from the cold start.
	g := generator(ns)
	ctx, stop := context.WithCancel(env.ctx)
	done := make(chan struct{})
	go func() { defer close(done); g.Workers(ctx, 8) }()
	time.Sleep(time.Second)
	stopWarm()
	<-warmDone
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"e2e/restartedAt":%q}}}}}`, time.Now().Format(time.RFC3339Nano))
	start := time.Now()
	if _, err := env.c.Client.AppsV1().Deployments("nemesis").Patch(env.ctx, "nemesis-activator", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 3*time.Minute, "the activator rollout", func() (bool, string) {
		d, err := env.c.Client.AppsV1().Deployments("nemesis").Get(env.ctx, "nemesis-activator", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		s := d.Status
		pods, _ := env.c.Client.CoreV1().Pods("nemesis").List(env.ctx, metav1.ListOptions{LabelSelector: "app=nemesis-activator"})
		return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == 2 && s.ReadyReplicas == 2 && s.Replicas == 2 && len(pods.Items) == 2,
			fmt.Sprintf("updated %d ready %d replicas %d pods %d", s.UpdatedReplicas, s.ReadyReplicas, s.Replicas, len(pods.Items))
	})
	rollout := time.Since(start)
	time.Sleep(3 * time.Second)
	stop()
	<-done
	st := g.Stats()
	t.Logf("load: %s", st)
	if wst := warm.Stats(); st.Failed != 0 || wst.Failed != 0 {
		t.Fatalf("failed requests during the activator restart: %s (before it: %s)", st, wst)
	}
	env.report("activator-rs", "both activators replaced in %v under 8 clients: %s",
		rollout.Round(100*time.Millisecond), st)
}

// The built-ins current and ready, read by the scaler from the scale
// subresource and the pods of the real API server: the rule
// min(current, ready) + 1 climbs one replica at a time, each step waiting
// for the last pod to be ready, and stops at max.
func TestScaleTargetBuiltins(t *testing.T) {
	ns := nsTarget
	app(t, ns, "ratchet", 30)
	tl := watchDeployment(t, ns)
	var steps []string
	start := time.Now()
	for want := int32(1); want <= 3; want++ {
		waitUntil(t, 2*time.Minute, fmt.Sprintf("%d ready replicas", want), replicasAre(t, ns, want))
		steps = append(steps, fmt.Sprintf("%d at %v", want, time.Since(start).Round(100*time.Millisecond)))
	}
	// At max it stays: min(3, 3) + 1 = 4 is clamped to 3.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		if ok, got := replicasAre(t, ns, 3)(); !ok {
			t.Fatalf("left max: %s", got)
		}
	}
	if v, _ := scalerMetric(t, "nemesis_scaler_evaluation_errors_total", map[string]string{"rule_set": "ratchet"}); v != 0 {
		t.Fatalf("%v evaluation errors for the ratchet rule set", v)
	}
	d, _ := scalerMetric(t, "nemesis_scaler_desired_replicas", map[string]string{"namespace": ns})
	t.Logf("replicas: %s", tl)
	env.report("scale-target", "replicas = min(current, ready) + 1 climbed %s and held at max 3 (decision %v), 0 evaluation errors", strings.Join(steps, ", "), d)
}

// POSTs through the activators with idle gaps longer than the model
// server's keep-alive timeout: the sample app closes a connection idle for
// 5 s, as uvicorn (vLLM's server) does by default, so every connection the
// activators pooled to it is closed between two POSTs. Each POST must still
// get 200: a proxy that sends a request on a connection the backend has
// closed must not answer 502 for it, and cannot resend a POST blindly.
func TestIdleKeepAlivePosts(t *testing.T) {
	ns := nsIdle
	const (
		posts = 4
		// Longer than the sample app's --idle-timeout (5s) with room for
		// the close to reach the activators.
		gap = 6500 * time.Millisecond
	)
	app(t, ns, "sample", 120) // no scale to zero during the gaps
	post := func() (int, string, error) {
		// A connection of its own per POST, so that the idle gaps are
		// the activators' upstream connections', not this client's.
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		client := &http.Client{Timeout: 2 * time.Minute, Transport: tr}
		req, err := http.NewRequestWithContext(env.ctx, http.MethodPost, "http://"+env.activator+"/v1/completions",
			strings.NewReader(`{"model": "sample", "prompt": "hello", "max_tokens": 8}`))
		if err != nil {
			return 0, "", err
		}
		req.Host = stack.Host(ns)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body)), err
	}

	// The first POST wakes the app from zero; the rest find it up.
	code, body, err := post()
	if err != nil || code != http.StatusOK {
		t.Fatalf("the POST that wakes the app: status %d, body %q, error %v", code, body, err)
	}
	waitUntil(t, time.Minute, "1 ready replica", replicasAre(t, ns, 1))
	var (
		outcomes []string
		failed   int
	)
	for i := range posts {
		// The gap is the scenario's input, not a wait for something.
		select {
		case <-env.ctx.Done():
			t.Fatal("interrupted")
		case <-time.After(gap):
		}
		code, body, err := post()
		switch {
		case err != nil:
			failed++
			outcomes = append(outcomes, fmt.Sprintf("POST %d: %v", i+1, err))
		case code != http.StatusOK:
			failed++
			outcomes = append(outcomes, fmt.Sprintf("POST %d: %d %q", i+1, code, body))
		default:
			outcomes = append(outcomes, fmt.Sprintf("POST %d: 200", i+1))
		}
	}
	t.Logf("after idle gaps of %v: %s", gap, strings.Join(outcomes, "; "))
	if failed > 0 {
		t.Fatalf("%d of %d POSTs after an idle gap of %v failed: %s", failed, posts, gap, strings.Join(outcomes, "; "))
	}
	if ok, got := replicasAre(t, ns, 1)(); !ok {
		t.Fatalf("the app did not stay up through the gaps, so no pooled connection went idle: %s", got)
	}
	env.report("idle-posts", "%d/%d POSTs 200, each after %v idle (the app closes keep-alive connections idle 5 s, as uvicorn does)", posts, posts, gap)
}
