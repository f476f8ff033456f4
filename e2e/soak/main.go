package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/k8s-nemesis/nemesis/e2e/internal/childproc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

type options struct {
	nemesis      string
	duration     time.Duration
	rate         float64
	cap          int
	backends     int
	backendIdle  time.Duration
	idleBackends int
	idleStreams  int
	flapEvery    time.Duration
	reloadEvery  time.Duration
	reloadCapped bool
	slowClients  bool
	vanish       bool
	pipelined    bool
	timeout      time.Duration
	maxInFlight  int
	seed         uint64
	keep         bool
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.StringVar(&o.nemesis, "nemesis", "bin/nemesis", "the nemesis binary")
	fs.DurationVar(&o.duration, "duration", 5*time.Minute, "how long the load runs")
	fs.Float64Var(&o.rate, "rate", 100, "requests per second on the capped route (open loop)")
	fs.IntVar(&o.cap, "cap", 4, "the capped route's endpointConcurrency")
	fs.IntVar(&o.backends, "backends", 3, "backends of the capped route (a Service whose readiness flaps)")
	fs.DurationVar(&o.backendIdle, "backend-idle", time.Second, "the backends' keep-alive idle timeout; the capped route's backends get twice this (0: none)")
	fs.IntVar(&o.idleBackends, "idle-backends", 2, "backends of the idle route (static endpoints)")
	fs.IntVar(&o.idleStreams, "idle-streams", 4, "clients that send to the idle route after gaps of about the backends' idle timeout (0: none)")
	fs.DurationVar(&o.flapEvery, "flap-every", time.Second, "flap one capped backend's readiness this often (0: never)")
	fs.DurationVar(&o.reloadEvery, "reload-every", 3*time.Second, "rewrite the configuration this often (0: never)")
	fs.BoolVar(&o.reloadCapped, "reload-capped", true, "let reloads also replace the capped route (its queue timeout changes), not only its match")
	fs.BoolVar(&o.slowClients, "slow-clients", true, "include clients that dribble their body or read slowly")
	fs.BoolVar(&o.vanish, "vanish", true, "include clients that go away before or during the answer")
	fs.BoolVar(&o.pipelined, "pipelined", true, "include clients that pipeline three requests")
	noFaults := fs.Bool("no-faults", false, "switch off every fault (short keep-alives, flaps, reloads, idle gaps, slow, vanishing and pipelining clients): a check of the harness itself")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Second, "a client's limit for one request")
	fs.IntVar(&o.maxInFlight, "max-in-flight", 2000, "most client requests open at once; one more is a failure (a stalled activator)")
	fs.Uint64Var(&o.seed, "seed", uint64(time.Now().UnixNano()), "seed of the request mix")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (configuration, logs) after the run")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if *noFaults {
		o.backendIdle, o.flapEvery, o.reloadEvery, o.idleStreams = 0, 0, 0, 0
		o.slowClients, o.vanish, o.pipelined = false, false, false
	}
	switch {
	case o.duration <= 0, o.rate <= 0, o.timeout <= 0:
		return o, errors.New("--duration, --rate and --timeout must be positive")
	case o.idleStreams > 0 && o.backendIdle <= 0:
		return o, errors.New("--idle-streams need a --backend-idle to wait for")
	case o.cap < 1, o.backends < 2, o.idleBackends < 1, o.maxInFlight < 1:
		return o, errors.New("--cap and --idle-backends must be at least 1, --backends at least 2 (a flap takes one away at a time)")
	case o.rate > 2000:
		return o, errors.New("--rate above 2000 measures the load generator, not the activator")
	}
	return o, nil
}

