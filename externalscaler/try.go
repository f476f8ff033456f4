package externalscaler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"

	"github.com/k8s-nemesis/nemesis/rules"
)

// TryMaxBytes bounds the rule file text that Try accepts.
const TryMaxBytes = 64 << 10

// TryFile is the file name that the problems of a tried rule file carry.
const TryFile = "try.yaml"

// tryTimeout bounds one try as a whole; each query also has the querier's
// own timeout, as in a live evaluation.
const tryTimeout = 30 * time.Second

// ErrUnknownScaledObject is Try's error for a ScaledObject of which the
// scaler keeps no state.
var ErrUnknownScaledObject = errors.New("unknown ScaledObject")

// TryError is a tried rule file that cannot be evaluated: it does not
// parse (Problems, with their line and column in TryFile), or it does not
// name one rule set that can be rendered for the ScaledObject.
type TryError struct {
	Err      error
	Problems []Problem
}

func (e *TryError) Error() string { return e.Err.Error() }
func (e *TryError) Unwrap() error { return e.Err }

// Try evaluates a rule set given as the text of a rule file once for the
// ScaledObject namespace/name, as its trigger's rule set is evaluated: with
// the trigger's metadata, the live queries (through the scaler's querier
// and its timeout), the activators' demand and the scale target. ruleSet
// names the rule set when the text holds several ("" takes the only one).
// The text is parsed as a rule file is, with the same limits and sandbox.
//
// Try changes nothing: the answer is returned and kept nowhere, counted in
// no metric and told to no one. The record's previous replicas are what the
// trigger's live rule set last told KEDA.
func (s *Server) Try(ctx context.Context, data []byte, ruleSet, namespace, name string) (Record, error) {
	if len(data) > TryMaxBytes {
		return Record{}, &TryError{Err: fmt.Errorf("the rule file is %d bytes; at most %d are tried", len(data), TryMaxBytes)}
	}
	sets, err := rules.Parse(TryFile, data)
	if err != nil {
		te := &TryError{Err: err}
		for _, e := range rules.Errors(err) {
			te.Problems = append(te.Problems, Problem{File: e.File, Line: e.Line, Column: e.Column, RuleSet: e.RuleSet, Field: e.Field, Message: e.Msg})
		}
		return Record{}, te
	}
	rs, err := pickRuleSet(sets, ruleSet)
	if err != nil {
		return Record{}, &TryError{Err: err}
	}

	// The trigger tried for: the first by key of the ScaledObject's.
	s.mu.Lock()
	var o *object
	var oKey string
	for key, cand := range s.objects {
		if cand.namespace == namespace && cand.name == name && cand.res != nil && (o == nil || key < oKey) {
			o, oKey = cand, key
		}
	}
	if o == nil {
		s.mu.Unlock()
		return Record{}, fmt.Errorf("%w %s/%s: KEDA has not asked this scaler about it, or not in the last %v", ErrUnknownScaledObject, namespace, name, s.opts.ForgetAfter)
	}
	metadata, service := o.res.metadata, o.service
	var prev int64
	var hasPrev bool
	if last := o.records.last(); last != nil {
		prev, hasPrev = last.answered()
	}
	s.mu.Unlock()

	queries, err := rs.Render(namespace, name, metadata)
	if err != nil {
		return Record{}, &TryError{Err: err}
	}
	ref := &pb.ScaledObjectRef{Namespace: namespace, Name: name, ScalerMetadata: metadata}
	ctx, cancel := context.WithTimeout(ctx, tryTimeout)
	defer cancel()
	var in evaluation
	d, err := s.evaluate(ctx, ref, s.q, rs, queries, service, &in, evalTry)
	in.fail = newFailure(err, &in)
	// No last good decision: onError: hold has nothing to hold.
	var last rules.LastGood
	now := s.opts.Now()
	out := rs.Decide(&last, now, d, err)
	res := &resolved{rs: rs, queries: queries, metadata: metadata}
	var r ring
	r.add(newRecord(now, 0, res, out, s.waiting(ref), &in, nil), &in)
	v := r.view(0)
	v.prev, v.hasPrev = prev, hasPrev
	return v.build(namespace, name), nil
}

// TryObject is Try for object, written namespace/name, with the HTTP
// status code of its outcome: 200, 400 for an object not so written, 404
// for an unknown ScaledObject, 422 for a rule file that cannot be tried.
func (s *Server) TryObject(ctx context.Context, data []byte, ruleSet, object string) (Record, int, error) {
	ns, name, ok := strings.Cut(object, "/")
	if !ok || ns == "" || name == "" {
		return Record{}, http.StatusBadRequest, fmt.Errorf("choose a ScaledObject as namespace/name, not %q", object)
	}
	rec, err := s.Try(ctx, data, ruleSet, ns, name)
	switch {
	case err == nil:
		return rec, http.StatusOK, nil
	case errors.Is(err, ErrUnknownScaledObject):
		return rec, http.StatusNotFound, err
	}
	return rec, http.StatusUnprocessableEntity, err
}

// pickRuleSet is the rule set named name among sets, or the only one when
// name is "".
func pickRuleSet(sets []*rules.RuleSet, name string) (*rules.RuleSet, error) {
	names := make([]string, len(sets))
	for i, rs := range sets {
		names[i] = rs.Name
		if name != "" && rs.Name == name {
			return rs, nil
		}
	}
	switch {
	case len(sets) == 0:
		return nil, errors.New("the rule file holds no rule set")
	case name != "":
		return nil, fmt.Errorf("the rule file holds no rule set %q: it holds %s", name, strings.Join(names, ", "))
	case len(sets) > 1:
		slices.Sort(names)
		return nil, fmt.Errorf("the rule file holds %d rule sets (%s): name the one to try", len(sets), strings.Join(names, ", "))
	}
	return sets[0], nil
}
