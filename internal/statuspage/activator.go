package statuspage

import (
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/k8s-nemesis/nemesis/activator"
)

// ActivatorSource is what the activator's page shows: *activator.Activator.
type ActivatorSource interface {
	Status() activator.Status
}

var _ ActivatorSource = (*activator.Activator)(nil)

// ActivatorOptions configure the activator's page.
type ActivatorOptions struct {
	Logger *slog.Logger     // nil discards
	Now    func() time.Time // nil is time.Now
}

// RegisterActivator serves the activator's page at / on mux, and its
// assets under AssetsPath.
func RegisterActivator(mux *http.ServeMux, src ActivatorSource, opts ActivatorOptions) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	tmpl := template.Must(template.New("").Funcs(funcs()).ParseFS(ui, "ui/layout.html", "ui/activator.html"))
	registerAssets(mux)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		st := src.Status()
		page := activatorPage{Now: opts.Now(), Status: st}
		if st.LastReloadError != "" {
			page.ReloadProblems = strings.Split(st.LastReloadError, "\n")
		}
		for _, r := range st.Routes {
			page.QueueDepth += r.QueueDepth
			page.InFlight += r.InFlight
		}
		render(w, opts.Logger, tmpl, "activator", http.StatusOK, &page)
	})
}

// activatorPage is what the activator's template renders.
type activatorPage struct {
	Now    time.Time
	Status activator.Status
	// ReloadProblems are the last reload error's lines, one problem each.
	ReloadProblems []string
	// Totals over the routes.
	QueueDepth, InFlight int
}
