package testredis

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// EnvRequireSentinel, set to 1, turns "redis-sentinel is not installed"
// from a skip into a failure.
const EnvRequireSentinel = "SESSION_AUTH_REQUIRE_SENTINEL"

// Sentinel timings: short, so that a failover takes a few seconds.
const (
	// DownAfter is the Sentinels' down-after-milliseconds: how long the
	// master must be unreachable before they call it down.
	DownAfter = time.Second
	// FailoverTimeout is their failover-timeout.
	FailoverTimeout = 5 * time.Second
)

// Sentinels is a private Redis master, one replica of it and three
// Sentinels watching them (quorum 2), each its own process on a free
// 127.0.0.1 port with a temp dir.
type Sentinels struct {
	// MasterName is the name the Sentinels monitor the master under.
	MasterName string
	// Addrs are the Sentinels' host:port addresses.
	Addrs []string
	// Servers are the data servers: [0] the master at start, [1] its
	// replica. Stop one to kill it (SIGKILL).
	Servers []*Server

	t        testing.TB
	password string
}

// StartSentinels starts a master, a replica and three Sentinels, and waits
// until the replica is in sync and every Sentinel knows the replica and
// the other two Sentinels (SENTINEL CKQUORUM). It skips (or fails, with
// SESSION_AUTH_REQUIRE_SENTINEL=1) without redis-server and redis-sentinel.
//
// With password set, the Sentinels require it (requirepass, and
// sentinel-pass among themselves); the data servers need none.
func StartSentinels(t testing.TB, password string) *Sentinels {
	t.Helper()
	server, err1 := exec.LookPath("redis-server")
	sentinel, err2 := exec.LookPath("redis-sentinel")
	if err1 != nil || err2 != nil {
		if os.Getenv(EnvRequireSentinel) == "1" {
			t.Fatalf("testredis: %s=1 but redis-server or redis-sentinel is not on PATH (Debian packages redis-server, redis-sentinel)", EnvRequireSentinel)
		}
		t.Skip("SKIPPING: redis-server and redis-sentinel (Debian packages) are needed for the Sentinel tests (set " +
			EnvRequireSentinel + "=1 to make this a failure)")
	}
	s := &Sentinels{MasterName: "sessionmaster", t: t, password: password}
	master := &Server{t: t, Prefix: uniquePrefix(t), local: startProcess(t, server)}
	master.Addr, master.url = master.local.addr, "redis://"+master.local.addr+"/0"
	t.Cleanup(master.local.stop)
	mhost, mport, _ := net.SplitHostPort(master.Addr)
	replica := &Server{t: t, Prefix: master.Prefix, local: startProcess(t, server, "--replicaof", mhost, mport)}
	replica.Addr, replica.url = replica.local.addr, "redis://"+replica.local.addr+"/0"
	t.Cleanup(replica.local.stop)
	s.Servers = []*Server{master, replica}
	waitFor(t, 10*time.Second, "the replica to sync", func() error {
		info, err := infoField(replica.url, "replication", "master_link_status")
		if err == nil && info != "up" {
			err = fmt.Errorf("master_link_status:%s", info)
		}
		return err
	})

	for i := range 3 {
		dir := t.TempDir()
		p := &process{bin: sentinel, dir: dir}
		p.cmdline = func(host, port string) []string {
			conf := filepath.Join(dir, "sentinel.conf")
			m := s.MasterName
			body := fmt.Sprintf("port %s\nbind %s\ndir %s\nsentinel monitor %s %s %s 2\n", port, host, dir, m, mhost, mport) +
				fmt.Sprintf("sentinel down-after-milliseconds %s %d\n", m, DownAfter.Milliseconds()) +
				fmt.Sprintf("sentinel failover-timeout %s %d\n", m, FailoverTimeout.Milliseconds()) +
				fmt.Sprintf("sentinel parallel-syncs %s 1\n", m)
			if password != "" {
				body += fmt.Sprintf("requirepass %s\nsentinel sentinel-pass %s\n", password, password)
			}
			if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
				t.Errorf("testredis: writing sentinel %d config: %v", i, err)
			}
			return []string{conf, "--daemonize", "no", "--logfile", ""}
		}
		p.ready = func(addr string) error {
			c, err := s.Dial(addr)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Do("PING")
			return err
		}
		startCustom(t, p)
		t.Cleanup(p.stop)
		s.Addrs = append(s.Addrs, p.addr)
	}
	for _, a := range s.Addrs {
		waitFor(t, 30*time.Second, "Sentinel "+a+" to know the replica and the other Sentinels", func() error {
			c, err := s.Dial(a)
			if err != nil {
				return err
			}
			defer c.Close()
			q, err := redis.String(c.Do("SENTINEL", "CKQUORUM", s.MasterName))
			if err != nil {
				return err
			}
			if !strings.Contains(q, "3 usable") {
				return fmt.Errorf("CKQUORUM: %s", q)
			}
			reps, err := redis.Values(c.Do("SENTINEL", "REPLICAS", s.MasterName))
			if err != nil {
				return err
			}
			if len(reps) != 1 {
				return fmt.Errorf("%d replicas known", len(reps))
			}
			return nil
		})
	}
	return s
}

