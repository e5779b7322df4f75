package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/alexedwards/scs/v2"
	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/sessions"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/throttle"
)

// sessionBackend is where sessions live, and with them the throttles'
// counters (they must be shared by the same instances as the sessions).
// It is chosen in one place, openSessionBackend, from the config: the
// users_db bbolt file, or Redis (one server, or a master found through
// Sentinel), with or without the session cache.
type sessionBackend interface {
	// store is the scs store of sessions.
	store() scs.Store
	// kind names it in the health report: "users_db" or "redis".
	kind() string
	// ping reports whether it answers (health); nil for users_db, which
	// the health check covers on its own.
	ping() error
	// cacheStatus is the session cache's state for the health report
	// ("" when there is no such thing).
	cacheStatus() string
	// throttleStore returns the throttles' store under prefix, or nil to
	// keep the counters in this process's memory.
	throttleStore(prefix string) throttle.Store
	// release gives back what openSessionBackend took.
	release() error
}

// Defaults of the Redis session backend.
const (
	// defaultSessionCache bounds the session cache: about 300 bytes a
	// session, a few MiB at most.
	defaultSessionCache = 10000
	// maxSessionCache keeps a typo from reserving gigabytes.
	maxSessionCache = 10_000_000
)

// openSessionBackend picks and opens the session backend for s's config.
// The users DB must be open.
func (s *SessionAuth) openSessionBackend() (sessionBackend, error) {
	if s.Redis == "" {
		return boltBackend{s.db}, nil
	}
	if err := s.checkRedisSettings(); err != nil {
		return nil, err
	}
	cfg := redisConfig{
		url:              s.Redis,
		sentinelPassword: s.SentinelPassword,
		tlsCA:            s.RedisTLSCA,
		tlsCert:          s.RedisTLSCert,
		tlsKey:           s.RedisTLSKey,
		prefix:           s.RedisKeyPrefix,
		cache:            int(s.SessionCache),
	}
	if cfg.cache == 0 {
		cfg.cache = defaultSessionCache
	}
	if cfg.cache < 0 {
		cfg.cache = 0
	}
	return openRedisBackend(cfg, s.slogger)
}

// checkRedisSettings checks that the Redis settings fit together (with
// Redis set; without it they are ignored, so that `redis {$VAR}` with the
// variable unset keeps sessions in users_db).
func (s *SessionAuth) checkRedisSettings() error {
	if s.Redis == "" {
		return nil
	}
	if err := checkRedisURL(s.Redis); err != nil { // checks.go
		return err
	}
	scheme, _, _ := strings.Cut(s.Redis, "://")
	if s.SentinelPassword != "" && scheme != "redis+sentinel" && scheme != "rediss+sentinel" {
		return fmt.Errorf("sentinel_password: needs a redis+sentinel:// URL in redis")
	}
	for _, f := range []struct{ name, value string }{
		{"redis_tls_ca", s.RedisTLSCA}, {"redis_tls_cert", s.RedisTLSCert}, {"redis_tls_key", s.RedisTLSKey},
	} {
		if f.value != "" && scheme != "rediss" && scheme != "rediss+sentinel" {
			return fmt.Errorf("%s: needs a rediss:// (TLS) URL in redis", f.name)
		}
	}
	if (s.RedisTLSCert == "") != (s.RedisTLSKey == "") {
		return fmt.Errorf("redis_tls_cert and redis_tls_key go together")
	}
	if s.SessionCache < sessionCacheOff || s.SessionCache > maxSessionCache {
		return fmt.Errorf("session_cache: want a number of sessions (1 to %d) or \"off\"", maxSessionCache)
	}
	return nil
}

// boltBackend keeps sessions in the users_db file.
type boltBackend struct{ db *sharedDB }

func (b boltBackend) store() scs.Store                  { return b.db.sessions }
func (boltBackend) kind() string                        { return "users_db" }
func (boltBackend) ping() error                         { return nil }
func (boltBackend) cacheStatus() string                 { return "" }
func (boltBackend) throttleStore(string) throttle.Store { return nil }
func (boltBackend) release() error                      { return nil } // the DB has its own pool

