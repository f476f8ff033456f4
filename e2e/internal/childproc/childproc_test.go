package childproc

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// start starts sh -c script under name in dir, and stops it when the test
// ends.
func start(t *testing.T, dir, name, script string) *Process {
	t.Helper()
	p, err := Start(dir, name, "/bin/sh", "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(time.Second) })
	return p
}

// waitLog waits until p's log holds want, and returns the log.
func waitLog(t *testing.T, p *Process, want string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(p.Log())
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), want) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %q lacks %q after 30s", b, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gone waits until no process pid runs (it may stay a zombie a moment,
// until init reaps it), and reports whether it went within 30 s.
func gone(pid int) bool {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if errors.Is(err, os.ErrNotExist) {
			return true
		}
		// The state follows the command's name in parentheses.
		if _, after, ok := strings.Cut(string(stat), ") "); ok && strings.HasPrefix(after, "Z") {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

func exitSignal(err error) syscall.Signal {
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal()
		}
	}
	return 0
}

// TestStop: SIGTERM stops the whole process group, the child's own
// children too; the log has the child's output.
func TestStop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := start(t, dir, "group", `sleep 60 & echo "grandchild $!"; echo oops >&2; wait`)
	if p.Name() != "group" || p.Log() != filepath.Join(dir, "group.log") {
		t.Errorf("name %q, log %q", p.Name(), p.Log())
	}
	log := waitLog(t, p, "oops")
	f := strings.Fields(log)
	if len(f) < 2 || f[0] != "grandchild" {
		t.Fatalf("log %q, want the grandchild's pid first", log)
	}
	grandchild, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(grandchild, syscall.SIGKILL) })
	if p.Exited() || p.Err() != nil {
		t.Fatalf("exited %v (%v) before Stop", p.Exited(), p.Err())
	}

	err = p.Stop(30 * time.Second)
	if exitSignal(err) != syscall.SIGTERM {
		t.Errorf("Stop = %v, want the child ended by SIGTERM", err)
	}
	if !p.Exited() || p.Err() != err {
		t.Errorf("after Stop: exited %v, Err %v, want true and Stop's %v", p.Exited(), p.Err(), err)
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done still open after Stop")
	}
	if !gone(grandchild) {
		t.Errorf("grandchild %d still runs after Stop", grandchild)
	}
	if err := p.Stop(time.Second); err == nil || err.Error() != "signal: terminated" {
		t.Errorf("second Stop = %v, want the first one's exit again", err)
	}
}

// TestStopKillsAfterGrace: a child that ignores SIGTERM is killed once
// the grace has passed, and not before.
func TestStopKillsAfterGrace(t *testing.T) {
	t.Parallel()
	p := start(t, t.TempDir(), "stubborn", `trap "" TERM; echo ready; sleep 60`)
	waitLog(t, p, "ready")
	const grace = 300 * time.Millisecond
	began := time.Now()
	err := p.Stop(grace)
	if took := time.Since(began); took < grace {
		t.Errorf("Stop returned after %v, within the grace of %v", took, grace)
	}
	if exitSignal(err) != syscall.SIGKILL {
		t.Errorf("Stop = %v, want the child killed", err)
	}
}

// TestExitOnItsOwn: a child that exits by itself is seen to, and Stop
// signals nothing but returns its exit.
func TestExitOnItsOwn(t *testing.T) {
	t.Parallel()
	p := start(t, t.TempDir(), "short", "exit 3")
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the child did not exit")
	}
	ee, ok := errors.AsType[*exec.ExitError](p.Err())
	if !ok || ee.ExitCode() != 3 || !p.Exited() {
		t.Fatalf("Err %v, exited %v; want exit status 3", p.Err(), p.Exited())
	}
	if err := p.Stop(time.Second); err != p.Err() {
		t.Errorf("Stop = %v, want the exit %v", err, p.Err())
	}
}

// TestStopConcurrently: Stop from several goroutines at once (a deferred
// Stop and one on a signal) stops the child once, and each gets its exit.
func TestStopConcurrently(t *testing.T) {
	t.Parallel()
	p := start(t, t.TempDir(), "shared", "echo ready; exec sleep 60")
	waitLog(t, p, "ready")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = p.Stop(30 * time.Second) })
	}
	wg.Wait()
	for i, err := range errs {
		if exitSignal(err) != syscall.SIGTERM {
			t.Errorf("Stop %d = %v, want the child ended by SIGTERM", i, err)
		}
	}
}

// TestLogAppended: a child restarted under the same name adds to the log
// of the one before.
func TestLogAppended(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, word := range []string{"first", "second"} {
		p := start(t, dir, "pod", "echo "+word)
		select {
		case <-p.Done():
		case <-time.After(30 * time.Second):
			t.Fatalf("the %s run did not exit", word)
		}
		if err := p.Err(); err != nil {
			t.Fatalf("%s run: %v", word, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "pod.log"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "first\nsecond\n" {
		t.Errorf("log %q, want both runs' output", b)
	}
}

func TestStartFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		dir, bin string
		want     string
	}{
		"no binary": {dir, filepath.Join(dir, "missing"), "starting x: fork/exec " + filepath.Join(dir, "missing") + ": no such file or directory"},
		"no dir":    {filepath.Join(dir, "missing"), "/bin/sh", "open " + filepath.Join(dir, "missing", "x.log") + ": no such file or directory"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := Start(tc.dir, "x", tc.bin)
			if err == nil {
				_ = p.Stop(time.Second)
				t.Fatal("Start succeeded")
			}
			if err.Error() != tc.want {
				t.Errorf("Start: %v, want %s", err, tc.want)
			}
		})
	}
}
