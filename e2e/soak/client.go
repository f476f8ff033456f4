package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// kind is one sort of client request.
type kind struct {
	name   string
	weight int
	// vanishes: the client goes away on purpose, so the request's end is
	// the client's doing, not a failure.
	vanishes bool
	do       func(l *load, ctx context.Context, id int) error
}

// load drives the activator: an open-loop mix on the capped route, and
// requests after idle gaps on the idle route.
type load struct {
	proxy   string // the activator's proxy address
	timeout time.Duration
	client  *http.Client
	tally   *tally
	// left records when vanishing clients closed their connections, to
	// explain cap overshoots.
	left *departures
}

// errClientGone is what a vanishing client reports when it went away as
// planned, before the answer was complete.
var errClientGone = errors.New("client went away on purpose")

// statusError is an answer with an unexpected status code.
type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return fmt.Sprintf("status %d: %s", e.code, e.body) }

func newLoad(proxy string, timeout time.Duration) *load {
	return &load{
		proxy:   proxy,
		timeout: timeout,
		tally:   newTally(),
		left:    &departures{},
		client: &http.Client{
			Timeout: timeout,
			Transport: &http.Transport{
				// Well under the activator's --idle-timeout (90 s): this
				// client never races the activator's idle close itself.
				IdleConnTimeout:     30 * time.Second,
				MaxIdleConnsPerHost: 128,
				DisableCompression:  true,
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			},
		},
	}
}

// cappedKinds is the steady mix on the capped route.
func cappedKinds(o options) []kind {
	ks := []kind{
		{name: "get", weight: 40, do: (*load).get},
		{name: "post", weight: 20, do: (*load).post},
		{name: "stream", weight: 10, do: (*load).stream},
	}
	if o.pipelined {
		ks = append(ks, kind{name: "pipelined", weight: 8, do: (*load).pipelined})
	}
	if o.slowClients {
		ks = append(ks,
			kind{name: "dribble", weight: 7, do: (*load).dribble},
			kind{name: "slow-read", weight: 5, do: (*load).slowRead})
	}
	if o.vanish {
		ks = append(ks, kind{name: "vanish", weight: 10, vanishes: true, do: (*load).vanish})
	}
	return ks
}

// run sends requests of ks at rate per second until ctx ends or d passes.
// Request i is due at start + i/rate and starts then, whatever the
// answers to the earlier ones (open loop), so a stalled activator shows
// as latency and timeouts rather than as a slower load; at most
// maxInFlight run at once.
func (l *load) run(ctx context.Context, ks []kind, rate float64, d time.Duration, maxInFlight int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	total := 0
	for _, k := range ks {
		total += k.weight
	}
	interval := time.Duration(float64(time.Second) / rate)
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if due.Sub(start) >= d {
			break
		}
		if w := time.Until(due); w > 0 {
			t := time.NewTimer(w)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		if ctx.Err() != nil {
			break
		}
		n := rng.IntN(total)
		k := ks[0]
		for _, c := range ks {
			if n < c.weight {
				k = c
				break
			}
			n -= c.weight
		}
		select {
		case sem <- struct{}{}:
		default:
			l.tally.add(k.name, false, fmt.Errorf("not sent: %d requests already waiting", maxInFlight), 0)
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			l.one(ctx, k, i, due)
		})
	}
	wg.Wait()
}

// one runs a request and records its outcome, its latency counted from
// its due time.
func (l *load) one(ctx context.Context, k kind, id int, due time.Time) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
	defer cancel()
	err := k.do(l, rctx, id)
	l.tally.add(k.name, k.vanishes, err, time.Since(due))
}

// idleGaps sends, on each of n streams, a POST or a GET to the idle
// route, then waits 0.8-1.6 times the backends' idle timeout, and again,
// until ctx ends or d passes. The activator's pooled connection to the
// backend is then often closed, or closing, when the next request comes.
func (l *load) idleGaps(ctx context.Context, n int, idle, d time.Duration, seed uint64) {
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for s := range n {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(s)+100))
			for i := 0; time.Now().Before(end) && ctx.Err() == nil; i++ {
				k := kind{name: "idle-post", do: (*load).idlePost}
				if i%3 == 2 {
					k = kind{name: "idle-get", do: (*load).idleGet}
				}
				l.one(ctx, k, s*1_000_000+i, time.Now())
				gap := time.Duration((0.8 + 0.8*rng.Float64()) * float64(idle))
				t := time.NewTimer(gap)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
			}
		})
	}
	wg.Wait()
}

func (l *load) newRequest(ctx context.Context, method, host, path string, body []byte) *http.Request {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+l.proxy+path, rd)
	if err != nil {
		panic(err) // only a bad URL, which these are not
	}
	req.Host = host
	return req
}

