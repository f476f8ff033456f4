package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// ttftBuckets are vLLM's buckets of vllm:time_to_first_token_seconds.
func ttftBuckets() []float64 {
	return []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560}
}

// latencyBuckets are vLLM's buckets of vllm:e2e_request_latency_seconds.
func latencyBuckets() []float64 {
	return []float64{0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680}
}

// newHistograms returns the engine's two histograms, under vLLM's names.
func newHistograms(model string) (ttft, latency prometheus.Histogram) {
	labels := prometheus.Labels{"model_name": model}
	ttft = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:        "vllm:time_to_first_token_seconds",
		Help:        "Histogram of time to first token in seconds, from arrival (queue time included), simulated.",
		Buckets:     ttftBuckets(),
		ConstLabels: labels,
	})
	latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:        "vllm:e2e_request_latency_seconds",
		Help:        "Histogram of end to end request latency in seconds, simulated.",
		Buckets:     latencyBuckets(),
		ConstLabels: labels,
	})
	return ttft, latency
}

// engineCollector exports the engine's gauges and counters under vLLM's
// names, all read at one instant at scrape time: a router scraping every
// 50 ms sees the queue as it is, not as of the last step.
type engineCollector struct {
	s                                       *sim
	blocks                                  int
	waiting, running, kvUsage, cacheConfig  *prometheus.Desc
	promptTokens, generationTokens, success *prometheus.Desc
	prefixHits, prefixQueries, preemptions  *prometheus.Desc
}

var _ prometheus.Collector = (*engineCollector)(nil)

func newEngineCollector(s *sim, model string, blocks int) *engineCollector {
	labels := prometheus.Labels{"model_name": model}
	desc := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, variable, labels)
	}
	return &engineCollector{
		s:                s,
		blocks:           blocks,
		waiting:          desc("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
		running:          desc("vllm:num_requests_running", "Number of requests in model execution batches."),
		kvUsage:          desc("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."),
		cacheConfig:      desc("vllm:cache_config_info", "Information of the LLMEngine CacheConfig.", "block_size", "num_gpu_blocks"),
		promptTokens:     desc("vllm:prompt_tokens_total", "Number of prefill tokens processed."),
		generationTokens: desc("vllm:generation_tokens_total", "Number of generation tokens processed."),
		success:          desc("vllm:request_success_total", "Count of successfully processed requests.", "finish_reason"),
		prefixHits:       desc("vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens."),
		prefixQueries:    desc("vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens."),
		preemptions:      desc("vllm:num_preemptions_total", "Cumulative number of preemptions from the engine."),
	}
}

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.waiting, c.running, c.kvUsage, c.cacheConfig, c.promptTokens,
		c.generationTokens, c.success, c.prefixHits, c.prefixQueries, c.preemptions} {
		ch <- d
	}
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s.snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.waiting, float64(s.waiting))
	gauge(c.running, float64(s.running))
	gauge(c.kvUsage, s.kvUsage)
	gauge(c.cacheConfig, 1, strconv.Itoa(blockSize), strconv.Itoa(c.blocks))
	counter(c.promptTokens, s.count.promptTokens)
	counter(c.generationTokens, s.count.generationTokens)
	for i, name := range reasonNames() {
		counter(c.success, s.count.success[i], name)
	}
	counter(c.prefixHits, s.count.prefixHits)
	counter(c.prefixQueries, s.count.prefixQueries)
	counter(c.preemptions, s.count.preemptions)
}

// metricsFault is how /metrics misbehaves, for testing scrapers.
type metricsFault int32

const (
	faultNone metricsFault = iota
	faultSlow
	faultHang
	faultHuge
	faultMalformed
	faultMissing
	faultError
	numFaults
)

// faultNames are the modes' names, by mode.
func faultNames() [numFaults]string {
	return [numFaults]string{"none", "slow", "hang", "huge", "malformed", "missing", "error"}
}

func (f metricsFault) String() string { return faultNames()[f] }

// parseFault reads a mode name, surrounding space ignored.
func parseFault(s string) (metricsFault, error) {
	s = strings.TrimSpace(s)
	names := faultNames()
	for i, name := range names {
		if s == name {
			return metricsFault(i), nil
		}
	}
	return 0, fmt.Errorf("metrics fault %q is none of %s", s, strings.Join(names[:], ", "))
}

// hugeSeries and hugeLabel size the padding of the huge fault: about 3 MiB
// of valid exposition, past the 2 MiB a scraper might cap a body at.
const (
	hugeSeries = 20000
	hugeLabel  = 120
)

// paddingFamily is one gauge family of hugeSeries series with long label
// values, added to /metrics by the huge fault.
func paddingFamily() *dto.MetricFamily {
	name, help, typ := "llmsim_padding", "Padding that makes /metrics huge (metrics fault huge).", dto.MetricType_GAUGE
	f := &dto.MetricFamily{Name: &name, Help: &help, Type: &typ, Metric: make([]*dto.Metric, hugeSeries)}
	label := "series"
	for i := range f.Metric {
		v := fmt.Sprintf("%0*d", hugeLabel, i)
		one := 1.0
		f.Metric[i] = &dto.Metric{
			Label: []*dto.LabelPair{{Name: &label, Value: &v}},
			Gauge: &dto.Gauge{Value: &one},
		}
	}
	return f
}

// malformedExposition is not in the Prometheus text format: a label set is
// not closed, and a line is neither a comment nor a sample.
const malformedExposition = "# TYPE vllm:num_requests_waiting gauge\n" +
	"vllm:num_requests_waiting{model_name=\"broken\" 3\n" +
	"this is { not a metric\n"