func run(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if _, err := os.Stat(o.nemesis); err != nil {
		return fmt.Errorf("%s: %w (build it with go tool task build)", o.nemesis, err)
	}
	dir, err := os.MkdirTemp("", "nemesis-soak-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Println("work directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	// Backends: the capped route's behind a Service whose EndpointSlices
	// come from the fake API, the idle route's as static endpoints.
	var capped, idle []*backend
	defer func() {
		for _, b := range slices.Concat(capped, idle) {
			b.close()
		}
	}()
	for i := range o.backends {
		b, err := startBackend(fmt.Sprintf("capped-%d", i), 2*o.backendIdle, o.cap)
		if err != nil {
			return err
		}
		capped = append(capped, b)
	}
	for i := range o.idleBackends {
		b, err := startBackend(fmt.Sprintf("idle-%d", i), o.backendIdle, 0)
		if err != nil {
			return err
		}
		idle = append(idle, b)
	}
	api, err := startKubeAPI("soak")
	if err != nil {
		return err
	}
	defer api.close()
	addrs := func(bs []*backend) []string {
		var out []string
		for _, b := range bs {
			out = append(out, b.addr)
		}
		return out
	}
	if err := api.addService("capped", 80, addrs(capped)); err != nil {
		return err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := api.kubeconfig(kubeconfig); err != nil {
		return err
	}
	cfg := &configFile{path: filepath.Join(dir, "config", "activator.yaml"), cap: o.cap, idle: addrs(idle),
		cappedQueueTimeout: 10 * time.Second, idlePolicy: "round-robin"}
	if err := os.MkdirAll(filepath.Dir(cfg.path), 0o755); err != nil {
		return err
	}
	if err := cfg.write(); err != nil {
		return err
	}

	proxy, admin := freeAddr(), freeAddr()
	if proxy == "" || admin == "" {
		return errors.New("no free port on 127.0.0.1")
	}
	act, err := childproc.Start(dir, "activator", o.nemesis, "activator",
		"--config", cfg.path, "--kubeconfig", kubeconfig, "--id", "soak",
		"--http-address", proxy, "--admin-address", admin,
		"--shutdown-delay", "0s", "--drain-timeout", "5s", "--log-level", "warn")
	if err != nil {
		return err
	}
	defer act.Stop(10 * time.Second)
	// A signal stops the activator at once; the load then fails fast.
	go func() {
		select {
		case <-ctx.Done():
			act.Stop(5 * time.Second)
		case <-act.Done():
		}
	}()
	l := newLoad(proxy, o.timeout)
	if err := waitReady(ctx, l, act); err != nil {
		return err
	}
	rssStart, err := rssKiB(act.Pid())
	if err != nil {
		return err
	}

	fmt.Printf("soak: %v; capped route: %.0f req/s open loop, endpointConcurrency %d, %d backends (keep-alive idle timeout %v) behind a Service; idle route: %d clients sending after gaps of 0.8-1.6x the backends' idle timeout (%v), %d backends\n",
		o.duration, o.rate, o.cap, o.backends, orOff(2*o.backendIdle), o.idleStreams, orOff(o.backendIdle), o.idleBackends)
	fmt.Printf("faults: readiness flaps every %v, reloads every %v (capped route replaced too: %v), slow clients %v, vanishing clients %v, pipelining %v; seed %d\n",
		orOff(o.flapEvery), orOff(o.reloadEvery), o.reloadCapped, o.slowClients, o.vanish, o.pipelined, o.seed)

	// The load and the faults run together for o.duration; the faults
	// stop with the load.
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var (
		wg        sync.WaitGroup
		flaps     flapCount
		faults    faultLog
		reloads   int
		reloadErr error
		rssMax    = rssStart
		rssErr    error
	)
	wg.Go(func() {
		if o.flapEvery > 0 {
			flaps = flap(loadCtx, api, &faults, o.backends, o.flapEvery, o.seed)
		}
	})
	wg.Go(func() {
		if o.reloadEvery > 0 {
			reloads, reloadErr = reload(loadCtx, cfg, &faults, o.reloadEvery, o.reloadCapped)
		}
	})
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-loadCtx.Done():
				return
			case <-t.C:
				if act.Exited() {
					rssErr = fmt.Errorf("the activator exited during the load: %v", act.Err())
					stopLoad()
					return
				}
				if rss, err := rssKiB(act.Pid()); err == nil {
					rssMax = max(rssMax, rss)
				}
			}
		}
	})
	started := time.Now()
	var clients sync.WaitGroup
	clients.Go(func() { l.run(loadCtx, cappedKinds(o), o.rate, o.duration, o.maxInFlight, o.seed) })
	clients.Go(func() { l.idleGaps(loadCtx, o.idleStreams, o.backendIdle, o.duration, o.seed) })
	clients.Wait()
	elapsed := time.Since(started)
	stopLoad()
	wg.Wait()
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}

	// After the load, every count must drain to zero: a request counted
	// in flight or queued that never finishes is a leaked slot.
	leftover, settleErr := settle(admin, 10*time.Second)
	m, metricsErr := scrape(admin)
	rssEnd, err := rssKiB(act.Pid())
	if err != nil {
		return fmt.Errorf("the activator exited after the load: %v", act.Err())
	}
	stopErr := act.Stop(10 * time.Second)

	// Report.
	var problems []string
	sent, ok, gone, failed := l.tally.totals()
	fmt.Printf("\nafter %v: sent %d, answered %d, client went away %d (on purpose, not failures), failed %d\n",
		elapsed.Round(time.Second), sent, ok, gone, failed)
	fmt.Printf("%-10s %7s %7s %7s %7s %9s %9s  %s\n", "kind", "sent", "ok", "gone", "failed", "p50", "p99", "failures by code or error")
	names := make([]string, 0, len(l.tally.kinds))
	for name := range l.tally.kinds {
		names = append(names, name)
	}
	slices.Sort(names)
	byReason := map[string]int{}
	for _, name := range names {
		k := l.tally.kinds[name]
		nf := 0
		var reasons []string
		for r, n := range k.failed {
			nf += n
			byReason[r] += n
			reasons = append(reasons, fmt.Sprintf("%s ×%d", r, n))
		}
		slices.Sort(reasons)
		p50, p99 := k.percentiles()
		fmt.Printf("%-10s %7d %7d %7d %7d %9v %9v  %s\n", name, k.sent, k.ok, k.clientCaused, nf,
			p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond), strings.Join(reasons, ", "))
	}
	if failed > 0 {
		var rs []string
		for r, n := range byReason {
			rs = append(rs, fmt.Sprintf("%s ×%d", r, n))
		}
		slices.Sort(rs)
		problems = append(problems, fmt.Sprintf("%d requests failed that no client caused: %s", failed, strings.Join(rs, ", ")))
		fmt.Println("first failures:")
		for _, e := range l.tally.examples {
			fmt.Println("  " + e)
		}
	}

	fmt.Printf("\nfaults: %d readiness flaps (%d to not ready, %d to terminating); %d configuration rewrites\n",
		flaps.notReady+flaps.terminating, flaps.notReady, flaps.terminating, reloads)
	if reloadErr != nil {
		problems = append(problems, "rewriting the configuration: "+reloadErr.Error())
	}
	if metricsErr != nil {
		problems = append(problems, "reading the activator's metrics: "+metricsErr.Error())
	} else {
		fmt.Printf("activator: reloads applied %v, refused %v; upstream retries %v; answers by code %s\n",
			m.sum("nemesis_activator_config_reloads_total", `result="success"`), m.sum("nemesis_activator_config_reloads_total", `result="failure"`),
			m.sum("nemesis_activator_upstream_retries_total", ""), m.byLabel("nemesis_activator_requests_total", "code"))
		if n := m.sum("nemesis_activator_config_reloads_total", `result="failure"`); n > 0 {
			problems = append(problems, fmt.Sprintf("the activator refused %v configuration rewrites (a harness error)", n))
		}
		if o.reloadEvery > 0 && reloads > 0 && m.sum("nemesis_activator_config_reloads_total", `result="success"`) == 0 {
			problems = append(problems, "the activator applied none of the configuration rewrites")
		}
	}

	fmt.Println("\nbackends: served, most requests at once (the capped route's cap:", o.cap, ")")
	var overs []overshoot
	for _, b := range slices.Concat(capped, idle) {
		served, most, ov := b.stats()
		overs = append(overs, ov...)
		fmt.Printf("  %-9s %7d %4d\n", b.name, served, most)
	}
	explained, unexplained := judgeOvershoots(overs, l.left)
	if len(overs) > 0 {
		fmt.Printf("cap overshoots: %d times a capped backend served more than %d at once; %d explained by clients that went away (the backend notices an aborted request later than the activator frees its slot)\n",
			len(overs), o.cap, explained)
	}
	if len(unexplained) > 0 {
		problems = append(problems, fmt.Sprintf("the cap of %d was exceeded %d times (by up to %d) that no departing client explains", o.cap, len(unexplained), maxExcess(unexplained)))
		byCause := map[string]int{}
		for _, ov := range unexplained {
			byCause[faults.cause(ov)]++
		}
		var causes []string
		for c, n := range byCause {
			causes = append(causes, fmt.Sprintf("%s ×%d", c, n))
		}
		slices.Sort(causes)
		fmt.Printf("unexplained cap overshoots by the latest fault in the second before: %s; the first:\n", strings.Join(causes, ", "))
		for _, ov := range unexplained[:min(len(unexplained), 6)] {
			fmt.Printf("  %s %s +%d: %s; %s\n", ov.at.Format("15:04:05.000"), ov.backend, ov.excess, ov.describe(l.left), faults.before(ov.at))
		}
	}

	fmt.Printf("after the load: %s\n", leftover)
	if settleErr != nil {
		problems = append(problems, settleErr.Error())
	}
	fmt.Printf("activator RSS: start %d MiB, max %d MiB, end %d MiB\n", rssStart/1024, rssMax/1024, rssEnd/1024)
	if rssErr != nil {
		problems = append(problems, rssErr.Error())
	}
	if stopErr != nil {
		problems = append(problems, fmt.Sprintf("the activator did not exit cleanly on SIGTERM: %v", stopErr))
	}
	if warns := logProblems(act.Log(), 8); len(warns) > 0 {
		fmt.Println("activator log, warnings and errors (first of each message):")
		for _, w := range warns {
			fmt.Println("  " + w)
		}
	}
	if len(problems) > 0 {
		fmt.Println("\nFAIL:")
		for _, p := range problems {
			fmt.Println("  - " + p)
		}
		return fmt.Errorf("%d problems", len(problems))
	}
	fmt.Println("\nPASS: no failure that a client did not cause")
	return nil
}

