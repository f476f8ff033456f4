package dashboards

//lint:file-ignore SA1019 the SDK deprecates its classic dashboard model for dashboardv2, which Grafana imports only with dynamic dashboards switched on

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// File is one generated dashboard: its file name in dashboards/ and its
// JSON.
type File struct {
	Name string
	Data []byte
}

// Generate returns the dashboards as Grafana imports them.
func Generate() ([]File, error) {
	boards := []struct {
		name  string
		build func() *dashboard.DashboardBuilder
	}{
		{"nemesis-scaler.json", scalerDashboard},
		{"nemesis-activator.json", activatorDashboard},
	}
	var files []File
	for _, b := range boards {
		d, err := build(b.build())
		if err != nil {
			return nil, fmt.Errorf("building %s: %w", b.name, err)
		}
		data, err := render(d)
		if err != nil {
			return nil, fmt.Errorf("rendering %s: %w", b.name, err)
		}
		files = append(files, File{Name: b.name, Data: data})
	}
	return files, nil
}

// render encodes d as indented JSON ending in a newline. HTML escaping is
// off so that the dashboard's own strings stay readable ("Annotations &
// Alerts"); the panels are encoded by the SDK's own marshaller, which
// escapes <, > and & as \u003c, \u003e and \u0026: valid JSON that
// Grafana reads the same.
func render(d dashboard.Dashboard) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
