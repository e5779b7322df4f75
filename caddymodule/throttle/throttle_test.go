package throttle

import (
	"errors"
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

// limits of a login: the username's (cleared by a success) and the IP's.
func loginLimits(u time.Duration, userMax, ipMax int) []Limit {
	return []Limit{
		{Key: "u:alice", Max: userMax, Window: 2 * u, Ban: 5 * u, ClearOnSuccess: true},
		{Key: "ip:1", Max: ipMax, Window: 2 * u, Ban: 5 * u},
	}
}

func admit(t *testing.T, s Store, limits ...Limit) *Attempt {
	t.Helper()
	a, wait, which, err := s.Admit(limits...)
	if err != nil || a == nil || wait != 0 || which != -1 {
		t.Fatalf("Admit = %v, %v, %d, %v; want admitted", a, wait, which, err)
	}
	return a
}

func fail(t *testing.T, s Store, a *Attempt) []bool {
	t.Helper()
	banned, err := s.Fail(a)
	if err != nil {
		t.Fatal(err)
	}
	return banned
}

// refused checks that Admit refuses, by limit which, for about want.
func refused(t *testing.T, s Store, u, want time.Duration, which int, limits ...Limit) {
	t.Helper()
	a, wait, i, err := s.Admit(limits...)
	if err != nil || a != nil || i != which || wait <= want-u || wait > want {
		t.Fatalf("Admit = %v, %v, %d, %v; want refused by %d for about %v", a, wait, i, err, which, want)
	}
}

// The serial behaviour users expect: max-1 failures, then a success gets in
// and clears the username's count; the max-th failure bans for the ban
// time, then even a right password is refused before it is checked.
func TestSerialAttempts(t *testing.T) {
	kinds(t, func(t *testing.T, s Store, u time.Duration, advance func(time.Duration)) {
		ls := loginLimits(u, 3, 20)
		for i := 1; i <= 2; i++ {
			a := admit(t, s, ls...)
			if a.Slots[0] != i || a.Slots[1] != i || a.Last(0) {
				t.Fatalf("failure %d: places %v", i, a.Slots)
			}
			if b := fail(t, s, a); b[0] || b[1] {
				t.Fatalf("failure %d banned: %v", i, b)
			}
		}
		a := admit(t, s, ls...)
		if !a.Last(0) || a.Last(1) {
			t.Fatalf("third attempt: places %v", a.Slots)
		}
		if err := s.Succeed(a); err != nil {
			t.Fatal(err)
		}
		// The success cleared the username's count, and gave back only its
		// own place on the IP's.
		for i := 1; i <= 2; i++ {
			a = admit(t, s, ls...)
			if a.Slots[0] != i || a.Slots[1] != 2+i {
				t.Fatalf("failure %d after the success: places %v", i, a.Slots)
			}
			fail(t, s, a)
		}
		a = admit(t, s, ls...)
		if b := fail(t, s, a); !b[0] || b[1] {
			t.Fatalf("third failure: banned %v, want the username only", b)
		}
		refused(t, s, u, 5*u, 0, ls...)
		// Another username from the same IP is not banned.
		other := []Limit{{Key: "u:bob", Max: 3, Window: 2 * u, Ban: 5 * u, ClearOnSuccess: true}, ls[1]}
		s.Succeed(admit(t, s, other...))
		advance(5*u + u/2)
		// The ban is over and the count started afresh with it.
		if a := admit(t, s, ls...); a.Slots[0] != 1 {
			t.Errorf("first attempt after the ban: places %v", a.Slots)
		}
	})
}

// Admit counts against every key or none: a refusal by one key costs the
// others nothing.
func TestAdmitAllOrNothing(t *testing.T) {
	kinds(t, func(t *testing.T, s Store, u time.Duration, advance func(time.Duration)) {
		ls := loginLimits(u, 5, 2)
		fail(t, s, admit(t, s, ls...))
		if b := fail(t, s, admit(t, s, ls...)); b[0] || !b[1] {
			t.Fatalf("second failure: banned %v, want the IP only", b)
		}
		refused(t, s, u, 5*u, 1, ls...)
		refused(t, s, u, 5*u, 1, ls...)
		// From another IP, alice's count is still 2.
		ls[1].Key = "ip:2"
		if a := admit(t, s, ls...); a.Slots[0] != 3 || a.Slots[1] != 1 {
			t.Errorf("from another IP: places %v, want [3 1]", a.Slots)
		}
	})
}

// While a key's places are all taken by attempts still running, Admit
// refuses (for the ban those may cause) without banning: the places come
// back if they succeed or are cancelled.
func TestAdmitFullWindow(t *testing.T) {
	kinds(t, func(t *testing.T, s Store, u time.Duration, advance func(time.Duration)) {
		ls := loginLimits(u, 2, 20)
		a1, a2 := admit(t, s, ls...), admit(t, s, ls...)
		refused(t, s, u, 5*u, 0, ls...)
		if err := s.Cancel(a1); err != nil {
			t.Fatal(err)
		}
		a3 := admit(t, s, ls...)
		if a3.Slots[0] != 2 || a3.Slots[1] != 2 {
			t.Errorf("after a cancel: places %v", a3.Slots)
		}
		refused(t, s, u, 5*u, 0, ls...)
		if err := s.Succeed(a2); err != nil {
			t.Fatal(err)
		}
		// a2's success cleared the username's count: a3 no longer holds a
		// place there, so its failure bans nothing.
		if b := fail(t, s, a3); b[0] || b[1] {
			t.Errorf("failure of a cleared attempt banned %v", b)
		}
		a := admit(t, s, ls...)
		if a.Slots[0] != 1 || a.Slots[1] != 2 {
			t.Errorf("after the success: places %v, want [1 2]", a.Slots)
		}
	})
}

func TestWindowExpires(t *testing.T) {
	kinds(t, func(t *testing.T, s Store, u time.Duration, advance func(time.Duration)) {
		ls := loginLimits(u, 3, 20)
		fail(t, s, admit(t, s, ls...))
		fail(t, s, admit(t, s, ls...))
		advance(2*u + u/2)
		a := admit(t, s, ls...)
		if a.Slots[0] != 1 || a.Slots[1] != 1 {
			t.Errorf("failures of an expired window still counted: places %v", a.Slots)
		}
		if b := fail(t, s, a); b[0] {
			t.Error("banned after the window")
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

// However many attempts run at once, a key admits its max per window, and
// the failure of the last one bans it once.
func TestConcurrentAttempts(t *testing.T) {
	kinds(t, func(t *testing.T, s Store, u time.Duration, advance func(time.Duration)) {
		ls := []Limit{{Key: "flood", Max: 5, Window: 100 * u, Ban: 100 * u, ClearOnSuccess: true}}
		var wg sync.WaitGroup
		admitted := make(chan *Attempt, 50)
		for range 50 {
			wg.Go(func() {
				a, wait, which, err := s.Admit(ls...)
				switch {
				case err != nil:
					t.Error(err)
				case a != nil:
					admitted <- a
				case wait <= 99*u || which != 0:
					t.Errorf("refused: %v, %d", wait, which)
				}
			})
		}
		wg.Wait()
		close(admitted)
		var as []*Attempt
		for a := range admitted {
			as = append(as, a)
		}
		if len(as) != 5 {
			t.Fatalf("%d of 50 attempts admitted, want 5", len(as))
		}
		bans := make(chan bool, 5)
		for _, a := range as {
			wg.Go(func() {
				b, err := s.Fail(a)
				if err != nil {
					t.Error(err)
				}
				bans <- b[0]
			})
		}
		wg.Wait()
		close(bans)
		n := 0
		for b := range bans {
			if b {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d failures banned, want 1", n)
		}
		refused(t, s, u, 100*u, 0, ls...)
	})
}

// Instances sharing a Redis share the places.
func TestRedisInstancesShareLimit(t *testing.T) {
	srv := testredis.Start(t)
	var stores []Store
	for range 3 {
		pool := &redis.Pool{Dial: func() (redis.Conn, error) { return redis.DialURL(srv.URL()) }}
		t.Cleanup(func() { pool.Close() })
		stores = append(stores, NewRedis(pool, srv.Prefix, nil))
	}
	ls := []Limit{
		{Key: "u:x", Max: 5, Window: time.Minute, Ban: time.Minute, ClearOnSuccess: true},
		{Key: "ip:y", Max: 20, Window: time.Minute, Ban: time.Minute},
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for i := range 60 {
		wg.Go(func() {
			a, _, _, err := stores[i%3].Admit(ls...)
			if err != nil {
				t.Error(err)
			}
			if a != nil {
				mu.Lock()
				admitted++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if admitted != 5 {
		t.Errorf("%d of 60 attempts admitted across 3 instances, want 5", admitted)
	}
}

// Retried operations act once: a retry that runs each operation twice
// (as when the first reply is lost with its connection) takes one place,
// and Take, which is not idempotent, is not retried.
func TestRedisRetriesAreIdempotent(t *testing.T) {
	srv := testredis.Start(t)
	pool := &redis.Pool{Dial: func() (redis.Conn, error) { return redis.DialURL(srv.URL()) }}
	defer pool.Close()
	retries := 0
	twice := func(op func() error) error {
		retries++
		if err := op(); err != nil {
			return err
		}
		return op()
	}
	s := NewRedis(pool, srv.Prefix, twice)
	u := 100 * time.Millisecond
	ls := loginLimits(u, 3, 20)
	for i := 1; i <= 3; i++ {
		a := admit(t, s, ls...)
		if a.Slots[0] != i || a.Slots[1] != i {
			t.Fatalf("attempt %d: places %v", i, a.Slots)
		}
		if i < 3 {
			fail(t, s, a)
			continue
		}
		if err := s.Cancel(a); err != nil {
			t.Fatal(err)
		}
	}
	a := admit(t, s, ls...)
	if a.Slots[0] != 3 || a.Slots[1] != 3 {
		t.Fatalf("after a cancel: places %v, want [3 3]", a.Slots)
	}
	if b := fail(t, s, a); !b[0] || b[1] {
		t.Errorf("third failure, retried: banned %v, want the username only", b)
	}
	refused(t, s, u, 5*u, 0, ls...)
	if err := s.Succeed(a); err != nil { // no attempt's place is left to give back
		t.Fatal(err)
	}
	refused(t, s, u, 5*u, 0, ls...)
	before := retries
	for i := 1; i <= 3; i++ {
		if d, err := s.Take("reg", 3, time.Minute); err != nil || d != 0 {
			t.Fatalf("event %d: %v, %v", i, d, err)
		}
	}
	if d, _ := s.Take("reg", 3, time.Minute); d == 0 {
		t.Error("Take was counted once per event only if it ran once: 4th event allowed")
	}
	if retries != before {
		t.Errorf("Take went through retry %d times", retries-before)
	}
}

func TestBadArgs(t *testing.T) {
	kinds(t, func(t *testing.T, s Store, u time.Duration, advance func(time.Duration)) {
		if _, _, _, err := s.Admit(Limit{Key: "k", Max: 0, Window: u, Ban: u}); err == nil {
			t.Error("Admit with max 0")
		}
		if _, _, _, err := s.Admit(Limit{Key: "k", Max: 1, Window: u}); err == nil {
			t.Error("Admit without a ban")
		}
		if _, _, _, err := s.Admit(); err == nil {
			t.Error("Admit without limits")
		}
		l := Limit{Key: "k", Max: 1, Window: u, Ban: u}
		if _, _, _, err := s.Admit(l, l); err == nil {
			t.Error("Admit with a key twice")
		}
		if _, err := s.Take("k", 1, 0); err == nil {
			t.Error("Take with window 0")
		}
		if _, _, _, err := s.Admit(Limit{Key: "k", Max: 1, Window: u, Ban: u, Pass: "p"}); err == nil {
			t.Error("Admit with a pass without its TTL")
		}
		if _, _, _, err := s.Admit(Limit{Key: "k", Max: 1, Window: u, Ban: u, PassTTL: u}); err == nil {
			t.Error("Admit with a pass TTL without a pass")
		}
		if _, _, _, err := s.Admit(Limit{Key: "k", Max: 1, Window: u, Ban: -u, Pass: "p", PassTTL: u}); err == nil {
			t.Error("Admit with a negative ban")
		}
	})
}

func TestMemoryIsBounded(t *testing.T) {
	m := NewMemory(1000)
	for i := range 10_000 {
		m.Fail(admit(t, m, Limit{Key: fmt.Sprintf("user%d", i), Max: 5, Window: time.Hour, Ban: time.Hour}))
		m.Take(fmt.Sprintf("ip%d", i), 5, time.Hour)
	}
	if n := m.Len(); n > 1000 {
		t.Errorf("%d entries, bound is 1000", n)
	}
	// Bans survive a flood of counters.
	m = NewMemory(100)
	for i := range 10 {
		m.Fail(admit(t, m, Limit{Key: fmt.Sprintf("banned%d", i), Max: 1, Window: time.Hour, Ban: time.Hour}))
	}
	for i := range 5000 {
		m.Fail(admit(t, m, Limit{Key: fmt.Sprintf("noise%d", i), Max: 5, Window: time.Hour, Ban: time.Hour}))
	}
	for i := range 10 {
		if a, _, _, _ := m.Admit(Limit{Key: fmt.Sprintf("banned%d", i), Max: 1, Window: time.Hour, Ban: time.Hour}); a != nil {
			t.Errorf("ban %d evicted by counters", i)
		}
	}
}

func TestMemorySweepsExpired(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	m := NewMemory(0)
	m.now = c.now
	for i := range 500 {
		m.Fail(admit(t, m, Limit{Key: fmt.Sprintf("u%d", i), Max: 5, Window: time.Minute, Ban: time.Minute}))
	}
	c.add(2 * time.Minute)
	m.Fail(admit(t, m, Limit{Key: "fresh", Max: 5, Window: time.Minute, Ban: time.Minute}))
	if n := m.Len(); n != 1 {
		t.Errorf("%d entries after the sweep, want 1", n)
	}
	// Settled attempts leave nothing behind.
	m = NewMemory(0)
	m.Succeed(admit(t, m, Limit{Key: "ok", Max: 5, Window: time.Minute, Ban: time.Minute}))
	m.Cancel(admit(t, m, Limit{Key: "gone", Max: 5, Window: time.Minute, Ban: time.Minute}))
	if n := m.Len(); n != 0 {
		t.Errorf("%d entries after a success and a cancel, want 0", n)
	}
}

// Keys live under the prefix and expire by themselves.
func TestRedisKeys(t *testing.T) {
	srv := testredis.Start(t)
	pool := &redis.Pool{Dial: func() (redis.Conn, error) { return redis.DialURL(srv.URL()) }}
	defer pool.Close()
	s := NewRedis(pool, srv.Prefix, nil)
	s.Fail(admit(t, s, Limit{Key: "u", Max: 5, Window: time.Minute, Ban: time.Minute}))
	s.Fail(admit(t, s, Limit{Key: "v", Max: 1, Window: time.Minute, Ban: 2 * time.Minute}))
	s.Take("ip", 5, time.Minute)
	s.Succeed(admit(t, s, Limit{Key: "w", Max: 5, Window: time.Minute, Ban: time.Minute, Pass: "p", PassTTL: 3 * time.Minute}))
	c := pool.Get()
	defer c.Close()
	for key, max := range map[string]int64{"attempts:u": 60_000, "ban:v": 120_000, "take:ip": 60_000, "passes:w": 180_000} {
		ttl, err := redis.Int64(c.Do("PTTL", srv.Prefix+key))
		if err != nil || ttl <= 0 || ttl > max {
			t.Errorf("PTTL %s = %d, %v", key, ttl, err)
		}
	}
	if n, _ := redis.Int(c.Do("EXISTS", srv.Prefix+"attempts:v")); n != 0 {
		t.Error("a ban kept its key's count")
	}
}

// A store that is down reports errors, never a false "not banned" silently.
func TestRedisDown(t *testing.T) {
	pool := &redis.Pool{Dial: func() (redis.Conn, error) {
		return redis.Dial("tcp", "127.0.0.1:1", redis.DialConnectTimeout(time.Second))
	}}
	defer pool.Close()
	s := NewRedis(pool, "x:", nil)
	l := Limit{Key: "k", Max: 1, Window: time.Second, Ban: time.Second}
	if a, _, _, err := s.Admit(l); err == nil || a != nil {
		t.Error("Admit without Redis")
	}
	a := &Attempt{ID: "id", Limits: []Limit{l}, Slots: []int{1}}
	if _, err := s.Fail(a); err == nil {
		t.Error("Fail without Redis")
	}
	if err := s.Succeed(a); err == nil {
		t.Error("Succeed without Redis")
	}
	if _, err := s.Take("k", 1, time.Second); err == nil {
		t.Error("Take without Redis")
	}
}

// lockout limits of a login: a short per-username limit that these tests
// never reach, and the long one, a lockout that pass gets past.
func lockoutLimits(u time.Duration, pass string, ban time.Duration) []Limit {
	return []Limit{
		{Key: "u:carol", Max: 100, Window: 2 * u, Ban: 5 * u, ClearOnSuccess: true},
		{Key: "lock:carol", Max: 3, Window: 50 * u, Ban: ban, ClearOnSuccess: true, Pass: pass, PassTTL: 8 * u},
	}
}

// A lockout until lifted: failures from anywhere lock the key; then only
// a pass that an earlier success recorded is admitted, and its success
// lifts the lock and clears the count.
func TestLockout(t *testing.T) {
	kinds(t, func(t *testing.T, s Store, u time.Duration, advance func(time.Duration)) {
		ls := func(pass string) []Limit { return lockoutLimits(u, pass, 0) }
		if err := s.Succeed(admit(t, s, ls("home")...)); err != nil {
			t.Fatal(err)
		}
		for i, stranger := range []string{"x1", "x2", "x3"} {
			b := fail(t, s, admit(t, s, ls(stranger)...))
			if b[0] || b[1] != (i == 2) {
				t.Fatalf("failure %d: banned %v", i+1, b)
			}
		}
		refuse := func(what, pass string) {
			t.Helper()
			a, wait, which, err := s.Admit(ls(pass)...)
			if err != nil || a != nil || wait != Indefinitely || which != 1 {
				t.Fatalf("%s: Admit = %v, %v, %d, %v; want refused by the lockout, indefinitely", what, a, wait, which, err)
			}
		}
		refuse("a stranger", "x4")
		advance(6 * u) // longer than any timed ban here: the lock stays
		refuse("a stranger later", "x4")
		// The known pass gets in; its failure leaves the lock in place.
		fail(t, s, admit(t, s, ls("home")...))
		refuse("a stranger after a known pass failed", "x5")
		// Its success lifts the lock and clears the count.
		if err := s.Succeed(admit(t, s, ls("home")...)); err != nil {
			t.Fatal(err)
		}
		a := admit(t, s, ls("x6")...)
		if a.Slots[1] != 1 {
			t.Errorf("after the known success: places %v, want the lockout's count cleared", a.Slots)
		}
		s.Cancel(a)

		// While running attempts hold every place, others wait for the
		// ban they may cause (indefinitely), but the known pass gets in.
		held := []*Attempt{admit(t, s, ls("y1")...), admit(t, s, ls("y2")...), admit(t, s, ls("y3")...)}
		refuse("a stranger while the window is full", "y4")
		known := admit(t, s, ls("home")...)
		for _, a := range append(held, known) {
			if err := s.Cancel(a); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// A timed lockout ends by itself; Unban lifts any ban and clears counts.
func TestLockoutTimedAndUnban(t *testing.T) {
	kinds(t, func(t *testing.T, s Store, u time.Duration, advance func(time.Duration)) {
		ls := lockoutLimits(u, "x", 5*u)
		for range 3 {
			fail(t, s, admit(t, s, ls...))
		}
		refused(t, s, u, 5*u, 1, ls...)
		lifted, err := s.Unban("lock:carol", "u:carol")
		if err != nil || !lifted {
			t.Fatalf("Unban = %v, %v; want lifted", lifted, err)
		}
		a := admit(t, s, ls...)
		if a.Slots[0] != 1 || a.Slots[1] != 1 {
			t.Errorf("after Unban: places %v, want counts cleared", a.Slots)
		}
		fail(t, s, a)
		if lifted, err := s.Unban("lock:carol"); err != nil || lifted {
			t.Errorf("Unban of an unbanned key = %v, %v", lifted, err)
		}
		if a := admit(t, s, ls...); a.Slots[1] != 1 {
			t.Errorf("Unban left the count: places %v", a.Slots)
		} else {
			fail(t, s, a)
		}
		fail(t, s, admit(t, s, ls...))
		fail(t, s, admit(t, s, ls...))
		refused(t, s, u, 5*u, 1, ls...)
		advance(5*u + u/2)
		admit(t, s, ls...)
	})
}

// A key keeps its MaxPasses most recent passes, each for its PassTTL.
func TestLockoutPasses(t *testing.T) {
	kinds(t, func(t *testing.T, s Store, u time.Duration, advance func(time.Duration)) {
		ls := func(pass string) []Limit { return lockoutLimits(u, pass, 0) }
		for i := range MaxPasses + 1 {
			if err := s.Succeed(admit(t, s, ls(fmt.Sprintf("p%d", i))...)); err != nil {
				t.Fatal(err)
			}
			advance(u / 10) // distinct times, oldest first
		}
		for _, stranger := range []string{"x1", "x2", "x3"} {
			fail(t, s, admit(t, s, ls(stranger)...))
		}
		if a, wait, _, _ := s.Admit(ls("p0")...); a != nil || wait != Indefinitely {
			t.Errorf("the oldest of %d passes was kept", MaxPasses+1)
		}
		for _, p := range []string{"p1", fmt.Sprint("p", MaxPasses)} {
			a := admit(t, s, ls(p)...)
			s.Cancel(a)
		}
		advance(8*u + u/2)
		if a, _, _, _ := s.Admit(ls(fmt.Sprint("p", MaxPasses))...); a != nil {
			t.Error("a pass past its TTL was admitted")
		}
	})
}

// A flood of distinct keys must not reset a target's count: the entries
// with the fewest attempts make room first, so the target's near-ban
// count survives a flood of one-attempt counters.
func TestMemoryFloodKeepsCounts(t *testing.T) {
	m := NewMemory(1000)
	target := Limit{Key: "u:target", Max: 5, Window: time.Hour, Ban: time.Hour, ClearOnSuccess: true}
	lock := Limit{Key: "lock:target", Max: 50, Window: 24 * time.Hour, Pass: "p", PassTTL: time.Hour}
	for range 4 {
		fail(t, m, admit(t, m, target, lock))
	}
	for i := range 20_000 {
		a, _, _, err := m.Admit(Limit{Key: fmt.Sprintf("noise%d", i), Max: 50, Window: time.Hour, Ban: time.Hour})
		if err != nil || a == nil {
			t.Fatalf("flood key %d refused (%v) while counters with one attempt could make room", i, err)
		}
		fail(t, m, a)
	}
	if n := m.Len(); n > 1000 {
		t.Errorf("%d entries, bound is 1000", n)
	}
	if banned := fail(t, m, admit(t, m, target, lock)); !banned[0] {
		t.Error("the target's 5th failure after a flood of other keys did not ban it: its count was evicted")
	}
}

// A flood of bans must never evict a ban (a lockout until lifted above
// all): once the store is full of bans, new keys are refused (fail closed).
func TestMemoryFloodKeepsBans(t *testing.T) {
	m := NewMemory(100)
	lock := Limit{Key: "lock:target", Max: 1, Window: time.Hour, Pass: "p", PassTTL: time.Hour} // Ban 0: until lifted
	if banned := fail(t, m, admit(t, m, lock)); !banned[0] {
		t.Fatal("not locked out")
	}
	refusedNew := 0
	for i := range 5000 {
		a, _, _, err := m.Admit(Limit{Key: fmt.Sprintf("noise%d", i), Max: 1, Window: time.Hour, Ban: time.Hour})
		if err != nil {
			if !errors.Is(err, ErrFull) {
				t.Fatalf("flood key %d: %v, want ErrFull", i, err)
			}
			refusedNew++
			continue
		}
		if a == nil {
			continue
		}
		fail(t, m, a)
	}
	if n := m.Len(); n > 100 {
		t.Errorf("%d entries, bound is 100", n)
	}
	if refusedNew == 0 {
		t.Error("a store full of bans admitted every new key")
	}
	a, wait, _, err := m.Admit(Limit{Key: "lock:target", Max: 1, Window: time.Hour, Pass: "other", PassTTL: time.Hour})
	if err != nil || a != nil || wait != Indefinitely {
		t.Errorf("the lockout after a flood of bans: Admit = %v, %v, %v; want refused indefinitely", a, wait, err)
	}
	// Known keys still work when the store is full: a ban is lifted by
	// its unban, and the freed room takes a new key.
	if lifted, _ := m.Unban("lock:target"); !lifted {
		t.Error("Unban of the lockout found no ban")
	}
	admit(t, m, Limit{Key: "after-unban", Max: 1, Window: time.Hour, Ban: time.Hour})
}
