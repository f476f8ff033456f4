package activator

import (
	"errors"
	"net/textproto"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"golang.org/x/net/http/httpguts"
	"gopkg.in/yaml.v3"

	"github.com/k8s-nemesis/nemesis/internal/yamlpos"
	"github.com/k8s-nemesis/nemesis/rules"
)

// score reads a route's score block.
func (p *configParser) score(route string, n *yaml.Node) *ScoreSpec {
	sp := &ScoreSpec{Scrape: ScrapeSpec{
		Path: DefaultScrapePath, Interval: DefaultScrapeInterval,
		Timeout: DefaultScrapeTimeout, StaleAfter: DefaultScrapeStaleAfter,
	}}
	entries := p.mapping(n, route, "score")
	if n.Kind != yaml.MappingNode {
		return nil // reported by mapping
	}
	errsBefore := len(p.errs)
	var exprNode, filterNode, metricsNode *yaml.Node
	for _, kv := range entries {
		field := "score." + kv.key
		switch kv.key {
		case "scrape":
			p.scrape(route, kv.v, &sp.Scrape)
		case "metrics":
			metricsNode = kv.v
			for _, m := range p.mapping(kv.v, route, field) {
				mf := field + "." + m.key
				switch {
				case !isIdentifier(m.key):
					p.errorf(m.k, route, mf, "%q is not a name an expression can use: letters, digits and _, not starting with a digit", m.key)
					continue
				case slices.Contains(scoreBuiltins(), m.key):
					p.errorf(m.k, route, mf, "%q is a variable of its own (inflight, sent, age): name the metric otherwise", m.key)
					continue
				}
				fam, ok := p.scalar(m.v, route, mf)
				if !ok {
					continue
				}
				if !model.LegacyValidation.IsValidMetricName(fam) {
					p.errorf(m.v, route, mf, "%q is not a metric family name such as vllm:num_requests_waiting", fam)
					continue
				}
				sp.Metrics = append(sp.Metrics, ScoreMetric{Name: m.key, Family: fam})
			}
			if len(sp.Metrics) > MaxScoreMetrics {
				p.errorf(kv.v, route, field, "%d metrics: at most %d", len(sp.Metrics), MaxScoreMetrics)
			}
		case "filter":
			filterNode = kv.v
			if s, ok := p.scalar(kv.v, route, field); ok {
				sp.Filter = s
			}
		case "expression":
			exprNode = kv.v
			if s, ok := p.scalar(kv.v, route, field); ok {
				sp.Expression = s
			}
		default:
			p.errorf(kv.k, route, field, "unknown field: score has scrape, metrics, filter and expression")
		}
	}
	if metricsNode == nil {
		p.errorf(n, route, "score.metrics", "required: name → metric family, such as waiting: vllm:num_requests_waiting")
	} else if len(sp.Metrics) == 0 && len(p.errs) == errsBefore {
		p.errorf(metricsNode, route, "score.metrics", "name at least one metric (without metrics, use policy: least-request)")
	}
	if exprNode == nil {
		p.errorf(n, route, "score.expression", "required: a number per pod, lower wins, such as 2 * waiting + inflight")
	}
	if len(p.errs) > errsBefore {
		return sp
	}
	vars := make([]string, 0, len(sp.Metrics)+len(scoreBuiltins()))
	for _, m := range sp.Metrics {
		vars = append(vars, m.Name)
	}
	vars = append(vars, scoreBuiltins()...)
	sp.expression = p.formula(route, "score.expression", exprNode, sp.Expression, vars, rules.CompileNumber)
	if filterNode != nil && sp.Filter != "" {
		sp.filter = p.formula(route, "score.filter", filterNode, sp.Filter, vars, rules.CompileCondition)
	}
	return sp
}

// formula compiles an expression of a score block, reporting a problem at
// its place in the file.
func (p *configParser) formula(route, field string, n *yaml.Node, src string, vars []string,
	compile func(string, []string) (*rules.Formula, error)) *rules.Formula {
	f, err := compile(src, vars)
	if err == nil {
		return f
	}
	var fe *rules.FormulaError
	if errors.As(err, &fe) {
		line, col := yamlpos.ValuePos(n, p.lines, src, fe.Offset)
		p.errs = append(p.errs, &ConfigError{File: p.file, Line: line, Column: col, Route: route, Field: field, Msg: fe.Msg})
		return nil
	}
	p.errorf(n, route, field, "%v", err)
	return nil
}