func orOff(d time.Duration) string {
	if d <= 0 {
		return "off"
	}
	return d.String()
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ""
	}
	defer l.Close()
	return l.Addr().String()
}

// waitReady waits until both routes answer through the activator: the
// capped route only once the informers have synced against the fake API.
func waitReady(ctx context.Context, l *load, act *childproc.Process) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := l.get(ctx, 0)
		if err == nil {
			err = l.idleGet(ctx, 0)
		}
		if err == nil {
			return nil
		}
		if act.Exited() {
			b, _ := os.ReadFile(act.Log())
			return fmt.Errorf("the activator exited (%v): %s", act.Err(), b)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the activator's routes did not answer within 30s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// configFile is the activator's configuration, rewritten by reloads.
type configFile struct {
	path               string
	cap                int
	idle               []string
	alias              bool // the capped route also matches alias.soak
	cappedQueueTimeout time.Duration
	idlePolicy         string
}

func (c *configFile) write() error {
	hosts := `[capped.soak]`
	if c.alias {
		hosts = `[capped.soak, alias.soak]`
	}
	idle, _ := json.Marshal(c.idle)
	data := fmt.Sprintf(`# Written by e2e/soak; rewritten while it runs.
routes:
  - name: capped
    match: {hosts: %s}
    service: {namespace: soak, name: capped, port: 80}
    policy: least-request
    endpointConcurrency: %d
    queue: {size: 100000, timeout: %s}
    timeouts: {request: 30s, responseHeader: 10s}
  - name: idle
    match: {hosts: [idle.soak]}
    endpoints: %s
    policy: %s
    queue: {size: 1000, timeout: 10s}
    timeouts: {request: 30s, responseHeader: 10s}
`, hosts, c.cap, c.cappedQueueTimeout, idle, c.idlePolicy)
	// Written aside and renamed, as a ConfigMap update is: the activator
	// never reads half a file.
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, c.path)
}

