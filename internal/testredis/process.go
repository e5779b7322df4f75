package testredis

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds how long a redis-server may take to answer PING.
const startTimeout = 10 * time.Second

// process is a private redis-server. It may be stopped and started again on
// the same port.
type process struct {
	bin, dir, addr string
	args           []string // extra redis-server options

	// Optional, for TLS and Sentinel servers: the command line for host
	// and port (default: a plain redis-server with args), and how to
	// check that it answers (default: PING on redis://addr/0).
	cmdline func(host, port string) []string
	ready   func(addr string) error

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

// startProcess starts redis-server on a free port, retrying with another port
// if one is taken between choosing it and redis binding it.
func startProcess(t testing.TB, bin string, args ...string) *process {
	t.Helper()
	return startCustom(t, &process{bin: bin, dir: t.TempDir(), args: args})
}

// startCustom starts p (bin, dir and the optional fields set) on a free
// port, as startProcess does.
func startCustom(t testing.TB, p *process) *process {
	t.Helper()
	var err error
	for range 3 {
		if p.addr, err = freeAddr(); err != nil {
			break
		}
		if err = p.start(); err == nil {
			return p
		}
	}
	t.Fatalf("testredis: starting %s: %v", p.bin, err)
	return nil
}

// start launches redis-server on p.addr and waits until it answers PING.
func (p *process) start() error {
	host, port, _ := net.SplitHostPort(p.addr)
	logPath := filepath.Join(p.dir, "redis.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own descriptor
	var args []string
	if p.cmdline != nil {
		args = p.cmdline(host, port)
	} else {
		args = append([]string{
			"--port", port, "--bind", host,
			"--save", "", "--appendonly", "no",
			"--dir", p.dir,
			"--daemonize", "no", "--logfile", ""}, p.args...) // later options win
	}
	cmd := exec.Command(p.bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()

	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()

	ready := p.ready
	if ready == nil {
		ready = func(addr string) error { return ping("redis://" + addr + "/0") }
	}
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited at startup; log:\n%s", tail(logPath))
		default:
		}
		err := ready(p.addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return fmt.Errorf("no PING answer within %s (%v); log:\n%s", startTimeout, err, tail(logPath))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the server, if running, and waits for it to exit. Data is not
// persisted, so there is nothing to shut down gracefully.
func (p *process) stop() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Addr().(*net.TCPAddr).Port)), nil
}

// tail returns the last lines of a log file for error messages.
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

var errNotPong = errors.New("unexpected PING reply")
