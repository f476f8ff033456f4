package stack

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"gopkg.in/yaml.v3"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

//go:embed app.yaml.tmpl
var appTemplate string

//go:embed llm.yaml.tmpl
var llmTemplate string

// Applier applies a YAML stream (e2e/cluster.Applier).
type Applier interface {
	Apply(ctx context.Context, namespace string, manifests []byte) error
}

// Nemesis configures the Nemesis install.
type Nemesis struct {
	Image             string
	PrometheusURL     string // as seen from pods
	ActivatorReplicas int
	PushInterval      time.Duration
	Rules             string // rule file content
	ActivatorConfig   string // activator config content
}

// App configures one sample app and its ScaledObject.
type App struct {
	Namespace string
	Image     string
	// LLMSim: Image runs e2e/llmsim, the vLLM stand-in, with
	// Concurrency as its --max-num-seqs and TimeScale as its
	// --time-scale; else e2e/sampleapp with Latency, Concurrency and
	// StartupDelay.
	LLMSim          bool
	TimeScale       float64
	Latency         time.Duration
	Concurrency     int
	StartupDelay    time.Duration
	MaxReplicas     int
	PollingInterval int // seconds
	CooldownPeriod  int // seconds
	// ScaleDownWindow is the HPA's scale-down stabilization window in
	// seconds: 0 follows every decision down at once.
	ScaleDownWindow int
	ScalerAddress   string
	RuleSet         string
}

// RuleSet is the rule set the scenarios scale the sample app with: one
// replica per 4 requests, counted by the activators (in flight and queued)
// or by the app itself (running and waiting, through Prometheus),
// whichever is higher.
const RuleSet = `ruleSets:
  - name: sample
    description: One replica per 4 requests in flight or waiting.
    queries:
      waiting: sum(vllm:num_requests_waiting{namespace="$namespace"}) or vector(0)
      running: sum(vllm:num_requests_running{namespace="$namespace"}) or vector(0)
    replicas: max(inflight + queued, running + waiting) / 4
    active: inflight > 0 || queued > 0 || running + waiting > 0
    min: 0
    max: 4
    onError: hold
    staleAfter: 5m
`

// ActivatorConfig routes Host sample.<namespace> to the sample app of each
// namespace. Each activator replica sends a pod at most as many requests
// at once as the sample app serves (its --concurrency, 4): the rest wait
// in the activator, where a new pod can take them.
func ActivatorConfig(namespaces ...string) string {
	var b strings.Builder
	b.WriteString("routes:\n")
	for _, ns := range namespaces {
		fmt.Fprintf(&b, `  - name: %s
    match: {hosts: [%s]}
    service: {namespace: %s, name: sample, port: 8000}
    policy: least-request
    queue: {size: 1000, timeout: 2m}
    endpointConcurrency: 4
`, ns, Host(ns), ns)
	}
	return b.String()
}

// LLM is a Deployment of llmsim pods, the vLLM stand-in, behind Service
// "llm" on port 8000.
type LLM struct {
	Namespace  string
	Image      string
	Replicas   int
	TimeScale  float64 // llmsim's --time-scale
	MaxNumSeqs int     // llmsim's --max-num-seqs
}

// InstallLLM creates the namespace of llm and applies its manifests.
func InstallLLM(ctx context.Context, client kubernetes.Interface, a Applier, llm LLM) error {
	if err := EnsureNamespace(ctx, client, llm.Namespace); err != nil {
		return err
	}
	m, err := render(llmTemplate, llm)
	if err != nil {
		return err
	}
	return a.Apply(ctx, llm.Namespace, m)
}

// ScoreRoute is an activator route of policy score, as docs/activator.md
// shows it, to the llmsim pods of namespace (see LLM) for Host
// LLMHost(namespace).
func ScoreRoute(namespace string) string {
	return fmt.Sprintf(`  - name: %s
    match: {hosts: [%s]}
    service: {namespace: %s, name: llm, port: 8000}
    policy: score
    score:
      scrape: {path: /metrics, interval: 50ms, timeout: 40ms, staleAfter: 2s}
      metrics:
        waiting: vllm:num_requests_waiting
        running: vllm:num_requests_running
        kv: vllm:kv_cache_usage_perc
      filter: waiting < 5 && kv < 0.8
      expression: 2 * waiting + 20 * kv + inflight
    queue: {size: 1000, timeout: 2m}
`, namespace, LLMHost(namespace), namespace)
}

// LLMHost is the Host header that routes to the llmsim pods of namespace.
func LLMHost(namespace string) string { return "llm." + namespace }

// Host is the Host header that routes to the sample app of namespace.
func Host(namespace string) string { return "sample." + namespace }

func render(text string, data any) ([]byte, error) {
	t, err := template.New("").Funcs(template.FuncMap{
		"indent": func(n int, s string) string {
			pad := strings.Repeat(" ", n)
			return pad + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad)
		},
	}).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// InstallNemesis installs Nemesis from the Helm chart (charts/nemesis, with