// reload rewrites the configuration every interval, in turn: the capped
// route's match only (the route keeps its state), the idle route's policy
// (that route is replaced), and, with replaceCapped, the capped route's
// queue timeout (it is replaced: held requests move to the new one).
func reload(ctx context.Context, c *configFile, faults *faultLog, every time.Duration, replaceCapped bool) (int, error) {
	t := time.NewTicker(every)
	defer t.Stop()
	n := 0
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return n, nil
		case <-t.C:
		}
		what := "reload: capped route's match changed (route kept)"
		switch {
		case i%3 == 1:
			if c.idlePolicy == "round-robin" {
				c.idlePolicy = "least-request"
			} else {
				c.idlePolicy = "round-robin"
			}
			what = "reload: idle route replaced (policy " + c.idlePolicy + ")"
		case i%3 == 2 && replaceCapped:
			if c.cappedQueueTimeout == 10*time.Second {
				c.cappedQueueTimeout = 11 * time.Second
			} else {
				c.cappedQueueTimeout = 10 * time.Second
			}
			what = "reload: capped route replaced (queue timeout " + c.cappedQueueTimeout.String() + ")"
		default:
			c.alias = !c.alias
		}
		if err := c.write(); err != nil {
			return n, err
		}
		faults.add("%s", what)
		n++
	}
}

