package hpasim

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

func TestParseScaledObjectGood(t *testing.T) {
	data, err := os.ReadFile("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseScaledObject("full.good.yaml", data)
	if err != nil {
		t.Fatalf("ParseScaledObject: %v", err)
	}
	if cfg.PollingInterval != 10*time.Second || cfg.CooldownPeriod != 120*time.Second ||
		cfg.MinReplicas != 2 || cfg.MaxReplicas != 16 || cfg.IdleReplicas == nil || *cfg.IdleReplicas != 0 {
		t.Errorf("KEDA fields: %+v", cfg)
	}
	if cfg.SyncPeriod != DefaultSyncPeriod || cfg.Tolerance != DefaultTolerance || cfg.DownscaleStabilization != DefaultDownscaleStabilization {
		t.Errorf("controller defaults not kept: %+v", cfg)
	}
	b := cfg.Behavior
	if b == nil || b.ScaleDown == nil || b.ScaleUp == nil {
		t.Fatalf("behavior: %+v", b)
	}
	d := b.ScaleDown
	if *d.StabilizationWindowSeconds != 60 || *d.SelectPolicy != autoscalingv2.MinChangePolicySelect || len(d.Policies) != 2 ||
		d.Policies[1] != (autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PodsScalingPolicy, Value: 5, PeriodSeconds: 60}) {
		t.Errorf("scaleDown: %+v", d)
	}
	if got := b.ScaleUp.Tolerance.AsApproximateFloat64(); got != 0.05 || b.ScaleUp.Policies != nil {
		t.Errorf("scaleUp: tolerance %v, policies %v", got, b.ScaleUp.Policies)
	}
}

func TestParseScaledObjectDefaults(t *testing.T) {
	cfg, err := ParseScaledObject("min.yaml", []byte(manifest("")))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	if cfg.PollingInterval != want.PollingInterval || cfg.CooldownPeriod != 300*time.Second || cfg.MinReplicas != 0 ||
		cfg.MaxReplicas != 100 || cfg.IdleReplicas != nil || cfg.Behavior != nil {
		t.Fatalf("defaults: %+v", cfg)
	}
}

