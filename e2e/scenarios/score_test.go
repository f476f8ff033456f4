//go:build e2e

package scenarios

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-nemesis/nemesis/e2e/cluster"
	"github.com/k8s-nemesis/nemesis/e2e/stack"
)

// Scenario 9: a score route to llmsim pods (the vLLM stand-in). Each
// activator scrapes the pods it finds in the EndpointSlices and scores
// them on what they report; a pod whose /metrics stops answering is scored
// on its requests in flight alone (least-request) and keeps its share of
// the traffic, no request failing for it; a pod added later is scraped and
// gets traffic.
func TestScoreRoute(t *testing.T) {
	ns := nsScore
	const workers = 6
	err := stack.InstallLLM(env.ctx, env.c.Client, env.applier, stack.LLM{
		Namespace: ns, Image: cluster.LLMSimImage, Replicas: 2,
		// 4 simulated seconds per wall second: a request of 16 output
		// tokens takes some 100–200 ms.
		TimeScale: 0.25, MaxNumSeqs: 16,
	})
	if err != nil {
		t.Fatalf("install llmsim: %v", err)
	}
	deleteWhenPassed(t, ns)
	waitUntil(t, 2*time.Minute, "2 ready llmsim pods", llmReady(t, ns, 2))
	pods := llmPods(t, ns)
	a, b := pods[0], pods[1]
	activators := activatorPods(t)
	endpoint := func(ip string) map[string]string { return map[string]string{"route": ns, "endpoint": ip + ":8000"} }

	// Every activator scores both pods from its own scrapes.
	waitUntil(t, time.Minute, "every activator's score of both pods", func() (bool, string) {
		return allHaveMetric(activators, "nemesis_activator_endpoint_score", endpoint(a.ip), endpoint(b.ip))
	})
	before := llmLoad(t, ns, workers, 4*time.Second)
	t.Logf("both pods scraped: %s", before)
	if before.failed != 0 || before.served[a.name] == 0 || before.served[b.name] == 0 {
		t.Fatalf("want both pods served and no failure: %s", before)
	}

	// Pod a's /metrics hangs: every scrape of it times out.
	setMetricsFault(t, a.ip, "hang")
	timeouts := func(ip string) map[string]string {
		m := endpoint(ip)
		m["reason"] = "timeout"
		return m
	}
	waitUntil(t, 30*time.Second, "every activator's scrape timeouts of the hung pod", func() (bool, string) {
		return allHaveMetric(activators, "nemesis_activator_scrape_errors_total", timeouts(a.ip))
	})
	errsA, errsB := scrapeErrors(activators, endpoint(a.ip)), scrapeErrors(activators, endpoint(b.ip))
	hung := llmLoad(t, ns, workers, 4*time.Second)
	errsA, errsB = scrapeErrors(activators, endpoint(a.ip))-errsA, scrapeErrors(activators, endpoint(b.ip))-errsB
	t.Logf("pod %s's scrapes hang: %s; scrape errors meanwhile: %v of it, %v of the other pod", a.name, hung, errsA, errsB)
	if hung.failed != 0 {
		t.Fatalf("requests failed while a pod's scrapes hang: %s", hung)
	}
	// Scored on its requests in flight alone, the hung pod is as eligible
	// as under least-request: with 2 pods it keeps about half the
	// requests; a policy that left it out would give it none.
	if share := hung.share(a.name); share < 0.25 {
		t.Fatalf("the pod whose scrapes hang got %.0f %% of the requests, want ≥ 25 %% (least-request): %s", 100*share, hung)
	}
	// Every scrape of the hung pod fails (up to 80 in 4 s per activator).
	// The healthy pod's scrapes may outlast the 40 ms timeout too on a
	// busy 2-core machine that runs the whole cluster (15 % of them, once,
	// with benchmarks running beside the suite), but far less often.
	if errsA < float64(20*len(activators)) || errsB > errsA/3 {
		t.Fatalf("scrape errors while pod %s hung: %v of it, want ≥ %d; %v of the healthy pod, want ≤ a third of that", a.name, errsA, 20*len(activators), errsB)
	}
	setMetricsFault(t, a.ip, "none")

	// A third pod: scraped, then given traffic.
	scale(t, ns, 3)
	waitUntil(t, 2*time.Minute, "3 ready llmsim pods", llmReady(t, ns, 3))
	var c llmPod
	for _, p := range llmPods(t, ns) {
		if p.name != a.name && p.name != b.name {
			c = p
		}
	}
	if c.name == "" {
		t.Fatalf("no new pod among %v", llmPods(t, ns))
	}
	scraped := waitUntil(t, 30*time.Second, "every activator's score of the new pod", func() (bool, string) {
		return allHaveMetric(activators, "nemesis_activator_endpoint_score", endpoint(c.ip))
	})
	errsC := scrapeErrors(activators, endpoint(c.ip))
	grown := llmLoad(t, ns, workers, 4*time.Second)
	errsC = scrapeErrors(activators, endpoint(c.ip)) - errsC
	t.Logf("third pod %s scraped %v after it was ready: %s", c.name, scraped.Round(10*time.Millisecond), grown)
	if grown.failed != 0 {
		t.Fatalf("requests failed after the new pod joined: %s", grown)
	}
	if share := grown.share(c.name); share < 0.15 {
		t.Fatalf("the new pod got %.0f %% of the requests, want ≥ 15 %% of 3 pods' load: %s", 100*share, grown)
	}
	// Its scrapes work, but for a timeout now and then on a busy machine:
	// at most a third of them fail.
	if maxErrs := float64(80 * len(activators) / 3); errsC > maxErrs {
		t.Fatalf("%v of the new pod %s's 4 s of scrapes failed, want ≤ %v", errsC, c.name, maxErrs)
	}
	env.report("score-route", "2 llmsim pods, %d clients: %s; pod's /metrics hung → %v scrape errors of it in 4 s (%v of the healthy pod), %.0f %% of requests still to it (least-request), %d failed; third pod scored %v after ready, then %.0f %% of requests (%v scrape errors)",
		workers, before, errsA, errsB, 100*hung.share(a.name), hung.failed, scraped.Round(10*time.Millisecond), 100*grown.share(c.name), errsC)
}

