//go:build linux

package main

import "syscall"

// sysProcAttr puts the scaler in its own process group, so that a
// terminal's Ctrl-C reaches only the demo, which then stops the scaler with
// SIGTERM and checks that it exits cleanly; and it makes the scaler get
// SIGKILL if the demo dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
