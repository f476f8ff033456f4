package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/k8s-nemesis/nemesis/e2e/nodeagent"
)

// The local cluster's fixed network. Every address is on a bridge the
// cluster owns, so fixed ports cannot collide with the machine's services.
const (
	namePrefix  = "nme2e"
	bridgeName  = "nemesisbr0" // not namePrefix*: the node agent cleans those
	hostIP      = "10.244.0.1"
	adapterIP   = "10.244.0.2"
	podCIDR     = "10.244.0.0/16"
	apiPort     = 6443
	etcdPort    = 2379
	etcdPeer    = 2380
	promPort    = 9090
	kedaGRPC    = 9666
	serviceCIDR = "10.96.0.0/16"
	nodeName    = "nemesis-e2e"
)

// Local runs a cluster from upstream binaries on this machine: etcd, a
// kube-apiserver and kube-controller-manager, KEDA's operator and metrics
// adapter, Prometheus, and a node agent that runs pods as processes in
// network namespaces. It needs root (network namespaces), Linux, etcd and
// prometheus on PATH.
type Local struct {
	// Repo is the repository's root; CacheDir where pinned tools are
	// built (see DefaultCacheDir).
	Repo     string
	CacheDir string
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
	// HPASyncPeriod is kube-controller-manager's
	// --horizontal-pod-autoscaler-sync-period (default 15s, Kubernetes'
	// own default).
	HPASyncPeriod time.Duration
}

