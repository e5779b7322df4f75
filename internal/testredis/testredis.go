// Package testredis gives tests a real Redis: a private redis-server started
// per test when one is installed, or an external one named by an environment
// variable. It is for tests only.
package testredis

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// Environment variables read by Start.
const (
	// EnvURL names an external Redis (redis:// URL or host:port) to use
	// when redis-server is not on PATH.
	EnvURL = "SESSION_AUTH_TEST_REDIS"
	// EnvRequire, set to 1, turns "no Redis available" from a skip into a
	// failure, so CI cannot pass by silently skipping.
	EnvRequire = "SESSION_AUTH_REQUIRE_REDIS"
)

// Server is a Redis for one test.
type Server struct {
	// Addr is the server's host:port.
	Addr string
	// Prefix is a key prefix unique to this test ("test:<name>:<random>:").
	// Tests should put every key under it so that they cannot collide on
	// a shared external server; its keys are deleted at cleanup there.
	Prefix string

	url   string
	t     testing.TB
	local *process // nil for an external server
}

// Start returns a Redis for t. If redis-server is on PATH it starts a private
// one on a free 127.0.0.1 port, with no persistence and a t.TempDir() working
// directory, waits until it answers PING and stops it at t.Cleanup. Otherwise
// it uses the server named by SESSION_AUTH_TEST_REDIS, if set. Otherwise it
// fails the test if SESSION_AUTH_REQUIRE_REDIS=1 and skips it (loudly) if not.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t)
}

// StartPersistent is Start, except that a private server keeps its data
// across Stop and Restart (append-only file, fsync on every write), as a
// production Redis with persistence does, so tests can take Redis down and
// bring it back with its sessions.
func StartPersistent(t testing.TB) *Server {
	t.Helper()
	return start(t, "--appendonly", "yes", "--appendfsync", "always")
}

func start(t testing.TB, args ...string) *Server {
	t.Helper()
	s := &Server{t: t, Prefix: uniquePrefix(t)}
	if bin, err := exec.LookPath("redis-server"); err == nil {
		s.local = startProcess(t, bin, args...)
		s.Addr = s.local.addr
		s.url = "redis://" + s.Addr + "/0"
		t.Cleanup(s.local.stop)
		return s
	}
	if raw := os.Getenv(EnvURL); raw != "" {
		s.useExternal(raw)
		return s
	}
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("testredis: %s=1 but there is no redis-server on PATH and %s is unset: install redis-server (Debian package redis-server) or point %s at a Redis",
			EnvRequire, EnvURL, EnvURL)
	}
	t.Skipf("SKIPPING: no redis-server on PATH and %s unset; install redis-server or set %s=redis://host:port/db (set %s=1 to make this a failure)",
		EnvURL, EnvURL, EnvRequire)
	return nil
}

// URL returns the server's redis:// URL, e.g. redis://127.0.0.1:6379/0.
func (s *Server) URL() string { return s.url }

// Private reports whether the server was started for this test (and so can
// be stopped and restarted). Fault-injection tests should skip otherwise.
func (s *Server) Private() bool { return s.local != nil }

// Stop kills a private server, e.g. to test behaviour while Redis is down.
// It is a no-op for an external server, and for one already stopped.
func (s *Server) Stop() {
	if s.local != nil {
		s.local.stop()
	}
}

// Restart starts a stopped private server again on the same port (its data
// is gone: nothing is persisted), failing the test if it does not come up.
// A running server is stopped first. It is a no-op for an external server.
// Like t.Fatal, it must be called from the test's goroutine.
func (s *Server) Restart() {
	s.t.Helper()
	if s.local == nil {
		return
	}
	s.local.stop()
	if err := s.local.start(); err != nil {
		s.t.Fatalf("testredis: restarting redis-server on %s: %v", s.Addr, err)
	}
}

// useExternal points s at the server named by raw (a URL or host:port),
// checks that it answers and arranges for s.Prefix's keys to be deleted.
func (s *Server) useExternal(raw string) {
	s.t.Helper()
	s.url = raw
	if !strings.Contains(raw, "://") {
		s.url = "redis://" + raw + "/0"
	}
	u, err := url.Parse(s.url)
	if err != nil || u.Host == "" {
		s.t.Fatalf("testredis: %s=%q is neither a redis:// URL nor host:port", EnvURL, raw)
	}
	s.Addr = u.Host
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		s.Addr = net.JoinHostPort(u.Host, "6379")
	}
	if err := ping(s.url); err != nil {
		s.t.Fatalf("testredis: %s: Redis not reachable: %v", EnvURL, err)
	}
	s.t.Cleanup(func() {
		if err := deletePrefix(s.url, s.Prefix); err != nil {
			s.t.Errorf("testredis: deleting keys %s*: %v", s.Prefix, err)
		}
	})
}

var unsafeKeyChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func uniquePrefix(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "test:" + unsafeKeyChars.ReplaceAllString(t.Name(), "_") + ":" + hex.EncodeToString(b[:]) + ":"
}
