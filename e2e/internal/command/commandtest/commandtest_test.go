package commandtest

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/k8s-nemesis/nemesis/e2e/internal/command"
)

// fake is a command that listens on --address, logs as the suite's
// commands do, and returns stopErr once ctx ends; returned is closed then.
func fake(stopErr error, returned chan struct{}) Command {
	run := func(ctx context.Context, args []string, stderr io.Writer) error {
		defer close(returned)
		fs := flag.NewFlagSet("fake", flag.ContinueOnError)
		address := fs.String("address", "", "")
		extra := fs.String("extra", "", "")
		if err := fs.Parse(args); err != nil {
			return err
		}
		ln, err := net.Listen("tcp", *address)
		if err != nil {
			return err
		}
		defer ln.Close()
		logger := slog.New(slog.NewJSONHandler(stderr, nil))
		logger.Info("fake started", "address", ln.Addr().String(), "extra", *extra)
		<-ctx.Done()
		logger.Info("fake stopped", "extra", *extra)
		return stopErr
	}
	return Command{Name: "fake", Run: run, StopWithin: 10 * time.Second}
}

func TestStartFinish(t *testing.T) {
	t.Parallel()
	returned := make(chan struct{})
	ctx, sigterm := context.WithCancel(t.Context())
	defer sigterm()
	stopErr := errors.New("grace exceeded")
	s := fake(stopErr, returned).Start(t, ctx, "--extra", "x")
	conn, err := net.Dial("tcp", s.URL[len("http://"):])
	if err != nil {
		t.Fatalf("dialling the URL %q from the start-up line: %v", s.URL, err)
	}
	conn.Close()
	sigterm()
	last, err := s.Finish(t)
	if !errors.Is(err, stopErr) {
		t.Errorf("Finish error %v, want run's %v", err, stopErr)
	}
	if last["msg"] != "fake stopped" || last["extra"] != "x" {
		t.Errorf("last log line %v, want the stop line of a run given --extra x", last)
	}
}

// TestStoppedWhenTestEnds: a test that neither ends ctx nor calls Finish
// still leaves no run behind.
func TestStoppedWhenTestEnds(t *testing.T) {
	t.Parallel()
	returned := make(chan struct{})
	t.Run("forgets to stop", func(t *testing.T) {
		fake(nil, returned).Start(t, context.Background())
	})
	select {
	case <-returned:
	default:
		t.Fatal("run still running after the test that started it ended")
	}
}

// TestWantUsage: WantUsage fails a test on any other error than the one
// it expects, and only then.
func TestWantUsage(t *testing.T) {
	t.Parallel()
	problems := command.Usage(errors.Join(errors.New("a"), errors.New("b")))
	for name, tc := range map[string]struct {
		err  error
		want []string
		pass bool
	}{
		"same problems":     {problems, []string{"b", "a"}, true},
		"one lacking":       {problems, []string{"a"}, false},
		"one more":          {problems, []string{"a", "b", "c"}, false},
		"another problem":   {problems, []string{"a", "c"}, false},
		"not a usage error": {errors.New("a"), []string{"a"}, false},
		"another exit code": {&command.ExitError{Code: 3, Err: errors.New("a")}, []string{"a"}, false},
		"no error":          {nil, nil, false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := passes(t, func(t testing.TB) { WantUsage(t, tc.err, tc.want) }); got != tc.pass {
				t.Errorf("WantUsage(%v, %q) passes: %v, want %v", tc.err, tc.want, got, tc.pass)
			}
		})
	}
}

// recorder is a testing.TB that records a failure instead of failing the
// test it stands in for.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(string, ...any) { r.failed = true }

func (r *recorder) Fatalf(string, ...any) {
	r.failed = true
	runtime.Goexit()
}

// passes reports whether check passes, run on a recorder in a goroutine of
// its own, so that Fatalf ends only that goroutine.
func passes(t *testing.T, check func(testing.TB)) bool {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(r)
	}()
	<-done
	return !r.failed
}