type flapCount struct{ notReady, terminating int }

// flap takes one capped backend at a time out of the ready set, for
// 0.2-0.8 s, every interval: in turn not ready (the pod fails its
// readiness probe: the endpoint is dropped) and terminating (it keeps its
// requests). Its requests in flight go on; the backend itself never stops.
func flap(ctx context.Context, api *kubeAPI, faults *faultLog, n int, every time.Duration, seed uint64) flapCount {
	rng := rand.New(rand.NewPCG(seed, 2))
	var fc flapCount
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return fc
		case <-t.C:
		}
		b := rng.IntN(n)
		s := stateNotReady
		if i%2 == 1 {
			s = stateTerminating
			fc.terminating++
		} else {
			fc.notReady++
		}
		api.setState("capped", b, s)
		faults.add("flap: capped-%d %s", b, s)
		down := time.NewTimer(time.Duration(200+rng.IntN(600)) * time.Millisecond)
		select {
		case <-down.C:
		case <-ctx.Done():
			down.Stop()
		}
		api.setState("capped", b, stateReady)
		faults.add("flap: capped-%d ready again", b)
	}
}

// judgeOvershoots splits the overshoots into those that clients going
// away explain (see overshoot.explained) and the others.
func judgeOvershoots(overs []overshoot, left *departures) (explained int, unexplained []overshoot) {
	for _, ov := range overs {
		if ov.explained(left) {
			explained++
		} else {
			unexplained = append(unexplained, ov)
		}
	}
	return explained, unexplained
}

// faultLog records when each fault happened, to say what came just
// before a cap overshoot.
type faultLog struct {
	mu     sync.Mutex
	events []faultEvent
}

type faultEvent struct {
	at   time.Time
	what string
}

func (f *faultLog) add(format string, args ...any) {
	f.mu.Lock()
	f.events = append(f.events, faultEvent{time.Now(), fmt.Sprintf(format, args...)})
	f.mu.Unlock()
}

// cause names the latest fault in the second before an overshoot, in
// terms of the overshooting backend.
func (f *faultLog) cause(ov overshoot) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.events) - 1; i >= 0; i-- {
		e := f.events[i]
		if e.at.After(ov.at) {
			continue
		}
		switch {
		case ov.at.Sub(e.at) > time.Second:
		case strings.HasPrefix(e.what, "reload: capped route replaced"):
			return "a reload replaced the capped route"
		case strings.HasPrefix(e.what, "flap: "+ov.backend+" "):
			return "this backend's flap"
		case strings.HasPrefix(e.what, "flap: "):
			return "another backend's flap"
		default:
			return "a reload that kept the capped route"
		}
		break
	}
	return "no fault"
}

