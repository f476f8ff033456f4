package externalscaler

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/k8s-nemesis/nemesis/rules"
)

// RecordsKept is how many decision records the server keeps per
// ScaledObject trigger: the newest, in a ring.
const RecordsKept = 100

// Record is one evaluation of a rule set for a ScaledObject trigger, as
// GET /api/v1/decisions serves it. The fields up to Explanation are a
// contract (docs/operations.md); the rest may grow.
type Record struct {
	Time      time.Time `json:"time"`
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	RuleSet   string    `json:"ruleSet"`
	// Shadow is true for the decision of a shadow rule set (trigger
	// metadata shadowRuleSets), which KEDA is never told: then Replicas and
	// Active are what the shadow would have told it.
	Shadow bool `json:"shadow"`
	// Replicas is what KEDA was told (0 with Error set and Holding false:
	// no answer, KEDA's fallback applies).
	Replicas int64 `json:"replicas"`
	// Active is what KEDA was told of the activity, queued requests
	// included (see ActiveReason).
	Active bool `json:"active"`
	// Holding says Replicas is the last good decision, reused after Error.
	Holding bool `json:"holding"`
	// Error and Reason are the evaluation's error and its reason as in
	// nemesis_scaler_evaluation_errors_total, also when onError answered.
	Error   string        `json:"error"`
	Reason  string        `json:"reason"`
	Queries []QueryRecord `json:"queries"`
	// Builtins are the built-in variables the rule set uses that were read.
	Builtins map[string]float64 `json:"builtins"`
	// Raw is the replicas expression's value, null when it was not computed.
	Raw         *float64 `json:"raw"`
	Explanation string   `json:"explanation"`

	// Metadata is the trigger's metadata.
	Metadata map[string]string `json:"metadata"`
	// RuleFile locates the rule set; RulesVersion is the version of the
	// rule files in force (nemesis_rules_version).
	RuleFile     string `json:"ruleFile"`
	RulesVersion uint64 `json:"rulesVersion"`
	// BuiltinSources says where each built-in's value came from.
	BuiltinSources map[string]string `json:"builtinSources,omitempty"`
	// Rounding is how Raw became Replicas, e.g. "4.2 → 5, within 0..16".
	Rounding string `json:"rounding,omitempty"`
	Min      int64  `json:"min"`
	Max      int64  `json:"max"`
	// ActiveReason says why Active is what it is.
	ActiveReason string `json:"activeReason"`
	// OnError is what the onError policy did after Error, e.g. "holding 5
	// since 10:02:11, stale at 10:07:11".
	OnError      string     `json:"onError,omitempty"`
	HoldingSince *time.Time `json:"holdingSince,omitempty"`
	StaleAt      *time.Time `json:"staleAt,omitempty"`
	// PreviousReplicas is what the record before this one told KEDA.
	PreviousReplicas *int64  `json:"previousReplicas"`
	DurationSeconds  float64 `json:"durationSeconds"`
	// Calls counts the calls (GetMetrics, IsActive, StreamIsActive) this
	// evaluation answered; Reused says it answered more than the first.
	Calls  int  `json:"calls"`
	Reused bool `json:"reused"`
}

// QueryRecord is one rendered query of a Record and what it returned.
type QueryRecord struct {
	Name  string `json:"name"`
	Query string `json:"query"`
	// Value is the query's one number, null when it returned no number
	// (an error, no series or several) or was not run.
	Value  *float64 `json:"value"`
	Error  string   `json:"error"`
	Reason string   `json:"reason,omitempty"`
	// Values are the values of every series, for a query used as series.
	Values []float64 `json:"values,omitempty"`
}

// resolved is what the records of one trigger share for one catalog
// version, so that a record does not copy it: the rule set (its name, file
// and expressions), the rendered queries and the metadata.
type resolved struct {
	rs       *rules.RuleSet
	version  uint64
	queries  []string
	metadata map[string]string
}

