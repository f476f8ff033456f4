package hpasim

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// seg is the scaler's answer from second `from` until the next seg.
type seg struct {
	from int
	in   Input
}

func ok(desired float64, active bool) Input {
	return Input{Desired: desired, DesiredOK: true, Active: active, ActiveOK: true}
}

// manifest wraps spec lines (indented by two spaces) in a ScaledObject.
func manifest(spec string) string {
	return "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: chat}\nspec:\n" +
		"  scaleTargetRef: {name: chat}\n  triggers: [{type: external, metadata: {ruleSet: chat}}]\n" + spec
}

// simCase is a sequence of scaler answers and the replica counts expected
// at some of the 15 s steps.
type simCase struct {
	spec       string // ScaledObject spec lines
	podStartup time.Duration
	start      int32
	load       []seg
	want       map[int]int32 // second → replicas
	ready      map[int]int32 // second → ready pods
	events     map[int]string
}

func (c simCase) run(t *testing.T) {
	t.Helper()
	cfg, err := ParseScaledObject("case.yaml", []byte(manifest(c.spec)))
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	cfg.PodStartup = c.podStartup
	end := 0
	for at := range c.want {
		end = max(end, at)
	}
	s, err := New(cfg, t0, c.start)
	if err != nil {
		t.Fatal(err)
	}
	var trace strings.Builder
	seg := 0
	for at := 0; at <= end; at += 15 {
		for seg+1 < len(c.load) && c.load[seg+1].from <= at {
			seg++
		}
		st := s.Step(t0.Add(time.Duration(at)*time.Second), c.load[seg].in)
		fmt.Fprintf(&trace, "  t=%4ds in=%+v → replicas %d ready %d %s\n", at, c.load[seg].in, st.Replicas, st.Ready, st.Event)
		if want, ok := c.want[at]; ok && st.Replicas != want {
			t.Errorf("t=%ds: replicas %d, want %d", at, st.Replicas, want)
		}
		if want, ok := c.ready[at]; ok && st.Ready != want {
			t.Errorf("t=%ds: ready %d, want %d", at, st.Ready, want)
		}
		if want, ok := c.events[at]; ok && st.Event != want {
			t.Errorf("t=%ds: event %q, want %q", at, st.Event, want)
		}
	}
	if t.Failed() {
		t.Logf("trace:\n%s", trace.String())
	}
}

// behavior puts a behavior block (lines indented by 8 spaces) under
// advanced.horizontalPodAutoscalerConfig.
func behavior(b string) string {
	return "  advanced:\n    horizontalPodAutoscalerConfig:\n      behavior:\n" + b
}

