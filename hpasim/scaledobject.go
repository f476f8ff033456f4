package hpasim

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/k8s-nemesis/nemesis/internal/yamlpos"
)

// Error is one problem in a ScaledObject manifest.
type Error struct {
	File   string
	Line   int
	Column int
	// Field is the path of the offending field, such as
	// "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies[0].value".
	Field string
	Msg   string
}

// Error returns "file:line:column: field: message".
func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", e.File, e.Line, e.Column, e.Field, e.Msg)
}

// soParser collects the problems of one manifest.
type soParser struct {
	file string
	errs []error
	// push: the one trigger is external-push.
	push bool
}

func (p *soParser) errorf(n *yaml.Node, field, format string, args ...any) {
	line, col := 1, 1
	if n != nil {
		line, col = n.Line, n.Column
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Column: col, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// ParseScaledObject reads the settings the simulation needs from a
// ScaledObject manifest (YAML, possibly several documents of which exactly
// one is a keda.sh ScaledObject). Unset fields take KEDA's defaults. file
// names the file in errors; on problems the error joins one [*Error] per
// problem, each with its line and column.
func ParseScaledObject(file string, data []byte) (Config, error) {
	p := &soParser{file: file}
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var found *yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			line, msg := yamlpos.ErrorLine(err)
			return Config{}, errors.Join(&Error{File: file, Line: line, Column: 1, Msg: "invalid YAML: " + msg})
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			continue
		}
		kind := lookup(root, "kind")
		if kind == nil || kind.Value != "ScaledObject" {
			continue
		}
		if found != nil {
			p.errorf(root, "", "a second ScaledObject: give a file with one")
			continue
		}
		found = root
	}
	if found == nil {
		if len(p.errs) == 0 {
			p.errorf(nil, "", "no ScaledObject (kind: ScaledObject) in the file")
		}
		return Config{}, errors.Join(p.errs...)
	}
	if v := lookup(found, "apiVersion"); v != nil && !strings.HasPrefix(v.Value, "keda.sh/") {
		p.errorf(v, "apiVersion", "%q is not a keda.sh API version", v.Value)
	}
	spec := lookup(found, "spec")
	if spec == nil {
		p.errorf(found, "spec", "missing")
		return Config{}, errors.Join(p.errs...)
	}
	p.spec(spec, &cfg)
	cfg.Push = p.push
	if len(p.errs) > 0 {
		return Config{}, errors.Join(p.errs...)
	}
	if err := cfg.Validate(); err != nil {
		// The field-level checks above are positioned; what remains are
		// relations between fields, reported at spec.
		p.errorf(spec, "spec", "%v", strings.ReplaceAll(err.Error(), "\n", "; "))
		return Config{}, errors.Join(p.errs...)
	}
	return cfg, nil
}

func (p *soParser) spec(spec *yaml.Node, cfg *Config) {
	if spec.Kind != yaml.MappingNode {
		p.errorf(spec, "spec", "must be a mapping")
		return
	}
	for i := 0; i+1 < len(spec.Content); i += 2 {
		k, v := spec.Content[i], spec.Content[i+1]
		field := "spec." + k.Value
		switch k.Value {
		case "pollingInterval":
			if n, ok := p.int32(v, field, 1); ok {
				cfg.PollingInterval = time.Duration(n) * time.Second
			}
		case "cooldownPeriod":
			if n, ok := p.int32(v, field, 0); ok {
				cfg.CooldownPeriod = time.Duration(n) * time.Second
			}
		case "initialCooldownPeriod":
			// Only used by KEDA while status.lastActiveTime is unset; see
			// the package documentation.
			p.int32(v, field, 0)
		case "minReplicaCount":
			if n, ok := p.int32(v, field, 0); ok {
				cfg.MinReplicas = n
			}
		case "maxReplicaCount":
			if n, ok := p.int32(v, field, 1); ok {
				cfg.MaxReplicas = n
			}
		case "idleReplicaCount":
			if n, ok := p.int32(v, field, 0); ok {
				cfg.IdleReplicas = &n
			}
		case "advanced":
			p.advanced(v, cfg)
		case "triggers":
			p.triggers(v)
		case "scaleTargetRef", "fallback":
			// Not simulated: a fallback is documented as not modelled.
		default:
			p.errorf(k, field, "unknown field")
		}
	}
}

// triggers checks the one thing of the triggers the simulation depends
// on: with metricType Value the HPA would divide by the ready pods instead
// of using the value as the desired count (GetExternalMetricReplicas), a
// path the simulation does not model.
func (p *soParser) triggers(n *yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		return
	}
	for i, tr := range n.Content {
		if tr.Kind != yaml.MappingNode {
			continue
		}
		if ty := lookup(tr, "type"); ty != nil && ty.Value == "external-push" && len(n.Content) == 1 {
			p.push = true
		}
		if mt := lookup(tr, "metricType"); mt != nil && mt.Value != string(autoscalingv2.AverageValueMetricType) {
			p.errorf(mt, fmt.Sprintf("spec.triggers[%d].metricType", i), "%q is not simulated: only AverageValue (the default) is", mt.Value)
		}
	}
}

func (p *soParser) advanced(n *yaml.Node, cfg *Config) {
	const base = "spec.advanced"
	if n.Kind != yaml.MappingNode {
		p.errorf(n, base, "must be a mapping")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "horizontalPodAutoscalerConfig":
			if v.Kind != yaml.MappingNode {
				p.errorf(v, base+"."+k.Value, "must be a mapping")
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				hk, hv := v.Content[j], v.Content[j+1]
				field := base + ".horizontalPodAutoscalerConfig." + hk.Value
				switch hk.Value {
				case "behavior":
					cfg.Behavior = p.behavior(hv, field)
				case "name":
				default:
					p.errorf(hk, field, "unknown field")
				}
			}
		case "restoreToOriginalReplicaCount", "scalingModifiers":
		default:
			p.errorf(k, base+"."+k.Value, "unknown field")
		}
	}
}

func (p *soParser) behavior(n *yaml.Node, field string) *autoscalingv2.HorizontalPodAutoscalerBehavior {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, field, "must be a mapping")
		return nil
	}
	b := &autoscalingv2.HorizontalPodAutoscalerBehavior{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "scaleUp":
			b.ScaleUp = p.rules(v, field+".scaleUp")
		case "scaleDown":
			b.ScaleDown = p.rules(v, field+".scaleDown")
		default:
			p.errorf(k, field+"."+k.Value, "unknown field")
		}
	}
	return b
}

func (p *soParser) rules(n *yaml.Node, field string) *autoscalingv2.HPAScalingRules {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, field, "must be a mapping")
		return nil
	}
	r := &autoscalingv2.HPAScalingRules{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f := field + "." + k.Value
		switch k.Value {
		case "stabilizationWindowSeconds":
			if w, ok := p.int32(v, f, 0); ok {
				if w > maxStabilizationWindowSeconds {
					p.errorf(v, f, "%d is more than %d", w, maxStabilizationWindowSeconds)
				}
				r.StabilizationWindowSeconds = &w
			}
		case "selectPolicy":
			if s, ok := p.str(v, f); ok {
				sp := autoscalingv2.ScalingPolicySelect(s)
				switch sp {
				case autoscalingv2.MaxChangePolicySelect, autoscalingv2.MinChangePolicySelect, autoscalingv2.DisabledPolicySelect:
					r.SelectPolicy = &sp
				default:
					p.errorf(v, f, "%q is not Max, Min or Disabled", s)
				}
			}
		case "policies":
			r.Policies = p.policies(v, f)
		case "tolerance":
			q, err := resource.ParseQuantity(v.Value)
			switch {
			case v.Kind != yaml.ScalarNode || err != nil:
				p.errorf(v, f, "%q is not a quantity such as 0.05 or 50m", v.Value)
			case q.Sign() < 0:
				p.errorf(v, f, "%q must not be negative", v.Value)
			default:
				r.Tolerance = &q
			}
		default:
			p.errorf(k, f, "unknown field")
		}
	}
	return r
}

func (p *soParser) policies(n *yaml.Node, field string) []autoscalingv2.HPAScalingPolicy {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, field, "must be a list")
		return nil
	}
	if len(n.Content) == 0 {
		p.errorf(n, field, "must hold at least one policy")
	}
	out := make([]autoscalingv2.HPAScalingPolicy, 0, len(n.Content))
	for i, item := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		if item.Kind != yaml.MappingNode {
			p.errorf(item, f, "must be a mapping")
			continue
		}
		var pol autoscalingv2.HPAScalingPolicy
		seen := map[string]bool{}
		for j := 0; j+1 < len(item.Content); j += 2 {
			k, v := item.Content[j], item.Content[j+1]
			seen[k.Value] = true
			switch k.Value {
			case "type":
				if s, ok := p.str(v, f+".type"); ok {
					if s != string(autoscalingv2.PodsScalingPolicy) && s != string(autoscalingv2.PercentScalingPolicy) {
						p.errorf(v, f+".type", "%q is not Pods or Percent", s)
					}
					pol.Type = autoscalingv2.HPAScalingPolicyType(s)
				}
			case "value":
				if x, ok := p.int32(v, f+".value", 1); ok {
					pol.Value = x
				}
			case "periodSeconds":
				if x, ok := p.int32(v, f+".periodSeconds", 1); ok {
					if x > maxPeriodSeconds {
						p.errorf(v, f+".periodSeconds", "%d is more than %d", x, maxPeriodSeconds)
					}
					pol.PeriodSeconds = x
				}
			default:
				p.errorf(k, f+"."+k.Value, "unknown field")
			}
		}
		for _, req := range []string{"type", "value", "periodSeconds"} {
			if !seen[req] {
				p.errorf(item, f+"."+req, "missing")
			}
		}
		out = append(out, pol)
	}
	return out
}

// int32 reads an integer field of at least lo, as the CRD's schema types it.
func (p *soParser) int32(n *yaml.Node, field string, lo int32) (int32, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		p.errorf(n, field, "%q is not an integer", n.Value)
		return 0, false
	}
	v, err := strconv.ParseInt(n.Value, 0, 64)
	if err != nil || v > math.MaxInt32 {
		p.errorf(n, field, "%q is not a 32-bit integer", n.Value)
		return 0, false
	}
	if v < int64(lo) {
		p.errorf(n, field, "%q must be at least %d", n.Value, lo)
		return 0, false
	}
	return int32(v), true
}

func (p *soParser) str(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		p.errorf(n, field, "%q is not a string", n.Value)
		return "", false
	}
	return n.Value, true
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// lookup returns the value of key in a mapping node, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
