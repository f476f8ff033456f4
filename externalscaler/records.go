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
	// Shadow is true for the decision of a shadow rule set, which KEDA is
	// never told; always false until shadow rule sets exist.
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
// version, so that a record does not copy it.
type resolved struct {
	rs       *rules.RuleSet
	version  uint64
	queries  []string
	metadata map[string]string
}

// record is what the server keeps of one evaluation: the inputs and the
// outcome, from which a Record (explanation included) is built when read.
type record struct {
	at  time.Time
	seq uint64
	res *resolved
	// results and queryErrs are per query, in the rule set's order;
	// results is nil when the queries did not run, queryErrs nil when none
	// failed.
	results   []rules.Result
	queryErrs []error
	builtins  rules.BuiltinValues
	// read says which built-ins were read: demand (inflight, queued) and
	// target (current, ready).
	readDemand, readTarget bool
	out                    rules.Outcome
	// waiting: the activators held requests when the evaluation ended.
	waiting  bool
	prev     int64
	hasPrev  bool
	duration time.Duration
	calls    int32
}

// ring keeps the newest RecordsKept records.
type ring struct {
	buf  []record
	next int // where the next record goes once buf is full
}

func (r *ring) add(rec record) {
	if len(r.buf) < RecordsKept {
		if len(r.buf) == cap(r.buf) {
			// Grow as append would, but never past RecordsKept: append's
			// doubling would leave 28 slots unused for good.
			r.buf = slices.Grow(r.buf, min(max(2*cap(r.buf), 4), RecordsKept)-len(r.buf))
		}
		r.buf = append(r.buf, rec)
		return
	}
	r.buf[r.next] = rec
	r.next = (r.next + 1) % RecordsKept
}

// count notes one more call answered by the record numbered seq, if kept.
func (r *ring) count(seq uint64) {
	if l := r.last(); l != nil && l.seq == seq {
		l.calls++
		return
	}
	for i := range r.buf {
		if r.buf[i].seq == seq {
			r.buf[i].calls++
			return
		}
	}
}

// last returns the newest record, or nil.
func (r *ring) last() *record {
	if len(r.buf) == 0 {
		return nil
	}
	if len(r.buf) < RecordsKept {
		return &r.buf[len(r.buf)-1]
	}
	return &r.buf[(r.next+RecordsKept-1)%RecordsKept]
}

// newestFirst calls f for each record, newest first.
func (r *ring) newestFirst(f func(*record)) {
	n := len(r.buf)
	start := n - 1
	if n == RecordsKept {
		start = (r.next + RecordsKept - 1) % RecordsKept
	}
	for i := range n {
		f(&r.buf[(start-i+n)%n])
	}
}

// replicas is what the record told KEDA, and whether it told anything.
func (rec *record) replicas() (int64, bool) {
	if rec.out.Err != nil {
		return 0, false
	}
	return rec.out.Decision.Replicas, true
}