// The HPA cases are worked by hand from the "Configurable scaling behavior"
// section of https://kubernetes.io/docs/concepts/workloads/autoscaling/horizontal-pod-autoscale/
// (formerly docs/tasks/run-application/horizontal-pod-autoscale/). KEDA's
// external metric has target averageValue 1, so the metric value is the
// desired count and usageRatio = value / current. minReplicaCount 1 keeps
// KEDA out of the way unless a case is about KEDA.
func TestHPA(t *testing.T) {
	for name, c := range map[string]simCase{
		// "Default behavior": "There are 2 policies where 4 pods or a 100% of
		// the currently running replicas may at most be added every 15
		// seconds". From 1: max(1+4, 1×2) = 5, then max(5+4, 10) = 10, then 20.
		"default behavior: 4 pods or 100% per 15s": {
			spec:  "  minReplicaCount: 1\n" + behavior("        {}\n"),
			start: 1,
			load:  []seg{{0, ok(20, true)}},
			want:  map[int]int32{0: 5, 15: 10, 30: 20, 45: 20},
		},
		// Without a behavior field the controller keeps its older rule
		// (horizontal.go calculateScaleUpLimit): at most max(2×current, 4),
		// so from 1 the first step is 4, not 5.
		"no behavior: at most max(2×current, 4)": {
			spec:  "  minReplicaCount: 1\n",
			start: 1,
			load:  []seg{{0, ok(20, true)}},
			want:  map[int]int32{0: 4, 15: 8, 30: 16, 45: 20},
		},
		// "Stabilization window": stabilizationWindowSeconds: 300, "all
		// desired states from the past 5 minutes will be considered". The
		// last recommendation of 10 is at 45 s; it leaves the window when it
		// is no longer after now-300 s, at 345 s.
		"stabilization window 300s": {
			spec:  "  minReplicaCount: 1\n" + behavior("        scaleDown:\n          stabilizationWindowSeconds: 300\n"),
			start: 10,
			load:  []seg{{0, ok(10, true)}, {60, ok(2, true)}},
			want:  map[int]int32{60: 10, 330: 10, 345: 2},
		},
		// The same without behavior: the older path keeps a recommendation
		// that is exactly 300 s old (it drops only those before the cutoff),
		// one sync later than the behavior path.
		"no behavior: downscale window keeps its edge": {
			spec:  "  minReplicaCount: 1\n",
			start: 10,
			load:  []seg{{0, ok(10, true)}, {60, ok(2, true)}},
			want:  map[int]int32{60: 10, 345: 10, 360: 2},
		},
		// "Example: change downscale stabilization window" to 60 s.
		"stabilization window 60s": {
			spec:  "  minReplicaCount: 1\n" + behavior("        scaleDown:\n          stabilizationWindowSeconds: 60\n"),
			start: 10,
			load:  []seg{{0, ok(10, true)}, {60, ok(2, true)}},
			want:  map[int]int32{90: 10, 105: 2},
		},
		// "Scaling policies": Pods 4 and Percent 10 per 60 s, the larger
		// change wins. "if there are 80 replicas and the target has to be
		// scaled down to 10 replicas then during the first step 8 replicas
		// will be reduced. In the next iteration when the number of replicas
		// is 72, 10% of the pods is 7.2 but the number is rounded up to 8
		// ... When the number of replicas falls below 40 the first policy
		// (Pods) is applied and 4 replicas will be reduced at a time." The
		// default 300 s window holds the first step until 300 s; each
		// further step waits for the previous one to leave the 60 s period.
		"policies: 80 to 10 by Percent 10 then Pods 4 per minute": {
			spec: "  minReplicaCount: 1\n" + behavior("        scaleDown:\n          policies:\n"+
				"          - type: Pods\n            value: 4\n            periodSeconds: 60\n"+
				"          - type: Percent\n            value: 10\n            periodSeconds: 60\n"),
			start: 80,
			load:  []seg{{0, ok(10, true)}},
			want: map[int]int32{285: 80, 300: 72, 315: 72, 345: 72, 360: 64, 420: 57, 480: 51,
				540: 45, 600: 40, 660: 36, 720: 32, 780: 28, 840: 24, 900: 20, 960: 16, 1020: 12, 1080: 10, 1200: 10},
		},
		// "Example: limit scale down rate" to 10% per minute: 100 → 90 →
		// 81 → 72 (81×0.9 = 72.9 keeps 72 pods: the removal rounds up).
		"policies: limit scale down to 10% per minute": {
			spec: "  minReplicaCount: 1\n" + behavior("        scaleDown:\n          policies:\n"+
				"          - type: Percent\n            value: 10\n            periodSeconds: 60\n"),
			start: 100,
			load:  []seg{{0, ok(10, true)}},
			want:  map[int]int32{285: 100, 300: 90, 345: 90, 360: 81, 420: 72},
		},
		// "To ensure that no more than 5 Pods are removed per minute ... set
		// selectPolicy to minimum": from 100 the Pods policy is the smaller
		// change.
		"selectPolicy Min: at most 5 pods per minute": {
			spec: "  minReplicaCount: 1\n" + behavior("        scaleDown:\n          policies:\n"+
				"          - type: Percent\n            value: 10\n            periodSeconds: 60\n"+
				"          - type: Pods\n            value: 5\n            periodSeconds: 60\n          selectPolicy: Min\n"),
			start: 100,
			load:  []seg{{0, ok(10, true)}},
			want:  map[int]int32{300: 95, 345: 95, 360: 90, 420: 85, 480: 80},
		},
		// The same policies from 40: now 10% (4, then 3.6 → 3 removed...)
		// is the smaller change.
		"selectPolicy Min: below 50 the percent is smaller": {
			spec: "  minReplicaCount: 1\n" + behavior("        scaleDown:\n          policies:\n"+
				"          - type: Percent\n            value: 10\n            periodSeconds: 60\n"+
				"          - type: Pods\n            value: 5\n            periodSeconds: 60\n          selectPolicy: Min\n"),
			start: 40,
			load:  []seg{{0, ok(10, true)}},
			want:  map[int]int32{300: 36, 360: 32, 420: 28, 480: 25},
		},
		// "Example: disable scale down": selectPolicy Disabled. Scale-up
		// keeps its defaults: 10 → max(10+4, 20) = 20.
		"selectPolicy Disabled: no scale down": {
			spec:  "  minReplicaCount: 1\n" + behavior("        scaleDown:\n          selectPolicy: Disabled\n"),
			start: 10,
			load:  []seg{{0, ok(2, true)}, {600, ok(20, true)}},
			want:  map[int]int32{300: 10, 585: 10, 600: 20},
		},
		// "Disabled" going up: nothing moves the count up, scale-down works.
		"selectPolicy Disabled: no scale up": {
			spec:  "  minReplicaCount: 1\n" + behavior("        scaleUp:\n          selectPolicy: Disabled\n        scaleDown:\n          stabilizationWindowSeconds: 0\n"),
			start: 4,
			load:  []seg{{0, ok(9, true)}, {60, ok(2, true)}},
			want:  map[int]int32{0: 4, 45: 4, 60: 2},
		},
		// Default tolerance 10% ("Tolerance"; --horizontal-pod-autoscaler-
		// tolerance): with 10 pods, 10.9 and 11.0 (ratio 1.1, the edge is
		// inside) change nothing, 11.5 asks ceil(11.5) = 12.
		"tolerance 10% by default": {
			spec:  "  minReplicaCount: 1\n",
			start: 10,
			load:  []seg{{0, ok(10.9, true)}, {60, ok(11, true)}, {120, ok(11.5, true)}},
			want:  map[int]int32{45: 10, 105: 10, 120: 12},
		},
		// "a scale-up tolerance of 5% ... will only consider scaling up if
		// the memory consumption is higher than 105MiB": with 10 pods, 10.5
		// (and 10.5004, which KEDA sends as 10.500) stays, 10.6 → 11.
		"tolerance 5% for scale up": {
			spec:  "  minReplicaCount: 1\n" + behavior("        scaleUp:\n          tolerance: 0.05\n"),
			start: 10,
			load:  []seg{{0, ok(10.5, true)}, {30, ok(10.5004, true)}, {60, ok(10.6, true)}},
			want:  map[int]int32{15: 10, 45: 10, 60: 11},
		},
		// maxReplicaCount is the HPA's maxReplicas: a target above it is set
		// to it at the first sync, without reading the metric.
		"above maxReplicaCount": {
			spec:   "  minReplicaCount: 1\n  maxReplicaCount: 5\n",
			start:  10,
			load:   []seg{{0, ok(10, true)}},
			want:   map[int]int32{0: 5, 60: 5},
			events: map[int]string{0: "hpa scale-down 10→5"},
		},
		// A failed metric: the HPA keeps the count (the reconcile ends on
		// the error) however long it lasts.
		"failed metric holds the count": {
			spec:  "  minReplicaCount: 1\n",
			start: 1,
			load:  []seg{{0, ok(4, true)}, {60, Input{Active: true, ActiveOK: true}}},
			want:  map[int]int32{0: 4, 60: 4, 900: 4},
		},
	} {
		t.Run(name, c.run)
	}
}

