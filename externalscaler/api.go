package externalscaler

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/k8s-nemesis/nemesis/rules"
)

// Decisions returns the newest record of every ScaledObject trigger that
// has been evaluated, and of each of its shadow rule sets, newest first.
func (s *Server) Decisions() []Record {
	type kept struct {
		namespace, name string
		v               view
	}
	s.mu.Lock()
	recs := make([]kept, 0, len(s.objects))
	for _, o := range s.objects {
		if n := len(o.records.buf); n > 0 {
			recs = append(recs, kept{o.namespace, o.name, o.view(n - 1)})
		}
		for _, sh := range o.shadows {
			if n := len(sh.records.buf); n > 0 {
				recs = append(recs, kept{o.namespace, o.name, sh.view(n - 1)})
			}
		}
	}
	s.mu.Unlock()
	// Built outside s.mu: an explanation runs the rule set's sub-terms.
	out := make([]Record, len(recs))
	for i := range recs {
		out[i] = recs[i].v.build(recs[i].namespace, recs[i].name)
	}
	sortNewestFirst(out)
	return out
}

// History returns the records of ScaledObject namespace/name, of all its
// triggers and their shadow rule sets, newest first. known is false when the server keeps no state
// for the ScaledObject: it was never asked about, or has been forgotten.
func (s *Server) History(namespace, name string) (records []Record, known bool) {
	var views []view
	s.mu.Lock()
	for _, o := range s.objects {
		if o.namespace != namespace || o.name != name {
			continue
		}
		known = true
		for k := len(o.records.buf) - 1; k >= 0; k-- {
			views = append(views, o.view(k))
		}
		for _, sh := range o.shadows {
			for k := len(sh.records.buf) - 1; k >= 0; k-- {
				views = append(views, sh.view(k))
			}
		}
	}
	s.mu.Unlock()
	out := make([]Record, len(views))
	for i := range views {
		out[i] = views[i].build(namespace, name)
	}
	sortNewestFirst(out)
	return out, known
}

// view copies the record k-th oldest of o with the calls it answered.
// Callers hold s.mu.
func (o *object) view(k int) view {
	v := o.records.view(k)
	v.rec.calls = o.callsOf(&v.rec)
	return v
}

// RegisterAPI serves the decision records and the rule sets in force on
// mux, as JSON (see docs/operations.md):
//
//	GET /api/v1/decisions                     every trigger's newest record
//	GET /api/v1/decisions/{namespace}/{name}  one ScaledObject's records, newest first
//	GET /api/v1/rulesets                      the rule sets in force and the reload state
//
// The rule sets' reload state is known when the server's Rules is a
// [*RuleStore].
func (s *Server) RegisterAPI(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/decisions", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, decisionsResponse{Decisions: s.Decisions()})
	})
	mux.HandleFunc("GET /api/v1/decisions/{namespace}/{name}", func(w http.ResponseWriter, r *http.Request) {
		ns, name := r.PathValue("namespace"), r.PathValue("name")
		recs, known := s.History(ns, name)
		if !known {
			writeJSON(w, http.StatusNotFound, errorResponse{Error: "no ScaledObject " + ns + "/" + name + " is known to this scaler: KEDA has not asked about it, or not in the last " + s.opts.ForgetAfter.String()})
			return
		}
		writeJSON(w, http.StatusOK, decisionsResponse{Decisions: recs})
	})
	mux.HandleFunc("GET /api/v1/rulesets", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.RuleSets())
	})
}

// RegisterTryAPI serves POST /api/v1/try on mux: the body is a rule file
// (at most TryMaxBytes), the query names the ScaledObject
// (object=namespace/name) and, when the file holds several, the rule set
// (ruleSet=name). It answers {"decision": record} after one evaluation
// (see Try), or {"error", "problems"}. Only for the --ui-try flag: it runs
// the caller's queries on Prometheus.
func (s *Server) RegisterTryAPI(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/try", func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, TryMaxBytes))
		if err != nil {
			msg := err.Error()
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				msg = fmt.Sprintf("the rule file is larger than %d KiB", TryMaxBytes>>10)
			}
			writeJSON(w, http.StatusRequestEntityTooLarge, tryResponse{Error: "reading the rule file: " + msg})
			return
		}
		rec, code, err := s.TryObject(r.Context(), data, r.URL.Query().Get("ruleSet"), r.URL.Query().Get("object"))
		if err != nil {
			resp := tryResponse{Error: err.Error()}
			if te, ok := errors.AsType[*TryError](err); ok {
				resp.Problems = te.Problems
			}
			writeJSON(w, code, resp)
			return
		}
		writeJSON(w, code, tryResponse{Decision: &rec})
	})
}

