package commandtest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/k8s-nemesis/nemesis/e2e/internal/command"
)

// Command is a command under test.
type Command struct {
	// Name begins the command's start-up log line, "<Name> started",
	// which must be its first and carry the address it listens on.
	Name string
	// Run is the command's body; it must take --address.
	Run command.Run
	// StopWithin bounds how long Run may take to return once stopped,
	// in [Started.Finish].
	StopWithin time.Duration
}

// Started is a command's Run in the background, with its log lines.
type Started struct {
	// URL is the command's base URL, http://127.0.0.1:port.
	URL string

	logs       chan map[string]any
	done       chan error
	stopWithin time.Duration
}

// Start runs c on a free loopback port with args added, learns the port
// from its start-up log line, and stops it when the test ends: ending ctx
// stops it sooner, as a signal would.
func (c Command) Start(t *testing.T, ctx context.Context, args ...string) *Started {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	s := &Started{logs: make(chan map[string]any, 10), done: make(chan error, 1), stopWithin: c.StopWithin}
	go func() {
		defer close(s.logs)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				line = map[string]any{"unparsed": sc.Text()}
			}
			s.logs <- line
		}
	}()
	go func() {
		err := c.Run(ctx, append([]string{"--address", "127.0.0.1:0"}, args...), pw)
		pw.Close()
		s.done <- err
	}()
	t.Cleanup(func() {
		cancel()
		for range s.logs {
		}
	})
	select {
	case line := <-s.logs:
		address, ok := line["address"].(string)
		if line["msg"] != c.Name+" started" || !ok {
			t.Fatalf("first log line %v, want the start-up line", line)
		}
		s.URL = "http://" + address
	case err := <-s.done:
		t.Fatalf("run ended at once: %v", err)
	}
	return s
}

// Finish waits for Run to return and for its last log line.
func (s *Started) Finish(t *testing.T) (map[string]any, error) {
	t.Helper()
	var err error
	select {
	case err = <-s.done:
	case <-time.After(s.stopWithin):
		t.Fatal("run did not return")
	}
	var last map[string]any
	for line := range s.logs {
		last = line
	}
	return last, err
}

// WantUsage fails the test unless err is a usage error, exit code 2, that
// lists exactly the problems want, one a line, in any order.
func WantUsage(t testing.TB, err error, want []string) {
	t.Helper()
	if command.ExitCode(err) != 2 {
		t.Fatalf("error %v, want exit code 2", err)
	}
	got := strings.Split(err.Error(), "\n")
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("problems %q lack %q", got, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d problems %q, want %d", len(got), got, len(want))
	}
}