// The KEDA cases are worked from the ScaledObject specification,
// https://keda.sh/docs/2.21/reference/scaledobject-spec/ (pollingInterval,
// cooldownPeriod, idleReplicaCount, minReplicaCount) and checked against
// pkg/scaling/executor/scale_scaledobjects.go of KEDA v2.21.
func TestKEDA(t *testing.T) {
	for name, c := range map[string]simCase{
		// pollingInterval: "KEDA will check each trigger source on every
		// ScaledObject every 30 seconds": an answer that turns active at
		// 15 s wakes the target at the poll at 30 s.
		"pollingInterval: activation waits for the poll": {
			load:   []seg{{0, ok(0, false)}, {15, ok(1, true)}},
			want:   map[int]int32{0: 0, 15: 0, 30: 1, 45: 1},
			events: map[int]string{30: "keda activate 0→1"},
		},
		// Activation sets max(minReplicaCount, 1) = 1 and the HPA, syncing
		// right after, takes it to 3. cooldownPeriod: "The period to wait
		// after the last trigger reported active before scaling the resource
		// back to 0": the last active poll is at 90 s, so KEDA scales to 0 at
		// the first poll strictly after 390 s, at 420 s. The HPA's own
		// scale-down waits for its 300 s window (recommendations of 3 until
		// 105 s) and loses the race.
		"cooldownPeriod: back to zero 300s after the last active poll": {
			load:   []seg{{0, ok(0, false)}, {60, ok(3, true)}, {120, ok(0, false)}},
			want:   map[int]int32{45: 0, 60: 3, 390: 3, 405: 3, 420: 0},
			events: map[int]string{60: "keda activate 0→1; hpa scale-up 1→3", 420: "keda deactivate 3→0"},
		},
		// "the KEDA cooldownPeriod only applies when scaling to 0; scaling
		// from 1 to N replicas is handled by the Kubernetes Horizontal Pod
		// Autoscaler": with a 600 s cooldown the HPA goes 3 → 1 (its minimum)
		// at 420 s, KEDA 1 → 0 at 720 s (90 + 600 = 690 is not before 690).
		"cooldownPeriod: HPA scales down to one, KEDA to zero": {
			spec:   "  cooldownPeriod: 600\n",
			load:   []seg{{0, ok(0, false)}, {60, ok(3, true)}, {120, ok(0, false)}},
			want:   map[int]int32{405: 3, 420: 1, 690: 1, 705: 1, 720: 0},
			events: map[int]string{420: "hpa scale-down 3→1", 720: "keda deactivate 1→0"},
		},
		// An active poll within the cooldown restarts it: active again at
		// the poll at 300 s, so zero comes at 630 s, not 420 s.
		"cooldownPeriod restarts on an active poll": {
			load: []seg{{0, ok(0, false)}, {60, ok(3, true)}, {120, ok(0, false)},
				{300, ok(1, true)}, {330, ok(0, false)}},
			want: map[int]int32{420: 1, 600: 1, 615: 1, 630: 0},
		},
		// pollingInterval and cooldownPeriod together, with polls every 10 s
		// and steps every 15 s: the answer of the step at 15 s holds since
		// the step at 0 s, so the poll at 10 s activates; the last active
		// poll is at 40 s (the step at 60 s answers inactive for 50 s and
		// 60 s), and 40 + 30 = 70 s is before the poll at 80 s.
		"pollingInterval 10s, cooldownPeriod 30s": {
			spec:   "  pollingInterval: 10\n  cooldownPeriod: 30\n",
			load:   []seg{{0, ok(0, false)}, {15, ok(1, true)}, {60, ok(0, false)}},
			want:   map[int]int32{0: 0, 15: 1, 75: 1, 90: 0},
			events: map[int]string{15: "keda activate 0→1", 90: "keda deactivate 1→0"},
		},
		// cooldownPeriod 0: zero at the first inactive poll.
		"cooldownPeriod 0": {
			spec: "  cooldownPeriod: 0\n",
			load: []seg{{0, ok(1, true)}, {60, ok(0, false)}},
			want: map[int]int32{0: 1, 45: 1, 60: 0},
		},
		// An IsActive that fails is not active, but without a fallback KEDA
		// only marks the ScaledObject not ready: it never scales to zero on
		// an error. The HPA still follows the metric down to its minimum.
		"failed IsActive never scales to zero": {
			spec:  "  cooldownPeriod: 60\n",
			start: 0,
			load:  []seg{{0, ok(3, true)}, {60, Input{Desired: 0, DesiredOK: true}}},
			want:  map[int]int32{0: 3, 400: 1, 3600: 1},
		},
		// minReplicaCount 2: "Minimum number of replicas KEDA will scale the
		// resource down to": a target at 0 is raised to 2 at the first poll
		// even while inactive, and never goes lower.
		"minReplicaCount 2": {
			spec:   "  minReplicaCount: 2\n",
			load:   []seg{{0, ok(0, false)}},
			want:   map[int]int32{0: 2, 3600: 2},
			events: map[int]string{0: "keda min 0→2"},
		},
		// idleReplicaCount 0 with minReplicaCount 2: "If there's some activity
		// on target triggers KEDA will scale the target resource immediately
		// to minReplicaCount ... When there is no activity, the target
		// resource is again scaled down to idleReplicaCount" after the
		// cooldown: last active poll at 90 s, cooldown 60 s, idle at 180 s.
		"idleReplicaCount 0": {
			spec:   "  minReplicaCount: 2\n  idleReplicaCount: 0\n  cooldownPeriod: 60\n",
			load:   []seg{{0, ok(0, false)}, {60, ok(1, true)}, {120, ok(0, false)}},
			want:   map[int]int32{0: 0, 45: 0, 60: 2, 150: 2, 165: 2, 180: 0, 600: 0},
			events: map[int]string{60: "keda activate 0→2", 180: "keda deactivate 2→0"},
		},
		// maxReplicaCount caps what the HPA sets.
		"maxReplicaCount": {
			spec: "  maxReplicaCount: 3\n",
			load: []seg{{0, ok(50, true)}},
			want: map[int]int32{0: 3, 60: 3},
		},
		// Pods become ready PodStartup after they are created; a scale-down
		// removes the pods still starting first.
		"pod startup": {
			spec:       behavior("        scaleDown:\n          stabilizationWindowSeconds: 0\n"),
			podStartup: 30 * time.Second,
			load:       []seg{{0, ok(3, true)}, {45, ok(6, true)}, {60, ok(4, true)}},
			want:       map[int]int32{0: 3, 30: 3, 45: 6, 60: 4, 75: 4},
			ready:      map[int]int32{0: 0, 15: 0, 30: 3, 45: 3, 60: 3, 75: 4},
		},
	} {
		t.Run(name, c.run)
	}
}