// record is what the server keeps of one evaluation: 64 bytes, plus one
// float64 per query and built-in read in the ring's vals. From it and the
// trigger's resolved a Record is built, explanation included, when read.
// Nothing here is text rendered on the evaluation path: an error is
// rendered once, when it happens, and shared by the records after it while
// it stays the same.
type record struct {
	at  int64 // unix nanoseconds
	res *resolved
	// raw and replicas are the answer's decision (the held or fixed one
	// after an error); replicas is 0 when there was no answer.
	raw      float64
	replicas int64
	// fail is the evaluation's error, nil after a good evaluation.
	fail *failure
	// odd says what the queries returned that is not one number each:
	// nil while every query that ran returned one number and none is used
	// as series.
	odd    *oddQueries
	seq    uint32
	micros uint32 // the evaluation's duration, in µs
	calls  uint32 // calls answered, but see object.calls for the newest
	flags  recordFlags
}

// recordFlags are a record's booleans.
type recordFlags uint8

const (
	flagActive     recordFlags = 1 << iota // the decision's active
	flagHolding                            // the decision is the last good one, held
	flagFixed                              // the decision is onError's fixed count
	flagNoAnswer                           // no answer: KEDA's fallback applies
	flagWaiting                            // the activators held requests
	flagRan                                // the queries ran
	flagReadDemand                         // inflight and queued were read
	flagReadTarget                         // current and ready were read
)

// failure is an evaluation's error, rendered when it happened.
type failure struct {
	err, reason string
	// answerErr is the error KEDA got, "" when onError answered.
	answerErr string
	// heldSince is when the held decision was made (unix nanoseconds),
	// while holding.
	heldSince int64
	// queries are the queries' own errors, nil when none failed.
	queries []queryFailure
}

type queryFailure struct{ err, reason string }

func (f *failure) equal(g *failure) bool {
	return f.err == g.err && f.reason == g.reason && f.answerErr == g.answerErr && f.heldSince == g.heldSince && slices.Equal(f.queries, g.queries)
}

// oddQueries is, per query, what a query returned when that was not one
// number, or was used as series.
type oddQueries struct {
	q []oddQuery
}

type oddQuery struct {
	// n is how many values the query returned; nonFinite says one was NaN
	// or infinite.
	n         int
	nonFinite bool
	// series are the values, kept for a query used as series, which the
	// explanation needs.
	series []float64
}

func (a *oddQueries) equal(b *oddQueries) bool {
	return slices.EqualFunc(a.q, b.q, func(x, y oddQuery) bool {
		return x.n == y.n && x.nonFinite == y.nonFinite && (x.series == nil) == (y.series == nil) && slices.Equal(x.series, y.series)
	})
}

// evaluation is what one evaluation read, for its record.
type evaluation struct {
	// results are per query, in the rule set's order; nil when the
	// queries did not run. errs are the queries' errors, nil when none
	// failed.
	results  []rules.Result
	errs     []error
	builtins rules.BuiltinValues
	// Which built-ins were read: demand (inflight, queued) and target
	// (current, ready).
	readDemand, readTarget bool
	duration               time.Duration
	// fail is the evaluation's error, rendered before s.mu is taken.
	fail *failure
}

// newFailure renders an evaluation's error err (nil: none).
func newFailure(err error, in *evaluation) *failure {
	if err == nil {
		return nil
	}
	f := &failure{err: err.Error(), reason: rules.Reason(err)}
	if in.errs != nil {
		f.queries = make([]queryFailure, len(in.errs))
		for i, e := range in.errs {
			if e != nil {
				f.queries[i] = queryFailure{e.Error(), rules.Reason(e)}
			}
		}
	}
	return f
}

// oddOf says what in's queries returned that is not one number each, nil
// when nothing; it returns prev when that says the same.
func oddOf(rs *rules.RuleSet, in *evaluation, prev *oddQueries) *oddQueries {
	if in.results == nil {
		return nil
	}
	odd := false
	for i, q := range rs.Queries {
		if (in.errs == nil || in.errs[i] == nil) && (q.Series || len(in.results[i].Values) != 1) {
			odd = true
			break
		}
	}
	if !odd {
		return nil
	}
	o := &oddQueries{q: make([]oddQuery, len(rs.Queries))}
	for i, q := range rs.Queries {
		if in.errs != nil && in.errs[i] != nil {
			continue
		}
		vals := in.results[i].Values
		o.q[i] = oddQuery{n: len(vals), nonFinite: slices.ContainsFunc(vals, nonFinite)}
		if q.Series {
			// The querier's own slice, which nothing writes to: no copy.
			o.q[i].series = vals
			if vals == nil {
				o.q[i].series = []float64{}
			}
		}
	}
	if prev != nil && prev.equal(o) {
		return prev
	}
	return o
}

