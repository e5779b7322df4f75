package throttle

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// clock is a settable time for the memory store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// kinds runs fn against a memory store (advance moves its clock) and a
// Redis store (advance sleeps, so durations there are short).
func kinds(t *testing.T, fn func(t *testing.T, s Store, unit time.Duration, advance func(time.Duration))) {
	t.Run("memory", func(t *testing.T) {
		c := &clock{t: time.Unix(1_700_000_000, 0)}
		m := NewMemory(0)
		m.now = c.now
		fn(t, m, time.Minute, c.add)
	})
	t.Run("redis", func(t *testing.T) {
		srv := testredis.Start(t)
		pool := &redis.Pool{Dial: func() (redis.Conn, error) { return redis.DialURL(srv.URL()) }}
		t.Cleanup(func() { pool.Close() })
		fn(t, NewRedis(pool, srv.Prefix, nil), 100*time.Millisecond, time.Sleep)
	})
}

func TestFailBans(t *testing.T) {
	kinds(t, func(t *testing.T, s Store, u time.Duration, advance func(time.Duration)) {
		window, ban := 2*u, 5*u
		for i := 1; i <= 2; i++ {
			if b, err := s.Fail("alice", 3, window, ban); err != nil || b != 0 {
				t.Fatalf("failure %d: ban %v, %v", i, b, err)
			}
		}
		if b, i, _ := s.Banned("alice"); b != 0 || i != -1 {
			t.Fatalf("banned after 2 of 3 failures: %v %d", b, i)
		}
		if b, err := s.Fail("alice", 3, window, ban); err != nil || b != ban {
			t.Fatalf("third failure: ban %v, %v; want %v", b, err, ban)
		}
		b, i, err := s.Banned("bob", "alice")
		if err != nil || b <= ban-u || b > ban || i != 1 {
			t.Fatalf("Banned = %v, %d, %v; want about %v, 1", b, i, err, ban)
		}
		if b, _, _ := s.Banned("bob"); b != 0 {
			t.Errorf("another key is banned: %v", b)
		}
		advance(ban + u/2)
		if b, _, _ := s.Banned("alice"); b != 0 {
			t.Errorf("still banned after the ban: %v", b)
		}
		// The count started afresh with the ban.
		if b, _ := s.Fail("alice", 3, window, ban); b != 0 {
			t.Errorf("first failure after a ban banned again")
		}
	})
}

func TestFailWindowExpires(t *testing.T) {
	kinds(t, func(t *testing.T, s Store, u time.Duration, advance func(time.Duration)) {
		window, ban := 2*u, 5*u
		s.Fail("k", 3, window, ban)
		s.Fail("k", 3, window, ban)
		advance(window + u/2)
		if b, _ := s.Fail("k", 3, window, ban); b != 0 {
			t.Error("failures of an expired window still counted")
		}
	})
}

func TestForget(t *testing.T) {
	kinds(t, func(t *testing.T, s Store, u time.Duration, advance func(time.Duration)) {
		s.Fail("k", 2, u, u)
		if err := s.Forget("k"); err != nil {
			t.Fatal(err)
		}
		if b, _ := s.Fail("k", 2, u, u); b != 0 {
			t.Error("Forget kept the count")
		}
	})
}

func TestTake(t *testing.T) {
	kinds(t, func(t *testing.T, s Store, u time.Duration, advance func(time.Duration)) {
		window := 3 * u
		for i := 1; i <= 3; i++ {
			if d, err := s.Take("ip", 3, window); err != nil || d != 0 {
				t.Fatalf("event %d: %v, %v", i, d, err)
			}
		}
		d, err := s.Take("ip", 3, window)
		if err != nil || d <= window-u || d > window {
			t.Fatalf("over the limit: %v, %v; want about %v", d, err, window)
		}
		if d, _ := s.Take("other", 3, window); d != 0 {
			t.Error("another key is limited")
		}
		advance(window + u/2)
		if d, _ := s.Take("ip", 3, window); d != 0 {
			t.Errorf("limited after the window: %v", d)
		}
	})
}

