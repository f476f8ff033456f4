package activator

import (
	"log/slog"
	"sync"
	"syscall"
)

// connWatcher notices parked connections' clients going away (a FIN or a
// reset), and those of held requests whose body is not read yet, with one epoll set and one goroutine for all of them, instead of
// a goroutine reading each connection. The descriptors stay Go's: they
// are only added to a second epoll set, edge-triggered, and taken out
// before the connection goes on.
type connWatcher struct {
	logger *slog.Logger
	start  sync.Once
	epfd   int
	wake   [2]int // a pipe whose read end stops the loop
	err    error  // from setting up; then nothing is watched

	mu     sync.Mutex
	nextID uint64
	conns  map[uint64]*serverConn
	closed bool
}

func newConnWatcher(logger *slog.Logger) *connWatcher {
	return &connWatcher{logger: logger, conns: map[uint64]*serverConn{}, nextID: 1}
}

const (
	epollRDHUP = 0x2000
	epollET    = 1 << 31
)

func (w *connWatcher) setup() {
	w.epfd, w.err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if w.err != nil {
		return
	}
	if w.err = syscall.Pipe2(w.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); w.err != nil {
		syscall.Close(w.epfd)
		return
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	if w.err = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, w.wake[0], &ev); w.err != nil {
		syscall.Close(w.epfd)
		syscall.Close(w.wake[0])
		syscall.Close(w.wake[1])
		return
	}
	go w.loop()
}

// add watches c's connection and returns its id, or 0 when it cannot
// (the request then waits for its release or timeout without it).
func (w *connWatcher) add(c *serverConn) uint64 {
	w.start.Do(w.setup)
	if w.err != nil {
		return 0
	}
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return 0
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return 0
	}
	id := w.nextID
	w.nextID++
	w.conns[id] = c
	w.mu.Unlock()
	var cerr error
	err = raw.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | epollRDHUP | epollET, Fd: int32(id), Pad: int32(id >> 32)}
		cerr = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		w.mu.Lock()
		delete(w.conns, id)
		w.mu.Unlock()
		return 0
	}
	return id
}

// remove stops watching c's connection.
func (w *connWatcher) remove(c *serverConn, id uint64) {
	w.mu.Lock()
	delete(w.conns, id)
	w.mu.Unlock()
	if sc, ok := c.nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			// A closed connection left the set when its descriptor closed.
			_ = raw.Control(func(fd uintptr) {
				_ = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
			})
		}
	}
}

func (w *connWatcher) loop() {
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(w.epfd, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			w.logger.Error("watching held connections failed; held requests now wait for their release or timeout", "err", err)
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd == 0 && ev.Pad == 0 && ev.Events&syscall.EPOLLIN != 0 {
				w.mu.Lock()
				closed := w.closed
				w.mu.Unlock()
				if closed {
					syscall.Close(w.epfd)
					syscall.Close(w.wake[0])
					return
				}
				continue
			}
			// Bytes alone (a pipelined request) are no reason to act.
			if ev.Events&(epollRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) == 0 {
				continue
			}
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			// Under the lock, so that once remove returns no report of
			// this id can reach the connection (it may park again).
			w.mu.Lock()
			if c := w.conns[id]; c != nil {
				c.clientGone()
			}
			w.mu.Unlock()
		}
	}
}

// close stops the loop. Connections still watched are not told.
func (w *connWatcher) close() {
	if w == nil {
		return
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.mu.Unlock()
	w.start.Do(func() { w.err = syscall.EINVAL })
	if w.err == nil {
		syscall.Write(w.wake[1], []byte{1})
		syscall.Close(w.wake[1])
	}
}

// watched returns how many connections are watched.
func (w *connWatcher) watched() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.conns)
}

// watchedWhenParked is what watched returns with one request parked.
const watchedWhenParked = 1
