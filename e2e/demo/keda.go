package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kedacore/keda/v2/pkg/scalers"
	"github.com/kedacore/keda/v2/pkg/scalers/scalersconfig"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

// rpcTimeout bounds each call the demo makes as KEDA. (KEDA itself sets no
// deadline on external scaler calls.)
const rpcTimeout = 5 * time.Second

// trigger is one trigger of a ScaledObject, as KEDA's operator holds it.
type trigger struct {
	namespace, name string // the ScaledObject
	index           int    // the trigger's index in the ScaledObject
	ruleSet         string
	metaKey         string // the metadata key the rule set's queries use
	metaValue       string

	scaler     scalers.Scaler
	metricName string // as KEDA names it, with the sN- prefix
	target     string // the HPA's target for the metric

	// What the polls saw.
	peak       float64
	peakAt     time.Duration
	activeSeen int
}

// demoTriggers are the three polled triggers: ml/llama with vllm-queue, and
// shop/api with two triggers (the HPA follows the larger of the two).
func demoTriggers() []*trigger {
	return []*trigger{
		{namespace: modelNamespace, name: modelName, index: 0, ruleSet: "vllm-queue", metaKey: "model", metaValue: modelName},
		{namespace: apiNamespace, name: apiService, index: 0, ruleSet: "http-inflight", metaKey: "service", metaValue: apiService},
		{namespace: apiNamespace, name: apiService, index: 1, ruleSet: "http-busiest-pod", metaKey: "service", metaValue: apiService},
	}
}

func (t *trigger) object() string { return t.namespace + "/" + t.name }

// config is the ScalerConfig KEDA's operator builds for the trigger.
func (t *trigger) config(triggerType, scalerAddress string) *scalersconfig.ScalerConfig {
	return &scalersconfig.ScalerConfig{
		ScalableObjectName:      t.name,
		ScalableObjectNamespace: t.namespace,
		ScalableObjectType:      "ScaledObject",
		TriggerType:             triggerType,
		TriggerIndex:            t.index,
		TriggerMetadata: map[string]string{
			"scalerAddress": scalerAddress,
			"ruleSet":       t.ruleSet,
			t.metaKey:       t.metaValue,
		},
		MetricType:        autoscalingv2.AverageValueMetricType,
		GlobalHTTPTimeout: rpcTimeout,
	}
}

// connect creates KEDA's external scaler for the trigger and asks for its
// metric spec, as KEDA does when it builds the HPA.
func (t *trigger) connect(ctx context.Context, scalerAddress string) error {
	s, err := scalers.NewExternalScaler(t.config("external", scalerAddress))
	if err != nil {
		return fmt.Errorf("%s trigger %s: %w", t.object(), t.ruleSet, err)
	}
	t.scaler = s
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	specs := s.GetMetricSpecForScaling(ctx)
	if len(specs) != 1 || specs[0].External == nil {
		return fmt.Errorf("%s trigger %s: GetMetricSpec gave %d metric specs, want 1 (see the KEDA client log)", t.object(), t.ruleSet, len(specs))
	}
	ext := specs[0].External
	t.metricName = ext.Metric.Name
	switch {
	case ext.Target.AverageValue != nil:
		t.target = "AverageValue " + ext.Target.AverageValue.String()
	case ext.Target.Value != nil:
		t.target = "Value " + ext.Target.Value.String()
	default:
		t.target = string(ext.Target.Type)
	}
	return nil
}

// poll is one GetMetricsAndActivity call, KEDA's polling step: GetMetrics
// then IsActive.
func (t *trigger) poll(ctx context.Context) (replicas float64, active bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	values, active, err := t.scaler.GetMetricsAndActivity(ctx, t.metricName)
	if err != nil {
		return 0, false, err
	}
	if len(values) != 1 {
		return 0, false, fmt.Errorf("GetMetrics gave %d values, want 1", len(values))
	}
	return values[0].Value.AsApproximateFloat64(), active, nil
}

func (t *trigger) close() error {
	if t.scaler == nil {
		return nil
	}
	return t.scaler.Close(context.Background())
}

// pushEvent is one StreamIsActive message, with when it arrived.
type pushEvent struct {
	active bool
	at     time.Time
}

// startPush opens the external-push trigger's StreamIsActive stream with
// KEDA's code and forwards what it sends, until ctx ends. The returned
// channel is closed when the stream's goroutine has finished.
func startPush(ctx context.Context, t *trigger, scalerAddress string) (<-chan pushEvent, func() error, error) {
	ps, err := scalers.NewExternalPushScaler(t.config("external-push", scalerAddress))
	if err != nil {
		return nil, nil, fmt.Errorf("%s external-push trigger %s: %w", t.object(), t.ruleSet, err)
	}
	active := make(chan bool)
	events := make(chan pushEvent, 16)
	go ps.Run(ctx, active) // closes active when ctx ends
	go func() {
		defer close(events)
		for a := range active {
			select {
			case events <- pushEvent{active: a, at: time.Now()}:
			default: // the reader is gone or slow; the demo only shows transitions
			}
		}
	}()
	closeFn := func() error {
		err := ps.Close(context.Background())
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	return events, closeFn, nil
}
