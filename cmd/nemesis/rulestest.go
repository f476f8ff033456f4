package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/k8s-nemesis/nemesis/rulestest"
)

// runRulesTest runs rules test files (package rulestest), as promtool test
// rules runs its own: exit 0 when every test passes, 1 when one failed, 2
// when a test file or a rule file it names is invalid (the problems are
// printed, file:line:column, and the valid files still run).
func runRulesTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var run string
	fs := flag.NewFlagSet("nemesis rules test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&run, "run", "", "run only the tests whose names match this regular expression")
	// Flags may come after the files too: nemesis rules test a.yaml --run x.
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return usageError("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		files = append(files, args[0])
		args = args[1:]
	}
	if len(files) == 0 {
		return usageError("usage: nemesis rules test [--run REGEX] FILE…")
	}
	var match func(string) bool
	if run != "" {
		re, err := regexp.Compile(run)
		if err != nil {
			return usageError("--run: %v", err)
		}
		match = re.MatchString
	}
	invalid, failed, ran := false, false, 0
	for _, path := range files {
		f, err := rulestest.Load(path)
		if err != nil {
			invalid = true
			for _, line := range strings.Split(err.Error(), "\n") {
				fmt.Fprintln(stderr, line)
			}
			fmt.Fprintf(stdout, "FAIL %s: invalid, no test ran\n", path)
			continue
		}
		results := f.Run(ctx, match)
		nFailed := 0
		for _, r := range results {
			for _, fl := range r.Failures {
				fmt.Fprintln(stdout, fl)
			}
			if len(r.Failures) > 0 {
				nFailed++
			}
		}
		ran += len(results)
		switch {
		case nFailed > 0:
			failed = true
			fmt.Fprintf(stdout, "FAIL %s: %d of %s failed\n", path, nFailed, tests(len(results)))
		default:
			fmt.Fprintf(stdout, "ok   %s: %s passed\n", path, tests(len(results)))
		}
	}
	if ran == 0 && !invalid && match != nil {
		fmt.Fprintf(stderr, "nemesis rules test: warning: no test matches --run %q\n", run)
	}
	switch {
	case invalid:
		return &exitError{code: 2}
	case failed:
		return &exitError{code: 1}
	}
	return nil
}

func tests(n int) string {
	if n == 1 {
		return "1 test"
	}
	return fmt.Sprintf("%d tests", n)
}
