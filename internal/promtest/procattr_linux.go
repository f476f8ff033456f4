//go:build linux

package promtest

import "syscall"

// sysProcAttr makes the Prometheus process get SIGKILL when the thread that
// started it (and so the test process) dies, and puts it in its own process
// group, out of reach of a terminal's SIGINT to the test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
