package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Config is what an Agent needs.
type Config struct {
	// Client reaches the API server with rights to nodes, leases, pods
	// (binding, status), events, configmaps, secrets and service account
	// tokens.
	Client kubernetes.Interface
	// NodeName is the name of the Node the agent registers, e.g.
	// "nemesis-e2e".
	NodeName string
	// Bridge is the existing bridge, made by the harness, that pods'
	// veths are attached to, e.g. "nmbr0".
	Bridge string
	// Gateway is the bridge's address: the node's InternalIP, the hostIP of
	// pods and their default route, e.g. 10.244.0.1.
	Gateway netip.Addr
	// PodCIDR is the prefix pod addresses come from, e.g. 10.244.0.0/16;
	// they are handed out from 10.244.1.1 upward.
	PodCIDR netip.Prefix
	// Images maps a container image to the absolute path of the binary that
	// is its entrypoint.
	Images map[string]string
	// StateDir holds the pods' directories (volumes, tokens) and the
	// container logs <StateDir>/<ns>_<pod>_<container>.log.
	StateDir string
	// APIServerHost and APIServerPort are given to containers as
	// KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, e.g. 10.244.0.1
	// and 6443.
	APIServerHost string
	APIServerPort int
	// CACert is the cluster CA (PEM), written as ca.crt of the service
	// account volume the agent mounts.
	CACert []byte
	// NamePrefix starts the name of every network namespace, veth and pod
	// directory the agent makes, e.g. "nme2e"; Cleanup finds leftovers by
	// it. Two to eight lower-case letters and digits.
	NamePrefix string
	// Logger receives the agent's logs; nil discards them.
	Logger *slog.Logger
}

// tools are the absolute paths of the commands the agent runs.
type tools struct {
	ip, unshare, sh, mount, mkdir string
}

const (
	// shutdownGrace is how long containers get between SIGTERM and SIGKILL
	// when the agent stops or a pod vanishes from the API.
	shutdownGrace = 2 * time.Second
	// resyncPeriod is how often a pod worker looks at its pod with nothing
	// else to do (volumes, tokens, retries).
	resyncPeriod = 10 * time.Second
)

// Agent is the node: it registers itself, binds pending pods and runs the
// pods bound to it. Make one with New.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	ipam     *ipam
	tools    tools
	stateDir string
	node     nodeInfo
	events   *recorder
	queue    workqueue.TypedRateLimitingInterface[string] // pods to bind

	ran atomic.Bool

	// Set by Run before the informers start, read-only afterwards.
	ctx        context.Context // the Run context: pod workers live in it
	pods       corelisters.PodLister
	configMaps corelisters.ConfigMapLister
	secrets    corelisters.SecretLister

	mu       sync.Mutex
	stopping bool
	workers  map[types.UID]*worker
	finished map[types.UID]bool // pods whose workers are done but whose deletion was not seen yet
	workerWG sync.WaitGroup
}

// New checks cfg, every problem at once, and returns an Agent.
func New(cfg Config) (*Agent, error) {
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, errors.New("no Kubernetes client"))
	}
	for _, msg := range validation.IsDNS1123Subdomain(cfg.NodeName) {
		errs = append(errs, fmt.Errorf("node name %q: %s", cfg.NodeName, msg))
	}
	if len(cfg.NodeName) > 63 {
		errs = append(errs, fmt.Errorf("node name %q: longer than 63 characters, it cannot be a label value", cfg.NodeName))
	}
	if cfg.Bridge == "" || len(cfg.Bridge) > maxLinkName {
		errs = append(errs, fmt.Errorf("bridge %q: must be an interface name of 1 to 15 characters", cfg.Bridge))
	}
	if err := validPrefix(cfg.NamePrefix); err != nil {
		errs = append(errs, err)
	} else if strings.HasPrefix(cfg.Bridge, cfg.NamePrefix) {
		errs = append(errs, fmt.Errorf("bridge %q starts with the name prefix %q: Cleanup would delete it", cfg.Bridge, cfg.NamePrefix))
	}
	pool, err := newIPAM(cfg.PodCIDR, cfg.Gateway)
	if err != nil {
		errs = append(errs, err)
	}
	if !cfg.Gateway.Is4() || !cfg.PodCIDR.Contains(cfg.Gateway) {
		errs = append(errs, fmt.Errorf("gateway %q: must be an IPv4 address of the pod CIDR %q", cfg.Gateway, cfg.PodCIDR))
	}
	for image, path := range cfg.Images {
		if !filepath.IsAbs(path) {
			errs = append(errs, fmt.Errorf("image %q: binary path %q is not absolute", image, path))
		}
	}
	if cfg.StateDir == "" {
		errs = append(errs, errors.New("no state directory"))
	}
	if cfg.APIServerHost == "" {
		errs = append(errs, errors.New("no API server host for the pods"))
	}
	if cfg.APIServerPort < 1 || cfg.APIServerPort > 65535 {
		errs = append(errs, fmt.Errorf("API server port %d: out of range", cfg.APIServerPort))
	}
	if len(cfg.CACert) == 0 {
		errs = append(errs, errors.New("no cluster CA certificate"))
	}
	var t tools
	for _, x := range []struct {
		name string
		dst  *string
	}{{"ip", &t.ip}, {"unshare", &t.unshare}, {"sh", &t.sh}, {"mount", &t.mount}, {"mkdir", &t.mkdir}} {
		p, err := exec.LookPath(x.name)
		if err != nil {
			errs = append(errs, fmt.Errorf("looking for the %s command: %w", x.name, err))
			continue
		}
		if *x.dst, err = filepath.Abs(p); err != nil {
			errs = append(errs, fmt.Errorf("looking for the %s command: %w", x.name, err))
		}
	}
	stateDir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		errs = append(errs, fmt.Errorf("state directory %q: %w", cfg.StateDir, err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("configuring the node agent: %w", err)
	}

	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", cfg.NodeName)
	cfg.Images = maps.Clone(cfg.Images)
	return &Agent{
		cfg:      cfg,
		log:      logger,
		ipam:     pool,
		tools:    t,
		stateDir: stateDir,
		node:     readNodeInfo(),
		events:   newRecorder(cfg.Client, cfg.NodeName, logger),
		queue: workqueue.NewTypedRateLimitingQueue(
			workqueue.DefaultTypedControllerRateLimiter[string]()),
		workers:  map[types.UID]*worker{},
		finished: map[types.UID]bool{},
	}, nil
}

