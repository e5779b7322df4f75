package sessions

import (
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"
)

// RedisClient is a redigo pool that gets over a Redis restart by itself.
//
// When Redis restarts, every idle pooled connection is dead, and redigo
// finds out only by failing a command on it. RedisClient hides that: Do
// retries an operation once when it failed on a broken connection, and
// from then on the pool PINGs, before handing it out, every connection that
// sat idle since before the failure, dropping the dead ones; connections
// used since are trusted as before. So the first request after Redis is
// back succeeds, at the cost of one PING per surviving idle connection.
//
// Timeouts are not retried (they would double the wait), nor are Redis
// error replies.
type RedisClient struct {
	Pool *redis.Pool
	// brokenAt is when (Unix nanoseconds) an operation last failed on a
	// broken connection; 0 if never.
	brokenAt atomic.Int64
}

// NewRedisClient wraps pool, chaining its TestOnBorrow. It must be called
// before pool is used.
func NewRedisClient(pool *redis.Pool) *RedisClient {
	c := &RedisClient{Pool: pool}
	inner := pool.TestOnBorrow
	pool.TestOnBorrow = func(conn redis.Conn, lastUsed time.Time) error {
		if b := c.brokenAt.Load(); b != 0 && lastUsed.UnixNano() <= b {
			_, err := conn.Do("PING")
			return err
		}
		if inner != nil {
			return inner(conn, lastUsed)
		}
		return nil
	}
	return c
}

// Do runs op, which should take its connections from c.Pool, and runs it
// once more if it failed on a broken connection (op must be idempotent).
func (c *RedisClient) Do(op func() error) error {
	err := op()
	if err == nil || !brokenConn(err) {
		return err
	}
	c.brokenAt.Store(time.Now().UnixNano())
	return op()
}

// brokenConn reports whether err is a connection failure worth one retry:
// not a Redis error reply, not a timeout, not an exhausted pool.
func brokenConn(err error) bool {
	var reply redis.Error
	var ne net.Error
	switch {
	case errors.As(err, &reply), errors.Is(err, redis.ErrNil), errors.Is(err, redis.ErrPoolExhausted):
		return false
	case errors.As(err, &ne) && ne.Timeout():
		return false
	}
	return true
}

// NewRedisStore returns scs's redisstore over c's pool with the given key
// prefix, each operation run through c.Do (they are all idempotent: GET,
// DEL, and a MULTI/SET/PEXPIREAT/EXEC). Find, the per-request read, goes
// over a pipelined connection shared by concurrent requests (see
// redisPipeline).
func NewRedisStore(c *RedisClient, prefix string) scs.Store {
	return &retryingStore{c: c, inner: redisstore.NewWithPrefix(c.Pool, prefix),
		pipe: newRedisPipeline(c.Pool), prefix: prefix}
}

type retryingStore struct {
	c      *RedisClient
	inner  *redisstore.RedisStore
	pipe   *redisPipeline // nil: Find uses inner
	prefix string
}

func (s *retryingStore) Find(token string) (b []byte, found bool, err error) {
	err = s.c.Do(func() error {
		var e error
		b, found, e = s.find(token)
		return e
	})
	return b, found, err
}

func (s *retryingStore) Commit(token string, b []byte, expiry time.Time) error {
	return s.c.Do(func() error { return s.inner.Commit(token, b, expiry) })
}

func (s *retryingStore) Delete(token string) error {
	return s.c.Do(func() error { return s.inner.Delete(token) })
}