// scrape reads score.scrape.
func (p *configParser) scrape(route string, n *yaml.Node, s *ScrapeSpec) {
	var intervalNode, timeoutNode, staleNode *yaml.Node
	for _, kv := range p.mapping(n, route, "score.scrape") {
		field := "score.scrape." + kv.key
		switch kv.key {
		case "path":
			if v, ok := p.scalar(kv.v, route, field); ok {
				if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, "# \t") {
					p.errorf(kv.v, route, field, "%q must start with '/' and hold no fragment or spaces", v)
					continue
				}
				s.Path = v
			}
		case "port":
			if v, ok := p.scalar(kv.v, route, field); ok {
				port, err := strconv.Atoi(v)
				if err != nil || port < 1 || port > 65535 {
					p.errorf(kv.v, route, field, "%q is not a port number between 1 and 65535", v)
					continue
				}
				s.Port = port
			}
		case "interval":
			intervalNode = kv.v
			if d, ok := p.duration(kv.v, route, field, false); ok {
				if d < minScrapeInterval {
					p.errorf(kv.v, route, field, "%s is below the minimum of %s", d, minScrapeInterval)
					continue
				}
				s.Interval = d
			}
		case "timeout":
			timeoutNode = kv.v
			if d, ok := p.duration(kv.v, route, field, false); ok {
				s.Timeout = d
			}
		case "staleAfter":
			staleNode = kv.v
			if d, ok := p.duration(kv.v, route, field, false); ok {
				s.StaleAfter = d
			}
		default:
			p.errorf(kv.k, route, field, "unknown field: scrape has path, port, interval, timeout and staleAfter")
		}
	}
	if s.Timeout > s.Interval {
		node := timeoutNode
		if node == nil {
			node = intervalNode
		}
		p.errorf(node, route, "score.scrape.timeout", "%s is longer than the interval, %s: at most one scrape of a pod runs at a time", s.Timeout, s.Interval)
	}
	if s.StaleAfter < s.Interval {
		node := staleNode
		if node == nil {
			node = intervalNode
		}
		p.errorf(node, route, "score.scrape.staleAfter", "%s is shorter than the interval, %s: every scrape would be stale", s.StaleAfter, s.Interval)
	}
}

// affinity reads a route's affinity block.
func (p *configParser) affinity(route string, n *yaml.Node) *AffinitySpec {
	a := &AffinitySpec{PrefixBytes: DefaultAffinityPrefixBytes, LoadFactor: DefaultAffinityLoadFactor}
	entries := p.mapping(n, route, "affinity")
	if n.Kind != yaml.MappingNode {
		return nil // reported by mapping
	}
	var keyNode, prefixNode *yaml.Node
	for _, kv := range entries {
		field := "affinity." + kv.key
		switch kv.key {
		case "key":
			keyNode = kv.v
			v, ok := p.scalar(kv.v, route, field)
			if !ok {
				continue
			}
			switch {
			case v == string(AffinityBodyPrefix):
				a.Key = AffinityBodyPrefix
			case strings.HasPrefix(v, "header:"):
				h := strings.TrimPrefix(v, "header:")
				if !httpguts.ValidHeaderFieldName(h) {
					p.errorf(kv.v, route, field, "%q is not a valid header name", h)
					continue
				}
				a.Key, a.Header = AffinityHeader, textproto.CanonicalMIMEHeaderKey(h)
			default:
				p.errorf(kv.v, route, field, "%q is not body-prefix or header:NAME", v)
			}
		case "prefixBytes":
			prefixNode = kv.v
			if v, ok := p.scalar(kv.v, route, field); ok {
				k, err := strconv.Atoi(v)
				if err != nil || k < 1 || k > MaxRetryBodyBytes {
					p.errorf(kv.v, route, field, "%q is not a whole number between 1 and %d", v, MaxRetryBodyBytes)
					continue
				}
				a.PrefixBytes = k
			}
		case "loadFactor":
			if v, ok := p.scalar(kv.v, route, field); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil || !(f > 1 && f <= 100) {
					p.errorf(kv.v, route, field, "%q is not a number above 1 and at most 100 (1.25 lets a pod hold 25 %% more than the average)", v)
					continue
				}
				a.LoadFactor = f
			}
		default:
			p.errorf(kv.k, route, field, "unknown field: affinity has key, prefixBytes and loadFactor")
		}
	}
	if keyNode == nil {
		p.errorf(n, route, "affinity.key", "required: body-prefix or header:NAME")
	}
	if prefixNode != nil && a.Key == AffinityHeader {
		p.errorf(prefixNode, route, "affinity.prefixBytes", "only for key: body-prefix")
	}
	return a
}

// isIdentifier reports whether s can name a variable of an expression.
func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