// changed reports whether rec answers differently from prev.
func (rec *record) changed(prev *record) bool {
	if prev == nil {
		return true
	}
	return rec.out.Decision.Replicas != prev.out.Decision.Replicas || rec.out.Decision.Active != prev.out.Decision.Active || rec.out.Holding != prev.out.Holding ||
		(rec.out.Err == nil) != (prev.out.Err == nil) || (rec.out.EvalErr == nil) != (prev.out.EvalErr == nil) ||
		rec.res.rs != prev.res.rs
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

// explain is the record's one line, e.g. "replicas 3 → 5: max(waiting / 4
// = 4.5, running / 8 = 1.25) = 4.5 → 5 (0..16)".
func (rec *record) explain() string {
	rs, o := rec.res.rs, rec.out
	head := "replicas "
	if rec.hasPrev && rec.prev != o.Decision.Replicas && o.Err == nil {
		head += strconv.FormatInt(rec.prev, 10) + " → "
	}
	switch {
	case o.EvalErr == nil:
		return head + strconv.FormatInt(o.Decision.Replicas, 10) + ": " + rs.Explain(rec.results, rec.builtinsFor(), o.Decision.Raw)
	case o.Holding:
		return head + strconv.FormatInt(o.Decision.Replicas, 10) + " (" + rec.onError() + "): " + o.EvalErr.Error()
	case o.Fixed:
		return head + strconv.FormatInt(o.Decision.Replicas, 10) + " (" + rec.onError() + "): " + o.EvalErr.Error()
	default:
		return "no replicas (" + rec.onError() + "): " + o.Err.Error()
	}
}

// builtinsFor is the built-in values for Explain: nil when none were read.
func (rec *record) builtinsFor() *rules.BuiltinValues {
	if !rec.readDemand && !rec.readTarget {
		return nil
	}
	return &rec.builtins
}

// onError says what the onError policy did, or "" after a good evaluation.
func (rec *record) onError() string {
	o, rs := rec.out, rec.res.rs
	switch {
	case o.EvalErr == nil:
		return ""
	case o.Holding:
		return fmt.Sprintf("holding %d since %s, stale at %s", o.Decision.Replicas, o.HeldSince.Format(time.TimeOnly), o.HeldSince.Add(rs.StaleAfter).Format(time.TimeOnly))
	case o.Fixed:
		return fmt.Sprintf("onError: %d replicas", o.Decision.Replicas)
	case rs.OnError.Mode == rules.Hold:
		return "onError: hold, nothing young enough to hold: KEDA's fallback applies"
	default:
		return "onError: fail: KEDA's fallback applies"
	}
}

// activeReason says why the record's activity is what KEDA was told.
func (rec *record) activeReason() string {
	o, rs := rec.out, rec.res.rs
	cond := "replicas > 0 (the default active)"
	if rs.Active != "" {
		cond = rs.Active
	}
	switch {
	case rec.waiting && (o.Err != nil || !o.Decision.Active):
		return "queued > 0: the activators hold requests, which overrides the rule set"
	case o.Err != nil:
		return "no answer: KEDA's fallback applies"
	case o.Holding:
		return "held from the last good decision: " + cond + " was " + strconv.FormatBool(o.Decision.Active)
	case o.Fixed:
		return "onError's fixed count: replicas > 0 is " + strconv.FormatBool(o.Decision.Active)
	default:
		return cond + " is " + strconv.FormatBool(o.Decision.Active)
	}
}

// build turns rec into the Record served, for the trigger of o.
func (rec *record) build(namespace, name string) Record {
	rs, o := rec.res.rs, rec.out
	r := Record{
		Time:            rec.at,
		Namespace:       namespace,
		Name:            name,
		RuleSet:         rs.Name,
		Holding:         o.Holding,
		Queries:         make([]QueryRecord, len(rs.Queries)),
		Builtins:        map[string]float64{},
		Explanation:     rec.explain(),
		Metadata:        rec.res.metadata,
		RuleFile:        fmt.Sprintf("%s:%d:%d", rs.File, rs.Line, rs.Column),
		RulesVersion:    rec.res.version,
		Min:             rs.Min,
		Max:             rs.Max,
		ActiveReason:    rec.activeReason(),
		OnError:         rec.onError(),
		DurationSeconds: rec.duration.Seconds(),
		Calls:           int(rec.calls),
		Reused:          rec.calls > 1,
	}
	r.Replicas, _ = rec.replicas()
	r.Active, _ = o.Active(rec.waiting)
	if rec.hasPrev {
		r.PreviousReplicas = &rec.prev
	}
	if o.EvalErr != nil {
		r.Error, r.Reason = o.EvalErr.Error(), rules.Reason(o.EvalErr)
	} else {
		raw := o.Decision.Raw
		r.Raw = &raw
		r.Rounding = rs.Rounding(raw)
	}
	if o.Holding {
		since, stale := o.HeldSince, o.HeldSince.Add(rs.StaleAfter)
		r.HoldingSince, r.StaleAt = &since, &stale
	}
	for i, q := range rs.Queries {
		qr := QueryRecord{Name: q.Name, Query: rec.res.queries[i]}
		switch {
		case rec.queryErrs != nil && rec.queryErrs[i] != nil:
			qr.Error, qr.Reason = rec.queryErrs[i].Error(), rules.Reason(rec.queryErrs[i])
		case rec.results == nil:
			qr.Error = "not run"
		default:
			vals := rec.results[i].Values
			if q.Series {
				qr.Values = vals
			}
			switch {
			case slices.ContainsFunc(vals, func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }):
				qr.Error, qr.Reason = "returned a value that is not a finite number", "not_finite"
			case len(vals) == 1:
				v := vals[0]
				qr.Value = &v
			case q.Bare && len(vals) == 0:
				qr.Error, qr.Reason = "returned no series", "no_data"
			case q.Bare:
				qr.Error, qr.Reason = fmt.Sprintf("returned %d series where one number was needed", len(vals)), "series"
			}
		}
		r.Queries[i] = qr
	}
	vals := map[string]float64{"inflight": rec.builtins.InFlight, "queued": rec.builtins.Queued, "current": rec.builtins.Current, "ready": rec.builtins.Ready}
	for _, b := range rs.Builtins {
		demand := b == "inflight" || b == "queued"
		if (demand && rec.readDemand) || (!demand && rec.readTarget) {
			r.Builtins[b] = vals[b]
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
