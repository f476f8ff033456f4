package cluster

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// scrapeTargets keeps a Prometheus file_sd file in step with the cluster's
// pods: every running pod with an IP and the annotation
// prometheus.io/scrape: "true" is a target on the port of
// prometheus.io/port (and path of prometheus.io/path), labelled with its
// namespace and pod. Debian's Prometheus is built without Kubernetes
// service discovery; this takes its place, and Prometheus picks each change
// up at once (file_sd watches the file).
type scrapeTargets struct {
	file   string
	logger *slog.Logger
	mu     sync.Mutex
	last   []byte
}

type targetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

func runScrapeTargets(ctx context.Context, client kubernetes.Interface, file string, logger *slog.Logger) error {
	st := &scrapeTargets{file: file, logger: logger}
	if err := st.write(nil); err != nil {
		return err
	}
	f := informers.NewSharedInformerFactory(client, 0)
	inf := f.Core().V1().Pods().Informer()
	sync := func(any) { st.write(inf.GetStore().List()) }
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    sync,
		UpdateFunc: func(_, o any) { sync(o) },
		DeleteFunc: sync,
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	return nil
}

func (st *scrapeTargets) write(objs []any) error {
	groups := []targetGroup{}
	for _, o := range objs {
		p, ok := o.(*corev1.Pod)
		if !ok || p.Annotations["prometheus.io/scrape"] != "true" || p.Status.PodIP == "" ||
			p.Status.Phase != corev1.PodRunning {
			continue
		}
		port := p.Annotations["prometheus.io/port"]
		if port == "" {
			continue
		}
		labels := map[string]string{"namespace": p.Namespace, "pod": p.Name}
		if path := p.Annotations["prometheus.io/path"]; path != "" {
			labels["__metrics_path__"] = path
		}
		groups = append(groups, targetGroup{Targets: []string{p.Status.PodIP + ":" + port}, Labels: labels})
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].Targets[0] < groups[j].Targets[0] })
	b, err := json.Marshal(groups)
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if string(b) == string(st.last) {
		return nil
	}
	tmp := filepath.Join(filepath.Dir(st.file), ".targets.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		st.logger.Error("scrape targets", "err", err)
		return err
	}
	if err := os.Rename(tmp, st.file); err != nil {
		st.logger.Error("scrape targets", "err", err)
		return err
	}
	st.last = b
	return nil
}