func TestConcurrentFailuresBanOnce(t *testing.T) {
	kinds(t, func(t *testing.T, s Store, u time.Duration, advance func(time.Duration)) {
		var wg sync.WaitGroup
		bans := make(chan time.Duration, 50)
		for range 50 {
			wg.Go(func() {
				b, err := s.Fail("flood", 10, 100*u, 100*u)
				if err != nil {
					t.Error(err)
				}
				bans <- b
			})
		}
		wg.Wait()
		close(bans)
		n := 0
		for b := range bans {
			if b > 0 {
				n++
			}
		}
		if n != 5 { // every tenth failure starts (or extends) the ban
			t.Errorf("%d of 50 failures started a ban, want 5", n)
		}
	})
}

func TestBadArgs(t *testing.T) {
	kinds(t, func(t *testing.T, s Store, u time.Duration, advance func(time.Duration)) {
		if _, err := s.Fail("k", 0, u, u); err == nil {
			t.Error("Fail with limit 0")
		}
		if _, err := s.Take("k", 1, 0); err == nil {
			t.Error("Take with window 0")
		}
	})
}

func TestMemoryIsBounded(t *testing.T) {
	m := NewMemory(1000)
	for i := range 10_000 {
		m.Fail(fmt.Sprintf("user%d", i), 5, time.Hour, time.Hour)
		m.Take(fmt.Sprintf("ip%d", i), 5, time.Hour)
	}
	if n := m.Len(); n > 1000 {
		t.Errorf("%d entries, bound is 1000", n)
	}
	// Bans survive a flood of counters.
	m = NewMemory(100)
	for i := range 10 {
		m.Fail(fmt.Sprintf("banned%d", i), 1, time.Hour, time.Hour)
	}
	for i := range 5000 {
		m.Fail(fmt.Sprintf("noise%d", i), 5, time.Hour, time.Hour)
	}
	for i := range 10 {
		if b, _, _ := m.Banned(fmt.Sprintf("banned%d", i)); b == 0 {
			t.Errorf("ban %d evicted by counters", i)
		}
	}
}

func TestMemorySweepsExpired(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	m := NewMemory(0)
	m.now = c.now
	for i := range 500 {
		m.Fail(fmt.Sprintf("u%d", i), 5, time.Minute, time.Minute)
	}
	c.add(2 * time.Minute)
	m.Fail("fresh", 5, time.Minute, time.Minute)
	if n := m.Len(); n != 1 {
		t.Errorf("%d entries after the sweep, want 1", n)
	}
}

// Keys live under the prefix and expire by themselves.
func TestRedisKeys(t *testing.T) {
	srv := testredis.Start(t)
	pool := &redis.Pool{Dial: func() (redis.Conn, error) { return redis.DialURL(srv.URL()) }}
	defer pool.Close()
	s := NewRedis(pool, srv.Prefix, nil)
	s.Fail("u", 5, time.Minute, time.Minute)
	s.Fail("v", 1, time.Minute, 2*time.Minute)
	s.Take("ip", 5, time.Minute)
	c := pool.Get()
	defer c.Close()
	for key, max := range map[string]int64{"fail:u": 60_000, "ban:v": 120_000, "take:ip": 60_000} {
		ttl, err := redis.Int64(c.Do("PTTL", srv.Prefix+key))
		if err != nil || ttl <= 0 || ttl > max {
			t.Errorf("PTTL %s = %d, %v", key, ttl, err)
		}
	}
}

// A store that is down reports errors, never a false "not banned" silently.
func TestRedisDown(t *testing.T) {
	pool := &redis.Pool{Dial: func() (redis.Conn, error) {
		return redis.Dial("tcp", "127.0.0.1:1", redis.DialConnectTimeout(time.Second))
	}}
	defer pool.Close()
	s := NewRedis(pool, "x:", nil)
	if _, _, err := s.Banned("k"); err == nil {
		t.Error("Banned without Redis")
	}
	if _, err := s.Fail("k", 1, time.Second, time.Second); err == nil {
		t.Error("Fail without Redis")
	}
	if _, err := s.Take("k", 1, time.Second); err == nil {
		t.Error("Take without Redis")
	}
}
