// Package testsmtp gives tests a real SMTP server: a private aiosmtpd
// (Debian's python3-aiosmtpd) started per test on a free 127.0.0.1 port,
// delivering every message into a Maildir in a temp directory that the
// test reads back. With TLS it offers STARTTLS (or speaks implicit TLS)
// with a certificate from a CA generated for it. For tests only.
package testsmtp

import (
	"bufio"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testcert"
)

// EnvRequire, set to 1, turns "no aiosmtpd installed" from a skip into a
// failure, so CI cannot pass by silently skipping.
const EnvRequire = "SESSION_AUTH_REQUIRE_SMTP"

// python is Debian's interpreter, where python3-aiosmtpd installs (a
// pyenv or virtualenv python3 first on PATH would not have it).
const python = "/usr/bin/python3"

const startTimeout = 15 * time.Second

// Mode is how the server speaks TLS.
type Mode int

const (
	// Plain offers no TLS.
	Plain Mode = iota
	// StartTLS offers (and requires) STARTTLS.
	StartTLS
	// Implicit speaks TLS from the first byte (smtps://).
	Implicit
)

// Server is a running aiosmtpd.
type Server struct {
	// Addr is host:port.
	Addr string
	// Dir is the Maildir messages are delivered to.
	Dir string
	// CAFile is the PEM certificate of the CA that signed the server's
	// certificate (StartTLS and Implicit); OtherCAFile signed nothing here.
	CAFile, OtherCAFile string
	mode                Mode

	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

// Available reports whether aiosmtpd is installed.
func Available() bool {
	return exec.Command(python, "-c", "import aiosmtpd").Run() == nil
}

// Start runs aiosmtpd for t, stopped at t.Cleanup. Without it, it fails
// the test if SESSION_AUTH_REQUIRE_SMTP=1 and skips it (loudly) otherwise.
func Start(t testing.TB, mode Mode) *Server {
	t.Helper()
	if !Available() {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("testsmtp: %s=1 but aiosmtpd is not installed (Debian package python3-aiosmtpd)", EnvRequire)
		}
		t.Skipf("SKIPPING: no SMTP server for the test: aiosmtpd is not installed (apt-get install python3-aiosmtpd; set %s=1 to make this a failure)", EnvRequire)
	}
	dir := t.TempDir()
	s := &Server{Dir: filepath.Join(dir, "maildir"), mode: mode}
	var tlsArgs []string
	if mode != Plain {
		ca := testcert.NewCA(t, "session-auth SMTP test CA")
		other := testcert.NewCA(t, "some other CA")
		s.CAFile = testcert.WritePEM(t, dir, "ca.crt", "CERTIFICATE", ca.DER)
		s.OtherCAFile = testcert.WritePEM(t, dir, "other-ca.crt", "CERTIFICATE", other.DER)
		cert, key := ca.Issue(t, "127.0.0.1", false)
		certFile := testcert.WritePEM(t, dir, "server.crt", "CERTIFICATE", cert)
		keyFile := testcert.WritePEM(t, dir, "server.key", "PRIVATE KEY", key)
		if mode == StartTLS {
			tlsArgs = []string{"--tlscert", certFile, "--tlskey", keyFile}
		} else {
			tlsArgs = []string{"--smtpscert", certFile, "--smtpskey", keyFile}
		}
	}
	var err error
	for range 3 {
		if err = s.start(dir, tlsArgs); err == nil {
			t.Cleanup(s.stop)
			return s
		}
	}
	t.Fatalf("testsmtp: starting aiosmtpd: %v", err)
	return nil
}

// URL is the server's smtp:// (or smtps://) URL.
func (s *Server) URL() string {
	if s.mode == Implicit {
		return "smtps://" + s.Addr
	}
	return "smtp://" + s.Addr
}

func (s *Server) start(dir string, tlsArgs []string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.Addr = l.Addr().String()
	l.Close()
	s.log = filepath.Join(dir, "aiosmtpd.log")
	out, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	args := append([]string{"-m", "aiosmtpd", "-n", "-l", s.Addr}, tlsArgs...)
	args = append(args, "-c", "aiosmtpd.handlers.Mailbox", s.Dir)
	s.cmd = exec.Command(python, args...)
	s.cmd.Stdout, s.cmd.Stderr = out, out
	s.cmd.SysProcAttr = sysProcAttr()
	s.exited = make(chan struct{})
	if err := s.cmd.Start(); err != nil {
		return err
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("aiosmtpd exited at startup; log:\n%s", s.Log())
		default:
		}
		if s.ready() {
			return nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("not answering on %s within %s; log:\n%s", s.Addr, startTimeout, s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready: a TCP connect (and, without implicit TLS, the 220 greeting).
func (s *Server) ready() bool {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	if s.mode == Implicit {
		return true
	}
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "220")
}

func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
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

// Stop stops the server now (to test a server that went down).
func (s *Server) Stop() { s.stop() }

// Log returns the end of aiosmtpd's output, for failure messages.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// Message is one delivered mail.
type Message struct {
	File    string
	Header  mail.Header
	Body    string
	To      string // the To header
	Subject string
}

// Messages returns the delivered messages, oldest first.
func (s *Server) Messages(t testing.TB) []Message {
	t.Helper()
	var out []Message
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(s.Dir, sub))
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			t.Fatal(err)
		}
		for _, e := range entries {
			path := filepath.Join(s.Dir, sub, e.Name())
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			m, err := mail.ReadMessage(f)
			if err != nil {
				f.Close()
				t.Fatalf("testsmtp: %s: %v", path, err)
			}
			body, err := io.ReadAll(m.Body)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, Message{File: path, Header: m.Header, Body: decodeBody(m.Header, string(body)),
				To: m.Header.Get("To"), Subject: m.Header.Get("Subject")})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out
}

// decodeBody undoes quoted-printable transfer encoding (go-mail's default).
func decodeBody(h mail.Header, body string) string {
	if !strings.EqualFold(h.Get("Content-Transfer-Encoding"), "quoted-printable") {
		return body
	}
	b, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(body)))
	if err != nil {
		return body
	}
	return string(b)
}

// WaitFor waits up to timeout for a delivered message to To that pred
// accepts (nil: any), and returns it.
func (s *Server) WaitFor(t testing.TB, to string, timeout time.Duration, pred func(Message) bool) Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, m := range s.Messages(t) {
			if strings.Contains(m.To, to) && (pred == nil || pred(m)) {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("testsmtp: no mail to %s within %s (%d delivered); server log:\n%s", to, timeout, len(s.Messages(t)), s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Count is the number of delivered messages to addr.
func (s *Server) Count(t testing.TB, to string) int {
	n := 0
	for _, m := range s.Messages(t) {
		if strings.Contains(m.To, to) {
			n++
		}
	}
	return n
}