// do sends req and checks that the answer is 200 with the body want
// (nil: any body for which check returns nil).
func (l *load) do(req *http.Request, check func([]byte) error) error {
	resp, err := l.client.Do(req)
	if err != nil {
		return err
	}
	return checkAnswer(resp, check)
}

func wantFast(id string) func([]byte) error {
	return func(b []byte) error {
		if !bytes.HasPrefix(b, []byte("fast ")) || !bytes.HasSuffix(b, []byte(" id="+id+"\n")) {
			return fmt.Errorf("wrong body %q", b)
		}
		return nil
	}
}

func wantEqual(want []byte) func([]byte) error {
	return func(b []byte) error {
		if !bytes.Equal(b, want) {
			return fmt.Errorf("wrong body: %d bytes, want the %d sent", len(b), len(want))
		}
		return nil
	}
}

// randomBody returns n bytes that start with the request's kind and id
// ("POST17Z", letters and digits only), so that a body that turns up
// where it should not (read as the method of a request) names its
// request.
func randomBody(kind string, id, n int) []byte {
	b := fmt.Appendf(make([]byte, 0, n), "%s%dZ", strings.ToUpper(strings.ReplaceAll(kind, "-", "")), id)
	for len(b) < n {
		b = append(b, 'a'+byte(rand.IntN(26)))
	}
	return b[:n]
}

func (l *load) get(ctx context.Context, id int) error {
	s := strconv.Itoa(id)
	return l.do(l.newRequest(ctx, http.MethodGet, "capped.soak", "/fast?id="+s, nil), wantFast(s))
}

func (l *load) post(ctx context.Context, id int) error {
	body := randomBody("post", id, 1<<10+rand.IntN(7<<10))
	return l.do(l.newRequest(ctx, http.MethodPost, "capped.soak", "/echo", body), wantEqual(body))
}

func (l *load) stream(ctx context.Context, id int) error {
	n := 5 + rand.IntN(11)
	return l.do(l.newRequest(ctx, http.MethodGet, "capped.soak", "/stream?n="+strconv.Itoa(n), nil), wantChunks(n))
}

func wantChunks(n int) func([]byte) error {
	return func(b []byte) error {
		var want bytes.Buffer
		for i := range n {
			fmt.Fprintf(&want, "chunk %d\n", i)
		}
		if !bytes.Equal(b, want.Bytes()) {
			return fmt.Errorf("wrong stream: %d bytes, want %d", len(b), want.Len())
		}
		return nil
	}
}

func (l *load) idlePost(ctx context.Context, id int) error {
	body := randomBody("idlepost", id, 512+rand.IntN(2<<10))
	return l.do(l.newRequest(ctx, http.MethodPost, "idle.soak", "/echo", body), wantEqual(body))
}

func (l *load) idleGet(ctx context.Context, id int) error {
	s := strconv.Itoa(id)
	return l.do(l.newRequest(ctx, http.MethodGet, "idle.soak", "/fast?id="+s, nil), wantFast(s))
}

// dial opens a raw connection to the activator, closed when ctx ends.
func (l *load) dial(ctx context.Context) (net.Conn, *bufio.Reader, func(), error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", l.proxy)
	if err != nil {
		return nil, nil, nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	return c, bufio.NewReader(c), func() { stop(); c.Close() }, nil
}

// checkAnswer reads resp's body and checks that resp is 200 with a body
// for which check returns nil.
func checkAnswer(resp *http.Response, check func([]byte) error) error {
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return &statusError{code: resp.StatusCode, body: strings.TrimSpace(string(body[:min(len(body), 200)]))}
	}
	if err != nil {
		return fmt.Errorf("reading the body: %w", err)
	}
	return check(body)
}

// readOK reads one answer from br and checks it as do does.
func readOK(br *bufio.Reader, req *http.Request, check func([]byte) error) error {
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	return checkAnswer(resp, check)
}

// pipelined writes three GETs in one write, then reads the three answers,
// which must come in order.
func (l *load) pipelined(ctx context.Context, id int) error {
	c, br, done, err := l.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	var out bytes.Buffer
	for j := range 3 {
		fmt.Fprintf(&out, "GET /fast?id=%d-%d HTTP/1.1\r\nHost: capped.soak\r\nUser-Agent: soak\r\n\r\n", id, j)
	}
	if _, err := c.Write(out.Bytes()); err != nil {
		return err
	}
	req := &http.Request{Method: http.MethodGet}
	for j := range 3 {
		if err := readOK(br, req, wantFast(fmt.Sprintf("%d-%d", id, j))); err != nil {
			return fmt.Errorf("pipelined answer %d: %w", j+1, err)
		}
	}
	return nil
}