// URL returns the redis+sentinel:// URL of the set, with userinfo
// ("user:password", or "") for the data servers.
func (s *Sentinels) URL(userinfo string) string {
	if userinfo != "" {
		userinfo += "@"
	}
	return "redis+sentinel://" + userinfo + strings.Join(s.Addrs, ",") + "/" + s.MasterName + "/0"
}

// MasterAddr asks the Sentinels (the first that answers) for the master.
func (s *Sentinels) MasterAddr() (string, error) {
	var last error
	for _, a := range s.Addrs {
		c, err := s.Dial(a)
		if err != nil {
			last = err
			continue
		}
		v, err := redis.Strings(c.Do("SENTINEL", "get-master-addr-by-name", s.MasterName))
		c.Close()
		if err != nil {
			last = err
			continue
		}
		return net.JoinHostPort(v[0], v[1]), nil
	}
	return "", last
}

// Dial connects to the Sentinel at addr (with the password, if any).
func (s *Sentinels) Dial(addr string) (redis.Conn, error) {
	u := "redis://" + addr
	if s.password != "" {
		u = "redis://:" + s.password + "@" + addr
	}
	return dial(u)
}

// Failover makes the Sentinels fail over now (SENTINEL FAILOVER: the
// master is demoted to a replica, not killed), and waits until they name
// another master, which it returns.
func (s *Sentinels) Failover() string {
	s.t.Helper()
	old, err := s.MasterAddr()
	if err != nil {
		s.t.Fatal(err)
	}
	waitFor(s.t, 30*time.Second, "SENTINEL FAILOVER to be accepted", func() error {
		c, err := s.Dial(s.Addrs[0])
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Do("SENTINEL", "FAILOVER", s.MasterName)
		return err // e.g. INPROG, NOGOODSLAVE while a previous one settles
	})
	var now string
	waitFor(s.t, 30*time.Second, "a new master", func() error {
		a, err := s.MasterAddr()
		if err == nil && a == old {
			err = fmt.Errorf("still %s", a)
		}
		now = a
		return err
	})
	return now
}

// Server returns the data server at addr, or nil.
func (s *Sentinels) Server(addr string) *Server {
	for _, srv := range s.Servers {
		if srv.Addr == addr {
			return srv
		}
	}
	return nil
}

// WaitReplicated waits until every replica of the server at masterAddr has
// acknowledged all that the master had written when it was called
// (replication offsets), so that a failover loses none of it.
func (s *Sentinels) WaitReplicated(masterAddr string) {
	s.t.Helper()
	off, err := infoField("redis://"+masterAddr+"/0", "replication", "master_repl_offset")
	if err != nil {
		s.t.Fatalf("testredis: master offset: %v", err)
	}
	want, _ := strconv.ParseInt(off, 10, 64)
	for _, srv := range s.Servers {
		if srv.Addr == masterAddr {
			continue
		}
		waitFor(s.t, 10*time.Second, "replica "+srv.Addr+" to catch up", func() error {
			got, err := infoField(srv.url, "replication", "slave_repl_offset")
			if err != nil {
				return err
			}
			if n, _ := strconv.ParseInt(got, 10, 64); n < want {
				return fmt.Errorf("replica offset %d < master's %d", n, want)
			}
			return nil
		})
	}
}

// infoField reads one field of an INFO section.
func infoField(url, section, field string) (string, error) {
	c, err := dial(url)
	if err != nil {
		return "", err
	}
	defer c.Close()
	info, err := redis.String(c.Do("INFO", section))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("no %s in INFO %s", field, section)
}

// waitFor polls check until it returns nil, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testredis: waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