// ci/e2e-values.yaml and n on top), rendered by charts/tools' render command
// with the Helm Go library, and waits until the scaler and every activator
// replica are ready. repo is the repository's root.
func InstallNemesis(ctx context.Context, client kubernetes.Interface, a Applier, repo string, n Nemesis) error {
	if n.ActivatorReplicas == 0 {
		n.ActivatorReplicas = 2
	}
	if n.PushInterval == 0 {
		n.PushInterval = time.Second
	}
	m, err := RenderChart(ctx, repo, n)
	if err != nil {
		return err
	}
	if err := a.Apply(ctx, "", m); err != nil {
		return err
	}
	if err := WaitReady(ctx, client, "nemesis", "nemesis-scaler", 1); err != nil {
		return err
	}
	return WaitReady(ctx, client, "nemesis", "nemesis-activator", n.ActivatorReplicas)
}

// RenderChart renders the chart for n as release "nemesis" in namespace
// "nemesis", the Namespace included.
func RenderChart(ctx context.Context, repo string, n Nemesis) ([]byte, error) {
	var routes struct {
		Routes []any `yaml:"routes"`
	}
	if err := yaml.Unmarshal([]byte(n.ActivatorConfig), &routes); err != nil {
		return nil, fmt.Errorf("activator config: %w", err)
	}
	repository, tag, _ := strings.Cut(n.Image, ":")
	values := map[string]any{
		"image":      map[string]any{"repository": repository, "tag": tag},
		"prometheus": map[string]any{"url": n.PrometheusURL},
		"scaler": map[string]any{
			"pushInterval": n.PushInterval.String(),
			"rules":        map[string]any{"ruleSets": []any{}, "files": map[string]string{"rules.yaml": n.Rules}},
		},
		"activator": map[string]any{"replicas": n.ActivatorReplicas, "routes": routes.Routes},
	}
	b, err := yaml.Marshal(values)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp("", "nemesis-e2e-values-*.yaml")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	chart := filepath.Join(repo, "charts", "nemesis")
	cmd := exec.CommandContext(ctx, "go", "-C", filepath.Join(repo, "charts", "tools"), "run", "./cmd/render",
		"--chart", chart, "-f", filepath.Join(chart, "ci", "e2e-values.yaml"), "-f", f.Name(),
		"--namespace", "nemesis", "--release", "nemesis", "--create-namespace")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("rendering the chart: %v\n%s", err, stderr.String())
	}
	return out, nil
}

// InstallApp creates the app's namespace and applies its manifests.
func InstallApp(ctx context.Context, client kubernetes.Interface, a Applier, app App) error {
	if err := EnsureNamespace(ctx, client, app.Namespace); err != nil {
		return err
	}
	m, err := RenderApp(app)
	if err != nil {
		return err
	}
	return a.Apply(ctx, app.Namespace, m)
}

// RenderApp renders the app's manifests: its Deployment, Service and
// ScaledObject, as InstallApp applies them.
func RenderApp(app App) ([]byte, error) {
	return render(appTemplate, app)
}

// EnsureNamespace creates namespace if needed and waits for its default
// service account, without which no pod is admitted.
func EnsureNamespace(ctx context.Context, client kubernetes.Interface, namespace string) error {
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return poll(ctx, 100*time.Millisecond, func() (bool, error) {
		_, err := client.CoreV1().ServiceAccounts(namespace).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
}

// WaitReady waits until Deployment name has want ready replicas and no
// others (old or new).
func WaitReady(ctx context.Context, client kubernetes.Interface, namespace, name string, want int) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var last string
	err := poll(ctx, 200*time.Millisecond, func() (bool, error) {
		d, err := client.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		s := d.Status
		last = fmt.Sprintf("replicas %d, ready %d, updated %d", s.Replicas, s.ReadyReplicas, s.UpdatedReplicas)
		return int(s.ReadyReplicas) == want && int(s.Replicas) == want && int(s.UpdatedReplicas) == want && s.ObservedGeneration >= d.Generation, nil
	})
	if err != nil {
		return fmt.Errorf("deployment %s/%s: want %d ready: %s: %w", namespace, name, want, last, err)
	}
	return nil
}

func poll(ctx context.Context, every time.Duration, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// WaitScaling waits until KEDA has taken charge of the sample app of
// namespace: its HPA exists and the scaler (metrics at scalerMetricsURL)
// has evaluated the ScaledObject at least once, so KEDA's push stream for
// it is open.
func WaitScaling(ctx context.Context, client kubernetes.Interface, scalerMetricsURL, namespace string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var last string
	err := poll(ctx, 200*time.Millisecond, func() (bool, error) {
		if _, err := client.AutoscalingV2().HorizontalPodAutoscalers(namespace).Get(ctx, "keda-hpa-sample", metav1.GetOptions{}); err != nil {
			last = "no HPA yet: " + err.Error()
			return false, nil
		}
		if _, ok := ReadMetric(ctx, scalerMetricsURL, "nemesis_scaler_desired_replicas", map[string]string{"namespace": namespace}); !ok {
			last = "the scaler has not evaluated the ScaledObject yet"
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for KEDA to scale %s/sample: %s: %w", namespace, last, err)
	}
	return nil
}