// before describes the faults in the second before t, newest first.
func (f *faultLog) before(t time.Time) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for i := len(f.events) - 1; i >= 0 && len(out) < 3; i-- {
		e := f.events[i]
		if e.at.After(t) {
			continue
		}
		if t.Sub(e.at) > time.Second {
			break
		}
		out = append(out, fmt.Sprintf("%s %v before", e.what, t.Sub(e.at).Round(time.Millisecond)))
	}
	if len(out) == 0 {
		return "no fault in the second before"
	}
	return strings.Join(out, "; ")
}

func maxExcess(overs []overshoot) int {
	m := 0
	for _, o := range overs {
		m = max(m, o.excess)
	}
	return m
}

// metrics is a scrape of the activator's /metrics: sample line (name and
// labels) to value.
type metrics map[string]float64

func scrape(admin string) (metrics, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	m := metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// sum adds the samples of name whose labels contain match.
func (m metrics) sum(name, match string) float64 {
	var s float64
	for k, v := range m {
		if (k == name || strings.HasPrefix(k, name+"{")) && strings.Contains(k, match) {
			s += v
		}
	}
	return s
}

// byLabel sums name by the value of one label, as "a ×n, b ×m".
func (m metrics) byLabel(name, label string) string {
	sums := map[string]float64{}
	for k, v := range m {
		if !strings.HasPrefix(k, name+"{") {
			continue
		}
		_, rest, ok := strings.Cut(k, label+`="`)
		if !ok {
			continue
		}
		val, _, _ := strings.Cut(rest, `"`)
		sums[val] += v
	}
	var out []string
	for k, v := range sums {
		out = append(out, fmt.Sprintf("%s ×%.0f", k, v))
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// settle waits up to d for the activator's counts of requests in flight
// and queued (per route and per endpoint) to come back to zero once the
// load has stopped, and says what is left.
func settle(admin string, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for {
		m, err := scrape(admin)
		if err != nil {
			return "", fmt.Errorf("reading the activator's metrics: %w", err)
		}
		inFlight := m.sum("nemesis_activator_requests_in_flight", "")
		queued := m.sum("nemesis_activator_requests_queued", "")
		var eps []string
		for k, v := range m {
			if strings.HasPrefix(k, "nemesis_activator_endpoint_requests_in_flight{") && v != 0 {
				_, rest, _ := strings.Cut(k, `endpoint="`)
				ep, _, _ := strings.Cut(rest, `"`)
				eps = append(eps, fmt.Sprintf("%s %.0f", ep, v))
			}
		}
		slices.Sort(eps)
		s := fmt.Sprintf("in flight %.0f, queued %.0f, per endpoint in flight: %s", inFlight, queued, orNone(eps))
		if inFlight == 0 && queued == 0 && len(eps) == 0 {
			return s, nil
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("%v after the load ended, the activator still counts requests: %s", d, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// logProblems returns the activator's warnings and errors, one line per
// distinct message with its first occurrence and count, at most n.
func logProblems(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return []string{err.Error()}
	}
	defer f.Close()
	type seen struct {
		first string
		count int
	}
	var order []string
	msgs := map[string]*seen{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		if lv, _ := e["level"].(string); lv != "WARN" && lv != "ERROR" {
			continue
		}
		msg, _ := e["msg"].(string)
		if s := msgs[msg]; s != nil {
			s.count++
			continue
		}
		line := sc.Text()
		if len(line) > 400 {
			line = line[:400] + "…"
		}
		msgs[msg] = &seen{first: line, count: 1}
		order = append(order, msg)
	}
	var out []string
	for _, m := range order[:min(len(order), n)] {
		out = append(out, fmt.Sprintf("×%d %s", msgs[m].count, msgs[m].first))
	}
	return out
}