func nonFinite(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }

// ring keeps the newest RecordsKept records of a trigger.
type ring struct {
	buf []record
	// vals holds stride values per slot of buf: the queries' values (0
	// for a query that did not return one number), then the built-ins'
	// in the order of the rule set's Builtins.
	vals   []float64
	stride int
	next   int // where the next record goes once buf is full
	// before is what the record evicted last answered (beforeOK false:
	// nothing, or none was evicted): what the oldest kept record followed.
	before   int64
	beforeOK bool
}

// width is how many values a record of res keeps.
func (res *resolved) width() int { return len(res.rs.Queries) + len(res.rs.Builtins) }

// add keeps rec with the values of in, and returns rec as kept.
func (r *ring) add(rec record, in *evaluation) *record {
	if w := rec.res.width(); w > r.stride {
		vals := make([]float64, cap(r.buf)*w)
		for i := range r.buf {
			copy(vals[i*w:], r.vals[i*r.stride:(i+1)*r.stride])
		}
		r.vals, r.stride = vals, w
	}
	var i int
	if len(r.buf) < RecordsKept {
		if len(r.buf) == cap(r.buf) {
			// Grow as append would, but never past RecordsKept, and
			// exactly: append's doubling would leave 28 slots unused for
			// good.
			n := min(max(2*cap(r.buf), 4), RecordsKept)
			buf := make([]record, len(r.buf), n)
			copy(buf, r.buf)
			vals := make([]float64, n*r.stride)
			copy(vals, r.vals)
			r.buf, r.vals = buf, vals
		}
		i = len(r.buf)
		r.buf = append(r.buf, rec)
	} else {
		i = r.next
		r.before, r.beforeOK = r.buf[i].answered()
		r.buf[i] = rec
		r.next = (r.next + 1) % RecordsKept
	}
	vals := r.vals[i*r.stride : (i+1)*r.stride]
	clear(vals)
	rs := rec.res.rs
	for q := range rs.Queries {
		if in.results != nil && len(in.results[q].Values) == 1 {
			vals[q] = in.results[q].Values[0]
		}
	}
	for b, name := range rs.Builtins {
		switch {
		case name == "inflight" && in.readDemand:
			vals[len(rs.Queries)+b] = in.builtins.InFlight
		case name == "queued" && in.readDemand:
			vals[len(rs.Queries)+b] = in.builtins.Queued
		case name == "current" && in.readTarget:
			vals[len(rs.Queries)+b] = in.builtins.Current
		case name == "ready" && in.readTarget:
			vals[len(rs.Queries)+b] = in.builtins.Ready
		}
	}
	return &r.buf[i]
}

// slot is where the record k-th oldest kept is in buf.
func (r *ring) slot(k int) int {
	if len(r.buf) < RecordsKept {
		return k
	}
	return (r.next + k) % RecordsKept
}

// count notes one more call answered by the record numbered seq, if kept.
func (r *ring) count(seq uint32) {
	for k := len(r.buf) - 1; k >= 0; k-- {
		if rec := &r.buf[r.slot(k)]; rec.seq == seq {
			rec.calls++
			return
		}
	}
}

// last returns the newest record, or nil.
func (r *ring) last() *record {
	if len(r.buf) == 0 {
		return nil
	}
	return &r.buf[r.slot(len(r.buf)-1)]
}

// view copies the record k-th oldest kept, with what it needs from the
// ring, so that it can be built into a Record without the ring's lock.
func (r *ring) view(k int) view {
	i := r.slot(k)
	rec := r.buf[i]
	v := view{rec: rec, vals: slices.Clone(r.vals[i*r.stride : i*r.stride+rec.res.width()])}
	if k > 0 {
		v.prev, v.hasPrev = r.buf[r.slot(k-1)].answered()
	} else {
		v.prev, v.hasPrev = r.before, r.beforeOK
	}
	return v
}

// answered is what the record told KEDA, and whether it told anything.
func (rec *record) answered() (int64, bool) {
	if rec.flags&flagNoAnswer != 0 {
		return 0, false
	}
	return rec.replicas, true
}

