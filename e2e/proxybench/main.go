package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "backend" {
		runBackend(os.Args[2])
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxybench:", err)
		os.Exit(1)
	}
}

// runBackend serves a small fixed answer, like the hello servers of
// PEERS.md's reference numbers.
func runBackend(addr string) {
	body := []byte("hello from the backend\n")
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" { // held requests in the memory test never get here
			time.Sleep(time.Second)
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

type options struct {
	nemesis     string
	duration    time.Duration
	connections int
	threads     int
	soak        time.Duration
}

func run(ctx context.Context) error {
	var o options
	flag.StringVar(&o.nemesis, "nemesis", "bin/nemesis", "the nemesis binary")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each wrk run")
	flag.IntVar(&o.connections, "connections", 32, "wrk connections")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads")
	flag.DurationVar(&o.soak, "soak", 0, "also run the activator at full load this long and report its memory over time (e.g. 5m)")
	flag.Parse()
	for _, bin := range []string{"wrk", "nginx"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found: install Debian's %s (go tool task bench does)", bin, bin)
		}
	}
	if _, err := os.Stat(o.nemesis); err != nil {
		return fmt.Errorf("%s: %w (build it with go tool task build)", o.nemesis, err)
	}
	dir, err := os.MkdirTemp("", "nemesis-proxybench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var procs procGroup
	defer procs.stopAll()

	self, err := os.Executable()
	if err != nil {
		return err
	}
	backend := freeAddr()
	if err := procs.start(ctx, dir, "backend", self, "backend", backend); err != nil {
		return err
	}
	nginxAddr, err := startNginx(ctx, &procs, dir, backend)
	if err != nil {
		return err
	}
	activator, admin := freeAddr(), freeAddr()
	cfg := filepath.Join(dir, "activator.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `routes:
  - name: bench
    endpoints: [%q]
    policy: least-request
`, backend), 0o644); err != nil {
		return err
	}
	if err := procs.start(ctx, dir, "activator", o.nemesis, "activator", "--config", cfg, "--http-address", activator, "--admin-address", admin, "--log-level", "warn"); err != nil {
		return err
	}
	for _, a := range []string{backend, nginxAddr, activator} {
		if err := waitHTTP(ctx, "http://"+a+"/"); err != nil {
			return err
		}
	}

	fmt.Printf("wrk -t%d -c%d -d%v on loopback, one run each, same machine (2 cores shared by wrk, proxy and backend)\n\n", o.threads, o.connections, o.duration)
	targets := []struct{ name, addr string }{{"direct", backend}, {"nginx", nginxAddr}, {"activator", activator}}
	results := map[string]wrkResult{}
	for _, t := range targets {
		r, err := runWrk(ctx, o, "http://"+t.addr+"/")
		if err != nil {
			return fmt.Errorf("wrk against %s: %w", t.name, err)
		}
		results[t.name] = r
	}
	ng := results["nginx"]
	fmt.Printf("%-10s %12s %8s %10s %10s %10s\n", "target", "req/s", "×nginx", "p50", "p99", "errors")
	for _, t := range targets {
		r := results[t.name]
		fmt.Printf("%-10s %12.0f %8.2f %10v %10v %10d\n", t.name, r.rps, r.rps/ng.rps, r.p50, r.p99, r.errors)
	}

	// Added latency at half of the activator's peak.
	rate := results["activator"].rps / 2
	fmt.Printf("\nopen-loop load at %.0f req/s (half the activator's peak) for %v:\n", rate, o.duration)
	direct, err := openLoop(ctx, "http://"+backend+"/", rate, o.duration, o.connections)
	if err != nil {
		return err
	}
	through, err := openLoop(ctx, "http://"+activator+"/", rate, o.duration, o.connections)
	if err != nil {
		return err
	}
	fmt.Printf("%-10s p50 %v  p99 %v  sent %d  errors %d\n", "direct", direct.p50, direct.p99, direct.sent, direct.errors)
	fmt.Printf("%-10s p50 %v  p99 %v  sent %d  errors %d\n", "activator", through.p50, through.p99, through.sent, through.errors)
	fmt.Printf("added p99: %v\n", through.p99-direct.p99)

	if o.soak > 0 {
		fmt.Printf("\nsoak: activator at full load for %v, RSS every %v:\n", o.soak, o.soak/10)
		// wrk stops itself after o.soak; the margin keeps the context from
		// killing it first, which would lose its report.
		soakCtx, cancel := context.WithTimeout(ctx, o.soak+time.Minute)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := runWrk(soakCtx, options{duration: o.soak, connections: o.connections, threads: o.threads}, "http://"+activator+"/")
			done <- err
		}()
		soakStart := time.Now()
		tick := time.NewTicker(o.soak / 10)
		defer tick.Stop()
		for {
			select {
			case err := <-done:
				return err
			case <-tick.C:
				rss, err := rssKiB(procs.pid("activator"))
				if err != nil {
					return err
				}
				fmt.Printf("  %6.0fs  RSS %d MiB\n", time.Since(soakStart).Seconds(), rss/1024)
			}
		}
	}
	return nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitHTTP(ctx context.Context, url string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s did not answer within 15s: %w", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// procGroup stops every process it started, by pid, whatever happens.
type procGroup struct {
	mu    sync.Mutex
	procs map[string]*exec.Cmd
}

func (g *procGroup) start(ctx context.Context, dir, name, bin string, args ...string) error {
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.procs == nil {
		g.procs = map[string]*exec.Cmd{}
	}
	g.procs[name] = cmd
	go func() {
		<-ctx.Done()
		g.stopAll()
	}()
	return nil
}

func (g *procGroup) pid(name string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.procs[name].Process.Pid
}

func (g *procGroup) stopAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, cmd := range g.procs {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		delete(g.procs, name)
	}
}

func startNginx(ctx context.Context, g *procGroup, dir, backend string) (string, error) {
	addr := freeAddr()
	conf := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream backend { server %[2]s; keepalive 64; }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, dir, backend, addr)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return "", err
	}
	return addr, g.start(ctx, dir, "nginx", "nginx", "-p", dir, "-c", path)
}

type wrkResult struct {
	rps      float64
	p50, p99 time.Duration
	errors   int
}

func runWrk(ctx context.Context, o options, url string) (wrkResult, error) {
	var (
		rpsRE     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
		pctRE     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)`)
		socketRE  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
		non2xxRE  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
		unitScale = map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}
	)
	out, err := exec.CommandContext(ctx, "wrk", "-t"+strconv.Itoa(o.threads), "-c"+strconv.Itoa(o.connections),
		"-d"+strconv.Itoa(int(o.duration.Seconds()))+"s", "--latency", url).CombinedOutput()
	if err != nil && ctx.Err() == nil {
		return wrkResult{}, fmt.Errorf("%w: %s", err, out)
	}
	var r wrkResult
	m := rpsRE.FindSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk output: %s", out)
	}
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	for _, p := range pctRE.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(p[2]), 64)
		d := time.Duration(v * float64(unitScale[string(p[3])]))
		if string(p[1]) == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	if m := socketRE.FindSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(string(s))
			r.errors += n
		}
	}
	if m := non2xxRE.FindSubmatch(out); m != nil {
		n, _ := strconv.Atoi(string(m[1]))
		r.errors += n
	}
	return r, nil
}

type loopResult struct {
	p50, p99     time.Duration
	sent, errors int
}

// openLoop sends requests at a fixed rate, whatever the latency, over a
// pool of keep-alive connections, and records each request's latency from
// its scheduled start, so that a stall shows instead of slowing the load.
func openLoop(ctx context.Context, url string, rate float64, d time.Duration, conns int) (loopResult, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: conns * 4, MaxConnsPerHost: conns * 4}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	interval := time.Duration(float64(time.Second) / rate)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      atomic.Int64
		wg        sync.WaitGroup
	)
	sem := make(chan struct{}, conns*4)
	start := time.Now()
	n := int(d / interval)
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			resp, err := client.Get(url)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = errors.New(resp.Status)
				}
			}
			lat := time.Since(due)
			if err != nil {
				errs.Add(1)
				return
			}
			mu.Lock()
			latencies = append(latencies, lat)
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(latencies) == 0 {
		return loopResult{}, fmt.Errorf("open loop against %s: no request succeeded", url)
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration { return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))] }
	return loopResult{p50: pct(0.50), p99: pct(0.99), sent: n, errors: int(errs.Load())}, nil
}

func rssKiB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			return strconv.Atoi(f[0])
		}
	}
	return 0, errors.New("no VmRSS")
}
