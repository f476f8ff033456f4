package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…"; the
// linker can only set a package variable.
var version = "dev"

// exitError carries a process exit code: 1 for failures, 2 for bad
// configuration or usage. A nil err means the reasons were printed already.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

const usage = `usage: nemesis <command> [flags]

commands:
  scaler        run the KEDA external scaler
  activator     run the HTTP proxy that balances, counts and holds requests
  rules check   check rule files and print every problem
  rules eval    evaluate one rule set once, against Prometheus or given values
  rules test    run rules test files: rule sets against given series, as promtool test rules
  rules backtest
                replay rule sets over past data through a simulated KEDA and HPA
  version       print the version
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		if ee == nil || ee.err != nil {
			fmt.Fprintln(os.Stderr, "nemesis:", err)
		}
		os.Exit(code)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError("no command given")
	}
	switch args[0] {
	case "scaler":
		return runScaler(ctx, args[1:], stderr)
	case "activator":
		return runActivator(ctx, args[1:], stderr)
	case "rules":
		switch {
		case len(args) >= 2 && args[1] == "check":
			return runRulesCheck(args[2:], stdout, stderr)
		case len(args) >= 2 && args[1] == "eval":
			return runRulesEval(ctx, args[2:], stdout, stderr)
		case len(args) >= 2 && args[1] == "test":
			return runRulesTest(ctx, args[2:], stdout, stderr)
		case len(args) >= 2 && args[1] == "backtest":
			return runRulesBacktest(ctx, args[2:], stdout, stderr)
		}
		return usageError("usage: nemesis rules check PATH… | nemesis rules eval --rules PATH --rule-set NAME … | nemesis rules test [--run REGEX] FILE… | nemesis rules backtest --rules PATH --rule-set NAME …")
	case "version", "--version":
		fmt.Fprintln(stdout, "nemesis", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageError("unknown command %q", args[0])
	}
}
