package backtest

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Formats are the values of --output.
func Formats() []string { return []string{"table", "csv", "json"} }

// Write writes the replay in format: "table" (the steps where something
// changed, then the summary), "csv" or "json" (every step; the summary is
// for WriteSummary).
func (r *Result) Write(w io.Writer, format string) error {
	switch format {
	case "table":
		return r.WriteTable(w)
	case "csv":
		return r.WriteCSV(w)
	case "json":
		return r.WriteJSON(w)
	}
	return fmt.Errorf("output format %q: want one of %s", format, strings.Join(Formats(), ", "))
}

// number formats a finite value as JSON and CSV both read it; ok false
// and non-finite values (which JSON has no number for) are null.
func appendNumber(b []byte, v float64, ok bool) []byte {
	if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// WriteJSON writes one JSON object per line and per step:
//
//	{"time": "<RFC 3339>", "values": {"<query>": <number|null>}, "builtins": {"<name>": <number>},
//	 "ruleSets": {"<rule set>": {"desired": <int|null>, "active": <bool>, "replicas": <int>, "error": "<reason or empty>"}},
//	 "actual": <number|null>}
//
// The keys of values are the rendered PromQL of each distinct query, in
// the order the rule sets name them; a value is null when the query has
// no data at that step, returns several series there (a query read only
// through series.NAME), or a NaN or infinite value. builtins holds
// inflight and queued, which all rule sets share (current and ready are
// each rule set's own simulation: its replicas and their ready pods).
// desired is null when KEDA got no answer; error is the evaluation
// error's reason, also when onError answered for it (desired then holds
// the held or fixed answer). actual is null without --actual.
func (r *Result) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var b []byte
	for _, st := range r.Steps {
		b = append(b[:0], `{"time":`...)
		b = appendString(b, formatTime(st.Time))
		b = append(b, `,"values":{`...)
		for q, v := range st.Values {
			if q > 0 {
				b = append(b, ',')
			}
			b = appendString(b, r.Queries[q].Text)
			b = append(b, ':')
			b = appendNumber(b, v.V, v.OK)
		}
		b = append(b, `},"builtins":{"inflight":`...)
		b = appendNumber(b, st.InFlight, true)
		b = append(b, `,"queued":`...)
		b = appendNumber(b, st.Queued, true)
		b = append(b, `},"ruleSets":{`...)
		for k, rs := range st.RuleSets {
			if k > 0 {
				b = append(b, ',')
			}
			b = appendString(b, r.RuleSets[k])
			b = append(b, `:{"desired":`...)
			b = appendNumber(b, float64(rs.Desired), rs.DesiredOK)
			b = append(b, `,"active":`...)
			b = strconv.AppendBool(b, rs.Active)
			b = append(b, `,"replicas":`...)
			b = strconv.AppendInt(b, int64(rs.Replicas), 10)
			b = append(b, `,"error":`...)
			b = appendString(b, rs.Reason)
			b = append(b, '}')
		}
		b = append(b, `},"actual":`...)
		b = appendNumber(b, st.Actual.V, st.Actual.OK)
		b = append(b, "}\n"...)
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// CSVHeader is the header row of WriteCSV.
func (r *Result) CSVHeader() []string {
	h := []string{"time"}
	for _, q := range r.Queries {
		h = append(h, q.Text)
	}
	h = append(h, "inflight", "queued")
	for _, name := range r.RuleSets {
		h = append(h, name+".desired", name+".active", name+".replicas", name+".error")
	}
	return append(h, "actual")
}

// WriteCSV writes a header row (CSVHeader) and one row per step, with the
// fields of WriteJSON; null is an empty cell.
func (r *Result) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(r.CSVHeader()); err != nil {
		return err
	}
	row := make([]string, 0, len(r.CSVHeader()))
	cell := func(v float64, ok bool) string {
		s := string(appendNumber(nil, v, ok))
		if s == "null" {
			return ""
		}
		return s
	}
	for _, st := range r.Steps {
		row = append(row[:0], formatTime(st.Time))
		for _, v := range st.Values {
			row = append(row, cell(v.V, v.OK))
		}
		row = append(row, cell(st.InFlight, true), cell(st.Queued, true))
		for _, rs := range st.RuleSets {
			row = append(row, cell(float64(rs.Desired), rs.DesiredOK), strconv.FormatBool(rs.Active), strconv.Itoa(int(rs.Replicas)), rs.Reason)
		}
		row = append(row, cell(st.Actual.V, st.Actual.OK))
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteTable writes, for people, the queries under short names (q1, q2, …),
// then the steps at which a rule set's answer, error or simulated
// replicas, or --actual, changed (the first and last step always), then
// the summary.
func (r *Result) WriteTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for q, query := range r.Queries {
		fmt.Fprintf(bw, "q%d = %s  (%s)\n", q+1, query.Text, strings.Join(query.Uses, ", "))
	}
	fmt.Fprintf(bw, "inflight = %s\nqueued = %s\n", r.BuiltinQueries[inflightName], r.BuiltinQueries[queuedName])
	if r.Actual != "" {
		fmt.Fprintf(bw, "actual = %s\n", r.Actual)
	}
	fmt.Fprintln(bw)
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	head := []string{"TIME"}
	for q := range r.Queries {
		head = append(head, fmt.Sprintf("q%d", q+1))
	}
	head = append(head, "INFLIGHT", "QUEUED")
	for _, name := range r.RuleSets {
		head = append(head, name+" DESIRED", "ACTIVE", "REPLICAS", "READY", "ERROR")
	}
	if r.Actual != "" {
		head = append(head, "ACTUAL")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	// For people, 6 significant digits: a query's 7.800000000000019,
	// PromQL's float arithmetic, reads 7.8 (csv and json keep every bit).
	text := func(v float64, ok bool) string {
		if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			return "-"
		}
		return strconv.FormatFloat(v, 'g', 6, 64)
	}
	shown := 0
	for i, st := range r.Steps {
		if i > 0 && i < len(r.Steps)-1 && !changed(r.Steps[i-1], st) {
			continue
		}
		shown++
		row := []string{formatTime(st.Time)}
		for _, v := range st.Values {
			row = append(row, text(v.V, v.OK))
		}
		row = append(row, text(st.InFlight, true), text(st.Queued, true))
		for _, rs := range st.RuleSets {
			desired := text(float64(rs.Desired), rs.DesiredOK)
			if rs.Holding {
				desired += " (held)"
			}
			reason := rs.Reason
			if reason == "" {
				reason = "-"
			}
			row = append(row, desired, strconv.FormatBool(rs.Active), strconv.Itoa(int(rs.Replicas)), strconv.Itoa(int(rs.Ready)), reason)
		}
		if r.Actual != "" {
			row = append(row, text(st.Actual.V, st.Actual.OK))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if omitted := len(r.Steps) - shown; omitted > 0 {
		fmt.Fprintf(bw, "(%d steps without a change omitted; csv and json give every step)\n", omitted)
	}
	fmt.Fprintln(bw)
	if err := r.WriteSummary(bw); err != nil {
		return err
	}
	return bw.Flush()
}

// changed reports whether a rule set's answer or simulation, or actual,
// differs between two consecutive steps.
func changed(a, b Step) bool {
	if a.Actual != b.Actual {
		return true
	}
	for k := range a.RuleSets {
		x, y := a.RuleSets[k], b.RuleSets[k]
		x.Event, y.Event = "", ""
		if x != y {
			return true
		}
	}
	return false
}

// WriteSummary writes the summary of every rule set (and --actual) as a
// table: replica-hours, scale events, largest count, time at zero, steps
// without an answer, and the time under and over --actual.
func (r *Result) WriteSummary(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%d steps of %v from %s to %s\n", len(r.Steps), r.Step, formatTime(r.Start), formatTime(r.End))
	head := "RULE SET\tREPLICA-HOURS\tSCALE EVENTS\tLARGEST\tAT ZERO\tNO ANSWER"
	if r.Actual != "" {
		head += "\tUNDER ACTUAL\tOVER ACTUAL"
	}
	fmt.Fprintln(tw, head)
	for _, s := range r.Summaries() {
		noAnswer := strconv.Itoa(s.Errors) + " steps"
		if s.Name == "actual" {
			noAnswer = "-"
		}
		line := fmt.Sprintf("%s\t%.2f\t%d\t%g\t%v\t%s", s.Name, s.ReplicaHours, s.ScaleEvents, s.Largest, s.AtZero, noAnswer)
		if r.Actual != "" {
			if s.HasActual {
				line += fmt.Sprintf("\t%v\t%v", s.UnderActual, s.OverActual)
			} else {
				line += "\t-\t-"
			}
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}
