package sessions

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/gomodule/redigo/redis"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// fillIdle leaves n connections idle in the pool.
func fillIdle(t *testing.T, pool *redis.Pool, n int) {
	t.Helper()
	conns := make([]redis.Conn, n)
	for i := range conns {
		conns[i] = pool.Get()
		if _, err := conns[i].Do("PING"); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	if got := pool.IdleCount(); got != n {
		t.Fatalf("%d idle connections, want %d", got, n)
	}
}

// After a restart with a pool full of dead idle connections, the very first
// operation succeeds; the bare redisstore fails one operation per dead
// connection, which is what RedisClient is for.
func TestRedisClientFirstRequestAfterRestart(t *testing.T) {
	srv := testredis.Start(t)
	if !srv.Private() {
		t.Skip("external Redis: cannot restart it")
	}
	const idle = 8

	bare := newRedisPool(t, srv.URL(), PoolOptions{MaxIdle: idle})
	client := NewRedisClient(newRedisPool(t, srv.URL(), PoolOptions{MaxIdle: idle}))
	fillIdle(t, bare, idle)
	fillIdle(t, client.Pool, idle)
	bareStore := redisstore.NewWithPrefix(bare, srv.Prefix)
	store := NewRedisStore(client, srv.Prefix, 0)

	srv.Restart() // no request in between: nothing knows the connections died

	start := time.Now()
	if err := store.Commit("t", []byte("x"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("first Commit after restart: %v", err)
	}
	if b, found, err := store.Find("t"); err != nil || !found || string(b) != "x" {
		t.Fatalf("Find = %q, %v, %v", b, found, err)
	}
	t.Logf("first operations after restart took %v", time.Since(start))
	if n := client.Pool.IdleCount(); n > 1 {
		t.Errorf("%d idle connections after recovery, want the dead ones dropped", n)
	}

	failures := 0
	for range idle + 1 {
		if _, _, err := bareStore.Find("t"); err == nil {
			break
		}
		failures++
	}
	t.Logf("bare redisstore: %d failed operations before recovering", failures)
	if failures == 0 {
		t.Log("bare pool did not fail: the kernel may have reused ports; nothing to compare")
	}
}

// While Redis is down, operations fail fast (refused connections are
// retried once, still fast), and they come back by themselves.
func TestRedisClientWhileDown(t *testing.T) {
	srv := testredis.Start(t)
	if !srv.Private() {
		t.Skip("external Redis: cannot stop it")
	}
	client := NewRedisClient(newRedisPool(t, srv.URL(), PoolOptions{MaxIdle: 4}))
	fillIdle(t, client.Pool, 4)
	store := NewRedisStore(client, srv.Prefix, 0)
	srv.Stop()
	for i := range 3 {
		start := time.Now()
		if _, _, err := store.Find("t"); err == nil {
			t.Fatalf("Find %d succeeded with Redis down", i)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Find %d with Redis down took %v", i, d)
		}
	}
	srv.Restart()
	if err := store.Commit("t", []byte("x"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("first Commit after Redis came back: %v", err)
	}
}

func TestBrokenConn(t *testing.T) {
	timeout := &net.OpError{Op: "read", Err: timeoutErr{}}
	for err, want := range map[error]bool{
		io.EOF:              true,
		io.ErrUnexpectedEOF: true,
		syscall.ECONNRESET:  true,
		&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}:                                                  true,
		fmt.Errorf("sessions: connecting to redis: %w", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}): true,
		timeout:                            false,
		fmt.Errorf("wrapped: %w", timeout): false,
		redis.Error("ERR wrong number of arguments"): false,
		redis.ErrNil:           false,
		redis.ErrPoolExhausted: false,
		errors.New("redigo: unexpected response line"): true,
	} {
		if got := brokenConn(err); got != want {
			t.Errorf("brokenConn(%v) = %v, want %v", err, got, want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }
