package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
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
		runBackend(os.Args[2:])
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

type options struct {
	nemesis     string
	duration    time.Duration
	connections int
	threads     int
	soak        time.Duration
	rounds      int
	// scorePairs and scoreDuration: the least-request and score
	// comparison's pairs and the length of each of its wrk runs.
	scorePairs    int
	scoreDuration time.Duration
}

func run(ctx context.Context) error {
	var o options
	flag.StringVar(&o.nemesis, "nemesis", "bin/nemesis", "the nemesis binary")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each wrk run")
	flag.IntVar(&o.connections, "connections", 32, "wrk connections")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads")
	flag.IntVar(&o.rounds, "rounds", 3, "wrk rounds over the three targets; the ratios use the medians")
	// Many short pairs: on a shared machine a pair's two runs are close
	// in time, and the median drops the pairs that a burst elsewhere hit.
	flag.IntVar(&o.scorePairs, "score-pairs", 9, "pairs of wrk runs through a least-request and a score route to the same endpoints; the ratio is the median's (0: none)")
	flag.DurationVar(&o.scoreDuration, "score-duration", 3*time.Second, "length of each wrk run of the score comparison")
	flag.DurationVar(&o.soak, "soak", 0, "also run the activator at full load this long and report its memory over time (e.g. 5m)")
	flag.Parse()
	if o.scorePairs < 0 || o.scorePairs > 0 && o.scoreDuration < time.Second {
		return fmt.Errorf("--score-pairs %d --score-duration %v: pairs must be 0 or more, and wrk runs a whole second or more", o.scorePairs, o.scoreDuration)
	}
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
	// One backend process: its first address for direct, nginx and the
	// activator; all scoreEndpoints of them for the score comparison.
	backends := make([]string, scoreEndpoints)
	for i := range backends {
		backends[i] = freeAddr()
	}
	backend := backends[0]
	if err := procs.start(ctx, dir, "backend", self, append([]string{"backend"}, backends...)...); err != nil {
		return err
	}
	nginxAddr, err := startNginx(ctx, &procs, dir, backend)
	if err != nil {
		return err
	}
	activator, admin := freeAddr(), freeAddr()
	cfg := filepath.Join(dir, "activator.yaml")
	lrCfg, err := activatorConfig(leastRequest, []string{backend})
	if err != nil {
		return err
	}
	if err := os.WriteFile(cfg, []byte(lrCfg), 0o644); err != nil {
		return err
	}
	if err := procs.start(ctx, dir, "activator", o.nemesis, "activator", "--config", cfg, "--http-address", activator, "--admin-address", admin, "--log-level", "warn"); err != nil {
		return err
	}
	for _, a := range append(slices.Clone(backends), nginxAddr, activator) {
		if err := waitHTTP(ctx, "http://"+a+"/"); err != nil {
			return err
		}
	}

	fmt.Printf("wrk -t%d -c%d -d%v on loopback, %d rounds of direct, nginx, activator in turn; same machine (2 cores shared by wrk, proxy and backend)\n\n",
		o.threads, o.connections, o.duration, o.rounds)
	targets := []struct{ name, addr string }{{"direct", backend}, {"nginx", nginxAddr}, {"activator", activator}}
	results := map[string][]wrkResult{}
	fmt.Printf("%-6s %-10s %12s %8s %10s %10s %8s\n", "round", "target", "req/s", "×nginx", "p50", "p99", "errors")
	for round := 1; round <= o.rounds; round++ {
		var ng float64
		for _, t := range targets {
			r, err := runWrk(ctx, o, "http://"+t.addr+"/")
			if err != nil {
				return fmt.Errorf("wrk against %s: %w", t.name, err)
			}
			results[t.name] = append(results[t.name], r)
			if t.name == "nginx" {
				ng = r.rps
			}
			ratio := "-"
			if ng > 0 {
				ratio = fmt.Sprintf("%.2f", r.rps/ng)
			}
			fmt.Printf("%-6d %-10s %12.0f %8s %10v %10v %8d\n", round, t.name, r.rps, ratio, r.p50, r.p99, r.errors)
		}
	}
	median := func(name string) float64 {
		v := make([]float64, 0, o.rounds)
		for _, r := range results[name] {
			v = append(v, r.rps)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	fmt.Printf("\nmedian req/s: direct %.0f, nginx %.0f, activator %.0f: activator/nginx %.2f, activator/direct %.2f\n",
		median("direct"), median("nginx"), median("activator"), median("activator")/median("nginx"), median("activator")/median("direct"))
	errs := 0
	for _, rs := range results {
		for _, r := range rs {
			errs += r.errors
		}
	}

	// Added latency at half of the activator's peak, open loop.
	rate := median("activator") / 2
	fmt.Printf("\nopen loop at %.0f req/s (half the activator's median peak), %d connections, %v each:\n", rate, o.connections, o.duration)
	loops := map[string]loopResult{}
	for _, t := range targets {
		r, err := openLoop(ctx, t.addr, rate, o.duration, o.connections)
		if err != nil {
			return err
		}
		loops[t.name] = r
		errs += r.errors
		fmt.Printf("%-10s p50 %-10v p99 %-10v p99.9 %-10v sent %d errors %d\n", t.name,
			r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.p999.Round(time.Microsecond), r.sent, r.errors)
	}
	fmt.Printf("added p99 over direct: nginx %v, activator %v\n",
		(loops["nginx"].p99 - loops["direct"].p99).Round(time.Microsecond), (loops["activator"].p99 - loops["direct"].p99).Round(time.Microsecond))

	// The score policy against least-request: same endpoints, same load.
	if o.scorePairs > 0 {
		fmt.Printf("\nleast-request against score, %d endpoints of the backend (each serving vLLM's metrics), %s; wrk -t%d -c%d -d%v, %d pairs, each run with an activator of its own, the first of each pair alternating:\n",
			len(backends), scoreSummary, o.threads, o.connections, o.scoreDuration, o.scorePairs)
		start := time.Now()
		pairs, perrs, err := scorePairs(ctx, o, &procs, dir, backends)
		errs += perrs
		if err != nil {
			return err
		}
		lr := make([]float64, len(pairs))
		sc := make([]float64, len(pairs))
		cpu := make([]float64, len(pairs))
		for i, p := range pairs {
			lr[i], sc[i], cpu[i] = p.lr.wrk.rps, p.score.wrk.rps, p.cpuRatio()
		}
		fmt.Printf("median score/least-request %.3f (aim >= 0.95); median req/s: least-request %.0f, score %.0f; median activator CPU per request score/least-request %.3f; %v in all\n",
			medianRatio(pairs), medianOf(lr), medianOf(sc), medianOf(cpu), time.Since(start).Round(100*time.Millisecond))
	}
	if errs > 0 {
		return fmt.Errorf("%d requests failed", errs)
	}

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

// stop stops one process, by pid, and forgets it.
func (g *procGroup) stop(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if cmd, ok := g.procs[name]; ok {
		stopProc(cmd)
		delete(g.procs, name)
	}
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
		stopProc(cmd)
		delete(g.procs, name)
	}
}

// stopProc ends cmd's process group: SIGTERM, then SIGKILL after 5s.
func stopProc(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
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
  # nginx closes a keep-alive connection after 1000 requests by default;
  # the activator does not, so neither does nginx here.
  keepalive_requests 1000000;
  upstream backend { server %[2]s; keepalive 64; keepalive_requests 1000000; }
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
	requests int // answered
}

func runWrk(ctx context.Context, o options, url string) (wrkResult, error) {
	var (
		rpsRE     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
		countRE   = regexp.MustCompile(`(\d+) requests in `)
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
	if m := countRE.FindSubmatch(out); m != nil {
		r.requests, _ = strconv.Atoi(string(m[1]))
	}
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
	p50, p99, p999 time.Duration
	sent, errors   int
}

// openLoop sends GET / to addr at a fixed rate, whatever the latency, over
// conns keep-alive connections: request i is due at start + i/rate and
// goes out on connection i mod conns as soon as it is due and that
// connection's previous request is answered. Each latency counts from the
// due time, so a stall shows instead of slowing the load (no coordinated
// omission). The client is raw TCP with one pre-built request and a
// minimal response reader, so that its own cost on the shared cores stays
// small.
func openLoop(ctx context.Context, addr string, rate float64, d time.Duration, conns int) (loopResult, error) {
	req := []byte("GET / HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: proxybench\r\n\r\n")
	n := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	lat := make([]time.Duration, n)
	var (
		errs  atomic.Int64
		wg    sync.WaitGroup
		first atomic.Value
	)
	start := time.Now().Add(100 * time.Millisecond)
	for ci := range conns {
		wg.Go(func() {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				first.CompareAndSwap(nil, err)
				errs.Add(1)
				return
			}
			defer nc.Close()
			br := bufio.NewReaderSize(nc, 16<<10)
			for i := ci; i < n && ctx.Err() == nil; i += conns {
				due := start.Add(time.Duration(i) * interval)
				if w := time.Until(due); w > 0 {
					time.Sleep(w)
				}
				_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := nc.Write(req); err != nil {
					first.CompareAndSwap(nil, err)
					errs.Add(int64((n - i + conns - 1) / conns))
					return
				}
				closed, err := readOK(br)
				if err != nil {
					first.CompareAndSwap(nil, err)
					errs.Add(int64((n - i + conns - 1) / conns))
					return
				}
				lat[i] = time.Since(due)
				if closed {
					// The server ended the connection after this answer
					// (Connection: close): open another, as wrk does.
					nc.Close()
					if nc, err = net.Dial("tcp", addr); err != nil {
						first.CompareAndSwap(nil, err)
						errs.Add(int64((n - i - 1) / conns))
						return
					}
					br.Reset(nc)
				}
			}
		})
	}
	wg.Wait()
	var got []time.Duration
	for _, l := range lat {
		if l > 0 {
			got = append(got, l)
		}
	}
	if len(got) == 0 {
		return loopResult{}, fmt.Errorf("open loop against %s: no request succeeded: %v", addr, first.Load())
	}
	slices.Sort(got)
	pct := func(p float64) time.Duration { return got[min(len(got)-1, int(p*float64(len(got))))] }
	return loopResult{p50: pct(0.50), p99: pct(0.99), p999: pct(0.999), sent: n, errors: int(errs.Load())}, nil
}

// readOK reads one response and fails unless it is a 200 with a
// Content-Length body. closed reports a Connection: close.
func readOK(br *bufio.Reader) (closed bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return false, err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return false, fmt.Errorf("response %q", bytes.TrimSpace(line))
	}
	length := -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil {
				return false, err
			}
		case bytes.EqualFold(k, []byte("Connection")) && bytes.EqualFold(v, []byte("close")):
			closed = true
		}
	}
	if length < 0 {
		return false, errors.New("response without Content-Length")
	}
	_, err = br.Discard(length)
	return closed, err
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
