package testsmtp

import "syscall"

// sysProcAttr puts the SMTP server in its own process group (so its workers can be
// stopped with it) and has the kernel send the master SIGTERM, which stops
// the workers too, if the test binary dies without running its cleanups.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// killGroup kills whatever is left in the process group that pgid leads.
func killGroup(pgid int) { _ = syscall.Kill(-pgid, syscall.SIGKILL) }
