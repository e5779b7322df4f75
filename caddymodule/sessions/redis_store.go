package sessions

import (
	"errors"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"
)

// RedisStore is an scs.Store in Redis, with the key layout of scs's
// redisstore (the prefix, then the token; the data as is; expiry by
// PEXPIREAT), so that either can read what the other wrote.
//
//   - Every operation runs through RedisClient.Do: retried once on a
//     connection broken by a Redis restart, and with Sentinel, on a
//     READONLY reply after asking for the master again. All of them are
//     idempotent: GET, DEL, and MULTI/SET/PEXPIREAT/EXEC.
//   - Find, the per-request read, goes over a pipelined connection shared
//     by concurrent requests (redisPipeline), and with a session cache,
//     comes from memory when Redis has not said the session changed since
//     (trackingCache).
//   - With Sentinel, Commit and Delete then wait (WAIT 1, at most
//     replicaWait) for a replica to acknowledge the write, so that a login
//     answered stays valid, and a logout answered stays done, when that
//     replica is promoted. Redis replication is asynchronous: without the
//     wait, the writes of the last moment before a master dies may be
//     lost in a failover. With no replica answering in time the write
//     still counts (it is on the master).
type RedisStore struct {
	c      *RedisClient
	pipe   *redisPipeline // nil: Find uses a pooled connection
	prefix string
	cache  *trackingCache // nil: off
	wait   bool
}

var _ scs.Store = (*RedisStore)(nil)

// replicaWait bounds how long a session write waits for a replica (WAIT).
const replicaWait = 100 * time.Millisecond

// NewRedisStore returns a store over c with the given key prefix. With
// cacheEntries > 0 it keeps up to that many sessions in memory, dropped as
// soon as Redis reports a change (see trackingCache); Close stops it.
func NewRedisStore(c *RedisClient, prefix string, cacheEntries int) *RedisStore {
	s := &RedisStore{c: c, pipe: newRedisPipeline(c.Pool), prefix: prefix, wait: c.Sentinel()}
	if s.pipe != nil && c.Sentinel() {
		s.pipe.masterGen = c.masterGen
	}
	if cacheEntries > 0 {
		s.cache = newTrackingCache(c, prefix, cacheEntries)
	}
	return s
}

// Close stops the session cache, if any, and closes the read pipeline's
// connection. The client is the caller's to close.
func (s *RedisStore) Close() {
	if s.cache != nil {
		s.cache.close()
	}
	if s.pipe != nil {
		s.pipe.close()
	}
}

// CacheStatus reports the session cache's state: "off", "active",
// "connecting" (reads go to Redis until the invalidation connection is
// subscribed) or "unsupported" (Redis refused CLIENT TRACKING).
func (s *RedisStore) CacheStatus() string {
	if s.cache == nil {
		return "off"
	}
	return s.cache.status()
}

// Find implements scs.Store.
func (s *RedisStore) Find(token string) (b []byte, found bool, err error) {
	var gen uint64
	if s.cache != nil {
		var hit bool
		if b, hit, gen = s.cache.get(token); hit {
			return b, true, nil
		}
	}
	err = s.c.Do(func() error {
		var e error
		b, found, e = s.find(token)
		return e
	})
	if err == nil && found && s.cache != nil {
		s.cache.put(token, b, gen)
	}
	return b, found, err
}

func (s *RedisStore) find(token string) ([]byte, bool, error) {
	var b []byte
	var err error
	if s.pipe != nil {
		b, err = s.pipe.get(s.prefix + token)
	} else {
		conn := s.c.Pool.Get()
		b, err = redis.Bytes(conn.Do("GET", s.prefix+token))
		conn.Close()
	}
	if errors.Is(err, redis.ErrNil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// Commit implements scs.Store.
func (s *RedisStore) Commit(token string, b []byte, expiry time.Time) error {
	err := s.c.Do(func() error {
		gen := s.c.masterGen() // the borrowed connection's, or older
		conn := s.c.Pool.Get()
		defer conn.Close()
		key := s.prefix + token
		conn.Send("MULTI")
		conn.Send("SET", key, b)
		conn.Send("PEXPIREAT", key, expiry.UnixMilli())
		if _, err := conn.Do("EXEC"); err != nil {
			return err
		}
		return s.waitReplica(conn, gen)
	})
	s.invalidate(token)
	return err
}

// Delete implements scs.Store.
func (s *RedisStore) Delete(token string) error {
	err := s.c.Do(func() error {
		gen := s.c.masterGen()
		conn := s.c.Pool.Get()
		defer conn.Close()
		if _, err := conn.Do("DEL", s.prefix+token); err != nil {
			return err
		}
		return s.waitReplica(conn, gen)
	})
	s.invalidate(token)
	return err
}

// invalidate drops token from this instance's cache at once, whatever
// came of the write: the notification from Redis comes a little later.
func (s *RedisStore) invalidate(token string) {
	if s.cache != nil {
		s.cache.invalidate(false, token)
	}
}

// waitReplica waits (with Sentinel) for a replica to acknowledge conn's
// writes. When none does, it asks the Sentinels whether conn's server is
// still the master: in a failover, the old master takes writes until it is
// demoted and then drops them, so a write that reached it in that window
// is made again on the new master (errMasterChanged makes
// RedisClient.Do retry it). Otherwise the write counts: it is on the
// master (whose replica may just be down). gen is the master generation
// read before conn was borrowed (the pool hands out connections of the
// current generation only, so conn's is gen or newer).
func (s *RedisStore) waitReplica(conn redis.Conn, gen uint64) error {
	if !s.wait {
		return nil
	}
	n, err := redis.Int(conn.Do("WAIT", 1, replicaWait.Milliseconds()))
	if err != nil || n > 0 {
		return nil
	}
	if !s.c.sentinel.stillMaster(gen) {
		return errMasterChanged
	}
	return nil
}
