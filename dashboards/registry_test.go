package dashboards

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/k8s-nemesis/nemesis/activator"
	"github.com/k8s-nemesis/nemesis/demand"
	"github.com/k8s-nemesis/nemesis/externalscaler"
	"github.com/k8s-nemesis/nemesis/kube"
	"github.com/k8s-nemesis/nemesis/metrics"
)

// The registries below are built the way cmd/nemesis builds them
// (runScaler in scaler.go, runActivator in activator.go): the same
// constructors on one registry, with every optional part switched on
// (Kubernetes access, activator discovery, a Prometheus for metric
// policies), so that they hold every metric the binaries can export. None
// of the constructors connects to anything. The Go and process collectors
// are left out: no dashboard query needs them.

// scalerFamilies are the metric families `nemesis scaler` exports.
func scalerFamilies(t *testing.T) map[string]family {
	t.Helper()
	rec := newRecorder()
	logger := slog.New(slog.DiscardHandler)
	rulesDir := t.TempDir()
	rule := "ruleSets:\n  - name: one\n    queries:\n      q: vector(1)\n    replicas: q\n    max: 1\n"
	if err := os.WriteFile(filepath.Join(rulesDir, "rules.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	store, err := externalscaler.NewRuleStore([]string{rulesDir}, logger, rec)
	if err != nil {
		t.Fatalf("rule store: %v", err)
	}
	client, err := metrics.NewClient(metrics.ClientConfig{URL: "http://127.0.0.1:9090"}, logger, rec, nil)
	if err != nil {
		t.Fatalf("prometheus client: %v", err)
	}
	rc := &rest.Config{Host: "http://127.0.0.1:1"}
	clients, err := kube.NewScaleTargetClients(rc)
	if err != nil {
		t.Fatalf("scale target clients: %v", err)
	}
	targets := kube.NewScaleTargets(clients, kube.ScaleTargetsOptions{Logger: logger, Registerer: rec})
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatalf("kubernetes client: %v", err)
	}
	kube.NewServiceEndpoints(kc, logger, rec)
	agg := demand.NewAggregator(demand.StaticSources{"http://127.0.0.1:1"}, demand.AggregatorOptions{Logger: logger, Registerer: rec})
	externalscaler.New(store, client, externalscaler.Options{
		Logger: logger, Registerer: rec, Demand: agg, ScaleTargets: targets,
	})
	fams, err := rec.families()
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// activatorFamilies are the metric families `nemesis activator` exports.
func activatorFamilies(t *testing.T) map[string]family {
	t.Helper()
	rec := newRecorder()
	logger := slog.New(slog.DiscardHandler)
	client, err := metrics.NewClient(metrics.ClientConfig{URL: "http://127.0.0.1:9090"}, logger, rec, nil)
	if err != nil {
		t.Fatalf("prometheus client: %v", err)
	}
	tracker := demand.NewTracker("test", demand.TrackerOptions{Logger: logger, Registerer: rec})
	t.Cleanup(tracker.Close)
	kc, err := kubernetes.NewForConfig(&rest.Config{Host: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatalf("kubernetes client: %v", err)
	}
	act := activator.New(activator.Options{
		Logger: logger, Registerer: rec, Metrics: client, Demand: tracker,
		Services: kube.NewServiceEndpoints(kc, logger, rec),
	})
	t.Cleanup(act.Close)
	fams, err := rec.families()
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// family is one exported metric family.
type family struct {
	name   string
	typ    dto.MetricType
	labels []string // the instrument's own labels, sorted
}

// series are the names of the series a family exposes in Prometheus'
// text format: a classic histogram only as _bucket, _sum and _count.
func (f family) series() []string {
	switch f.typ {
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		return []string{f.name + "_bucket", f.name + "_sum", f.name + "_count"}
	case dto.MetricType_SUMMARY:
		return []string{f.name, f.name + "_sum", f.name + "_count"}
	}
	return []string{f.name}
}

// recorder is a registry that remembers what was registered on it, so
// that a family without series yet (a vector no one has touched) is
// found too.
type recorder struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

var _ prometheus.Registerer = (*recorder)(nil)

func newRecorder() *recorder { return &recorder{Registry: prometheus.NewRegistry()} }

func (r *recorder) Register(c prometheus.Collector) error {
	if err := r.Registry.Register(c); err != nil {
		return err
	}
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *recorder) Unregister(c prometheus.Collector) bool {
	r.collectors = slices.DeleteFunc(r.collectors, func(x prometheus.Collector) bool { return x == c })
	return r.Registry.Unregister(c)
}

// families gives every vector one child, checks that every described
// metric then shows in a collection, and gathers the families.
func (r *recorder) families() (map[string]family, error) {
	for _, c := range r.collectors {
		if err := touch(c); err != nil {
			return nil, err
		}
	}
	// Every Desc a collector describes must have been collected: else a
	// family would be missing from the gathered set and a dashboard
	// naming it would fail for the wrong reason, or a collector type
	// touch does not know would go unnoticed.
	for _, c := range r.collectors {
		collected := map[*prometheus.Desc]bool{}
		mc := make(chan prometheus.Metric)
		go func() { c.Collect(mc); close(mc) }()
		for m := range mc {
			collected[m.Desc()] = true
		}
		dc := make(chan *prometheus.Desc)
		go func() { c.Describe(dc); close(dc) }()
		for d := range dc {
			if !collected[d] {
				return nil, fmt.Errorf("collector %T describes %s but collects nothing for it: teach touch its type", c, d)
			}
		}
	}
	mfs, err := r.Gather()
	if err != nil {
		return nil, fmt.Errorf("gathering: %w", err)
	}
	fams := map[string]family{}
	for _, mf := range mfs {
		f := family{name: mf.GetName(), typ: mf.GetType()}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if !slices.Contains(f.labels, lp.GetName()) {
					f.labels = append(f.labels, lp.GetName())
				}
			}
		}
		slices.Sort(f.labels)
		fams[f.name] = f
	}
	return fams, nil
}

// touch gives a metric vector one child with placeholder label values,
// so that it collects a metric; other collectors are left alone. The
// number of labels is found by trying: the vector rejects any other.
func touch(c prometheus.Collector) error {
	var try func(lvs []string) error
	switch v := c.(type) {
	case *prometheus.CounterVec:
		try = func(lvs []string) error { _, err := v.GetMetricWithLabelValues(lvs...); return err }
	case *prometheus.GaugeVec:
		try = func(lvs []string) error { _, err := v.GetMetricWithLabelValues(lvs...); return err }
	case *prometheus.HistogramVec:
		try = func(lvs []string) error { _, err := v.GetMetricWithLabelValues(lvs...); return err }
	case *prometheus.SummaryVec:
		try = func(lvs []string) error { _, err := v.GetMetricWithLabelValues(lvs...); return err }
	default:
		return nil
	}
	lvs := []string{}
	for range 32 {
		if try(lvs) == nil {
			return nil
		}
		lvs = append(lvs, "placeholder")
	}
	return fmt.Errorf("collector %T takes no label count up to 32", c)
}

// silent describes a metric it never collects, like a custom collector
// touch does not know.
type silent struct{ d *prometheus.Desc }

func (s silent) Describe(ch chan<- *prometheus.Desc) { ch <- s.d }
func (s silent) Collect(chan<- prometheus.Metric)    {}

func TestRecorderFamilies(t *testing.T) {
	t.Run("untouched vectors", func(t *testing.T) {
		rec := newRecorder()
		rec.MustRegister(
			prometheus.NewCounterVec(prometheus.CounterOpts{Name: "a_total", Help: "a"}, []string{"x", "y"}),
			prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "b_seconds", Help: "b"}, []string{"z"}),
			prometheus.NewGauge(prometheus.GaugeOpts{Name: "c", Help: "c"}),
		)
		removed := prometheus.NewGauge(prometheus.GaugeOpts{Name: "d", Help: "d"})
		rec.MustRegister(removed)
		rec.Unregister(removed)
		fams, err := rec.families()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"a_total": "COUNTER [x y]", "b_seconds": "HISTOGRAM [z]", "c": "GAUGE []"}
		got := map[string]string{}
		for n, f := range fams {
			got[n] = fmt.Sprintf("%s %v", f.typ, f.labels)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("families %v, want %v", got, want)
		}
	})
	t.Run("a collector that collects nothing", func(t *testing.T) {
		rec := newRecorder()
		rec.MustRegister(silent{prometheus.NewDesc("e", "e", nil, nil)})
		if _, err := rec.families(); err == nil {
			t.Error("no error for a described family that is never collected")
		}
	})
}
