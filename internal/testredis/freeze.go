//go:build unix

package testredis

import "syscall"

// Freeze suspends a private server (SIGSTOP): connections are still
// accepted by the kernel, but nothing answers, as with a hung Redis. Thaw
// resumes it. Both are no-ops for an external or stopped server; Stop
// works on a frozen one.
func (s *Server) Freeze() { s.signal(syscall.SIGSTOP) }

// Thaw resumes a server suspended by Freeze.
func (s *Server) Thaw() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	if s.local == nil {
		return
	}
	s.local.mu.Lock()
	defer s.local.mu.Unlock()
	if s.local.cmd != nil {
		_ = s.local.cmd.Process.Signal(sig)
	}
}
