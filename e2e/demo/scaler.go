package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 20 * time.Second
)

// scalerProc is the `nemesis scaler` subprocess.
type scalerProc struct {
	cmd      *exec.Cmd
	grpcAddr string
	httpAddr string
	logPath  string
	logFile  *os.File
	done     chan struct{} // closed once the process has exited
	waitErr  error         // cmd.Wait's result, set before done is closed

	stopOnce sync.Once
	stopErr  error
}

// startScaler starts `nemesis scaler` on free loopback ports, with its
// output in logPath.
func startScaler(binary string, rules []string, promURL, logPath string) (*scalerProc, error) {
	grpcPort, err := freePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &scalerProc{
		grpcAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(grpcPort)),
		httpAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)),
		logPath:  logPath,
		done:     make(chan struct{}),
	}
	args := []string{"scaler"}
	for _, r := range rules {
		args = append(args, "--rules", r)
	}
	args = append(args,
		"--prometheus-url", promURL,
		"--grpc-address", p.grpcAddr,
		"--http-address", p.httpAddr,
	)
	p.logFile, err = os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating the scaler log: %w", err)
	}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Stdout = p.logFile
	p.cmd.Stderr = p.logFile
	p.cmd.SysProcAttr = sysProcAttr()
	// The scaler traces only when OTEL_* asks it to; the demo has no collector.
	p.cmd.Env = append(os.Environ(), "OTEL_SDK_DISABLED=true")
	if err := p.cmd.Start(); err != nil {
		p.logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", binary, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *scalerProc) pid() int { return p.cmd.Process.Pid }

func (p *scalerProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitReady polls /readyz until it answers 200.
func (p *scalerProc) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	url := "http://" + p.httpAddr + "/readyz"
	for {
		if p.exited() {
			return fmt.Errorf("the scaler exited before it was ready (%v); the end of its log:\n%s", p.waitErr, p.logTail(20))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("the scaler was not ready at %s after %v; the end of its log:\n%s", url, readyTimeout, p.logTail(20))
			}
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// metrics returns the scaler's /metrics page.
func (p *scalerProc) metrics(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.httpAddr+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("reading the scaler's metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", fmt.Errorf("reading the scaler's metrics: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("reading the scaler's metrics: %s", resp.Status)
	}
	return string(body), nil
}

// stop sends SIGTERM, waits for the scaler to exit and reports an error
// unless it exited 0. After stopTimeout it kills it. It is safe to call
// more than once.
func (p *scalerProc) stop() error {
	p.stopOnce.Do(func() {
		defer p.logFile.Close()
		if !p.exited() {
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
				p.stopErr = fmt.Errorf("stopping the scaler: %w", err)
			}
		}
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			_ = p.cmd.Process.Kill()
			<-p.done
			p.stopErr = fmt.Errorf("the scaler did not exit within %v of SIGTERM and was killed; see %s", stopTimeout, p.logPath)
			return
		}
		if p.waitErr != nil && p.stopErr == nil {
			p.stopErr = fmt.Errorf("the scaler did not exit cleanly: %v; the end of its log:\n%s", p.waitErr, p.logTail(10))
		}
	})
	return p.stopErr
}

// logTail returns the last n lines of the scaler's log.
func (p *scalerProc) logTail(n int) string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return "  (no log: " + err.Error() + ")"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, "  "+sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return "  (the log is empty)"
	}
	return strings.Join(lines, "\n")
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// sumMetric adds up the samples of the metric name in a text exposition
// whose label set contains every one of the given `label="value"` pairs.
func sumMetric(exposition, name string, labels ...string) float64 {
	var sum float64
	for _, line := range strings.Split(exposition, "\n") {
		if line == "" || line[0] == '#' || !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue // another metric whose name starts with name
		}
		matched := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				matched = false
				break
			}
		}
		if !matched {
			continue
		}
		fields := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(fields) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
			sum += v
		}
	}
	return sum
}
