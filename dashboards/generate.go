package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// File is one generated dashboard: its file name in dashboards/ and its
// JSON.
type File struct {
	Name string
	Data []byte
}

// boards are the dashboards by file name.
var boards = []struct {
	name  string
	build func() *dashboard
}{
	{"nemesis-scaler.json", scalerDashboard},
	{"nemesis-activator.json", activatorDashboard},
}

// Generate returns the dashboards as Grafana imports them.
func Generate() ([]File, error) {
	var files []File
	for _, b := range boards {
		data, err := render(b.build())
		if err != nil {
			return nil, fmt.Errorf("rendering %s: %w", b.name, err)
		}
		files = append(files, File{Name: b.name, Data: data})
	}
	return files, nil
}

// render encodes d as indented JSON ending in a newline, without HTML
// escaping so that PromQL's < and > stay readable.
func render(d *dashboard) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
