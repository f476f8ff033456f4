package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// bigBody is the size of /big's answer, read slowly by slow clients.
const bigBody = 128 << 10

// backend is one upstream server: real HTTP on 127.0.0.1 with a short
// keep-alive (uvicorn closes idle connections after 5 s; these close
// sooner, so that the activator meets closed idle connections often). It
// answers after 5-50 ms, streams some answers, and counts the requests it
// serves at once, to check the route's cap.
type backend struct {
	name string
	addr string
	cap  int // the route's endpointConcurrency; 0: not checked
	srv  *http.Server

	mu        sync.Mutex
	active    map[*call]struct{}
	maxActive int
	served    int
	overs     []overshoot
}

// call is one request the backend serves.
type call struct {
	// vanishing: the client said (X-Soak-Vanish) it will go away; id is
	// the value of that header, the request's id.
	vanishing bool
	id        int
	returned  atomic.Bool
	// abortedAt is when the request was cancelled before the handler
	// returned (the activator closed the connection), in Unix
	// nanoseconds; 0 if it was not.
	abortedAt atomic.Int64
}

// overshoot is one moment when the backend served more requests at once
// than the route's cap allows, with the requests it was serving.
type overshoot struct {
	at      time.Time
	backend string
	excess  int
	calls   []*call
}

// explained reports whether clients that went away explain the
// overshoot: the activator frees a request's slot when its client goes,
// and the backend notices the aborted request a little later, or not at
// all when its handler ends first (it writes into a connection the
// activator closed, and nothing fails). At least excess of the requests
// being served must have been from clients that went away: closed their
// connection before the overshoot (left), or, if that is not known,
// aborted before, or within 100 ms after, it.
func (o overshoot) explained(left *departures) bool {
	n := 0
	for _, c := range o.calls {
		if !c.vanishing {
			continue
		}
		if at, ok := left.at(c.id); ok && at <= o.at.UnixNano() {
			n++
		} else if at := c.abortedAt.Load(); at != 0 && at <= o.at.Add(100*time.Millisecond).UnixNano() {
			n++
		}
	}
	return n >= o.excess
}

// departures records when each vanishing client closed its connection,
// by request id (the clients and backends share the process).
type departures struct{ m sync.Map }

func (d *departures) leave(id int) { d.m.Store(id, time.Now().UnixNano()) }

func (d *departures) at(id int) (int64, bool) {
	v, ok := d.m.Load(id)
	if !ok {
		return 0, false
	}
	return v.(int64), true
}

// describe tells the requests being served at an overshoot that are
// not plainly in progress: those from clients that went away, with when
// each client left and when the backend saw the request aborted, relative
// to the overshoot, so that a departure seen late can be told from a real
// excess.
func (o overshoot) describe(left *departures) string {
	var parts []string
	vanishing := 0
	for _, c := range o.calls {
		if !c.vanishing {
			continue
		}
		vanishing++
		what := "not aborted"
		if at := c.abortedAt.Load(); at != 0 {
			what = fmt.Sprintf("aborted %+dms", time.Duration(at-o.at.UnixNano()).Milliseconds())
		}
		if at, ok := left.at(c.id); ok {
			what += fmt.Sprintf(", client left %+dms", time.Duration(at-o.at.UnixNano()).Milliseconds())
		}
		parts = append(parts, what)
	}
	if vanishing == 0 {
		return fmt.Sprintf("%d requests, none from a client that went away", len(o.calls))
	}
	return fmt.Sprintf("%d requests, %d from clients that went away (%s)", len(o.calls), vanishing, strings.Join(parts, ", "))
}

