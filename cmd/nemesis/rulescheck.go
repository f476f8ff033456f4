package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/k8s-nemesis/nemesis/externalscaler"
)

// runRulesCheck loads rule files as the scaler would and prints every
// problem, one per line. It exits 1 when there is any.
func runRulesCheck(paths []string, stdout, stderr io.Writer) error {
	if len(paths) == 0 {
		return usageError("usage: nemesis rules check PATH…")
	}
	cat, err := externalscaler.LoadCatalog(paths)
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(stderr, line)
		}
		return &exitError{code: 1}
	}
	fmt.Fprintf(stdout, "%d rule sets in %d files: %s\n", len(cat.Names()), len(cat.Files), strings.Join(cat.Names(), ", "))
	return nil
}
