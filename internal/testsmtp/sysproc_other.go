//go:build !linux

package testsmtp

import "syscall"

// sysProcAttr: only Linux can tie the child's life to ours.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// killGroup: without a process group of its own, the master's SIGTERM
// (stop) is what stops the workers.
func killGroup(int) {}