// TestStepGranularity checks that the simulation depends on the answers,
// not on how often Step is called: with the same answers, one step per
// 15 s and one per 5 min give the same counts at the common times.
func TestStepGranularity(t *testing.T) {
	cfg := DefaultConfig()
	cfg.PodStartup = 40 * time.Second
	// A load that rises and falls in 5 min blocks, constant within each.
	blocks := []float64{0, 3, 9, 30, 12, 4, 0, 0, 0, 7, 0}
	answer := func(block int) Input {
		d := blocks[block%len(blocks)]
		return ok(d, d > 0)
	}
	fine, coarse := mustNew(t, cfg, 0), mustNew(t, cfg, 0)
	fine.Step(t0, answer(0))
	coarse.Step(t0, answer(0))
	changes := 0
	var last int32
	for block := 0; block < 48; block++ {
		in := answer(block)
		var f State
		for at := block*300 + 15; at <= (block+1)*300; at += 15 {
			f = fine.Step(t0.Add(time.Duration(at)*time.Second), in)
		}
		c := coarse.Step(t0.Add(time.Duration((block+1)*300)*time.Second), in)
		if f.Replicas != c.Replicas || f.Ready != c.Ready {
			t.Fatalf("block %d: every 15s gives %+v, every 5min gives %+v", block, f, c)
		}
		if c.Replicas != last {
			changes++
			last = c.Replicas
		}
	}
	if changes < 4 {
		t.Fatalf("only %d changes of count: the load did not exercise the simulation", changes)
	}
}

