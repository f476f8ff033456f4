// Command gen writes Nemesis' Grafana dashboards into a directory
// (default: the current one, which is dashboards/ under go generate).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/k8s-nemesis/nemesis/dashboards"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", ".", "directory to write the dashboards into")
	flag.Parse()
	files, err := dashboards.Generate()
	if err != nil {
		return err
	}
	for _, f := range files {
		path := filepath.Join(*dir, f.Name)
		if err := os.WriteFile(path, f.Data, 0o644); err != nil {
			return fmt.Errorf("writing dashboard: %w", err)
		}
		fmt.Println("wrote", path)
	}
	return nil
}
