// Package testphp gives tests a real PHP: a private php-fpm (Debian's
// php-fpm package) started per test with its own configuration in a temp
// directory, listening on a free 127.0.0.1 port, run as the current user.
// It is for tests only.
package testphp

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EnvRequire, set to 1, turns "no php-fpm installed" from a skip into a
// failure, so CI cannot pass by silently skipping.
const EnvRequire = "SESSION_AUTH_REQUIRE_PHP"

// startTimeout bounds how long php-fpm may take to accept connections.
const startTimeout = 10 * time.Second

// Server is a running php-fpm.
type Server struct {
	// Addr is the FastCGI address, host:port (for Caddy's php_fastcgi).
	Addr string

	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

// binary finds php-fpm: Debian installs it as /usr/sbin/php-fpm<version>.
func binary() string {
	for _, name := range []string{"php-fpm", "php-fpm8.2", "php-fpm8.3", "php-fpm8.4", "php-fpm8.1"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if m, _ := filepath.Glob("/usr/sbin/php-fpm*"); len(m) > 0 {
		return m[0]
	}
	return ""
}

// Start runs php-fpm for t, stopped at t.Cleanup. Without php-fpm it fails
// the test if SESSION_AUTH_REQUIRE_PHP=1 and skips it (loudly) otherwise.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := binary()
	if bin == "" {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("testphp: %s=1 but php-fpm is not installed (Debian package php-fpm)", EnvRequire)
		}
		t.Skipf("SKIPPING: php-fpm is not installed (apt-get install php-fpm; set %s=1 to make this a failure)", EnvRequire)
	}
	dir := t.TempDir()
	var err error
	for range 3 {
		var s *Server
		if s, err = start(bin, dir); err == nil {
			t.Cleanup(s.stop)
			return s
		}
	}
	t.Fatalf("testphp: starting %s: %v", bin, err)
	return nil
}

func start(bin, dir string) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()

	s := &Server{Addr: addr, log: filepath.Join(dir, "php-fpm.log"), exited: make(chan struct{})}
	conf := filepath.Join(dir, "php-fpm.conf")
	var pool strings.Builder
	fmt.Fprintf(&pool, "[global]\npid = %s\nerror_log = %s\ndaemonize = no\n\n", filepath.Join(dir, "php-fpm.pid"), s.log)
	fmt.Fprintf(&pool, "[test]\nlisten = %s\npm = static\npm.max_children = 2\ncatch_workers_output = yes\n", addr)
	args := []string{"--nodaemonize", "--fpm-config", conf, "--prefix", dir, "-n"}
	if os.Geteuid() == 0 {
		// php-fpm refuses to run its workers as root unless told to.
		pool.WriteString("user = root\ngroup = root\n")
		args = append(args, "--allow-to-run-as-root")
	}
	if err := os.WriteFile(conf, []byte(pool.String()), 0o600); err != nil {
		return nil, err
	}
	out, err := os.OpenFile(filepath.Join(dir, "php-fpm.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own descriptor
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = out, out
	s.cmd.SysProcAttr = sysProcAttr()
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("php-fpm exited at startup; log:\n%s\n%s", tail(s.log), tail(filepath.Join(dir, "php-fpm.out")))
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("not listening on %s within %s; log:\n%s", addr, startTimeout, tail(s.log))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop asks the master to stop its workers and exit (SIGTERM), then kills
// what is left of its process group.
func (s *Server) stop() {
	pid := s.cmd.Process.Pid
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	killGroup(pid)
}

// Log returns the end of php-fpm's error log, for test failure messages.
func (s *Server) Log() string { return tail(s.log) }

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}