// changed reports whether rec answers differently from prev.
func (rec *record) changed(prev *record) bool {
	const answer = flagActive | flagHolding | flagNoAnswer
	return prev == nil || rec.replicas != prev.replicas || rec.flags&answer != prev.flags&answer ||
		(rec.fail == nil) != (prev.fail == nil) || rec.res.rs != prev.res.rs
}

// view is a record copied out of its ring with its values and the replicas
// of the record before it, ready to build.
type view struct {
	rec     record
	vals    []float64
	prev    int64
	hasPrev bool
	// quiet: the decision did not change, only its Event is due (the
	// debug line "decision changed" is not).
	quiet bool
	// shadow: the record is a shadow rule set's.
	shadow bool
}

// builtinSource says where a built-in's value comes from.
func builtinSource(name string) string {
	switch name {
	case "inflight":
		return "activators: requests in flight, summed over replicas"
	case "queued":
		return "activators: requests held, summed over replicas"
	case "current":
		return "scale subresource of the scale target: spec.replicas"
	case "ready":
		return "ready pods of the scale target"
	}
	return ""
}

// time is when the record was made.
func (v *view) time() time.Time { return time.Unix(0, v.rec.at) }

// explain is the record's one line, e.g. "replicas 3 → 5: max(waiting / 4
// = 4.5, running / 8 = 1.25) = 4.5 → 5 (0..16)".
func (v *view) explain() string {
	rec := &v.rec
	head := "replicas "
	n, answered := rec.answered()
	if v.hasPrev && answered && v.prev != n {
		head += strconv.FormatInt(v.prev, 10) + " → "
	}
	switch {
	case rec.fail == nil:
		return head + strconv.FormatInt(n, 10) + ": " + rec.res.rs.Explain(v.results(), v.builtins(), rec.raw)
	case answered:
		return head + strconv.FormatInt(n, 10) + " (" + v.onError() + "): " + rec.fail.err
	default:
		return "no replicas (" + v.onError() + "): " + rec.fail.answerErr
	}
}

// results are the query results as the evaluation saw them, as far as an
// explanation needs them: one number each, or the series kept.
func (v *view) results() []rules.Result {
	rs := v.rec.res.rs
	out := make([]rules.Result, len(rs.Queries))
	for i := range rs.Queries {
		switch odd := v.rec.odd; {
		case odd != nil && odd.q[i].series != nil:
			out[i].Values = odd.q[i].series
		case odd != nil && odd.q[i].n != 1:
			// None or several: nothing to show.
		default:
			out[i].Values = v.vals[i : i+1]
		}
	}
	return out
}

// builtins are the built-in values read, nil when none were.
func (v *view) builtins() *rules.BuiltinValues {
	if v.rec.flags&(flagReadDemand|flagReadTarget) == 0 {
		return nil
	}
	var b rules.BuiltinValues
	rs := v.rec.res.rs
	for i, name := range rs.Builtins {
		val := v.vals[len(rs.Queries)+i]
		switch name {
		case "inflight":
			b.InFlight = val
		case "queued":
			b.Queued = val
		case "current":
			b.Current = val
		case "ready":
			b.Ready = val
		}
	}
	return &b
}

// onError says what the onError policy did, or "" after a good evaluation.
func (v *view) onError() string {
	rec, rs := &v.rec, v.rec.res.rs
	switch {
	case rec.fail == nil:
		return ""
	case rec.flags&flagHolding != 0:
		since := time.Unix(0, rec.fail.heldSince)
		return fmt.Sprintf("holding %d since %s, stale at %s", rec.replicas, since.Format(time.TimeOnly), since.Add(rs.StaleAfter).Format(time.TimeOnly))
	case rec.flags&flagFixed != 0:
		return fmt.Sprintf("onError: %d replicas", rec.replicas)
	case rs.OnError.Mode == rules.Hold:
		return "onError: hold, nothing young enough to hold: KEDA's fallback applies"
	default:
		return "onError: fail: KEDA's fallback applies"
	}
}

