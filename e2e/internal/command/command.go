package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes of the suite's commands.
const (
	// ExitFailure is the exit code of a command that failed while it ran.
	ExitFailure = 1
	// ExitUsage is the exit code of a command given bad flags or arguments.
	ExitUsage = 2
)

// ExitError carries a process exit code: [ExitFailure] for failures,
// [ExitUsage] for bad flags.
type ExitError struct {
	Code int
	Err  error
}

// Error returns the error's message, without its code.
func (e *ExitError) Error() string { return e.Err.Error() }

// Unwrap returns the error that the exit code is for.
func (e *ExitError) Unwrap() error { return e.Err }

// Usage returns err, if it is not nil, as an [*ExitError] of code
// [ExitUsage]: pass it every problem of a command line joined with
// [errors.Join], so that they are reported at once.
func Usage(err error) error {
	if err == nil {
		return nil
	}
	return &ExitError{Code: ExitUsage, Err: err}
}

// Parse parses args with fs, which should be [flag.ContinueOnError]. It
// returns [flag.ErrHelp] as it is, so that -help exits 0 once fs has
// printed the usage, and any other error through [Usage].
func Parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return Usage(err)
}

// Run is a command's body: it serves until ctx ends, then shuts down, and
// writes its logs to stderr.
type Run func(ctx context.Context, args []string, stderr io.Writer) error

// Main runs run with the command line's arguments and a context that SIGINT
// or SIGTERM ends, and exits with the code that its error calls for (see
// the package documentation), printing "name: error" on stderr if that is
// not 0. It returns only when the code is 0.
func Main(name string, run Run) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if code := ExitCode(err); code != 0 {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(code)
	}
}

// ExitCode is the exit code that err calls for: 0 for nil and
// [flag.ErrHelp], the code of an [*ExitError] in err's chain, else
// [ExitFailure].
func ExitCode(err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if ee, ok := errors.AsType[*ExitError](err); ok {
		return ee.Code
	}
	return ExitFailure
}
