package sessions

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/gomodule/redigo/redis"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// openClient is OpenRedis, closed at cleanup.
func openClient(t testing.TB, url string, o RedisOptions) *RedisClient {
	t.Helper()
	c, err := OpenRedis(url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// cachedStore is a store with a session cache of entries, closed at
// cleanup, once its cache is active.
func cachedStore(t testing.TB, c *RedisClient, prefix string, entries int) *RedisStore {
	t.Helper()
	s := NewRedisStore(c, prefix, entries)
	t.Cleanup(s.Close)
	waitStatus(t, s, "active")
	return s
}

func waitStatus(t testing.TB, s *RedisStore, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.CacheStatus() != want {
		if time.Now().After(deadline) {
			t.Fatalf("session cache %s, want %s", s.CacheStatus(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// getCalls is how many GETs the Redis at url has served (INFO commandstats).
func getCalls(t testing.TB, url string) int64 {
	t.Helper()
	c, err := redis.DialURL(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info, err := redis.String(c.Do("INFO", "commandstats"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_get:calls="); ok {
			n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
			return n
		}
	}
	return 0
}

// session returns encoded session data with the given deadline and value.
func session(t testing.TB, deadline time.Time, v string) []byte {
	t.Helper()
	b, err := Codec{}.Encode(deadline, map[string]any{"v": v})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func valueOf(t testing.TB, b []byte) string {
	t.Helper()
	_, m, err := Codec{}.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return m["v"].(string)
}

var hour = time.Hour

// A cached session is read from Redis once, then from memory.
func TestRedisCacheServesFromMemory(t *testing.T) {
	srv := testredis.Start(t)
	s := cachedStore(t, openClient(t, srv.URL(), RedisOptions{}), srv.Prefix, 100)
	if err := s.Commit("tok", session(t, time.Now().Add(hour), "one"), time.Now().Add(hour)); err != nil {
		t.Fatal(err)
	}
	before := getCalls(t, srv.URL())
	for range 10 {
		b, found, err := s.Find("tok")
		if err != nil || !found || valueOf(t, b) != "one" {
			t.Fatalf("Find = %q, %v, %v", b, found, err)
		}
	}
	if n := getCalls(t, srv.URL()) - before; n != 1 {
		t.Errorf("10 Finds cost %d GETs, want 1", n)
	}
	// An unknown token is never cached.
	for range 3 {
		if _, found, err := s.Find("unknown"); err != nil || found {
			t.Fatalf("Find(unknown) = %v, %v", found, err)
		}
	}
	if n := getCalls(t, srv.URL()) - before; n != 4 {
		t.Errorf("3 Finds of an unknown token cost %d GETs, want 3", n-1)
	}
}

// A change made through another client is seen at once (within the
// invalidation's trip), for an overwrite and a delete.
func TestRedisCacheInvalidatedByOtherClient(t *testing.T) {
	srv := testredis.Start(t)
	a := cachedStore(t, openClient(t, srv.URL(), RedisOptions{}), srv.Prefix, 100)
	b := NewRedisStore(openClient(t, srv.URL(), RedisOptions{}), srv.Prefix, 0)
	exp := time.Now().Add(hour)
	if err := b.Commit("tok", session(t, exp, "one"), exp); err != nil {
		t.Fatal(err)
	}
	if d, _, _ := a.Find("tok"); valueOf(t, d) != "one" {
		t.Fatal("not one")
	}
	if err := b.Commit("tok", session(t, exp, "two"), exp); err != nil {
		t.Fatal(err)
	}
	took := waitUntil(t, 50*time.Millisecond, func() bool {
		d, found, err := a.Find("tok")
		return err == nil && found && valueOf(t, d) == "two"
	})
	t.Logf("overwrite seen by the other client after %v", took)
	if err := b.Delete("tok"); err != nil {
		t.Fatal(err)
	}
	took = waitUntil(t, 50*time.Millisecond, func() bool {
		_, found, err := a.Find("tok")
		return err == nil && !found
	})
	t.Logf("delete seen by the other client after %v", took)
}

// waitUntil polls cond and fails the test unless it holds within limit;
// it returns how long that took.
func waitUntil(t testing.TB, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("not within %v", limit)
		}
		time.Sleep(100 * time.Microsecond)
	}
	return time.Since(start)
}

// This instance's own writes take effect in its cache before they return.
func TestRedisCacheOwnWrites(t *testing.T) {
	srv := testredis.Start(t)
	s := cachedStore(t, openClient(t, srv.URL(), RedisOptions{}), srv.Prefix, 100)
	exp := time.Now().Add(hour)
	for i := range 50 {
		tok := fmt.Sprint("tok", i)
		if err := s.Commit(tok, session(t, exp, "one"), exp); err != nil {
			t.Fatal(err)
		}
		if d, _, _ := s.Find(tok); valueOf(t, d) != "one" {
			t.Fatal("not one")
		}
		if err := s.Commit(tok, session(t, exp, "two"), exp); err != nil {
			t.Fatal(err)
		}
		if d, found, err := s.Find(tok); err != nil || !found || valueOf(t, d) != "two" {
			t.Fatalf("Find right after our own Commit = %v, %v (stale)", found, err)
		}
		if err := s.Delete(tok); err != nil {
			t.Fatal(err)
		}
		if _, found, err := s.Find(tok); err != nil || found {
			t.Fatalf("Find right after our own Delete = %v, %v (stale)", found, err)
		}
	}
}

// The read/invalidate race, hammered: readers on one client read a
// session continuously while another client overwrites and then deletes
// it. No read that starts more than 50 ms after a write returned may see
// what the write replaced.
//
// The readers spin on the cache without ever blocking, which keeps Go's
// scheduler from running the goroutine that reads the invalidations for
// tens of milliseconds at a time (it wakes from the network poller, which
// busy processors consult rarely): the PING fence must make up for that.
func TestRedisCacheRace(t *testing.T) {
	srv := testredis.Start(t)
	a := cachedStore(t, openClient(t, srv.URL(), RedisOptions{}), srv.Prefix, 1000)
	b := NewRedisStore(openClient(t, srv.URL(), RedisOptions{}), srv.Prefix, 0)
	const rounds, readers, grace = 100, 3, 50 * time.Millisecond
	exp := time.Now().Add(hour)
	var stale, reads atomic.Int64
	var maxLag atomic.Int64 // latest start of a stale-looking read after the write returned
	for i := range rounds {
		tok := fmt.Sprint("race", i)
		if err := b.Commit(tok, session(t, exp, "one"), exp); err != nil {
			t.Fatal(err)
		}
		var wrote atomic.Int64 // unix ns when the current write returned; 0 before
		var phase atomic.Int32 // 0: "one" live; 1: "two" written; 2: deleted
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range readers {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					p, w := phase.Load(), wrote.Load()
					start := time.Now()
					d, found, err := a.Find(tok)
					reads.Add(1)
					if err != nil {
						t.Errorf("Find: %v", err)
						return
					}
					// Stale: what the last write (as of the read's start)
					// replaced.
					old := (p == 1 && found && valueOf(t, d) == "one") || (p == 2 && found)
					if old && w != 0 {
						lag := start.UnixNano() - w
						for {
							m := maxLag.Load()
							if lag <= m || maxLag.CompareAndSwap(m, lag) {
								break
							}
						}
						if lag > int64(grace) {
							stale.Add(1)
						}
					}
				}
			})
		}
		time.Sleep(time.Millisecond)
		if err := b.Commit(tok, session(t, exp, "two"), exp); err != nil {
			t.Fatal(err)
		}
		phase.Store(1)
		wrote.Store(time.Now().UnixNano())
		time.Sleep(2 * time.Millisecond)
		wrote.Store(0)
		if err := b.Delete(tok); err != nil {
			t.Fatal(err)
		}
		phase.Store(2)
		wrote.Store(time.Now().UnixNano())
		if i%50 == 0 {
			time.Sleep(grace + 10*time.Millisecond) // some rounds read well past the grace
		} else {
			time.Sleep(2 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
	}
	t.Logf("%d reads over %d overwrite+delete rounds; latest read still seeing replaced data started %v after the write returned",
		reads.Load(), rounds, time.Duration(maxLag.Load()))
	if n := stale.Load(); n != 0 {
		t.Errorf("%d stale reads more than %v after the write returned", n, grace)
	}
}

// When the invalidation connection drops, the cache is flushed: a change
// made while it was down is never hidden by what was cached before.
func TestRedisCacheDropFlushes(t *testing.T) {
	srv := testredis.Start(t)
	proxy := testredis.NewProxy(t, srv.Addr)
	a := cachedStore(t, openClient(t, "redis://"+proxy.Addr+"/0", RedisOptions{}), srv.Prefix, 100)
	b := NewRedisStore(openClient(t, srv.URL(), RedisOptions{}), srv.Prefix, 0)
	exp := time.Now().Add(hour)
	if err := b.Commit("tok", session(t, exp, "one"), exp); err != nil {
		t.Fatal(err)
	}
	if d, _, _ := a.Find("tok"); valueOf(t, d) != "one" {
		t.Fatal("not one")
	}
	proxy.Cut()
	waitStatus(t, a, "connecting")
	if err := b.Commit("tok", session(t, exp, "two"), exp); err != nil { // no invalidation can reach a
		t.Fatal(err)
	}
	if d, found, err := a.Find("tok"); err == nil && found && valueOf(t, d) == "one" {
		t.Fatal("served the cached session while the invalidation connection was down")
	}
	proxy.Resume()
	waitUntil(t, 5*time.Second, func() bool {
		d, found, err := a.Find("tok")
		if err == nil && found && valueOf(t, d) == "one" {
			t.Fatal("served the session cached before the drop")
		}
		return err == nil && found
	})
	waitStatus(t, a, "active")
	if d, _, _ := a.Find("tok"); valueOf(t, d) != "two" {
		t.Fatal("not two after the cache came back")
	}
}

// A network partition that breaks nothing (the invalidation connection
// stays open but silent) turns the cache off within invalSilence.
func TestRedisCacheSilentPartition(t *testing.T) {
	srv := testredis.Start(t)
	proxy := testredis.NewProxy(t, srv.Addr)
	a := cachedStore(t, openClient(t, "redis://"+proxy.Addr+"/0", RedisOptions{PoolOptions: PoolOptions{ReadTimeout: 300 * time.Millisecond}}),
		srv.Prefix, 100)
	b := NewRedisStore(openClient(t, srv.URL(), RedisOptions{}), srv.Prefix, 0)
	exp := time.Now().Add(hour)
	if err := b.Commit("tok", session(t, exp, "one"), exp); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, time.Second, func() bool { // cached (our own Commit's notification may spoil a fill)
		a.Find("tok")
		_, hit, _ := a.cache.get("tok")
		return hit
	})
	proxy.Silence()
	if err := b.Delete("tok"); err != nil {
		t.Fatal(err)
	}
	took := waitUntil(t, freshFor+invalPing+20*time.Millisecond, func() bool {
		_, hit, _ := a.cache.get("tok")
		return !hit
	})
	if _, found, err := a.Find("tok"); err == nil && found {
		t.Error("the deleted session was found")
	}
	t.Logf("a silent invalidation connection stopped the cache after %v (bound: %v)", took, freshFor)
	proxy.Resume()
}

// A Redis that refuses CLIENT TRACKING (here an ACL user without the
// CLIENT command) leaves reads uncached, with one log line.
func TestRedisCacheUnsupported(t *testing.T) {
	srv := testredis.Start(t)
	if !srv.Private() {
		t.Skip("external Redis: no ACL users created there")
	}
	admin, err := redis.DialURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Do("ACL", "SETUSER", "noclient", "on", ">pw", "~*", "&*", "+@all", "-client"); err != nil {
		t.Fatal(err)
	}
	var logs logRecorder
	url := "redis://noclient:pw@" + srv.Addr + "/0"
	s := NewRedisStore(openClient(t, url, RedisOptions{Logger: slog.New(&logs)}), srv.Prefix, 100)
	t.Cleanup(s.Close)
	waitStatus(t, s, "unsupported")
	exp := time.Now().Add(hour)
	if err := s.Commit("tok", session(t, exp, "one"), exp); err != nil {
		t.Fatal(err)
	}
	before := getCalls(t, srv.URL())
	for range 5 {
		if d, found, err := s.Find("tok"); err != nil || !found || valueOf(t, d) != "one" {
			t.Fatalf("Find = %v, %v", found, err)
		}
	}
	if n := getCalls(t, srv.URL()) - before; n != 5 {
		t.Errorf("5 Finds without tracking cost %d GETs, want 5", n)
	}
	if got := logs.count("CLIENT TRACKING"); got != 1 {
		t.Errorf("%d log lines about CLIENT TRACKING, want 1: %q", got, logs.all())
	}
}

// FLUSHALL (a null invalidation) empties the cache.
func TestRedisCacheFlushAll(t *testing.T) {
	srv := testredis.Start(t)
	if !srv.Private() {
		t.Skip("external Redis: no FLUSHALL there")
	}
	a := cachedStore(t, openClient(t, srv.URL(), RedisOptions{}), srv.Prefix, 100)
	exp := time.Now().Add(hour)
	if err := a.Commit("tok", session(t, exp, "one"), exp); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := a.Find("tok"); !found {
		t.Fatal("not found")
	}
	c, err := redis.DialURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do("FLUSHALL"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 50*time.Millisecond, func() bool {
		_, found, err := a.Find("tok")
		return err == nil && !found
	})
}

// The cache holds at most its size, and never serves an expired session.
func TestRedisCacheBoundedAndExpiry(t *testing.T) {
	srv := testredis.Start(t)
	a := cachedStore(t, openClient(t, srv.URL(), RedisOptions{}), srv.Prefix, 5)
	exp := time.Now().Add(hour)
	for i := range 50 {
		tok := fmt.Sprint("tok", i)
		if err := a.Commit(tok, session(t, exp, tok), exp); err != nil {
			t.Fatal(err)
		}
		if d, _, _ := a.Find(tok); valueOf(t, d) != tok {
			t.Fatal("wrong session")
		}
	}
	// Once our writes' notifications are in, reads fill the cache up to
	// its bound and no further.
	time.Sleep(50 * time.Millisecond)
	for i := range 50 {
		a.Find(fmt.Sprint("tok", i))
	}
	a.cache.mu.RLock()
	n := len(a.cache.m)
	a.cache.mu.RUnlock()
	if n != 5 {
		t.Errorf("%d sessions cached, want the bound, 5", n)
	}

	// A session whose deadline passes while Redis still holds it (scs's
	// expiry and Redis's may differ) is read from Redis, not memory.
	short := time.Now().Add(200 * time.Millisecond)
	if err := a.Commit("short", session(t, short, "x"), exp); err != nil {
		t.Fatal(err)
	}
	// (Our own write's notification may still be on its way and spoil
	// the first fill: that is the cache being careful.)
	var before int64
	waitUntil(t, time.Second, func() bool {
		a.Find("short")
		before = getCalls(t, srv.URL())
		a.Find("short")
		return getCalls(t, srv.URL()) == before
	})
	time.Sleep(time.Until(short) + 10*time.Millisecond)
	a.Find("short")
	if getCalls(t, srv.URL()) == before {
		t.Error("an expired session was served from memory")
	}
}

// RedisStore and scs's redisstore read each other's sessions: the key
// layout and expiry are the same.
func TestRedisStoreRedisstoreCompatible(t *testing.T) {
	srv := testredis.Start(t)
	c := openClient(t, srv.URL(), RedisOptions{})
	ours := NewRedisStore(c, srv.Prefix, 0)
	theirs := redisstore.NewWithPrefix(c.Pool, srv.Prefix)
	exp := time.Now().Add(hour)
	if err := theirs.Commit("a", []byte("from redisstore"), exp); err != nil {
		t.Fatal(err)
	}
	if b, found, err := ours.Find("a"); err != nil || !found || string(b) != "from redisstore" {
		t.Fatalf("ours.Find = %q, %v, %v", b, found, err)
	}
	if err := ours.Commit("b", []byte("from ours"), exp); err != nil {
		t.Fatal(err)
	}
	if b, found, err := theirs.Find("b"); err != nil || !found || string(b) != "from ours" {
		t.Fatalf("theirs.Find = %q, %v, %v", b, found, err)
	}
	conn := c.Pool.Get()
	defer conn.Close()
	ms, err := redis.Int64(conn.Do("PEXPIRETIME", srv.Prefix+"b"))
	if err != nil || ms != exp.UnixMilli() {
		t.Errorf("PEXPIRETIME = %d, %v; want %d", ms, err, exp.UnixMilli())
	}
	if err := ours.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := theirs.Find("a"); found {
		t.Error("Delete left the key")
	}
}

// logRecorder is a slog.Handler that keeps the messages.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b bytes.Buffer
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	l.msgs = append(l.msgs, b.String())
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

func (l *logRecorder) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}

// An empty or short reply on the invalidation connection (no Redis sends
// one; a faulty proxy or server might) never panics: the cache is dropped
// (reads go to Redis) and the connection made anew.
func TestRedisCacheBadSubscribeReply(t *testing.T) {
	srv := testredis.Start(t)
	proxy := testredis.NewProxy(t, srv.Addr)
	var answered atomic.Int32
	proxy.Answer(func(fromClient []byte) []byte {
		if bytes.Contains(fromClient, []byte("SUBSCRIBE")) {
			answered.Add(1)
			return []byte("*0\r\n")
		}
		return nil
	})
	logs := &logRecorder{}
	a := NewRedisStore(openClient(t, "redis://"+proxy.Addr+"/0", RedisOptions{Logger: slog.New(logs)}), srv.Prefix, 100)
	t.Cleanup(a.Close)
	waitUntil(t, 10*time.Second, func() bool { return answered.Load() >= 2 }) // it tried again
	if st := a.CacheStatus(); st != "connecting" {
		t.Errorf("cache %s after empty replies to SUBSCRIBE, want connecting", st)
	}
	exp := time.Now().Add(hour)
	if err := a.Commit("tok", session(t, exp, "one"), exp); err != nil {
		t.Fatal(err)
	}
	if d, found, err := a.Find("tok"); err != nil || !found || valueOf(t, d) != "one" {
		t.Fatalf("Find without the cache: %v %v", found, err)
	}
	proxy.Answer(nil)
	waitStatus(t, a, "active")
}

func TestRedisCacheBadInvalidationMessages(t *testing.T) {
	srv := testredis.Start(t)
	proxy := testredis.NewProxy(t, srv.Addr)
	logs := &logRecorder{}
	a := cachedStore(t, openClient(t, "redis://"+proxy.Addr+"/0", RedisOptions{Logger: slog.New(logs)}), srv.Prefix, 100)
	exp := time.Now().Add(hour)
	if err := a.Commit("tok", session(t, exp, "one"), exp); err != nil {
		t.Fatal(err)
	}
	publisher, err := redis.DialURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer publisher.Close()
	for i, bad := range []func(){
		func() { proxy.InjectSubscribers([]byte("*0\r\n")) },
		func() { proxy.InjectSubscribers([]byte("*1\r\n$7\r\nmessage\r\n")) },
		func() { proxy.InjectSubscribers([]byte("*2\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n")) },
		func() { proxy.InjectSubscribers([]byte(":1\r\n")) },
		func() { // a client publishing on the channel: not a list of keys
			if _, err := publisher.Do("PUBLISH", "__redis__:invalidate", srv.Prefix+"tok"); err != nil {
				t.Fatal(err)
			}
		},
	} {
		waitStatus(t, a, "active")
		waitUntil(t, 5*time.Second, func() bool { // cached: a second read does not reach Redis
			a.Find("tok")
			n := getCalls(t, srv.URL())
			a.Find("tok")
			return getCalls(t, srv.URL()) == n
		})
		lost := logs.count("session cache off")
		bad()
		waitUntil(t, 5*time.Second, func() bool { return logs.count("session cache off") > lost })
		n := getCalls(t, srv.URL())
		if d, found, err := a.Find("tok"); err != nil || !found || valueOf(t, d) != "one" {
			t.Fatalf("bad reply %d: Find: %v %v", i, found, err)
		}
		if getCalls(t, srv.URL()) != n+1 {
			t.Errorf("bad reply %d: the session was served from the cache it should have dropped", i)
		}
	}
}

// A connection that reaches another Redis server than the cache's
// invalidation connection did (a restart or failover behind a name or
// virtual IP, no Sentinel: a new run_id) drops the cache, which follows to
// the new server: a session cached from the old one is not served after
// that, even while the invalidation connection to the old one lives.
func TestRedisCacheNewRunID(t *testing.T) {
	old, fresh := testredis.Start(t), testredis.Start(t)
	if !old.Private() || !fresh.Private() {
		t.Skip("needs two Redis servers of its own (redis-server on PATH)")
	}
	proxy := testredis.NewProxy(t, old.Addr)
	logs := &logRecorder{}
	c := openClient(t, "redis://"+proxy.Addr+"/0", RedisOptions{Logger: slog.New(logs)})
	prefix := old.Prefix
	a := cachedStore(t, c, prefix, 100)
	exp := time.Now().Add(hour)
	onOld := NewRedisStore(openClient(t, old.URL(), RedisOptions{}), prefix, 0)
	onFresh := NewRedisStore(openClient(t, fresh.URL(), RedisOptions{}), prefix, 0)
	if err := onOld.Commit("tok", session(t, exp, "old"), exp); err != nil {
		t.Fatal(err)
	}
	if err := onFresh.Commit("tok", session(t, exp, "new"), exp); err != nil {
		t.Fatal(err)
	}
	if d, found, err := a.Find("tok"); err != nil || !found || valueOf(t, d) != "old" {
		t.Fatalf("Find before the move: %v %v", found, err)
	}
	// The address now leads to the new server; the old one drops its
	// clients but for the subscribed one (as a demoted server may).
	proxy.Retarget(fresh.Addr)
	killer, err := redis.DialURL(old.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close()
	if _, err := killer.Do("CLIENT", "KILL", "TYPE", "normal"); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit("other", session(t, exp, "x"), exp); err != nil {
		t.Fatal(err)
	}
	if d, found, err := a.Find("tok"); err != nil || !found || valueOf(t, d) != "new" {
		got := ""
		if found {
			got = valueOf(t, d)
		}
		t.Fatalf("Find after a connection reached a Redis with another run_id: %q %v %v, want new", got, found, err)
	}
	waitStatus(t, a, "active")
	if d, _, _ := a.Find("tok"); valueOf(t, d) != "new" {
		t.Fatal("the cache came back with the old server's session")
	}
	if logs.count("run_id") == 0 {
		t.Error("the new run_id was not logged")
	}
}

// The user index's hashes live under the session prefix, so Redis tells
// the cache of every write to them (a login, a last-seen mark): those
// must not fail the fills in flight (a generation bump) as a session's
// change does, or busy sites would keep missing the cache.
func TestRedisCacheIgnoresUserIndex(t *testing.T) {
	srv := testredis.Start(t)
	a := cachedStore(t, openClient(t, srv.URL(), RedisOptions{}), srv.Prefix, 100)
	other := NewRedisStore(openClient(t, srv.URL(), RedisOptions{}), srv.Prefix, 0)
	gen := func() uint64 {
		a.cache.mu.RLock()
		defer a.cache.mu.RUnlock()
		return a.cache.gen
	}
	g0 := gen()
	exp := time.Now().Add(hour)
	if err := other.AddUserSession(7, SessionInfo{Key: "k1", Expiry: exp}); err != nil {
		t.Fatal(err)
	}
	if err := other.TouchUserSession(7, "k1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := other.RemoveUserSessions(7, "k1"); err != nil {
		t.Fatal(err)
	}
	// A session written after them: its invalidation comes after theirs.
	if err := other.Commit("barrier", session(t, exp, "b"), exp); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, func() bool { return gen() > g0 })
	if g := gen(); g != g0+1 {
		t.Errorf("generation went from %d to %d: the user index's writes failed fills as sessions' do", g0, g)
	}
}