// Run registers the node, then binds and serves pods until ctx ends. On
// return every process it started has been killed (SIGTERM, then SIGKILL
// after two seconds) and every network namespace and veth it made removed,
// also when it fails. Run returns nil when ctx ends, an error when the
// node cannot be registered or the agent cannot start; it runs once.
func (a *Agent) Run(ctx context.Context) error {
	if !a.ran.CompareAndSwap(false, true) {
		return errors.New("running the node agent: it already ran")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if err := runIP(ctx, a.tools.ip, "link", "show", a.cfg.Bridge); err != nil {
		return fmt.Errorf("running the node agent: bridge %q: %w", a.cfg.Bridge, err)
	}
	if err := os.MkdirAll(a.stateDir, 0o755); err != nil {
		return fmt.Errorf("running the node agent: %w", err)
	}

	factory := informers.NewSharedInformerFactory(a.cfg.Client, 0)
	podInformer := factory.Core().V1().Pods()
	cmInformer := factory.Core().V1().ConfigMaps()
	secretInformer := factory.Core().V1().Secrets()
	a.ctx = ctx
	a.pods = podInformer.Lister()
	a.configMaps = cmInformer.Lister()
	a.secrets = secretInformer.Lister()
	if err := a.addHandlers(podInformer.Informer(), cmInformer.Informer(), secretInformer.Informer()); err != nil {
		return fmt.Errorf("running the node agent: %w", err)
	}

	var wg sync.WaitGroup
	defer func() {
		// Workers first: they kill their processes and remove their
		// namespaces. Then the loops, then the informers that feed them.
		cancel()
		a.stopWorkers()
		a.queue.ShutDown()
		wg.Wait()
		factory.Shutdown()
		a.log.Info("node agent stopped")
	}()
	wg.Go(func() { a.events.run(ctx) })

	node, err := a.registerNode(ctx)
	if err != nil {
		return fmt.Errorf("running the node agent: %w", err)
	}
	a.log.Info("node registered", "internalIP", a.cfg.Gateway)
	wg.Go(func() { a.heartbeat(ctx, node) })

	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("running the node agent: syncing the %v informer failed", typ)
		}
	}
	wg.Go(func() { a.runBinder(ctx) })
	a.log.Info("node agent serving pods")
	<-ctx.Done()
	return nil
}

// addHandlers routes informer events: pending pods to the binder, pods of
// this node to their workers, ConfigMap and Secret changes to the workers
// of their namespace.
func (a *Agent) addHandlers(pods, configMaps, secrets cache.SharedIndexInformer) error {
	_, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.onPod(obj) },
		UpdateFunc: func(_, obj any) { a.onPod(obj) },
		DeleteFunc: func(obj any) { a.onPodDeleted(obj) },
	})
	if err != nil {
		return fmt.Errorf("watching pods: %w", err)
	}
	for _, inf := range []cache.SharedIndexInformer{configMaps, secrets} {
		_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { a.onNamespacedChange(obj) },
			UpdateFunc: func(_, obj any) { a.onNamespacedChange(obj) },
			DeleteFunc: func(obj any) { a.onNamespacedChange(obj) },
		})
		if err != nil {
			return fmt.Errorf("watching configmaps and secrets: %w", err)
		}
	}
	return nil
}

func (a *Agent) onPod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	switch pod.Spec.NodeName {
	case "":
		if wantsBinding(pod) {
			key, err := cache.MetaNamespaceKeyFunc(pod)
			if err == nil {
				a.queue.Add(key)
			}
		}
	case a.cfg.NodeName:
		a.dispatch(pod)
	}
}

// dispatch hands pod to its worker, starting one for a new pod.
func (a *Agent) dispatch(pod *corev1.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopping || a.finished[pod.UID] {
		return
	}
	w := a.workers[pod.UID]
	if w == nil {
		w = newWorker(a, pod)
		a.workers[pod.UID] = w
		a.workerWG.Go(func() {
			w.run(a.ctx)
			a.workerDone(w)
		})
	}
	w.update(pod)
}

func (a *Agent) workerDone(w *worker) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.workers, w.uid)
	if !w.gone.Load() {
		// Its last events may still come; its deletion clears this.
		a.finished[w.uid] = true
	}
}

func (a *Agent) onPodDeleted(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.finished, pod.UID)
	if w := a.workers[pod.UID]; w != nil {
		w.markGone()
	}
}

func (a *Agent) onNamespacedChange(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	ns := ""
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		ns = o.Namespace
	case *corev1.Secret:
		ns = o.Namespace
	default:
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, w := range a.workers {
		if w.ns == ns {
			w.poke()
		}
	}
}

// stopWorkers stops taking pods and waits for every worker to have killed
// its processes and removed what it made. The Run context is already
// cancelled.
func (a *Agent) stopWorkers() {
	a.mu.Lock()
	a.stopping = true
	a.mu.Unlock()
	a.workerWG.Wait()
}
