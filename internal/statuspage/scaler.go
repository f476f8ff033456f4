package statuspage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/k8s-nemesis/nemesis/externalscaler"
)

// MaxRows bounds the rows of the scaler's ScaledObjects table, so that a
// scaler serving thousands of ScaledObjects does not send megabytes to a
// browser every RefreshEvery; the JSON API lists them all.
const MaxRows = 500

// ScalerSource is what the scaler's page shows: *externalscaler.Server.
type ScalerSource interface {
	Decisions() []externalscaler.Record
	History(namespace, name string) ([]externalscaler.Record, bool)
	RuleSets() externalscaler.RuleSetsResponse
	TryObject(ctx context.Context, data []byte, ruleSet, object string) (externalscaler.Record, int, error)
	RegisterTryAPI(mux *http.ServeMux)
}

var _ ScalerSource = (*externalscaler.Server)(nil)

// ScalerOptions configure the scaler's page.
type ScalerOptions struct {
	// Try enables the "try a rule set" form and POST /api/v1/try (the
	// --ui-try flag). Off, neither is served.
	Try    bool
	Logger *slog.Logger     // nil discards
	Now    func() time.Time // nil is time.Now
}

// RegisterScaler serves the scaler's page at / on mux, its assets under
// AssetsPath and, with opts.Try, the try form (POST /try) and its JSON
// twin (POST /api/v1/try).
func RegisterScaler(mux *http.ServeMux, src ScalerSource, opts ScalerOptions) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &scalerPages{src: src, opts: opts, tmpl: template.Must(template.New("").Funcs(funcs()).ParseFS(ui, "ui/layout.html", "ui/scaler.html"))}
	registerAssets(mux)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		p.serve(w, r, http.StatusOK, nil)
	})
	if opts.Try {
		mux.HandleFunc("POST /try", p.tryForm)
		src.RegisterTryAPI(mux)
	}
}

type scalerPages struct {
	src  ScalerSource
	opts ScalerOptions
	tmpl *template.Template
}

// scalerPage is what the scaler's template renders.
type scalerPage struct {
	Now      time.Time
	RuleSets externalscaler.RuleSetsResponse
	// Objects are the newest records of every trigger and shadow rule set.
	Objects []externalscaler.Record
	// Total counts the records before the table was cut at MaxRows.
	Total int
	// Names are the ScaledObjects known, "namespace/name", sorted.
	Names []string
	// Selected is the ScaledObject whose history is shown ("" for none),
	// with its chart and its records, newest first.
	Selected string
	Chart    *chart
	History  []historyRow
	// Refresh is the URL the script reloads the live parts from.
	Refresh string
	TryOn   bool
	Try     *tryState
}

// historyRow is one record of the selected ScaledObject, with its anchor.
type historyRow struct {
	ID string
	externalscaler.Record
}

// tryState is the try form's input and what came of it.
type tryState struct {
	Object, RuleSet, Rules string
	Record                 *externalscaler.Record
	Error                  string
	Problems               []externalscaler.Problem
}

func (p *scalerPages) serve(w http.ResponseWriter, r *http.Request, code int, try *tryState) {
	page := scalerPage{Now: p.opts.Now(), RuleSets: p.src.RuleSets(), Objects: p.src.Decisions(), TryOn: p.opts.Try, Try: try}
	slices.SortStableFunc(page.Objects, func(a, b externalscaler.Record) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), boolCmp(a.Shadow, b.Shadow), cmp.Compare(a.RuleSet, b.RuleSet))
	})
	for _, rec := range page.Objects {
		if n := rec.Namespace + "/" + rec.Name; len(page.Names) == 0 || page.Names[len(page.Names)-1] != n {
			page.Names = append(page.Names, n) // sorted above: one run per ScaledObject
		}
	}
	// A page for people: past MaxRows the JSON API has the rest.
	if page.Total = len(page.Objects); page.Total > MaxRows {
		page.Objects = page.Objects[:MaxRows]
	}
	page.Selected = r.URL.Query().Get("object")
	if page.Selected == "" && try != nil {
		page.Selected = try.Object
	}
	if page.Selected == "" && len(page.Names) > 0 {
		page.Selected = page.Names[0]
	}
	if ns, name, ok := strings.Cut(page.Selected, "/"); ok {
		if recs, known := p.src.History(ns, name); known {
			page.Chart = newChart(recs)
			page.History = make([]historyRow, len(recs))
			for i, rec := range recs {
				page.History[i] = historyRow{ID: recordID(rec), Record: rec}
			}
		} else {
			code = http.StatusNotFound
		}
	}
	page.Refresh = "/"
	if page.Selected != "" {
		page.Refresh = "/?object=" + url.QueryEscape(page.Selected)
	}
	render(w, p.opts.Logger, p.tmpl, "scaler", code, &page)
}

// tryForm evaluates the form's rule set and shows the page with the
// answer, or with the problems of the rule set.
func (p *scalerPages) tryForm(w http.ResponseWriter, r *http.Request) {
	// The form's other fields are small; the rules may take TryMaxBytes.
	r.Body = http.MaxBytesReader(w, r.Body, externalscaler.TryMaxBytes+4<<10)
	st := &tryState{}
	if err := r.ParseForm(); err != nil {
		st.Error = "reading the form: " + tooLarge(err)
		p.serve(w, r, http.StatusBadRequest, st)
		return
	}
	st.Object, st.RuleSet, st.Rules = r.PostForm.Get("object"), strings.TrimSpace(r.PostForm.Get("ruleSet")), r.PostForm.Get("rules")
	rec, code, err := p.src.TryObject(r.Context(), []byte(st.Rules), st.RuleSet, st.Object)
	if err != nil {
		st.Error = err.Error()
		if te, ok := errors.AsType[*externalscaler.TryError](err); ok && len(te.Problems) > 0 {
			st.Error, st.Problems = "the rule set is not valid:", te.Problems
		}
	} else {
		st.Record = &rec
	}
	p.serve(w, r, code, st)
}

// tooLarge words a request body over its limit for a person.
func tooLarge(err error) string {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return fmt.Sprintf("the rule file is larger than %d KiB", externalscaler.TryMaxBytes>>10)
	}
	return err.Error()
}

// recordID is a record's anchor on the page: stable across reloads, so
// that what is open stays open.
func recordID(rec externalscaler.Record) string {
	var b strings.Builder
	b.WriteString("d-")
	for _, c := range rec.RuleSet {
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '-' || c == '_' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	if rec.Shadow {
		b.WriteString("-shadow")
	}
	fmt.Fprintf(&b, "-%d", rec.Time.UnixNano())
	return b.String()
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}
