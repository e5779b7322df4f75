package testredis

import "syscall"

// sysProcAttr makes the kernel kill redis-server if the test binary dies
// without running its cleanups (e.g. on a -timeout panic), so no servers are
// left behind. Pdeathsig fires when the starting OS thread exits; Go keeps
// its threads alive unless a goroutine exits while locked to one.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
