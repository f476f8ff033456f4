//go:build !linux

package main

import "syscall"

// sysProcAttr returns nil: process groups and parent-death signals are set
// up on Linux only; elsewhere the demo's own shutdown stops the scaler.
func sysProcAttr() *syscall.SysProcAttr {
	return nil
}
