//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package activator

// newIdleCheck returns nil where recv(MSG_PEEK|MSG_DONTWAIT) is not at
// hand: idle connections are then reused unchecked, and one the backend
// closed is noticed only when the request fails on it.
func newIdleCheck(*upConn) func(fd uintptr) { return nil }