// TestStepBackwards checks that a time earlier than the previous step runs
// nothing and reports the current state.
func TestStepBackwards(t *testing.T) {
	s := mustNew(t, DefaultConfig(), 0)
	st := s.Step(t0.Add(time.Minute), ok(3, true))
	if st.Replicas != 3 {
		t.Fatalf("after a minute active: %d replicas, want 3", st.Replicas)
	}
	back := s.Step(t0, ok(0, false))
	if back.Replicas != 3 || back.Event != "" {
		t.Fatalf("a step back changed the state: %+v", back)
	}
}

// TestMilli checks the quantization against KEDA's own formatting
// (fmt "%.3f", then Quantity.MilliValue), including the ties that the
// fast path leaves to it.
func TestMilli(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want int64
	}{
		{0, 0}, {-3, 0}, {math.NaN(), 0}, {math.Inf(1), 0}, {1, 1000}, {10.5004, 10500},
		{0.0005, 1}, {0.0015, 2}, {2.0005, 2001}, {1.2345, 1234}, {1.2355, 1236}, {1e-9, 0},
		{123456.7891, 123456789},
	} {
		if got := milli(c.v); got != c.want {
			t.Errorf("milli(%v) = %d, want %d", c.v, got, c.want)
		}
		if c.v > 0 && !math.IsInf(c.v, 0) {
			q := resource.MustParse(fmt.Sprintf("%.3f", c.v))
			if q.MilliValue() != c.want {
				t.Errorf("KEDA's quantity for %v is %d milli, the table says %d", c.v, q.MilliValue(), c.want)
			}
		}
	}
}

