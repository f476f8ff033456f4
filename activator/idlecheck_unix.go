//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package activator

import "syscall"

// newIdleCheck returns the check of c's socket before c is reused: one
// recv(MSG_PEEK|MSG_DONTWAIT), which tells at once, without blocking and
// without taking a byte, whether the backend closed the connection (FIN:
// 0 bytes, RST: an error) or wrote to it unasked (a 408 before closing),
// while it was idle. Only "would block" leaves the connection usable. It
// is made once per connection, so that a check allocates nothing.
func newIdleCheck(c *upConn) func(fd uintptr) {
	return func(fd uintptr) {
		for {
			n, _, err := syscall.Recvfrom(int(fd), c.scratch[:1], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if err == syscall.EINTR {
				continue
			}
			c.idleOK = n <= 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
			return
		}
	}
}