// TestParseScaledObjectBad checks that each problem is reported with its
// file, line and column, and that every problem of a file is reported.
func TestParseScaledObjectBad(t *testing.T) {
	for name, c := range map[string]struct {
		spec string
		want []string
	}{
		"negative cooldown": {
			spec: "  cooldownPeriod: -1\n",
			want: []string{"so.yaml:7:19: spec.cooldownPeriod: \"-1\" must be at least 0"},
		},
		"polling interval zero": {
			spec: "  pollingInterval: 0\n",
			want: []string{"so.yaml:7:20: spec.pollingInterval: \"0\" must be at least 1"},
		},
		"string where an integer goes": {
			spec: "  maxReplicaCount: \"10\"\n",
			want: []string{"so.yaml:7:20: spec.maxReplicaCount: \"10\" is not an integer"},
		},
		"too big": {
			spec: "  maxReplicaCount: 3000000000\n",
			want: []string{"so.yaml:7:20: spec.maxReplicaCount: \"3000000000\" is not a 32-bit integer"},
		},
		"unknown field, two problems at once": {
			spec: "  cooldownPeriods: 30\n  minReplicaCount: x\n",
			want: []string{
				"so.yaml:7:3: spec.cooldownPeriods: unknown field",
				"so.yaml:8:20: spec.minReplicaCount: \"x\" is not an integer",
			},
		},
		"min above max": {
			spec: "  minReplicaCount: 5\n  maxReplicaCount: 3\n",
			want: []string{"so.yaml:5:3: spec: minReplicaCount 5 must not exceed maxReplicaCount 3"},
		},
		"idle not below min": {
			spec: "  minReplicaCount: 1\n  idleReplicaCount: 1\n",
			want: []string{"so.yaml:5:3: spec: idleReplicaCount 1 must be less than minReplicaCount 1"},
		},
		"idle without min": {
			// KEDA compares against max(minReplicaCount, 1) once the HPA
			// exists; with no minReplicaCount, idle 0 is below 1.
			spec: "  idleReplicaCount: 2\n",
			want: []string{"idleReplicaCount 2 must be less than minReplicaCount 1"},
		},
		"bad policy": {
			spec: behavior("        scaleDown:\n          policies:\n          - type: Pod\n            value: 0\n"),
			want: []string{
				"so.yaml:12:19: spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies[0].type: \"Pod\" is not Pods or Percent",
				"so.yaml:13:20: spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies[0].value: \"0\" must be at least 1",
				"so.yaml:12:13: spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies[0].periodSeconds: missing",
			},
		},
		"empty policies": {
			spec: behavior("        scaleUp:\n          policies: []\n"),
			want: []string{"so.yaml:11:21: spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp.policies: must hold at least one policy"},
		},
		"bad select policy and window": {
			spec: behavior("        scaleUp:\n          selectPolicy: Maximum\n          stabilizationWindowSeconds: 4000\n"),
			want: []string{
				"so.yaml:11:25: spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp.selectPolicy: \"Maximum\" is not Max, Min or Disabled",
				"so.yaml:12:39: spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp.stabilizationWindowSeconds: 4000 is more than 3600",
			},
		},
		"period too long": {
			spec: behavior("        scaleUp:\n          policies:\n          - {type: Pods, value: 1, periodSeconds: 1801}\n"),
			want: []string{"so.yaml:12:51: spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp.policies[0].periodSeconds: 1801 is more than 1800"},
		},
		"bad tolerance": {
			spec: behavior("        scaleDown:\n          tolerance: -0.1\n        scaleUp:\n          tolerance: lots\n"),
			want: []string{
				"so.yaml:11:22: spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.tolerance: \"-0.1\" must not be negative",
				"so.yaml:13:22: spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp.tolerance: \"lots\" is not a quantity",
			},
		},
		"unknown behavior key": {
			spec: behavior("        scaleup: {}\n"),
			want: []string{"so.yaml:10:9: spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleup: unknown field"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseScaledObject("so.yaml", []byte(manifest(c.spec)))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("error %v holds no *Error", err)
			}
		})
	}
}

func TestParseScaledObjectDocuments(t *testing.T) {
	for name, c := range map[string]struct {
		data string
		want string
	}{
		"no ScaledObject":   {"apiVersion: apps/v1\nkind: Deployment\n", "so.yaml:1:1: no ScaledObject"},
		"empty":             {"", "so.yaml:1:1: no ScaledObject"},
		"two ScaledObjects": {manifest("") + "---\n" + manifest(""), "so.yaml:8:1: a second ScaledObject"},
		"invalid YAML":      {"kind: ScaledObject\nspec: [\n", "so.yaml:2:1: invalid YAML"},
		"no spec":           {"apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\n", "so.yaml:1:1: spec: missing"},
		"spec not a map":    {"apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nspec: 3\n", "so.yaml:3:7: spec: must be a mapping"},
		"metricType Value": {
			"apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nspec:\n  triggers:\n  - type: external\n    metricType: Value\n",
			"so.yaml:6:17: spec.triggers[0].metricType: \"Value\" is not simulated",
		},
		"wrong API group": {"apiVersion: example.com/v1\nkind: ScaledObject\nspec: {}\n", "so.yaml:1:13: apiVersion: \"example.com/v1\" is not a keda.sh API version"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseScaledObject("so.yaml", []byte(c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestParseScaledObjectPush(t *testing.T) {
	for name, tc := range map[string]struct {
		triggers string
		want     bool
	}{
		"external-push": {"  - type: external-push\n    metadata: {scalerAddress: s:9090}\n", true},
		"external":      {"  - type: external\n    metadata: {scalerAddress: s:9090}\n", false},
		"two triggers":  {"  - type: external-push\n    metadata: {}\n  - type: cpu\n    metadata: {}\n", false},
	} {
		t.Run(name, func(t *testing.T) {
			src := "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: a}\nspec:\n  scaleTargetRef: {name: a}\n  triggers:\n" + tc.triggers
			cfg, err := ParseScaledObject("so.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Push != tc.want {
				t.Errorf("Push = %t, want %t", cfg.Push, tc.want)
			}
		})
	}
}