// redisConfig is everything that makes one Redis backend; equal configs
// share one (pool, Sentinel watcher, session cache) across reloads.
type redisConfig struct {
	url, sentinelPassword  string
	tlsCA, tlsCert, tlsKey string
	prefix                 string
	cache                  int // entries; 0: off
}

// poolKey identifies the backend; the TLS files' size and time stamp are
// part of it, so that a reload after replacing a certificate reads it.
func (c redisConfig) poolKey() string {
	parts := []string{c.url, c.sentinelPassword, c.prefix, strconv.Itoa(c.cache)}
	for _, f := range []string{c.tlsCA, c.tlsCert, c.tlsKey} {
		stamp := ""
		if fi, err := os.Stat(f); f != "" && err == nil {
			stamp = fmt.Sprintf("%d@%d", fi.Size(), fi.ModTime().UnixNano())
		}
		parts = append(parts, f, stamp)
	}
	b, _ := json.Marshal(parts)
	return string(b)
}

// redisBackend keeps sessions in Redis.
type redisBackend struct {
	shared *sharedRedis
	key    string
}

// sharedRedis is one Redis client and session store, shared by every
// config that names the same Redis the same way.
type sharedRedis struct {
	client *sessions.RedisClient
	store  *sessions.RedisStore
}

func (r *sharedRedis) Destruct() error {
	r.store.Close()
	return r.client.Close()
}

func openRedisBackend(cfg redisConfig, logger *slog.Logger) (sessionBackend, error) {
	key := cfg.poolKey()
	v, _, err := redisPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		opts := sessions.RedisOptions{
			SentinelPassword: cfg.sentinelPassword,
			Logger:           logger,
		}
		if cfg.tlsCA != "" || cfg.tlsCert != "" || cfg.tlsKey != "" {
			tlsConf, err := sessions.TLSConfigFromFiles(cfg.tlsCA, cfg.tlsCert, cfg.tlsKey)
			if err != nil {
				return nil, fmt.Errorf("redis TLS (redis_tls_ca, redis_tls_cert, redis_tls_key): %v", err)
			}
			opts.TLS = tlsConf
		}
		client, err := sessions.OpenRedis(cfg.url, opts)
		if err != nil {
			return nil, fmt.Errorf("redis %s: %v", sessions.RedactURL(cfg.url), err)
		}
		return &sharedRedis{client: client, store: sessions.NewRedisStore(client, cfg.prefix, cfg.cache)}, nil
	})
	if err != nil {
		return nil, err
	}
	return &redisBackend{shared: v.(*sharedRedis), key: key}, nil
}

func (r *redisBackend) store() scs.Store { return r.shared.store }
func (*redisBackend) kind() string       { return "redis" }

func (r *redisBackend) ping() error {
	conn, err := r.shared.client.Pool.GetContext(context.Background())
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Do("PING")
	return err
}

func (r *redisBackend) cacheStatus() string { return r.shared.store.CacheStatus() }

func (r *redisBackend) throttleStore(prefix string) throttle.Store {
	c := r.shared.client
	return throttle.NewRedis(c.Pool, prefix, c.Do)
}

func (r *redisBackend) release() error {
	_, err := redisPool.Delete(r.key)
	return err
}

// SessionCache is the session_cache setting: a number of sessions, or
// "off" (in JSON, a number from 1 or the string "off"; absent is the
// default).
type SessionCache int

// sessionCacheOff is SessionCache's value for "off".
const sessionCacheOff SessionCache = -1

// MarshalJSON writes "off" or the number.
func (c SessionCache) MarshalJSON() ([]byte, error) {
	if c == sessionCacheOff {
		return []byte(`"off"`), nil
	}
	return strconv.AppendInt(nil, int64(c), 10), nil
}

// UnmarshalJSON takes "off" or a number of entries from 1 to 10,000,000.
func (c *SessionCache) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte(`"off"`)) {
		*c = sessionCacheOff
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n < 1 || n > maxSessionCache {
		return fmt.Errorf("session_cache: want a number of sessions (1 to %d) or \"off\", got %s", maxSessionCache, b)
	}
	*c = SessionCache(n)
	return nil
}
