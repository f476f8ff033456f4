package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
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
	active    int
	maxActive int
	served    int
	overs     []overshoot
}

// overshoot is one moment when the backend served more requests at once
// than the route's cap allows.
type overshoot struct {
	at      time.Time
	backend string
	excess  int
}

func startBackend(name string, idle time.Duration, limit int) (*backend, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &backend{name: name, addr: l.Addr().String(), cap: limit}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fast", b.fast)
	mux.HandleFunc("POST /echo", b.echo)
	mux.HandleFunc("GET /stream", b.stream)
	mux.HandleFunc("GET /big", b.big)
	b.srv = &http.Server{Handler: mux, IdleTimeout: idle, ReadHeaderTimeout: 10 * time.Second}
	go b.srv.Serve(l)
	return b, nil
}

func (b *backend) close() { b.srv.Close() }

// enter counts a request in; leave must follow exactly once, before the
// last byte of the answer is written, so that the activator cannot see
// the answer end (and free the slot) before the backend counted it out.
func (b *backend) enter() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.active++
	b.served++
	b.maxActive = max(b.maxActive, b.active)
	if b.cap > 0 && b.active > b.cap {
		b.overs = append(b.overs, overshoot{at: time.Now(), backend: b.name, excess: b.active - b.cap})
	}
}

func (b *backend) leave() {
	b.mu.Lock()
	b.active--
	b.mu.Unlock()
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

func (b *backend) fast(w http.ResponseWriter, r *http.Request) {
	b.enter()
	think(r.Context())
	body := fmt.Sprintf("fast %s %s\n", b.name, r.URL.RawQuery)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	b.leave()
	io.WriteString(w, body)
}

// echo answers with the request body, after reading all of it.
func (b *backend) echo(w http.ResponseWriter, r *http.Request) {
	b.enter()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		b.leave()
		return
	}
	think(r.Context())
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	b.leave()
	w.Write(body)
}

// stream sends n chunks ("chunk i\n"), 10-30 ms apart, flushed one by one
// like tokens of a generation.
func (b *backend) stream(w http.ResponseWriter, r *http.Request) {
	b.enter()
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	n = min(max(n, 1), 100)
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	for i := range n {
		if i == n-1 {
			b.leave()
		}
		if _, err := fmt.Fprintf(w, "chunk %d\n", i); err != nil {
			if i < n-1 {
				b.leave()
			}
			return
		}
		fl.Flush()
		if i < n-1 {
			t := time.NewTimer(time.Duration(10+rand.IntN(21)) * time.Millisecond)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				b.leave()
				return
			}
		}
	}
}

// big sends bigBody bytes of a known pattern with a Content-Length.
func (b *backend) big(w http.ResponseWriter, r *http.Request) {
	b.enter()
	think(r.Context())
	body := bigPattern()
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if _, err := w.Write(body[:len(body)-1]); err != nil {
		b.leave()
		return
	}
	b.leave()
	w.Write(body[len(body)-1:])
}

func bigPattern() []byte {
	p := make([]byte, bigBody)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return p
}