// Start implements Provider.
func (l *Local) Start(ctx context.Context) (c *Cluster, err error) {
	logger := l.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("cluster: the local cluster needs root (network namespaces, bridges)")
	}
	stateRoot := filepath.Join(os.TempDir(), "nemesis-e2e")
	if err := os.MkdirAll(stateRoot, 0o755); err != nil {
		return nil, err
	}
	// One local cluster per machine: its network and ports are fixed.
	lock, err := os.OpenFile(filepath.Join(stateRoot, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("cluster: another local cluster runs on this machine (lock %s held)", lock.Name())
	}
	pidDir := filepath.Join(stateRoot, "pids")
	if err := stopLeftovers(pidDir, logger); err != nil {
		return nil, err
	}
	removeNetwork(namePrefix)
	removeNetwork(bridgeName)
	if err := nodeagent.Cleanup(namePrefix); err != nil {
		logger.Warn("cleaning an earlier run's pods", "err", err)
	}
	if err := os.MkdirAll(pidDir, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(stateRoot, "run-")
	if err != nil {
		return nil, err
	}
	logDir := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	ps := &procs{logDir: logDir, pidDir: pidDir, logger: logger}
	runCtx, cancelRun := context.WithCancel(context.Background())
	agentDone := make(chan struct{})
	close(agentDone)
	stop := func() {
		cancelRun()
		<-agentDone
		ps.stopAll(10 * time.Second)
		removeNetwork(namePrefix)
		removeNetwork(bridgeName)
		_ = unix.Flock(int(lock.Fd()), unix.LOCK_UN)
		lock.Close()
		logger.Info("cluster stopped", "logs", logDir)
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()

	bins, err := Build(ctx, logger, l.Repo, l.CacheDir, filepath.Join(dir, "bin"))
	if err != nil {
		return nil, err
	}

	// Network: a bridge for the node and pods.
	if err := makeBridge(bridgeName, hostIP+"/16"); err != nil {
		return nil, err
	}

	// PKI.
	pki := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pki, 0o755); err != nil {
		return nil, err
	}
	ca, err := newAuthority("nemesis-e2e-ca")
	if err != nil {
		return nil, err
	}
	caFile := filepath.Join(pki, "ca.crt")
	if err := os.WriteFile(caFile, ca.certPEM, 0o644); err != nil {
		return nil, err
	}
	apiCert, apiKey, err := ca.issue("kube-apiserver", nil, []string{hostIP, "10.96.0.1", "127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"})
	if err != nil {
		return nil, err
	}
	apiCertFile, apiKeyFile, err := writePair(pki, "apiserver", apiCert, apiKey)
	if err != nil {
		return nil, err
	}
	fp, err := newAuthority("nemesis-e2e-front-proxy-ca")
	if err != nil {
		return nil, err
	}
	fpCAFile := filepath.Join(pki, "front-proxy-ca.crt")
	if err := os.WriteFile(fpCAFile, fp.certPEM, 0o644); err != nil {
		return nil, err
	}
	fpCert, fpKey, err := fp.issue("front-proxy-client", nil, nil)
	if err != nil {
		return nil, err
	}
	fpCertFile, fpKeyFile, err := writePair(pki, "front-proxy-client", fpCert, fpKey)
	if err != nil {
		return nil, err
	}
	saKey, saPub, err := writeRSAKey(pki, "sa")
	if err != nil {
		return nil, err
	}
	token := randomToken()
	tokenFile := filepath.Join(pki, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return nil, err
	}
	server := fmt.Sprintf("https://%s:%d", hostIP, apiPort)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, server, ca.certPEM, token); err != nil {
		return nil, err
	}
	// KEDA's certificates: the operator's gRPC metrics service and the
	// adapter's serving certificate share them, as in KEDA's manifests.
	kedaCA, err := newAuthority("keda-ca")
	if err != nil {
		return nil, err
	}
	kedaCerts := filepath.Join(dir, "keda-certs")
	if err := os.MkdirAll(kedaCerts, 0o755); err != nil {
		return nil, err
	}
	kc, kk, err := kedaCA.issue("keda", nil, []string{"localhost", hostIP, adapterIP, "keda-operator.keda.svc", "keda-metrics-apiserver.keda.svc"})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(kedaCerts, "ca.crt"), kedaCA.certPEM, 0o644); err != nil {
		return nil, err
	}
	if _, _, err := writePair(kedaCerts, "tls", kc, kk); err != nil {
		return nil, err
	}

	// etcd.
	etcdURL := fmt.Sprintf("http://%s:%d", hostIP, etcdPort)
	etcd, err := ps.start("etcd", "", nil, "etcd",
		"--name", "nemesis-e2e", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", fmt.Sprintf("http://%s:%d", hostIP, etcdPeer),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://%s:%d", hostIP, etcdPeer),
		"--initial-cluster", fmt.Sprintf("nemesis-e2e=http://%s:%d", hostIP, etcdPeer),
		"--unsafe-no-fsync", "--log-level", "warn")
	if err != nil {
		return nil, err
	}

	// kube-apiserver.
	api, err := ps.start("kube-apiserver", "", nil, bins.APIServer,
		"--etcd-servers", etcdURL,
		"--bind-address", hostIP, "--advertise-address", hostIP, "--secure-port", fmt.Sprint(apiPort),
		"--tls-cert-file", apiCertFile, "--tls-private-key-file", apiKeyFile,
		"--client-ca-file", caFile, "--token-auth-file", tokenFile,
		"--service-account-key-file", saPub, "--service-account-signing-key-file", saKey,
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--authorization-mode", "Node,RBAC", "--service-cluster-ip-range", serviceCIDR,
		"--enable-aggregator-routing=true",
		"--requestheader-client-ca-file", fpCAFile,
		"--proxy-client-cert-file", fpCertFile, "--proxy-client-key-file", fpKeyFile,
		"--requestheader-allowed-names", "front-proxy-client",
		"--requestheader-username-headers", "X-Remote-User",
		"--requestheader-group-headers", "X-Remote-Group",
		"--requestheader-extra-headers-prefix", "X-Remote-Extra-",
		"--allow-privileged", "--profiling=false", "--v", "1")
	if err != nil {
		return nil, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 100, 200
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	startAPI := time.Now()
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := waitFor(waitCtx, "kube-apiserver /readyz", 200*time.Millisecond, []*proc{etcd, api}, func(ctx context.Context) error {
		_, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	}); err != nil {
		return nil, err
	}
	logger.Info("kube-apiserver ready", "took", time.Since(startAPI).Round(time.Millisecond), "server", server)

	// kube-controller-manager.
	hpaSync := l.HPASyncPeriod
	if hpaSync == 0 {
		hpaSync = 15 * time.Second
	}
	kcm, err := ps.start("kube-controller-manager", "", nil, bins.ControllerManager,
		"--kubeconfig", kubeconfig, "--authentication-kubeconfig", kubeconfig, "--authorization-kubeconfig", kubeconfig,
		"--controllers", "*", "--leader-elect=false",
		"--service-account-private-key-file", saKey, "--root-ca-file", caFile,
		"--horizontal-pod-autoscaler-sync-period", hpaSync.String(),
		"--bind-address", "127.0.0.1", "--secure-port", "0", "--v", "1")
	if err != nil {
		return nil, err
	}

	applier, err := NewApplier(cfg)
	if err != nil {
		return nil, err
	}
	// KEDA: CRDs, namespace, the metrics adapter's Service and APIService.
	crds, err := filepath.Glob(filepath.Join(bins.KEDACRDs, "*.yaml"))
	if err != nil || len(crds) == 0 {
		return nil, fmt.Errorf("cluster: no KEDA CRDs in %s (%v)", bins.KEDACRDs, err)
	}
	for _, f := range crds {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if err := applier.Apply(ctx, "", b); err != nil {
			return nil, err
		}
	}
	if err := applier.Apply(ctx, "", kedaManifests(kedaCA.certPEM)); err != nil {
		return nil, err
	}
	kedaEnv := []string{"KUBECONFIG=" + kubeconfig, "WATCH_NAMESPACE=", "POD_NAMESPACE=keda", "KEDA_CLUSTER_OBJECT_NAMESPACE=keda", "OPERATOR_NAME=keda-operator"}
	operator, err := ps.start("keda-operator", "", kedaEnv, bins.KEDAOperator,
		"--enable-cert-rotation=false", "--cert-dir", kedaCerts,
		"--enable-webhook-patching=false", "--enable-apiservice-patching=false",
		"--metrics-bind-address", hostIP+":8180", "--health-probe-bind-address", hostIP+":8181",
		"--metrics-service-bind-address", fmt.Sprintf("%s:%d", hostIP, kedaGRPC),
		"--zap-log-level=info", "--zap-encoder=console")
	if err != nil {
		return nil, err
	}
	if err := makeNetns(namePrefix+"-keda", namePrefix+"kd", bridgeName, adapterIP+"/16", hostIP); err != nil {
		return nil, err
	}
	adapter, err := ps.start("keda-adapter", namePrefix+"-keda", kedaEnv, bins.KEDAAdapter,
		"--secure-port=6443", "--bind-address", adapterIP, "--cert-dir", kedaCerts,
		"--tls-cert-file", filepath.Join(kedaCerts, "tls.crt"), "--tls-private-key-file", filepath.Join(kedaCerts, "tls.key"),
		"--client-ca-file", filepath.Join(kedaCerts, "ca.crt"),
		"--lister-kubeconfig", kubeconfig, "--authentication-kubeconfig", kubeconfig, "--authorization-kubeconfig", kubeconfig,
		"--requestheader-client-ca-file", fpCAFile, "--requestheader-allowed-names", "front-proxy-client",
		"--metrics-service-address", fmt.Sprintf("%s:%d", hostIP, kedaGRPC), "--metrics-service-grpc-authority", "localhost",
		"--zap-log-level=info")
	if err != nil {
		return nil, err
	}

	// Prometheus, discovering pods through the API server.
	promURL := fmt.Sprintf("http://%s:%d", hostIP, promPort)
	promCfg := filepath.Join(dir, "prometheus.yml")
	targets := filepath.Join(dir, "prometheus-targets.json")
	if err := runScrapeTargets(runCtx, client, targets, logger); err != nil {
		return nil, err
	}
	if err := os.WriteFile(promCfg, prometheusConfig(targets), 0o644); err != nil {
		return nil, err
	}
	startProm := func() (*proc, error) {
		return ps.start("prometheus", "", nil, "prometheus",
			"--config.file", promCfg, "--storage.tsdb.path", filepath.Join(dir, "prometheus"),
			"--web.listen-address", fmt.Sprintf("%s:%d", hostIP, promPort),
			"--storage.tsdb.retention.time", "1d", "--log.level", "warn")
	}
	prom, err := startProm()
	if err != nil {
		return nil, err
	}

	// The node.
	images := bins.Images
	agent, err := nodeagent.New(nodeagent.Config{
		Client:        client,
		NodeName:      nodeName,
		Bridge:        bridgeName,
		Gateway:       netip.MustParseAddr(hostIP),
		PodCIDR:       netip.MustParsePrefix(podCIDR),
		Images:        images,
		StateDir:      filepath.Join(dir, "pods"),
		APIServerHost: hostIP,
		APIServerPort: apiPort,
		CACert:        ca.certPEM,
		NamePrefix:    namePrefix,
		Logger:        logger.With("component", "nodeagent"),
	})
	if err != nil {
		return nil, err
	}
	agentDone = make(chan struct{})
	go func() {
		defer close(agentDone)
		if err := agent.Run(runCtx); err != nil && runCtx.Err() == nil {
			logger.Error("node agent stopped", "err", err)
		}
	}()

	all := []*proc{etcd, api, kcm, operator, adapter, prom}
	waitCtx, cancel = context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := waitFor(waitCtx, "Prometheus", 200*time.Millisecond, all, func(ctx context.Context) error {
		return httpOK(ctx, promURL+"/-/ready")
	}); err != nil {
		return nil, err
	}
	if err := waitFor(waitCtx, "the external metrics API (KEDA's adapter)", 500*time.Millisecond, all, func(ctx context.Context) error {
		_, err := client.Discovery().RESTClient().Get().AbsPath("/apis/external.metrics.k8s.io/v1beta1").DoRaw(ctx)
		return err
	}); err != nil {
		return nil, err
	}
	if err := waitFor(waitCtx, "the node and the default service account", 200*time.Millisecond, all, func(ctx context.Context) error {
		if _, err := client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{}); err != nil {
			return err
		}
		_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		return nil, err
	}
	logger.Info("cluster ready", "dir", dir, "kubeconfig", kubeconfig)

	proxies := newServiceProxies(runCtx, client, logger)
	return &Cluster{
		Kubeconfig:       kubeconfig,
		Kubectl:          bins.Kubectl,
		Config:           cfg,
		Client:           client,
		PrometheusURL:    promURL,
		PodPrometheusURL: promURL,
		Images:           images,
		Dir:              dir,
		ServiceAddress:   proxies.address,
		Logs: func(_ context.Context, namespace, pod, container string) ([]byte, error) {
			return os.ReadFile(filepath.Join(dir, "pods", fmt.Sprintf("%s_%s_%s.log", namespace, pod, container)))
		},
		StopPrometheus: func() {
			ps.stopOne(prom, 10*time.Second)
		},
		StartPrometheus: func(ctx context.Context) error {
			p, err := startProm()
			if err != nil {
				return err
			}
			prom = p
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			return waitFor(ctx, "Prometheus", 100*time.Millisecond, []*proc{p}, func(ctx context.Context) error {
				return httpOK(ctx, promURL+"/-/ready")
			})
		},
		Stop: stop,
	}, nil
}

