package rulestest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/k8s-nemesis/nemesis/rules"
)

// FuzzLoad feeds arbitrary test files to the loader, beside the rule files
// of testdata: it must never panic, every problem it reports must carry a
// position, and a file it accepts must run without panicking.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	examples, _ := filepath.Glob("../examples/rules/*-test.yaml")
	for _, path := range append(files, examples...) {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("testdata/fuzz-test.yaml", data)
		if err != nil {
			if file != nil {
				t.Fatal("a file returned along with errors")
			}
			errs := rules.Errors(err)
			if len(errs) == 0 {
				t.Fatalf("error of another kind: %v", err)
			}
			for _, e := range errs {
				if e.File == "" || e.Line < 1 || e.Column < 1 {
					t.Fatalf("error without a position: %q", e.Error())
				}
			}
			return
		}
		for _, r := range file.Run(t.Context(), nil) {
			for _, fl := range r.Failures {
				_ = fl.String()
			}
		}
	})
}