func startBackend(name string, idle time.Duration, limit int) (*backend, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &backend{name: name, addr: l.Addr().String(), cap: limit, active: map[*call]struct{}{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fast", b.serve(fast))
	mux.HandleFunc("POST /echo", b.serve(echo))
	mux.HandleFunc("GET /stream", b.serve(stream))
	mux.HandleFunc("GET /big", b.serve(big))
	// Anything else is a request the clients never send: a request
	// boundary lost on the way (leftover body bytes read as the start of
	// the next request make a method such as "QZXGET").
	mux.HandleFunc("/", b.unexpected)
	b.srv = &http.Server{Handler: mux, IdleTimeout: idle, ReadHeaderTimeout: 10 * time.Second}
	go b.srv.Serve(l)
	return b, nil
}

func (b *backend) close() { b.srv.Close() }

func (b *backend) unexpected(w http.ResponseWriter, r *http.Request) {
	m := r.Method
	if len(m) > 80 {
		m = fmt.Sprintf("%s…%s (%d bytes)", m[:60], m[len(m)-20:], len(m))
	}
	w.Header().Set("Connection", "close")
	http.Error(w, fmt.Sprintf("backend %s got a request no client sent: method %q, target %q", b.name, m, r.RequestURI), http.StatusTeapot)
}

// serve wraps a handler: it counts the request in, and notes whether the
// request was cancelled before the handler returned. The handler calls
// leave exactly once, before the last byte of its answer, so that the
// activator cannot see the answer end (and free the slot) before the
// backend counted the request out.
func (b *backend) serve(h func(w http.ResponseWriter, r *http.Request, leave func())) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := &call{vanishing: r.Header.Get("X-Soak-Vanish") != ""}
		c.id, _ = strconv.Atoi(r.Header.Get("X-Soak-Vanish"))
		stop := context.AfterFunc(r.Context(), func() {
			if !c.returned.Load() {
				c.abortedAt.Store(time.Now().UnixNano())
			}
		})
		defer stop()
		defer c.returned.Store(true)
		b.mu.Lock()
		b.active[c] = struct{}{}
		b.served++
		b.maxActive = max(b.maxActive, len(b.active))
		if b.cap > 0 && len(b.active) > b.cap {
			ov := overshoot{at: time.Now(), backend: b.name, excess: len(b.active) - b.cap}
			for a := range b.active {
				ov.calls = append(ov.calls, a)
			}
			b.overs = append(b.overs, ov)
		}
		b.mu.Unlock()
		var once sync.Once
		leave := func() {
			once.Do(func() {
				b.mu.Lock()
				delete(b.active, c)
				b.mu.Unlock()
			})
		}
		defer leave()
		h(w, r, leave)
	}
}

func (b *backend) stats() (served, maxActive int, overs []overshoot) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.served, b.maxActive, append([]overshoot(nil), b.overs...)
}

// think waits 5-50 ms, or less if the request is cancelled (the activator
// closed the connection because its client went away).
func think(ctx context.Context) {
	t := time.NewTimer(time.Duration(5+rand.IntN(46)) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func fast(w http.ResponseWriter, r *http.Request, leave func()) {
	think(r.Context())
	body := fmt.Sprintf("fast %s\n", r.URL.RawQuery)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	leave()
	io.WriteString(w, body)
}

// echo answers with the request body, after reading all of it.
func echo(w http.ResponseWriter, r *http.Request, leave func()) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	think(r.Context())
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	leave()
	w.Write(body)
}

// stream sends n chunks ("chunk i\n"), 10-30 ms apart, flushed one by one
// like tokens of a generation.
func stream(w http.ResponseWriter, r *http.Request, leave func()) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	n = min(max(n, 1), 100)
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	for i := range n {
		if i == n-1 {
			leave()
		}
		if _, err := fmt.Fprintf(w, "chunk %d\n", i); err != nil {
			return
		}
		fl.Flush()
		if i < n-1 {
			t := time.NewTimer(time.Duration(10+rand.IntN(21)) * time.Millisecond)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
	}
}

// big sends bigBody bytes of a known pattern with a Content-Length.
func big(w http.ResponseWriter, r *http.Request, leave func()) {
	think(r.Context())
	body := bigPattern()
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if _, err := w.Write(body[:len(body)-1]); err != nil {
		return
	}
	leave()
	w.Write(body[len(body)-1:])
}

func bigPattern() []byte {
	p := make([]byte, bigBody)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return p
}
