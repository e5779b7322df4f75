package testredis

import (
	"strings"
	"testing"
)

func TestStartAnswersPing(t *testing.T) {
	s := Start(t)
	if err := ping(s.URL()); err != nil {
		t.Fatalf("PING %s: %v", s.URL(), err)
	}
	if !strings.Contains(s.URL(), s.Addr) {
		t.Errorf("URL %q does not contain Addr %q", s.URL(), s.Addr)
	}
	if s2 := Start(t); s2.Prefix == s.Prefix {
		t.Errorf("two servers share prefix %q", s.Prefix)
	}
}

func TestStopRestartSamePort(t *testing.T) {
	s := Start(t)
	if !s.Private() {
		t.Skip("external Redis: cannot stop it")
	}
	s.Stop()
	if err := ping(s.URL()); err == nil {
		t.Fatal("PING succeeded after Stop")
	}
	s.Stop() // idempotent
	s.Restart()
	if err := ping(s.URL()); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	s.Restart() // restarting a running server works too
	if err := ping(s.URL()); err != nil {
		t.Fatalf("PING after second Restart: %v", err)
	}
}

// TestExternalServer hides redis-server from PATH and points EnvURL at a
// private server, to exercise the external mode and its key cleanup.
func TestExternalServer(t *testing.T) {
	backing := Start(t)
	if !backing.Private() {
		t.Skip("already running against an external Redis")
	}
	c, err := dial(backing.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do("SET", "unrelated", "1"); err != nil {
		t.Fatal(err)
	}

	t.Setenv("PATH", "")
	for _, env := range []string{backing.URL(), backing.Addr} {
		t.Setenv(EnvURL, env)
		var prefix string
		t.Run("", func(t *testing.T) {
			s := Start(t)
			if s.Private() || s.Addr != backing.Addr {
				t.Fatalf("got private=%v addr=%s, want external %s", s.Private(), s.Addr, backing.Addr)
			}
			s.Stop() // no-op
			s.Restart()
			prefix = s.Prefix
			if _, err := c.Do("SET", prefix+"k", "v"); err != nil {
				t.Fatal(err)
			}
		})
		n, err := c.Do("EXISTS", prefix+"k", "unrelated")
		if err != nil || n.(int64) != 1 {
			t.Errorf("after cleanup EXISTS(prefixed, unrelated) = %v, %v; want 1 (only unrelated)", n, err)
		}
	}
}

// fakeTB records Skipf/Fatalf instead of stopping the real test.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

type stopped struct{}

func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = format
	panic(stopped{})
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = format
	panic(stopped{})
}

func startFake(t *testing.T) (f *fakeTB) {
	f = &fakeTB{TB: t}
	defer func() {
		if r := recover(); r != nil && r != (stopped{}) {
			panic(r)
		}
	}()
	Start(f)
	t.Fatal("Start returned without a Redis available")
	return f
}

func TestNoRedisSkipsOrFails(t *testing.T) {
	t.Setenv("PATH", "")
	t.Setenv(EnvURL, "")
	t.Setenv(EnvRequire, "")
	if f := startFake(t); !strings.HasPrefix(f.skipped, "SKIPPING:") || f.failed != "" {
		t.Errorf("without Redis: skipped=%q failed=%q; want a loud skip", f.skipped, f.failed)
	}
	t.Setenv(EnvRequire, "1")
	if f := startFake(t); f.failed == "" || f.skipped != "" {
		t.Errorf("with %s=1: skipped=%q failed=%q; want a failure", EnvRequire, f.skipped, f.failed)
	}
}

func TestStartPersistentKeepsData(t *testing.T) {
	s := StartPersistent(t)
	if !s.Private() {
		t.Skip("external Redis: cannot restart it")
	}
	c, err := dial(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do("SET", s.Prefix+"k", "v"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	s.Stop() // SIGKILL: only what was fsynced survives
	s.Restart()
	if c, err = dial(s.URL()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v, err := c.Do("GET", s.Prefix+"k"); err != nil || string(v.([]byte)) != "v" {
		t.Fatalf("after restart GET = %v, %v", v, err)
	}
}

func TestStartTLS(t *testing.T) {
	s := StartTLS(t, true)
	if v, err := s.Do("PING"); err != nil || v != "PONG" {
		t.Fatalf("PING over TLS = %v, %v", v, err)
	}
	// The plain port is off: a plain client gets nothing sensible there.
	if err := ping("redis://" + s.Addr + "/0"); err == nil {
		t.Fatal("plain PING answered on the TLS port")
	}
	s.AddUser("app", "app-secret", "~*", "+@all")
	if v, err := s.Do("ACL", "WHOAMI"); err != nil || string(v.([]byte)) != "default" {
		t.Fatalf("ACL WHOAMI = %v, %v", v, err)
	}
}

func TestStartSentinels(t *testing.T) {
	s := StartSentinels(t, "")
	addr, err := s.MasterAddr()
	if err != nil || addr != s.Servers[0].Addr {
		t.Fatalf("master = %q, %v; want %s", addr, err, s.Servers[0].Addr)
	}
	if !strings.HasPrefix(s.URL(""), "redis+sentinel://"+s.Addrs[0]+",") {
		t.Errorf("URL %q", s.URL(""))
	}
	s.WaitReplicated(addr)
}
