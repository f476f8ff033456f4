package nodeagent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// process is one running container: the leader of its own process group.
type process struct {
	pid     int
	started time.Time
	done    chan struct{} // closed once the leader has exited and been reaped
	exit    exitStatus    // valid once done is closed
}

// exitStatus is how a container process ended.
type exitStatus struct {
	code     int32 // the exit code, or 128+signal
	signal   int32 // the signal that killed it, or 0
	finished time.Time
	err      error // a failure to wait, rare
}

// launch is what startProcess needs to run a container.
type launch struct {
	argv    []string
	env     []string
	dir     string
	logPath string
}

// startProcess starts l in a process group of its own, stdout and stderr
// appended to the log file, and reaps it in the background. onExit runs
// once it has exited, after the rest of its process group got SIGKILL (the
// way a container's cgroup dies with its main process).
func startProcess(l launch, onExit func(*process)) (*process, error) {
	if err := os.MkdirAll(filepath.Dir(l.logPath), 0o755); err != nil {
		return nil, fmt.Errorf("opening the container log: %w", err)
	}
	logFile, err := os.OpenFile(l.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the container log: %w", err)
	}
	defer logFile.Close() // the child has its own copy

	cmd := exec.Command(l.argv[0], l.argv[1:]...)
	cmd.Env = l.env
	cmd.Dir = l.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Pdeathsig: if the agent dies without cleaning up, its containers die
	// with it rather than linger with the bridge's addresses.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", strings.Join(l.argv, " "), err)
	}
	p := &process{pid: cmd.Process.Pid, started: time.Now(), done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		st := exitStatus{finished: time.Now()}
		var exitErr *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exitErr):
			if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				st.signal = int32(ws.Signal())
				st.code = 128 + st.signal
			} else {
				st.code = int32(exitErr.ExitCode())
			}
		default:
			st.code = 128
			st.err = err
		}
		// The group's other members die with the leader. While the group
		// has members the kernel keeps its id from being reused; once it
		// has none this finds nothing.
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		p.exit = st
		close(p.done)
		if onExit != nil {
			onExit(p)
		}
	}()
	return p, nil
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process group unless the leader has exited.
func (p *process) signal(sig syscall.Signal) {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.pid, sig)
}

// stop sends SIGTERM to the process group, SIGKILL if it has not exited by
// grace, and returns once it has exited.
func (p *process) stop(grace time.Duration) {
	p.signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.signal(syscall.SIGKILL)
		<-p.done
	}
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
