package sessions

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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

	sentinel *sentinel // nil unless the URL is a Sentinel one
	log      *slog.Logger

	// runMu guards runID, the run_id (INFO server) of the Redis server
	// that the last connection dialed reached; runGen counts its changes
	// (a restart, or another server behind the same address): the session
	// cache serves only what it read while runGen stayed the same.
	runMu  sync.Mutex
	runID  string
	runGen atomic.Uint64
}

// RedisOptions configures OpenRedis. Zero fields take the defaults noted.
type RedisOptions struct {
	PoolOptions
	// TLS configures rediss:// (and rediss+sentinel://) connections, e.g.
	// the CA and a client certificate (see TLSConfigFromFiles). nil: the
	// system's roots, no client certificate.
	TLS *tls.Config
	// SentinelPassword authenticates to the Sentinels of a Sentinel URL
	// (the URL's own password is the Redis one).
	SentinelPassword string
	// Logger gets a line for what an operator wants to know: the master
	// found or changed, the session cache falling back. nil: discarded.
	Logger *slog.Logger
}

// OpenRedis returns a client for rawURL: a redis://, rediss:// or unix://
// URL as NewRedisPool takes, or a Sentinel URL
//
//	redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/<master-name>[/<db>]
//	rediss+sentinel://...    the same, over TLS to the Sentinels and the master
//
// (Sentinel port 26379 by default). With Sentinel, the pool's connections
// go to the master the Sentinels name, and follow it through a failover
// without a restart (see sentinel). Like NewRedisPool, it does not connect:
// the first command does. Close releases it.
func OpenRedis(rawURL string, o RedisOptions) (*RedisClient, error) {
	t, err := parseRedisURL(rawURL)
	if err != nil {
		return nil, err
	}
	if o.SentinelPassword != "" && t.master == "" {
		return nil, fmt.Errorf("sessions: %s: a Sentinel password needs a redis+sentinel:// URL", t.redacted)
	}
	if o.TLS != nil && !t.tls {
		return nil, fmt.Errorf("sessions: %s: TLS settings need a rediss:// (or rediss+sentinel://) URL", t.redacted)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	po := o.PoolOptions.withDefaults()
	masterOpts := po.dialOptions(t.options, o.TLS)
	var s *sentinel
	dial := t.directDial(masterOpts)
	if t.master != "" {
		sentinelOpts := po.dialOptions([]redis.DialOption{redis.DialUseTLS(t.tls)}, o.TLS)
		if o.SentinelPassword != "" {
			sentinelOpts = append(sentinelOpts, redis.DialPassword(o.SentinelPassword))
		}
		s = newSentinel(t, sentinelOpts, masterOpts, log)
		dial = s.dial
	}
	c := NewRedisClient(newPool(dial, po))
	c.sentinel, c.log = s, log
	c.Pool.DialContext = c.noteRunID(dial)
	if s != nil {
		inner := c.Pool.TestOnBorrow
		c.Pool.TestOnBorrow = func(conn redis.Conn, lastUsed time.Time) error {
			if connGen(conn) != s.gen() {
				return errMasterChanged
			}
			return inner(conn, lastUsed)
		}
	}
	return c, nil
}

// Close closes the pool and stops following the Sentinels.
func (c *RedisClient) Close() error {
	if c.sentinel != nil {
		c.sentinel.close()
	}
	return c.Pool.Close()
}

// Sentinel reports whether the master is found through Sentinel.
func (c *RedisClient) Sentinel() bool { return c.sentinel != nil }

// masterGen is the current master's generation (0 without Sentinel).
func (c *RedisClient) masterGen() uint64 {
	if c.sentinel == nil {
		return 0
	}
	return c.sentinel.gen()
}

// noteRunID wraps dial: each new connection asks its server's run_id, and
// one that differs from the last seen bumps runGen (and is logged).
func (c *RedisClient) noteRunID(dial func(context.Context) (redis.Conn, error)) func(context.Context) (redis.Conn, error) {
	return func(ctx context.Context) (redis.Conn, error) {
		conn, err := dial(ctx)
		if err != nil {
			return nil, err
		}
		info, err := redis.String(redis.DoContext(conn, ctx, "INFO", "server"))
		if err != nil {
			var re redis.Error
			if errors.As(err, &re) { // INFO refused (an ACL user without it): no run_id to compare
				return conn, nil
			}
			conn.Close()
			return nil, err
		}
		id := infoField(info, "run_id")
		if id == "" {
			return conn, nil
		}
		c.runMu.Lock()
		changed := c.runID != "" && c.runID != id
		c.runID = id
		if changed {
			c.runGen.Add(1)
		}
		c.runMu.Unlock()
		if changed && c.log != nil {
			c.log.Warn("redis has a new run_id (restarted, or another server behind the address): session cache dropped",
				"run_id", id)
		}
		return conn, nil
	}
}

// infoField returns field's value in an INFO reply ("" if absent).
func infoField(info, field string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), field+":"); ok {
			return v
		}
	}
	return ""
}

// serverGen is the run_id generation: see runGen.
func (c *RedisClient) serverGen() uint64 { return c.runGen.Load() }

// dial opens a connection as the pool does (to the master).
func (c *RedisClient) dial(ctx context.Context) (redis.Conn, error) {
	return c.Pool.DialContext(ctx)
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
// With Sentinel, a READONLY reply (the connection reached a demoted master)
// or a broken connection first makes it ask the Sentinels for the master.
func (c *RedisClient) Do(op func() error) error {
	err := op()
	if err == nil {
		return nil
	}
	if c.sentinel != nil && isReadOnly(err) {
		// Nothing was written: ask again and retry (the pool drops
		// connections to the old master once the generation moves).
		ctx, cancel := context.WithTimeout(context.Background(), DefaultDialTimeout)
		c.sentinel.refresh(ctx, true)
		cancel()
		return op()
	}
	if !brokenConn(err) {
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
