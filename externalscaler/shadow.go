package externalscaler

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"

	"github.com/k8s-nemesis/nemesis/metrics"
	"github.com/k8s-nemesis/nemesis/rules"
)

// ShadowMetadata is the trigger metadata key that names the shadow rule
// sets of a trigger, comma-separated: they are evaluated beside the live
// rule set, on the same data, and their answers are recorded but never
// returned to KEDA.
const ShadowMetadata = "shadowRuleSets"

// shadow is a shadow rule set of one trigger: its own records, and its own
// last good decision for its onError policy.
type shadow struct {
	name string
	// rs, queries and res are nil while the rule set is missing or its
	// queries cannot be rendered: then it is not evaluated.
	rs      *rules.RuleSet
	queries []string
	res     *resolved
	// warned: the trigger's warning about this shadow (missing, or its
	// templates) was logged and counted.
	warned string

	records ring
	seq     uint32
	last    rules.LastGood
}

// shadowNames parses the value of ShadowMetadata: names separated by
// commas, spaces trimmed, empty ones and repeats dropped, and live (the
// trigger's own rule set) left out.
func shadowNames(value, live string) []string {
	var names []string
	for n := range strings.SplitSeq(value, ",") {
		n = strings.TrimSpace(n)
		if n == "" || n == live || slices.Contains(names, n) {
			continue
		}
		names = append(names, n)
	}
	return names
}

// resolveShadows resolves the shadow rule sets of o, whose live rule set
// was just resolved from cat: a missing one, or one whose templates fail,
// is a warning, logged and counted once per trigger, and never an error of
// the trigger. The records of a shadow that stays named are kept. Callers
// hold s.mu.
func (s *Server) resolveShadows(o *object, ref *pb.ScaledObjectRef, cat *Catalog) {
	names := shadowNames(ref.ScalerMetadata[ShadowMetadata], o.ruleSet)
	if len(names) == 0 && len(o.shadows) == 0 {
		return
	}
	old := o.shadows
	o.shadows = make([]*shadow, 0, len(names))
	for _, name := range names {
		var sh *shadow
		for _, p := range old {
			if p.name == name {
				sh = p
			}
		}
		if sh == nil {
			sh = &shadow{name: name}
		}
		o.shadows = append(o.shadows, sh)
		rs, ok := cat.RuleSet(name)
		if !ok {
			sh.rs, sh.queries, sh.res = nil, nil, nil
			s.m.shadowDesired.DeleteLabelValues(o.namespace, o.name, name)
			if sh.warned != "missing" {
				sh.warned = "missing"
				s.m.shadowMissing.WithLabelValues(name).Inc()
				s.logger.Warn("shadow rule set missing: it is not evaluated; the live rule set answers as always",
					"namespace", o.namespace, "scaledObject", o.name, "ruleSet", o.ruleSet, "shadowRuleSet", name, "ruleSets", strings.Join(cat.Names(), ", "))
			}
			continue
		}
		queries, err := rs.Render(ref.Namespace, ref.Name, ref.ScalerMetadata)
		if err != nil {
			sh.rs, sh.queries, sh.res = nil, nil, nil
			s.m.shadowDesired.DeleteLabelValues(o.namespace, o.name, name)
			if sh.warned != "template" {
				sh.warned = "template"
				s.m.shadowErrors.WithLabelValues(name, "template").Inc()
				s.logger.Warn("shadow rule set's queries cannot be rendered: it is not evaluated; the live rule set answers as always",
					"namespace", o.namespace, "scaledObject", o.name, "ruleSet", o.ruleSet, "shadowRuleSet", name, "err", err.Error())
			}
			continue
		}
		sh.warned = ""
		if sh.rs != rs {
			sh.rs, sh.queries = rs, queries
			sh.res = &resolved{rs: rs, version: cat.Version, queries: queries, metadata: maps.Clone(ref.ScalerMetadata)}
		}
	}
	for _, p := range old {
		if !slices.Contains(o.shadows, p) {
			s.m.shadowDesired.DeleteLabelValues(o.namespace, o.name, p.name)
		}
	}
}

// shadowRun is one shadow's evaluation within a trigger's evaluation.
type shadowRun struct {
	sh  *shadow
	res *resolved
	d   rules.Decision
	err error
	in  evaluation
}

// concludeShadow records a shadow's evaluation: its own onError policy
// turns it into the answer it would have given, which goes into its
// records and its gauge, never to KEDA and never into an Event. Callers
// hold s.mu.
func (s *Server) concludeShadow(o *object, run *shadowRun, waiting bool, now time.Time) {
	sh := run.sh
	if !slices.Contains(o.shadows, sh) {
		return // no longer named: the catalog changed while it ran
	}
	rs := run.res.rs
	out := rs.Decide(&sh.last, now, run.d, run.err)
	if out.Err == nil {
		s.m.shadowDesired.WithLabelValues(o.namespace, o.name, sh.name).Set(float64(out.Decision.Replicas))
	}
	sh.seq++
	prev := sh.records.last()
	rec := newRecord(now, sh.seq, run.res, out, waiting, &run.in, prev)
	sh.records.add(rec, &run.in)
}

// sharedQuerier shares the results of identical queries within one
// evaluation of a trigger, live and shadow rule sets together, so that a
// query they share is sent once, whatever the querier behind caches.
type sharedQuerier struct {
	q  Querier
	mu sync.Mutex
	m  map[string]*sharedResult
}

type sharedResult struct {
	done chan struct{}
	r    metrics.Result
	err  error
}

func newSharedQuerier(q Querier) *sharedQuerier {
	return &sharedQuerier{q: q, m: map[string]*sharedResult{}}
}

// Query runs query once; callers asking for it again, also while it runs,
// get the same result. The first caller's ctx governs the request: every
// caller of one evaluation shares the evaluation's ctx.
func (sq *sharedQuerier) Query(ctx context.Context, query string) (metrics.Result, error) {
	sq.mu.Lock()
	r, ok := sq.m[query]
	if !ok {
		r = &sharedResult{done: make(chan struct{})}
		sq.m[query] = r
	}
	sq.mu.Unlock()
	if ok {
		select {
		case <-r.done:
			return r.r, r.err
		case <-ctx.Done():
			return metrics.Result{}, ctx.Err()
		}
	}
	r.r, r.err = sq.q.Query(ctx, query)
	close(r.done)
	return r.r, r.err
}

// concludeShadows records the shadows' evaluations that ran beside the
// live one of o.
func (s *Server) concludeShadows(o *object, ref *pb.ScaledObjectRef, runs []*shadowRun) {
	waiting := s.waiting(ref)
	for _, run := range runs {
		run.in.fail = newFailure(run.err, &run.in) // rendered before s.mu
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	for _, run := range runs {
		s.concludeShadow(o, run, waiting, now)
	}
}