func mustNew(t *testing.T, cfg Config, replicas int32) *Sim {
	t.Helper()
	s, err := New(cfg, t0, replicas)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestNewRefuses checks that a configuration that could hang or break the
// simulation is refused rather than run.
func TestNewRefuses(t *testing.T) {
	neg := int32(-1)
	for name, mutate := range map[string]func(*Config){
		"negative sync period":    func(c *Config) { c.SyncPeriod = -time.Second },
		"negative polling":        func(c *Config) { c.PollingInterval = -time.Second },
		"negative max":            func(c *Config) { c.MaxReplicas = -1 },
		"min above max":           func(c *Config) { c.MinReplicas = 5; c.MaxReplicas = 2 },
		"negative idle":           func(c *Config) { c.MinReplicas = 2; c.IdleReplicas = &neg },
		"negative pod startup":    func(c *Config) { c.PodStartup = -time.Second },
		"negative cooldown":       func(c *Config) { c.CooldownPeriod = -time.Second },
		"sub-second polling":      func(c *Config) { c.PollingInterval = time.Millisecond },
		"negative tolerance":      func(c *Config) { c.Tolerance = -0.1 },
		"negative downscale flag": func(c *Config) { c.DownscaleStabilization = -time.Second },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			mutate(&cfg)
			if _, err := New(cfg, t0, 1); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := New(DefaultConfig(), t0, -1); err == nil {
		t.Fatal("accepted -1 initial replicas")
	}
}

// TestPushActivatesAtOnce: with an external-push trigger the operator acts
// on the stream's true as it arrives (KEDA's startPushScalers calls
// RequestScale), not at the next poll; without push it waits for the poll.
func TestPushActivatesAtOnce(t *testing.T) {
	start := time.Unix(0, 0)
	for name, tc := range map[string]struct {
		push bool
		want int32 // replicas at 12 s, the step the load arrives
	}{
		"push":      {true, 1},
		"poll only": {false, 0}, // polls at 0, 30 s
	} {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Push = tc.push
			s, err := New(cfg, start, 0)
			if err != nil {
				t.Fatal(err)
			}
			idle := Input{DesiredOK: true, ActiveOK: true}
			busy := Input{Desired: 1, DesiredOK: true, Active: true, ActiveOK: true}
			for sec := 0; sec < 12; sec++ {
				s.Step(start.Add(time.Duration(sec)*time.Second), idle)
			}
			if got := s.Step(start.Add(12*time.Second), busy).Replicas; got != tc.want {
				t.Errorf("replicas at 12 s = %d, want %d", got, tc.want)
			}
			if got := s.Step(start.Add(30*time.Second), busy).Replicas; got != 1 {
				t.Errorf("replicas at the 30 s poll = %d, want 1", got)
			}
		})
	}
}

// TestHugeMaxReplicas grows a target towards a maxReplicaCount near the top of
// int32: the controller's limits (2×current, start + pods, start × percent)
// must stay within [0, max] where int32 arithmetic would wrap.
func TestHugeMaxReplicas(t *testing.T) {
	for name, spec := range map[string]string{
		"legacy":    "  minReplicaCount: 1\n  maxReplicaCount: 1100000000\n",
		"pods":      "  minReplicaCount: 1\n  maxReplicaCount: 2147483647\n" + behavior("        scaleUp:\n          policies:\n          - {type: Pods, value: 2147483647, periodSeconds: 1}\n"),
		"percent":   "  minReplicaCount: 1\n  maxReplicaCount: 2147483647\n" + behavior("        scaleUp:\n          policies:\n          - {type: Percent, value: 2147483647, periodSeconds: 1}\n"),
		"scaleDown": "  minReplicaCount: 1\n  maxReplicaCount: 2147483647\n" + behavior("        scaleDown:\n          stabilizationWindowSeconds: 0\n          policies:\n          - {type: Pods, value: 2147483647, periodSeconds: 1}\n"),
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := ParseScaledObject("huge.yaml", []byte(manifest(spec)))
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(cfg, t0, 1)
			if err != nil {
				t.Fatal(err)
			}
			var top int32
			for i := range 120 {
				d := 1e12
				if i >= 60 {
					d = 1
				}
				st := s.Step(t0.Add(time.Duration(i)*15*time.Second), ok(d, true))
				if st.Replicas < 1 || st.Replicas > cfg.MaxReplicas || st.Ready < 0 || st.Ready > st.Replicas {
					t.Fatalf("step %d: impossible state %+v", i, st)
				}
				top = max(top, st.Replicas)
			}
			if top != cfg.MaxReplicas {
				t.Errorf("reached %d replicas at most, want maxReplicaCount %d", top, cfg.MaxReplicas)
			}
		})
	}
}
