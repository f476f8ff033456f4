package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/k8s-nemesis/nemesis/internal/promtest"
)

// The simulated workloads. They match the trigger metadata of the
// ScaledObjects in keda.go.
const (
	modelNamespace = "ml"
	modelName      = "llama"
	apiNamespace   = "shop"
	apiService     = "api"

	// At peak load: 40 requests waiting and 64 running on the model server
	// (vllm-queue: max(40/4, 64/8) = 10 replicas), and 120 requests in
	// flight on the API, spread 40/30/20/10 % over its pods (http-inflight:
	// 120/10 = 12; http-busiest-pod: 48 * 4 pods / 10 = 19.2, rounded up
	// to 20).
	peakWaiting  = 40
	peakRunning  = 64
	peakInflight = 120
)

// podShare is how the API's requests are spread over its pods: unevenly,
// so that sizing for the busiest pod differs from sizing for the total.
var podShare = []struct {
	pod   string
	share float64
}{{"api-0", 0.40}, {"api-1", 0.30}, {"api-2", 0.20}, {"api-3", 0.10}}

// phase is one stretch of the load curve, as a fraction of the whole.
type phase struct {
	name string
	frac float64
}

var phases = []phase{
	{"idle", 0.10},
	{"ramp-up", 0.25},
	{"peak", 0.20},
	{"ramp-down", 0.25},
	{"idle", 0.20},
}

// curve returns the phase and the load level, 0 to 1, at elapsed of total.
func curve(elapsed, total time.Duration) (string, float64) {
	if total <= 0 {
		return "idle", 0
	}
	x := float64(elapsed) / float64(total)
	start := 0.0
	for _, p := range phases {
		end := start + p.frac
		if x < end {
			in := (x - start) / p.frac // 0..1 within the phase
			switch p.name {
			case "ramp-up":
				return p.name, in
			case "peak":
				return p.name, 1
			case "ramp-down":
				return p.name, 1 - in
			default:
				return p.name, 0
			}
		}
		start = end
	}
	return "idle", 0
}

// load is what the exporter serves at one moment.
type load struct {
	phase    string
	level    float64
	waiting  int
	running  int
	inflight []int // per pod, in podShare order
}

func loadAt(phase string, level float64) load {
	l := load{
		phase:   phase,
		level:   level,
		waiting: int(math.Round(level * peakWaiting)),
		running: int(math.Round(level * peakRunning)),
	}
	for _, p := range podShare {
		l.inflight = append(l.inflight, int(math.Round(level*peakInflight*p.share)))
	}
	return l
}

func (l load) busy() bool {
	if l.waiting > 0 || l.running > 0 {
		return true
	}
	for _, n := range l.inflight {
		if n > 0 {
			return true
		}
	}
	return false
}

// podsString renders the per-pod in-flight counts as "48/36/24/12".
func (l load) podsString() string {
	parts := make([]string, len(l.inflight))
	for i, n := range l.inflight {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, "/")
}

// driver sets the exporter's gauges along the load curve and remembers what
// it set, and when the load began and ended.
type driver struct {
	exp   *promtest.Exporter
	total time.Duration

	mu      sync.Mutex
	start   time.Time
	current load
	began   time.Time // first moment with load, zero until then
	ended   time.Time // last moment the load went from busy to idle
}

func newDriver(exp *promtest.Exporter, total time.Duration) *driver {
	d := &driver{exp: exp, total: total}
	d.apply(loadAt("idle", 0), time.Now())
	return d
}

// set writes l to the exporter.
func (d *driver) set(l load) {
	d.exp.Set("vllm:num_requests_waiting", map[string]string{"namespace": modelNamespace, "model_name": modelName}, float64(l.waiting))
	d.exp.Set("vllm:num_requests_running", map[string]string{"namespace": modelNamespace, "model_name": modelName}, float64(l.running))
	for i, p := range podShare {
		d.exp.Set("http_requests_in_flight", map[string]string{"namespace": apiNamespace, "service": apiService, "pod": p.pod}, float64(l.inflight[i]))
	}
}

func (d *driver) apply(l load, now time.Time) {
	d.set(l)
	d.mu.Lock()
	defer d.mu.Unlock()
	was := d.current.busy()
	d.current = l
	switch {
	case l.busy() && d.began.IsZero():
		d.began = now
	case was && !l.busy():
		d.ended = now
	}
}

// begin starts the load clock.
func (d *driver) begin(now time.Time) {
	d.mu.Lock()
	d.start = now
	d.mu.Unlock()
}

// tick sets the load for now.
func (d *driver) tick(now time.Time) {
	d.mu.Lock()
	elapsed := now.Sub(d.start)
	d.mu.Unlock()
	phase, level := curve(elapsed, d.total)
	d.apply(loadAt(phase, level), now)
}

// snapshot returns the load last set, and when the load began and ended.
func (d *driver) snapshot() (l load, began, ended time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.current, d.began, d.ended
}

// describe is a one-line account of the curve, for the banner.
func describeCurve(total time.Duration) string {
	parts := make([]string, len(phases))
	for i, p := range phases {
		parts[i] = fmt.Sprintf("%s %s", p.name, time.Duration(float64(total)*p.frac).Round(100*time.Millisecond))
	}
	return strings.Join(parts, " → ")
}
