package stack

import (
	"context"
	"net/http"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ReadMetric fetches a Prometheus text exposition from url and returns the
// sum of metric over the series whose labels include match; ok is false
// when the page cannot be read or has no such series.
func ReadMetric(ctx context.Context, url, metric string, match map[string]string) (sum float64, ok bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, false
	}
	f, found := fams[metric]
	if !found {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range match {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			sum, ok = sum+m.GetGauge().GetValue(), true
		case m.Counter != nil:
			sum, ok = sum+m.GetCounter().GetValue(), true
		}
	}
	return sum, ok
}

// PodsMetric sums metric over the running pods of namespace matching
// selector, read from each pod's address and port (pods must be reachable
// from this machine, as on the local cluster).
func PodsMetric(ctx context.Context, client kubernetes.Interface, namespace, selector, port, metric string, match map[string]string) (float64, bool) {
	pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return 0, false
	}
	var sum float64
	found := false
	for _, p := range pods.Items {
		if p.Status.PodIP == "" {
			continue
		}
		if v, ok := ReadMetric(ctx, "http://"+p.Status.PodIP+":"+port+"/metrics", metric, match); ok {
			sum, found = sum+v, true
		}
	}
	return sum, found
}
