package sessions

import (
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/gomodule/redigo/redis"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

func newRedisPool(t *testing.T, url string, opts PoolOptions) *redis.Pool {
	t.Helper()
	p, err := NewRedisPool(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestRedisStoreCommitFindDelete(t *testing.T) {
	srv := testredis.Start(t)
	store := redisstore.NewWithPrefix(newRedisPool(t, srv.URL(), PoolOptions{}), srv.Prefix)

	if _, found, err := store.Find("missing"); err != nil || found {
		t.Fatalf("Find(missing) = %v, %v", found, err)
	}
	if err := store.Commit("tok", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if b, found, err := store.Find("tok"); err != nil || !found || string(b) != "data" {
		t.Fatalf("Find = %q, %v, %v", b, found, err)
	}
	if err := store.Commit("tok", []byte("new"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if b, _, _ := store.Find("tok"); string(b) != "new" {
		t.Fatalf("after overwrite Find = %q", b)
	}
	if err := store.Delete("tok"); err != nil {
		t.Fatal(err)
	}
	if _, found, err := store.Find("tok"); err != nil || found {
		t.Fatalf("Find after Delete = %v, %v", found, err)
	}
}

// redisstore sets expiry with PEXPIREAT; check Redis honours it.
func TestRedisStoreExpiry(t *testing.T) {
	srv := testredis.Start(t)
	pool := newRedisPool(t, srv.URL(), PoolOptions{})
	store := redisstore.NewWithPrefix(pool, srv.Prefix)

	if err := store.Commit("short", []byte("x"), time.Now().Add(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	c := pool.Get()
	pttl, err := redis.Int64(c.Do("PTTL", srv.Prefix+"short"))
	c.Close()
	if err != nil || pttl <= 0 || pttl > 300 {
		t.Fatalf("PTTL = %d, %v; want 1..300 ms", pttl, err)
	}
	if _, found, _ := store.Find("short"); !found {
		t.Fatal("not found before expiry")
	}
	if err := store.Commit("past", []byte("x"), time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := store.Find("past"); found {
		t.Fatal("session committed with a past expiry was found")
	}
	time.Sleep(400 * time.Millisecond)
	if _, found, err := store.Find("short"); err != nil || found {
		t.Fatalf("Find after expiry = %v, %v", found, err)
	}
}

func TestRedisPoolSelectsDatabase(t *testing.T) {
	srv := testredis.Start(t)
	if !srv.Private() {
		t.Skip("external Redis: its URL may carry credentials this test would drop")
	}
	pool := newRedisPool(t, "redis://"+srv.Addr+"/3", PoolOptions{})
	if err := redisstore.NewWithPrefix(pool, srv.Prefix).Commit("t", []byte("x"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	c, err := redis.DialURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for db, want := range map[int]int{0: 0, 3: 1} {
		c.Do("SELECT", db)
		if n, err := redis.Int(c.Do("EXISTS", srv.Prefix+"t")); err != nil || n != want {
			t.Errorf("db %d: EXISTS = %d, %v; want %d", db, n, err, want)
		}
	}
}

func TestRedisPoolErrorsHideThePassword(t *testing.T) {
	srv := testredis.Start(t)
	if !srv.Private() {
		t.Skip("external Redis may require a password")
	}
	urls := []string{
		"redis://:s3cret@127.0.0.1:1/0",      // nothing listening
		"redis://:s3cret@" + srv.Addr + "/0", // AUTH refused: no password set
		"redis://s3cret@" + srv.Addr + "/0",  // lone word is the password too
		"redis://user:s3cret@" + srv.Addr + "/0",
	}
	for _, u := range urls {
		c := newRedisPool(t, u, PoolOptions{DialTimeout: time.Second}).Get()
		_, err := c.Do("PING")
		c.Close()
		if err == nil {
			t.Errorf("%s: PING succeeded", u)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error shows the password: %v", err)
		}
		if !strings.Contains(err.Error(), "xxxxx") {
			t.Errorf("error does not name the (redacted) URL: %v", err)
		}
	}
}

func TestRedisPoolDoesNotWait(t *testing.T) {
	srv := testredis.Start(t)
	pool := newRedisPool(t, srv.URL(), PoolOptions{MaxActive: 1})
	held := pool.Get()
	defer held.Close()
	if _, err := held.Do("PING"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c := pool.Get()
	_, err := c.Do("PING")
	c.Close()
	if err != redis.ErrPoolExhausted {
		t.Errorf("second Get: err = %v, want ErrPoolExhausted", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("exhausted pool blocked for %v", time.Since(start))
	}
}

func TestRedisPoolTestOnBorrow(t *testing.T) {
	srv := testredis.Start(t)
	pool := newRedisPool(t, srv.URL(), PoolOptions{})
	c, err := redis.DialURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.TestOnBorrow(c, time.Now().Add(-2*time.Minute)); err != nil {
		t.Errorf("long-idle healthy conn: %v", err)
	}
	c.Close()
	// A recently used connection is trusted without a round trip, so even
	// a closed one passes; a long-idle one is PINGed and fails.
	if err := pool.TestOnBorrow(c, time.Now()); err != nil {
		t.Errorf("recently used conn was checked: %v", err)
	}
	if err := pool.TestOnBorrow(c, time.Now().Add(-2*time.Minute)); err == nil {
		t.Error("long-idle closed conn passed TestOnBorrow")
	}
}

// While Redis is down, commands fail fast; once it is back, the pool
// recovers (each stale pooled connection fails once and is discarded).
func TestRedisPoolSurvivesRestart(t *testing.T) {
	srv := testredis.Start(t)
	if !srv.Private() {
		t.Skip("external Redis: cannot stop it")
	}
	const maxIdle = 4
	pool := newRedisPool(t, srv.URL(), PoolOptions{MaxIdle: maxIdle, DialTimeout: 500 * time.Millisecond})
	store := redisstore.NewWithPrefix(pool, srv.Prefix)
	if err := store.Commit("t", []byte("x"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	start := time.Now()
	if _, _, err := store.Find("t"); err == nil {
		t.Fatal("Find succeeded with Redis stopped")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Find with Redis down took %v", d)
	}

	srv.Restart()
	var err error
	for range maxIdle + 1 {
		if err = store.Commit("t", []byte("y"), time.Now().Add(time.Hour)); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("pool did not recover after restart: %v", err)
	}
	if b, found, err := store.Find("t"); err != nil || !found || string(b) != "y" {
		t.Fatalf("Find after restart = %q, %v, %v", b, found, err)
	}
}
