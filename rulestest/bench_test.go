package rulestest

import (
	"path/filepath"
	"testing"
)

// BenchmarkExamples is `nemesis rules test examples/rules/*-test.yaml`:
// every example test file loaded (with its rule files) and run, per
// iteration. The issue asks for well under 1 s in all.
func BenchmarkExamples(b *testing.B) {
	files, err := filepath.Glob("../examples/rules/*-test.yaml")
	if err != nil || len(files) == 0 {
		b.Fatalf("no example test files: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, path := range files {
			f, err := Load(path)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range f.Run(b.Context(), nil) {
				if len(r.Failures) > 0 {
					b.Fatal(r.Failures[0])
				}
			}
		}
	}
}
