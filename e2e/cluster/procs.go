package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procs starts the cluster's processes and stops every one of them. Each
// process runs in its own process group with its output in a log file, and
// its pid is written to pidDir, so that a later run can stop what a killed
// run left behind (see stopLeftovers).
type procs struct {
	logDir string
	pidDir string
	logger *slog.Logger

	mu   sync.Mutex
	list []*proc
}

type proc struct {
	name    string
	cmd     *exec.Cmd
	logFile string
	done    chan struct{}
	err     error
}

// start runs bin with args; netns, if set, is the network namespace to run
// it in (through `ip netns exec`).
func (p *procs) start(name, netns string, env []string, bin string, args ...string) (*proc, error) {
	logFile := filepath.Join(p.logDir, name+".log")
	out, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	argv := append([]string{bin}, args...)
	if netns != "" {
		argv = append([]string{"ip", "netns", "exec", netns}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pr := &proc{name: name, cmd: cmd, logFile: logFile, done: make(chan struct{})}
	pidFile := filepath.Join(p.pidDir, name+".pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return nil, err
	}
	go func() {
		pr.err = cmd.Wait()
		close(pr.done)
	}()
	p.mu.Lock()
	p.list = append(p.list, pr)
	p.mu.Unlock()
	p.logger.Info("started", "process", name, "pid", cmd.Process.Pid, "log", logFile)
	return pr, nil
}

// exited reports whether the process has ended, and how.
func (pr *proc) exited() (bool, error) {
	select {
	case <-pr.done:
		return true, pr.err
	default:
		return false, nil
	}
}

// failure describes a process that ended early, with its log's last lines.
func (pr *proc) failure() error {
	b, _ := os.ReadFile(pr.logFile)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return fmt.Errorf("%s exited (%v); last lines of %s:\n%s", pr.name, pr.err, pr.logFile, strings.Join(lines, "\n"))
}

// stop ends one process: SIGTERM to its group, SIGKILL after grace.
func (pr *proc) stop(grace time.Duration) {
	pid := pr.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-pr.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-pr.done
	}
}

// stopAll stops every process, the last started first.
func (p *procs) stopAll(grace time.Duration) {
	p.mu.Lock()
	list := p.list
	p.list = nil
	p.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop(grace)
		_ = os.Remove(filepath.Join(p.pidDir, list[i].name+".pid"))
		p.logger.Debug("stopped", "process", list[i].name)
	}
}

// stopLeftovers kills the process groups whose pid files an earlier run left
// in pidDir, if those pids still run one of the cluster's binaries.
func stopLeftovers(pidDir string, logger *slog.Logger) error {
	entries, err := os.ReadDir(pidDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		f := filepath.Join(pidDir, e.Name())
		b, err := os.ReadFile(f)
		_ = os.Remove(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			continue
		}
		logger.Warn("stopping a process left by an earlier run", "pid", pid, "name", strings.TrimSuffix(e.Name(), ".pid"))
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	return nil
}

// waitFor polls check every interval until it succeeds, ctx ends, or one of
// the watched processes exits.
func waitFor(ctx context.Context, what string, interval time.Duration, watch []*proc, check func(context.Context) error) error {
	var last error
	for {
		if last = check(ctx); last == nil {
			return nil
		}
		for _, pr := range watch {
			if done, _ := pr.exited(); done {
				return fmt.Errorf("waiting for %s: %w", what, pr.failure())
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), last)
		case <-time.After(interval):
		}
	}
}

// stopOne stops one process and forgets it.
func (p *procs) stopOne(pr *proc, grace time.Duration) {
	pr.stop(grace)
	p.mu.Lock()
	for i, x := range p.list {
		if x == pr {
			p.list = append(p.list[:i], p.list[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	_ = os.Remove(filepath.Join(p.pidDir, pr.name+".pid"))
}