// tryResponse is the body of POST /api/v1/try.
type tryResponse struct {
	Decision *Record   `json:"decision,omitempty"`
	Error    string    `json:"error,omitempty"`
	Problems []Problem `json:"problems,omitempty"`
}

type decisionsResponse struct {
	Decisions []Record `json:"decisions"`
}

type errorResponse struct {
	Error string `json:"error"`
}

// RuleSetsResponse is the body of GET /api/v1/rulesets.
type RuleSetsResponse struct {
	// Version is the version of the rule files in force.
	Version  uint64     `json:"version"`
	Files    []string   `json:"files"`
	LoadedAt *time.Time `json:"loadedAt,omitempty"`
	// LastReloadError is why the newest rule files were rejected (the
	// version in force keeps serving), "" when they are in force.
	LastReloadError   string         `json:"lastReloadError"`
	LastReloadErrorAt *time.Time     `json:"lastReloadErrorAt,omitempty"`
	Problems          []Problem      `json:"problems,omitempty"`
	RuleSets          []RuleSetState `json:"ruleSets"`
}

// Problem is one problem of a rejected rule file.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	RuleSet string `json:"ruleSet,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// RuleSetState is one rule set in force.
type RuleSetState struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	File        string            `json:"file"`
	Line        int               `json:"line"`
	Column      int               `json:"column"`
	Version     uint64            `json:"version"`
	Queries     map[string]string `json:"queries"`
	Replicas    string            `json:"replicas"`
	Active      string            `json:"active,omitempty"`
	Min         int64             `json:"min"`
	Max         int64             `json:"max"`
	OnError     string            `json:"onError"`
	StaleAfter  string            `json:"staleAfter"`
	Builtins    []string          `json:"builtins,omitempty"`
}

// RuleSets returns the rule sets in force and the state of the rule files'
// reloads, as GET /api/v1/rulesets answers.
func (s *Server) RuleSets() RuleSetsResponse {
	var st ReloadState
	if rs, ok := s.rules.(interface{ State() ReloadState }); ok {
		st = rs.State()
	} else {
		st.Catalog = s.rules.Current()
	}
	c := st.Catalog
	out := RuleSetsResponse{Version: c.Version, Files: c.Files, RuleSets: []RuleSetState{}}
	if !st.LoadedAt.IsZero() {
		out.LoadedAt = &st.LoadedAt
	}
	if st.LastError != nil {
		out.LastReloadError = st.LastError.Error()
		out.LastReloadErrorAt = &st.LastErrorAt
		for _, e := range rules.Errors(st.LastError) {
			out.Problems = append(out.Problems, Problem{File: e.File, Line: e.Line, Column: e.Column, RuleSet: e.RuleSet, Field: e.Field, Message: e.Msg})
		}
	}
	for _, name := range c.Names() {
		rs, _ := c.RuleSet(name)
		qs := make(map[string]string, len(rs.Queries))
		for _, q := range rs.Queries {
			qs[q.Name] = q.Template
		}
		out.RuleSets = append(out.RuleSets, RuleSetState{
			Name: rs.Name, Description: rs.Description, File: rs.File, Line: rs.Line, Column: rs.Column,
			Version: c.Version, Queries: qs, Replicas: rs.Replicas, Active: rs.Active, Min: rs.Min, Max: rs.Max,
			OnError: rs.OnError.String(), StaleAfter: rs.StaleAfter.String(), Builtins: rs.Builtins,
		})
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to tell it
}

// view copies the record k-th oldest of the shadow sh. Callers hold s.mu.
func (sh *shadow) view(k int) view {
	v := sh.records.view(k)
	v.shadow = true
	return v
}
