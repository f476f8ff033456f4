//go:build !linux

package promtest

import "syscall"

// sysProcAttr returns nil: parent-death signals are Linux-only, so elsewhere
// only Stop, Kill and test cleanups stop Prometheus.
func sysProcAttr() *syscall.SysProcAttr {
	return nil
}
