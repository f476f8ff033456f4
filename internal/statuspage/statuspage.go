package statuspage

import (
	"bytes"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// ui holds the style sheet and the script, served at AssetsPath.
//
//go:embed ui
var ui embed.FS

// RefreshEvery is how often the page's script reloads its live parts.
const RefreshEvery = 2 * time.Second

// AssetsPath is where the page's style sheet and script are served: the
// embedded directory's own name.
const AssetsPath = "/ui/"

// security headers: the pages load only their own assets, are never
// framed and run no inline script.
func setHeaders(h http.Header) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// registerAssets serves the embedded style sheet and script under
// AssetsPath.
func registerAssets(mux *http.ServeMux) {
	files := http.FileServerFS(ui)
	mux.Handle("GET "+AssetsPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "max-age=300")
		files.ServeHTTP(w, r)
	}))
}

// funcs are the templates' helpers.
func funcs() template.FuncMap {
	return template.FuncMap{
		"since": func(now, t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return age(now.Sub(t))
		},
		"clock": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("15:04:05")
		},
		"stamp": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339)
		},
		"num": func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) },
		"numPtr": func(v *float64) string {
			if v == nil {
				return "–"
			}
			return strconv.FormatFloat(*v, 'g', 6, 64)
		},
		"seconds": func(v float64) string {
			if v == 0 {
				return "0"
			}
			return age(time.Duration(v * float64(time.Second)))
		},
		"deref":         func(v *int64) int64 { return *v },
		"deref64":       func(v *float64) float64 { return *v },
		"refreshMillis": func() int64 { return RefreshEvery.Milliseconds() },
		"assets":        func() string { return AssetsPath },
	}
}

// age is a short duration for a person: 850ms, 12.5s, 4m10s, 3h2m.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// render executes the template name with data into w, whole or not at all:
// an error is logged and answered 500.
func render(w http.ResponseWriter, logger *slog.Logger, t *template.Template, name string, code int, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		logger.Error("rendering the status page", "err", err)
		http.Error(w, "rendering the status page failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	setHeaders(w.Header())
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes()) // the client went away; nothing to tell it
}
