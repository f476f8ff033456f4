package commandtest

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
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
