package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
)

// Kind runs the suite on a kind cluster, for machines with Docker (or
// Podman): the cluster is created with sigs.k8s.io/kind, the images are
// built from this repository's binaries and loaded into its nodes, and KEDA
// and Prometheus are installed from their Helm charts with the helm
// command. Services are reached through `kubectl port-forward`.
//
// It cannot run where there is no container engine (the machine the local
// provider was made for); it is compiled with the suite but not run there.
type Kind struct {
	// Name of the kind cluster (default nemesis-e2e).
	Name string
	// Repo is the repository's root.
	Repo string
	// NodeImage optionally pins kind's node image (Kubernetes version).
	NodeImage string
	// KEDAVersion and the Prometheus chart's version; empty means the
	// charts' latest.
	KEDAVersion string
	Logger      *slog.Logger
}

// Start implements Provider.
func (k *Kind) Start(ctx context.Context) (c *Cluster, err error) {
	logger := k.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	name := k.Name
	if name == "" {
		name = "nemesis-e2e"
	}
	for _, tool := range []string{"docker", "helm", "kubectl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("cluster: the kind provider needs %s on PATH", tool)
		}
	}
	dir, err := os.MkdirTemp("", "nemesis-kind-")
	if err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	provider := kindcluster.NewProvider()
	opts := []kindcluster.CreateOption{kindcluster.CreateWithWaitForReady(3 * time.Minute), kindcluster.CreateWithKubeconfigPath(kubeconfig)}
	if k.NodeImage != "" {
		opts = append(opts, kindcluster.CreateWithNodeImage(k.NodeImage))
	}
	logger.Info("creating kind cluster", "name", name)
	if err := provider.Create(name, opts...); err != nil {
		return nil, fmt.Errorf("kind create: %w", err)
	}
	var pf portForwards
	stop := func() {
		pf.stop()
		if err := provider.Delete(name, kubeconfig); err != nil {
			logger.Error("kind delete", "err", err)
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()

	// Images: the repository's binaries on a distroless base.
	binDir := filepath.Join(dir, "bin")
	built, err := buildRepo(ctx, k.Repo, binDir)
	if err != nil {
		return nil, err
	}
	nodes, err := provider.ListInternalNodes(name)
	if err != nil {
		return nil, err
	}
	for image, bin := range built {
		if err := dockerImage(ctx, image, bin); err != nil {
			return nil, err
		}
		for _, n := range nodes {
			archive, err := exec.CommandContext(ctx, "docker", "save", image).Output()
			if err != nil {
				return nil, fmt.Errorf("docker save %s: %w", image, err)
			}
			if err := nodeutils.LoadImageArchive(n, bytes.NewReader(archive)); err != nil {
				return nil, fmt.Errorf("load %s into %s: %w", image, n.String(), err)
			}
		}
	}

	// KEDA and Prometheus from their charts.
	helm := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "helm", append(args, "--kubeconfig", kubeconfig)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	steps := [][]string{
		{"repo", "add", "kedacore", "https://kedacore.github.io/charts", "--force-update"},
		{"repo", "add", "prometheus-community", "https://prometheus-community.github.io/helm-charts", "--force-update"},
		{"upgrade", "--install", "keda", "kedacore/keda", "-n", "keda", "--create-namespace", "--wait"},
		{"upgrade", "--install", "prometheus", "prometheus-community/prometheus", "-n", "monitoring", "--create-namespace", "--wait",
			"--set", "alertmanager.enabled=false", "--set", "prometheus-pushgateway.enabled=false",
			"--set", "kube-state-metrics.enabled=false", "--set", "prometheus-node-exporter.enabled=false",
			"--set", "server.global.scrape_interval=2s", "--set", "server.persistentVolume.enabled=false"},
	}
	if k.KEDAVersion != "" {
		steps[2] = append(steps[2], "--version", k.KEDAVersion)
	}
	for _, s := range steps {
		if err := helm(s...); err != nil {
			return nil, err
		}
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	pf.kubeconfig = kubeconfig
	promAddr, err := pf.address(ctx, "monitoring", "prometheus-server", 80)
	if err != nil {
		return nil, err
	}
	scalePrometheus := func(ctx context.Context, n int32) error {
		s, err := client.AppsV1().Deployments("monitoring").GetScale(ctx, "prometheus-server", metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Replicas = n
		_, err = client.AppsV1().Deployments("monitoring").UpdateScale(ctx, "prometheus-server", s, metav1.UpdateOptions{})
		return err
	}
	return &Cluster{
		Kubeconfig:       kubeconfig,
		Kubectl:          "kubectl",
		Config:           cfg,
		Client:           client,
		PrometheusURL:    "http://" + promAddr,
		PodPrometheusURL: "http://prometheus-server.monitoring.svc",
		Images:           map[string]string{NemesisImage: NemesisImage, SampleAppImage: SampleAppImage, LLMSimImage: LLMSimImage},
		Dir:              dir,
		ServiceAddress:   pf.address,
		Logs: func(ctx context.Context, namespace, pod, container string) ([]byte, error) {
			return client.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(ctx)
		},
		StopPrometheus: func() { _ = scalePrometheus(context.Background(), 0) },
		StartPrometheus: func(ctx context.Context) error {
			if err := scalePrometheus(ctx, 1); err != nil {
				return err
			}
			return waitFor(ctx, "Prometheus", time.Second, nil, func(ctx context.Context) error {
				// The port-forward follows the Service to the new pod.
				addr, err := pf.restart(ctx, "monitoring", "prometheus-server", 80)
				if err != nil {
					return err
				}
				return httpOK(ctx, "http://"+addr+"/-/ready")
			})
		},
		Stop: stop,
	}, nil
}

// dockerImage builds image from one static binary on distroless.
func dockerImage(ctx context.Context, image, bin string) error {
	dir, err := os.MkdirTemp("", "nemesis-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "entrypoint"), b, 0o755); err != nil {
		return err
	}
	df := "FROM gcr.io/distroless/static-debian12:nonroot\nCOPY entrypoint /entrypoint\nUSER 65532:65532\nENTRYPOINT [\"/entrypoint\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "docker", "build", "-t", image, dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker build %s: %v\n%s", image, err, out)
	}
	return nil
}

// portForwards runs `kubectl port-forward` processes, one per Service port.
type portForwards struct {
	kubeconfig string
	mu         sync.Mutex
	cmds       map[string]*exec.Cmd
	addrs      map[string]string
}

func (p *portForwards) address(ctx context.Context, namespace, name string, port int32) (string, error) {
	key := fmt.Sprintf("%s/%s:%d", namespace, name, port)
	p.mu.Lock()
	if a, ok := p.addrs[key]; ok {
		p.mu.Unlock()
		return a, nil
	}
	p.mu.Unlock()
	return p.restart(ctx, namespace, name, port)
}

func (p *portForwards) restart(_ context.Context, namespace, name string, port int32) (string, error) {
	key := fmt.Sprintf("%s/%s:%d", namespace, name, port)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmds == nil {
		p.cmds, p.addrs = map[string]*exec.Cmd{}, map[string]string{}
	}
	if old, ok := p.cmds[key]; ok {
		_ = old.Process.Kill()
		_ = old.Wait()
	}
	cmd := exec.Command("kubectl", "--kubeconfig", p.kubeconfig, "-n", namespace, "port-forward", "svc/"+name, fmt.Sprintf(":%d", port))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		// "Forwarding from 127.0.0.1:41234 -> 9400"
		if f := strings.Fields(sc.Text()); len(f) >= 3 && f[0] == "Forwarding" && strings.HasPrefix(f[2], "127.0.0.1:") {
			p.cmds[key], p.addrs[key] = cmd, f[2]
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return f[2], nil
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return "", errors.New("kubectl port-forward " + key + ": no address")
}

func (p *portForwards) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.cmds {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
}
