package command

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// mainEnv names the environment variable under which the test binary,
// started by a test below, runs Main instead of the tests: its value is
// the behaviour of the run function.
const mainEnv = "COMMAND_TEST_MAIN"

// TestMain lets a test run Main in a child process, where it can exit.
func TestMain(m *testing.M) {
	if behaviour, ok := os.LookupEnv(mainEnv); ok {
		Main("testcmd", func(ctx context.Context, args []string, stderr io.Writer) error {
			return childRun(ctx, behaviour, args, stderr)
		})
		return
	}
	os.Exit(m.Run())
}

// childRun is the run function of the child process, as behaviour says.
func childRun(ctx context.Context, behaviour string, args []string, stderr io.Writer) error {
	switch behaviour {
	case "ok":
		return nil
	case "fail":
		return errors.New("serving: boom")
	case "flags":
		fs := flag.NewFlagSet("testcmd", flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.Int("n", 1, "a number")
		return Parse(fs, args)
	case "problems":
		return Usage(errors.Join(errors.New("--a must be set"), errors.New("--b must not be negative")))
	case "wrapped":
		return fmt.Errorf("starting: %w", &ExitError{Code: 3, Err: errors.New("no luck")})
	case "signal":
		// Says it is ready, then shuts down once a signal ends ctx, which
		// takes until the test writes a line: a second signal meanwhile
		// must not kill it.
		fmt.Fprintln(stderr, "ready")
		<-ctx.Done()
		fmt.Fprintln(stderr, "stopping")
		_, err := bufio.NewReader(os.Stdin).ReadString('\n')
		return err
	}
	return fmt.Errorf("unknown behaviour %q", behaviour)
}

// child is the test binary started to run Main.
func child(t *testing.T, behaviour string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), mainEnv+"="+behaviour)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	return cmd, &stderr
}

func TestMainExitCodes(t *testing.T) {
	t.Parallel()
	// What the flag package prints of the child's flags on -help or an
	// error.
	const usage = "Usage of testcmd:\n  -n int\n    \ta number (default 1)\n"
	for name, tc := range map[string]struct {
		behaviour string
		args      []string
		code      int
		stderr    string
	}{
		"success": {"ok", nil, 0, ""},
		"help":    {"flags", []string{"-help"}, 0, usage},
		"failure": {"fail", nil, 1, "testcmd: serving: boom\n"},
		"unknown flag": {"flags", []string{"--nope"}, 2,
			"flag provided but not defined: -nope\n" + usage + "testcmd: flag provided but not defined: -nope\n"},
		"bad value": {"flags", []string{"--n", "x"}, 2,
			"invalid value \"x\" for flag -n: parse error\n" + usage + "testcmd: invalid value \"x\" for flag -n: parse error\n"},
		"problems":     {"problems", nil, 2, "testcmd: --a must be set\n--b must not be negative\n"},
		"wrapped code": {"wrapped", nil, 3, "testcmd: starting: no luck\n"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd, stderr := child(t, tc.behaviour, tc.args...)
			err := cmd.Run()
			code := 0
			if ee, ok := errors.AsType[*exec.ExitError](err); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			if stderr.String() != tc.stderr {
				t.Errorf("stderr %q, want %q", stderr, tc.stderr)
			}
		})
	}
}

// TestMainSignal: SIGTERM ends run's context, and a second one during the
// shutdown does not cut it short: the process exits 0 when run returns.
func TestMainSignal(t *testing.T) {
	t.Parallel()
	cmd, _ := child(t, "signal")
	cmd.Stderr = nil
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 10)
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait() // after the pipe is read to its end, as Wait wants
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // by pid; an error only says it has exited
		stdin.Close()
		for range lines {
		}
	})
	expect := func(want string) {
		t.Helper()
		select {
		case line, ok := <-lines:
			if !ok || line != want {
				t.Fatalf("stderr line %q (open %v), want %q", line, ok, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no %q on stderr within 30s", want)
		}
	}

	expect("ready")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	expect("stopping")
	// The kernel takes the signal before the child returns from reading
	// stdin, so it arrives during the shutdown.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "done\n"); err != nil {
		t.Fatal(err)
	}
	for line := range lines {
		t.Errorf("stderr line %q after the shutdown", line)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("child after two SIGTERMs: %v, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("child did not exit")
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		err  error
		want int
	}{
		"nil":        {nil, 0},
		"help":       {flag.ErrHelp, 0},
		"plain":      {errors.New("x"), ExitFailure},
		"usage":      {Usage(errors.New("x")), ExitUsage},
		"wrapped":    {fmt.Errorf("y: %w", Usage(errors.New("x"))), ExitUsage},
		"joined":     {errors.Join(errors.New("a"), &ExitError{Code: 4, Err: errors.New("b")}), 4},
		"usage nil":  {Usage(nil), 0},
		"usage join": {Usage(errors.Join()), 0},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := ExitCode(tc.err); got != tc.want {
				t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	newFlags := func() (*flag.FlagSet, *int) {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		return fs, fs.Int("n", 1, "a number")
	}
	fs, n := newFlags()
	if err := Parse(fs, []string{"--n", "5", "rest"}); err != nil || *n != 5 || fs.Arg(0) != "rest" {
		t.Errorf("Parse = %v, n %d, args %q", err, *n, fs.Args())
	}
	fs, _ = newFlags()
	if err := Parse(fs, []string{"-h"}); err != flag.ErrHelp {
		t.Errorf("Parse(-h) = %v, want flag.ErrHelp itself", err)
	}
	fs, _ = newFlags()
	err := Parse(fs, []string{"--n", "x"})
	ee, ok := errors.AsType[*ExitError](err)
	if !ok || ee.Code != 2 || err.Error() != `invalid value "x" for flag -n: parse error` {
		t.Errorf("Parse(--n x) = %#v, want an ExitError of code 2 with the flag package's message", err)
	}
}
