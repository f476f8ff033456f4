//go:build !linux

package activator

import "log/slog"

// connWatcher needs epoll: elsewhere requests wait on their own goroutine.
type connWatcher struct{}

func newConnWatcher(*slog.Logger) *connWatcher { return nil }

func (*connWatcher) add(*serverConn) uint64     { return 0 }
func (*connWatcher) remove(*serverConn, uint64) {}
func (*connWatcher) close()                     {}

func (*connWatcher) watched() int { return 0 }

const watchedWhenParked = 0