// Container images of the suite's manifests, and what runs them locally.
const (
	NemesisImage   = "ghcr.io/k8s-nemesis/nemesis:e2e"
	SampleAppImage = "ghcr.io/k8s-nemesis/sampleapp:e2e"
	LLMSimImage    = "ghcr.io/k8s-nemesis/llmsim:e2e"
)

func httpOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// kedaManifests are the objects KEDA's metrics adapter needs to serve the
// external metrics API: its namespace, a Service without selector whose
// EndpointSlice points at the adapter's network namespace, and the
// APIService.
func kedaManifests(caPEM []byte) []byte {
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: keda}
---
apiVersion: v1
kind: Service
metadata: {name: keda-metrics-apiserver, namespace: keda}
spec:
  ports: [{name: https, port: 443, targetPort: 6443, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: keda-metrics-apiserver
  namespace: keda
  labels: {kubernetes.io/service-name: keda-metrics-apiserver}
addressType: IPv4
ports: [{name: https, port: 6443, protocol: TCP}]
endpoints: [{addresses: [%q], conditions: {ready: true}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  service: {name: keda-metrics-apiserver, namespace: keda, port: 443}
  caBundle: %s
`, adapterIP, b64(caPEM)))
}

// prometheusConfig scrapes the targets of the file_sd file targets (see
// scrapeTargets). Scraped labels win (honor_labels), so that the
// activator's namespace and service labels keep naming the proxied service.
func prometheusConfig(targets string) []byte {
	return []byte(fmt.Sprintf(`global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 2s
scrape_configs:
- job_name: pods
  honor_labels: true
  file_sd_configs:
  - files: [%s]
`, targets))
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