// llmPod is a ready llmsim pod.
type llmPod struct{ name, ip string }

func llmPods(t *testing.T, ns string) []llmPod {
	t.Helper()
	list, err := env.c.Client.CoreV1().Pods(ns).List(env.ctx, metav1.ListOptions{LabelSelector: "app=llm"})
	if err != nil {
		t.Fatalf("list llmsim pods: %v", err)
	}
	var pods []llmPod
	for _, p := range list.Items {
		if p.Status.PodIP != "" && p.DeletionTimestamp == nil {
			pods = append(pods, llmPod{p.Name, p.Status.PodIP})
		}
	}
	slices.SortFunc(pods, func(x, y llmPod) int { return strings.Compare(x.name, y.name) })
	return pods
}

// llmReady is a waitUntil condition: the llm Deployment has want pods, all
// ready.
func llmReady(t *testing.T, ns string, want int32) func() (bool, string) {
	return func() (bool, string) {
		d, err := env.c.Client.AppsV1().Deployments(ns).Get(env.ctx, "llm", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		s := d.Status
		return s.Replicas == want && s.ReadyReplicas == want, fmt.Sprintf("replicas %d, ready %d", s.Replicas, s.ReadyReplicas)
	}
}

func scale(t *testing.T, ns string, replicas int32) {
	t.Helper()
	s, err := env.c.Client.AppsV1().Deployments(ns).GetScale(env.ctx, "llm", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get scale: %v", err)
	}
	s.Spec.Replicas = replicas
	if _, err := env.c.Client.AppsV1().Deployments(ns).UpdateScale(env.ctx, "llm", s, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("scale to %d: %v", replicas, err)
	}
}

// activatorPods returns the metrics URL of every activator replica (its
// admin port), read directly rather than through the Service, so that each
// replica's own scrapes are seen.
func activatorPods(t *testing.T) []string {
	t.Helper()
	list, err := env.c.Client.CoreV1().Pods("nemesis").List(env.ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=activator"})
	if err != nil {
		t.Fatalf("list activator pods: %v", err)
	}
	var urls []string
	for _, p := range list.Items {
		if p.Status.PodIP != "" && p.DeletionTimestamp == nil {
			urls = append(urls, "http://"+p.Status.PodIP+":9091/metrics")
		}
	}
	if len(urls) == 0 {
		t.Fatal("no activator pod")
	}
	return urls
}

// allHaveMetric reports whether every URL exposes metric with a series of
// each label set of matches, with a positive value for a counter.
func allHaveMetric(urls []string, metric string, matches ...map[string]string) (bool, string) {
	for _, u := range urls {
		for _, m := range matches {
			v, ok := stack.ReadMetric(env.ctx, u, metric, m)
			if !ok || strings.HasSuffix(metric, "_total") && v <= 0 {
				return false, fmt.Sprintf("%s has no %s%v yet", u, metric, m)
			}
		}
	}
	return true, ""
}

// scrapeErrors sums the scrape errors of the activators at urls that match.
func scrapeErrors(urls []string, match map[string]string) float64 {
	var n float64
	for _, u := range urls {
		v, _ := stack.ReadMetric(env.ctx, u, "nemesis_activator_scrape_errors_total", match)
		n += v
	}
	return n
}

// setMetricsFault makes an llmsim pod's /metrics misbehave (or not).
func setMetricsFault(t *testing.T, ip, fault string) {
	t.Helper()
	req, err := http.NewRequestWithContext(env.ctx, http.MethodPut, "http://"+ip+":8000/sim/metrics-fault", strings.NewReader(fault))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("set /metrics fault %s on %s: %v", fault, ip, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("set /metrics fault %s on %s: %s %s", fault, ip, resp.Status, b)
	}
}

// llmStats counts the completions of a load run by the pod that served
// them (llmsim's x-inference-pod header).
type llmStats struct {
	ok, failed int
	served     map[string]int
	firstErr   string
}

func (s llmStats) share(pod string) float64 {
	if s.ok == 0 {
		return 0
	}
	return float64(s.served[pod]) / float64(s.ok)
}

func (s llmStats) String() string {
	var per []string
	for _, p := range slices.Sorted(maps.Keys(s.served)) {
		per = append(per, fmt.Sprintf("%s %d", p[strings.LastIndex(p, "-")+1:], s.served[p]))
	}
	out := fmt.Sprintf("%d ok, %d failed; per pod: %s", s.ok, s.failed, strings.Join(per, ", "))
	if s.firstErr != "" {
		out += "; first failure: " + s.firstErr
	}
	return out
}

// llmLoad runs workers closed-loop clients of completions through the
// activators' score route for d.
func llmLoad(t *testing.T, ns string, workers int, d time.Duration) llmStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(env.ctx, d)
	defer cancel()
	var (
		mu sync.Mutex
		st = llmStats{served: map[string]int{}}
		wg sync.WaitGroup
	)
	tr := &http.Transport{MaxIdleConnsPerHost: workers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	for w := range workers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				body := fmt.Sprintf(`{"model": "llm", "prompt": "client %d asks question %d of the score route", "max_tokens": 16}`, w, i)
				// Not ctx: a request under way when the run ends finishes.
				req, err := http.NewRequestWithContext(env.ctx, http.MethodPost, "http://"+env.activator+"/v1/completions", strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				req.Host = stack.LLMHost(ns)
				req.Header.Set("Content-Type", "application/json")
				pod, fail := "", ""
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					pod = resp.Header.Get("x-inference-pod")
					if resp.StatusCode != http.StatusOK {
						fail = resp.Status
					}
				}
				if err != nil {
					fail = err.Error()
				}
				mu.Lock()
				if fail != "" {
					st.failed++
					if st.firstErr == "" {
						st.firstErr = fail
					}
				} else {
					st.ok++
					st.served[pod]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return st
}
