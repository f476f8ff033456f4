// Command configcheck checks configuration files as the Nemesis binaries
// load them: rule files as `nemesis scaler --rules` loads them (the check
// of `nemesis rules check`), and activator configuration files as
// `nemesis activator --config` loads them.
//
// `go tool task helm:lint` runs it on the files that each rendering of the
// Helm chart gives the pods (see charts/tools/cmd/lint): the Helm tools
// live in a module of their own, whose Kubernetes libraries differ from
// Nemesis's, so they cannot import these packages themselves.
//
// Usage:
//
//	go run ./charts/configcheck [--rules PATH]... [--activator FILE]...
//
// All --rules paths are loaded together, as one scaler loads them: rule
// set names must be unique across them. Every problem is printed, one per
// line, as file:line:column: …; the exit status is 1 if there is any, 2
// for bad usage.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/k8s-nemesis/nemesis/activator"
	"github.com/k8s-nemesis/nemesis/externalscaler"
)

// exitError carries an exit status other than 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, msg)
		}
		os.Exit(code)
	}
}

type fileList []string

func (l *fileList) String() string     { return strings.Join(*l, ",") }
func (l *fileList) Set(v string) error { *l = append(*l, v); return nil }

func run(args []string, stdout, stderr io.Writer) error {
	var rulePaths, activatorFiles fileList
	fs := flag.NewFlagSet("configcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&rulePaths, "rules", "rule file, or directory of *.yaml rule files (repeatable; loaded together, as by one scaler)")
	fs.Var(&activatorFiles, "activator", "activator configuration file (repeatable; each checked on its own)")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	if fs.NArg() > 0 || len(rulePaths)+len(activatorFiles) == 0 {
		return &exitError{code: 2, err: errors.New("usage: configcheck [--rules PATH]... [--activator FILE]... (at least one flag, and no other arguments)")}
	}
	problems := 0
	report := func(err error) {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(stderr, line)
			problems++
		}
	}
	if len(rulePaths) > 0 {
		cat, err := externalscaler.LoadCatalog(rulePaths)
		if err != nil {
			report(err)
		} else {
			fmt.Fprintf(stdout, "rules: %d rule sets in %d files: %s\n", len(cat.Names()), len(cat.Files), strings.Join(cat.Names(), ", "))
		}
	}
	for _, f := range activatorFiles {
		cfg, err := activator.LoadConfig(f)
		if err != nil {
			report(err)
			continue
		}
		names := make([]string, 0, len(cfg.Routes))
		for _, r := range cfg.Routes {
			names = append(names, r.Name)
		}
		fmt.Fprintf(stdout, "activator: %s: %d routes: %s\n", f, len(cfg.Routes), strings.Join(names, ", "))
	}
	if problems > 0 {
		return &exitError{code: 1, err: fmt.Errorf("configcheck: problems found: %d", problems)}
	}
	return nil
}