// dribble sends a 4 KiB body in 8 pieces over 0.2-0.6 s (well within the
// route's request timeout), then checks the echo.
func (l *load) dribble(ctx context.Context, id int) error {
	c, br, done, err := l.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	body := randomBody("dribble", id, 4<<10)
	if _, err := fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: capped.soak\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", len(body)); err != nil {
		return err
	}
	piece := len(body) / 8
	for i := 0; i < len(body); i += piece {
		time.Sleep(time.Duration(25+rand.IntN(50)) * time.Millisecond)
		if _, err := c.Write(body[i:min(i+piece, len(body))]); err != nil {
			return err
		}
	}
	return readOK(br, &http.Request{Method: http.MethodPost}, wantEqual(body))
}

// slowRead fetches /big (128 KiB) and reads it 4 KiB at a time, 5 ms
// apart: the activator has to wait for the client's window.
func (l *load) slowRead(ctx context.Context, id int) error {
	c, br, done, err := l.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: capped.soak\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return &statusError{code: resp.StatusCode, body: strings.TrimSpace(string(b))}
	}
	var got bytes.Buffer
	buf := make([]byte, 4<<10)
	for {
		n, err := resp.Body.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the body after %d bytes: %w", got.Len(), err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !bytes.Equal(got.Bytes(), bigPattern()) {
		return fmt.Errorf("wrong body: %d bytes, want %d", got.Len(), bigBody)
	}
	return nil
}

// vanish goes away on purpose (the deferred close): half of the time
// before the answer's head (the request may be queued or at the
// backend), half of the time in the middle of a streamed answer. An
// answer other than 200 that came before the client left is still a
// failure. X-Soak-Vanish tells the backend, which then does not count a
// cap overshoot that the early end of this request explains.
func (l *load) vanish(ctx context.Context, id int) error {
	c, br, done, err := l.dial(ctx)
	if err != nil {
		return err
	}
	// Recorded just before the close: the activator cannot notice the
	// client leave before.
	defer func() { l.left.leave(id); done() }()
	if id%2 == 0 {
		if _, err := fmt.Fprintf(c, "GET /fast?id=v HTTP/1.1\r\nHost: capped.soak\r\nX-Soak-Vanish: %d\r\n\r\n", id); err != nil {
			return err
		}
		time.Sleep(time.Duration(1+rand.IntN(20)) * time.Millisecond)
		return errClientGone
	}
	if _, err := fmt.Fprintf(c, "GET /stream?n=30 HTTP/1.1\r\nHost: capped.soak\r\nX-Soak-Vanish: %d\r\n\r\n", id); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return &statusError{code: resp.StatusCode, body: strings.TrimSpace(string(b))}
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "chunk 0\n" {
		return fmt.Errorf("first chunk %q: %v", line, err)
	}
	return errClientGone
}

// tally counts outcomes by request kind.
type tally struct {
	mu       sync.Mutex
	kinds    map[string]*kindTally
	examples []string // the first failures, in full
}

type kindTally struct {
	sent, ok, clientCaused int
	failed                 map[string]int // by reason
	lat                    []time.Duration
}

func newTally() *tally { return &tally{kinds: map[string]*kindTally{}} }

func (t *tally) add(name string, vanishes bool, err error, lat time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.kinds[name]
	if k == nil {
		k = &kindTally{failed: map[string]int{}}
		t.kinds[name] = k
	}
	k.sent++
	switch {
	case err == nil:
		k.ok++
		k.lat = append(k.lat, lat)
	case vanishes && errors.Is(err, errClientGone):
		k.clientCaused++
	default:
		reason := classify(err)
		k.failed[reason]++
		if len(t.examples) < 20 {
			t.examples = append(t.examples, fmt.Sprintf("%s %s: %s: %v", time.Now().Format("15:04:05.000"), name, reason, err))
		}
	}
}

// classify names a failure by status code or by kind of transport error.
func classify(err error) string {
	var se *statusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return strconv.Itoa(se.code)
	case strings.HasPrefix(err.Error(), "not sent"):
		return "not sent (client limit)"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection closed early"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case strings.Contains(err.Error(), "wrong"):
		return "wrong body"
	}
	return "other transport error"
}

func (t *tally) totals() (sent, ok, clientCaused, failed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range t.kinds {
		sent += k.sent
		ok += k.ok
		clientCaused += k.clientCaused
		for _, n := range k.failed {
			failed += n
		}
	}
	return
}

// percentiles returns the p50 and p99 latency of a kind's answered
// requests.
func (k *kindTally) percentiles() (p50, p99 time.Duration) {
	if len(k.lat) == 0 {
		return 0, 0
	}
	s := slices.Clone(k.lat)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return at(0.50), at(0.99)
}