// activeReason says why the record's activity is what KEDA was told.
func (v *view) activeReason() string {
	rec, rs := &v.rec, v.rec.res.rs
	cond := "replicas > 0 (the default active)"
	if rs.Active != "" {
		cond = rs.Active
	}
	active := rec.flags&flagActive != 0
	_, answered := rec.answered()
	switch {
	case rec.flags&flagWaiting != 0 && (!answered || !active):
		return "queued > 0: the activators hold requests, which overrides the rule set"
	case !answered:
		return "no answer: KEDA's fallback applies"
	case rec.flags&flagHolding != 0:
		return "held from the last good decision: " + cond + " was " + strconv.FormatBool(active)
	case rec.flags&flagFixed != 0:
		return "onError's fixed count: replicas > 0 is " + strconv.FormatBool(active)
	default:
		return cond + " is " + strconv.FormatBool(active)
	}
}

// build turns the record into the Record served, for ScaledObject
// namespace/name.
func (v *view) build(namespace, name string) Record {
	rec, rs := &v.rec, v.rec.res.rs
	_, answered := rec.answered()
	r := Record{
		Time:            v.time(),
		Namespace:       namespace,
		Name:            name,
		RuleSet:         rs.Name,
		Shadow:          v.shadow,
		Holding:         rec.flags&flagHolding != 0,
		Queries:         make([]QueryRecord, len(rs.Queries)),
		Builtins:        map[string]float64{},
		Explanation:     v.explain(),
		Metadata:        rec.res.metadata,
		RuleFile:        fmt.Sprintf("%s:%d:%d", rs.File, rs.Line, rs.Column),
		RulesVersion:    rec.res.version,
		Min:             rs.Min,
		Max:             rs.Max,
		ActiveReason:    v.activeReason(),
		OnError:         v.onError(),
		DurationSeconds: float64(rec.micros) / 1e6,
		Calls:           int(rec.calls),
		Reused:          rec.calls > 1,
	}
	if answered {
		r.Replicas = rec.replicas
	}
	r.Active = rec.flags&flagWaiting != 0 || (answered && rec.flags&flagActive != 0)
	if v.hasPrev {
		r.PreviousReplicas = &v.prev
	}
	if rec.fail != nil {
		r.Error, r.Reason = rec.fail.err, rec.fail.reason
	} else {
		raw := rec.raw
		r.Raw = &raw
		r.Rounding = rs.Rounding(raw)
	}
	if r.Holding {
		since := time.Unix(0, rec.fail.heldSince)
		stale := since.Add(rs.StaleAfter)
		r.HoldingSince, r.StaleAt = &since, &stale
	}
	for i, q := range rs.Queries {
		qr := QueryRecord{Name: q.Name, Query: rec.res.queries[i]}
		var odd oddQuery
		if rec.odd != nil {
			odd = rec.odd.q[i]
		} else {
			odd = oddQuery{n: 1, nonFinite: nonFinite(v.vals[i])}
		}
		switch {
		case rec.fail != nil && rec.fail.queries != nil && rec.fail.queries[i] != (queryFailure{}):
			qr.Error, qr.Reason = rec.fail.queries[i].err, rec.fail.queries[i].reason
		case rec.flags&flagRan == 0:
			qr.Error = "not run"
		default:
			if q.Series {
				qr.Values = odd.series
			}
			switch {
			case odd.nonFinite || (odd.n == 1 && nonFinite(v.vals[i])):
				qr.Error, qr.Reason = "returned a value that is not a finite number", "not_finite"
			case odd.n == 1:
				val := v.vals[i]
				qr.Value = &val
			case q.Bare && odd.n == 0:
				qr.Error, qr.Reason = "returned no series", "no_data"
			case q.Bare:
				qr.Error, qr.Reason = fmt.Sprintf("returned %d series where one number was needed", odd.n), "series"
			}
		}
		r.Queries[i] = qr
	}
	for i, b := range rs.Builtins {
		demand := b == "inflight" || b == "queued"
		if (demand && rec.flags&flagReadDemand != 0) || (!demand && rec.flags&flagReadTarget != 0) {
			r.Builtins[b] = v.vals[len(rs.Queries)+i]
			if r.BuiltinSources == nil {
				r.BuiltinSources = map[string]string{}
			}
			r.BuiltinSources[b] = builtinSource(b)
		}
	}
	return r
}

// sortNewestFirst orders records by time, newest first, then by name.
func sortNewestFirst(rs []Record) {
	slices.SortStableFunc(rs, func(a, b Record) int {
		return cmp.Or(b.Time.Compare(a.Time), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
}
