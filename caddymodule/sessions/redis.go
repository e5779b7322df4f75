package sessions

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// PoolOptions tunes NewRedisPool. Zero fields take the defaults noted.
type PoolOptions struct {
	DialTimeout  time.Duration // connect (and TLS handshake) timeout; default 2s
	ReadTimeout  time.Duration // per-command read timeout; default 2s
	WriteTimeout time.Duration // per-command write timeout; default 2s
	MaxIdle      int           // idle connections kept; default 64
	MaxActive    int           // open connections limit; default 0 (no limit)
	IdleTimeout  time.Duration // idle connections are closed after this; default 4m
}

// Defaults for PoolOptions' zero fields.
const (
	DefaultDialTimeout  = 2 * time.Second
	DefaultReadTimeout  = 2 * time.Second
	DefaultWriteTimeout = 2 * time.Second
	DefaultMaxIdle      = 64
	DefaultIdleTimeout  = 4 * time.Minute
)

// pingAfterIdle is how long a pooled connection may sit idle before it is
// checked with PING on borrow; fresher ones are trusted, saving a round trip
// on the hot path.
const pingAfterIdle = time.Minute

func (o PoolOptions) withDefaults() PoolOptions {
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.MaxIdle <= 0 {
		o.MaxIdle = DefaultMaxIdle
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	return o
}

// NewRedisPool returns a redigo pool for the Redis at rawURL, one of
//
//	redis://[[user]:password@]host[:port][/db]    (port defaults to 6379)
//	rediss://...                                  the same over TLS
//	unix://[[user]:password@]/path/to/redis.sock[?db=N]
//
// It validates the URL but does not connect: the first command does. Errors
// never contain the password.
//
// The pool never waits for a free connection (Wait is false): scs's
// redisstore takes no context, so a waiting Get could block a request
// forever; with MaxActive reached, commands fail fast instead.
func NewRedisPool(rawURL string, opts PoolOptions) (*redis.Pool, error) {
	t, err := parseRedisURL(rawURL)
	if err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	dialOpts := append(t.options[:len(t.options):len(t.options)],
		redis.DialConnectTimeout(o.DialTimeout),
		redis.DialTLSHandshakeTimeout(o.DialTimeout),
		redis.DialReadTimeout(o.ReadTimeout),
		redis.DialWriteTimeout(o.WriteTimeout),
	)
	return &redis.Pool{
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			c, err := redis.DialContext(ctx, t.network, t.address, dialOpts...)
			if err != nil {
				// err never holds the password: redigo's errors name the
				// address, and Redis's AUTH replies do not echo it.
				return nil, fmt.Errorf("sessions: connecting to redis %s: %w", t.redacted, err)
			}
			return c, nil
		},
		TestOnBorrow: func(c redis.Conn, lastUsed time.Time) error {
			if time.Since(lastUsed) < pingAfterIdle {
				return nil
			}
			_, err := c.Do("PING")
			return err
		},
		MaxIdle:     o.MaxIdle,
		MaxActive:   o.MaxActive,
		IdleTimeout: o.IdleTimeout,
		Wait:        false,
	}, nil
}

// redisTarget is a parsed, validated Redis URL.
type redisTarget struct {
	network, address string
	options          []redis.DialOption // auth, database, TLS
	redacted         string             // the URL without its password, for messages
}

// parseRedisURL validates rawURL. Its errors quote only the redacted URL.
func parseRedisURL(rawURL string) (*redisTarget, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Parse's error quotes the whole URL, password included, so
		// only its inner reason is kept, and only when there is no userinfo
		// it could be quoting.
		var uerr *url.Error
		if !strings.Contains(rawURL, "@") && errors.As(err, &uerr) {
			return nil, fmt.Errorf("sessions: invalid redis URL: %v", uerr.Err)
		}
		return nil, errors.New("sessions: invalid redis URL (not parseable; not shown since it may contain a password)")
	}
	t := &redisTarget{redacted: redactURL(u)}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("sessions: invalid redis URL %s: %s", t.redacted, fmt.Sprintf(format, args...))
	}
	if u.Opaque != "" {
		return nil, bad("expected scheme://host form")
	}
	if u.Fragment != "" || u.RawFragment != "" {
		return nil, bad("unexpected fragment")
	}

	var db string
	switch u.Scheme {
	case "redis", "rediss":
		if u.Hostname() == "" {
			return nil, bad("missing host (want %s://host:port/db)", u.Scheme)
		}
		port := u.Port()
		if port == "" {
			port = "6379"
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, bad("invalid port %q", port)
		}
		if u.RawQuery != "" {
			return nil, bad("unexpected query (use /<db> for the database)")
		}
		t.network, t.address = "tcp", net.JoinHostPort(u.Hostname(), port)
		db = strings.TrimPrefix(u.Path, "/")
		if strings.Contains(db, "/") {
			return nil, bad("path must be /<db number>")
		}
		t.options = append(t.options, redis.DialUseTLS(u.Scheme == "rediss"))
	case "unix":
		if u.Host != "" {
			return nil, bad("unix URLs take an absolute socket path: unix:///path/to/redis.sock")
		}
		if u.Path == "" {
			return nil, bad("missing socket path")
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return nil, bad("invalid query: %v", err)
		}
		for k := range q {
			if k != "db" {
				return nil, bad("unexpected query parameter %q (only db is supported)", k)
			}
		}
		t.network, t.address = "unix", u.Path
		db = q.Get("db")
	case "":
		return nil, bad("missing scheme (want redis://, rediss:// or unix://)")
	default:
		return nil, bad("unsupported scheme %q (want redis, rediss or unix)", u.Scheme)
	}

	if db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 {
			return nil, bad("invalid database number %q", db)
		}
		if n != 0 {
			t.options = append(t.options, redis.DialDatabase(n))
		}
	}
	t.options = append(t.options, authOptions(u.User)...)
	return t, nil
}

// authOptions follows redigo's DialURL conventions: "user:pass" is an ACL
// login, ":pass" and a lone "pass" are the legacy requirepass password.
func authOptions(ui *url.Userinfo) []redis.DialOption {
	if ui == nil {
		return nil
	}
	user := ui.Username()
	pass, hasPass := ui.Password()
	switch {
	case hasPass && user != "":
		return []redis.DialOption{redis.DialUsername(user), redis.DialPassword(pass)}
	case hasPass:
		return []redis.DialOption{redis.DialPassword(pass)}
	case user != "":
		return []redis.DialOption{redis.DialPassword(user)}
	}
	return nil
}

// RedactURL returns rawURL fit for logs: the password hidden as by
// redactURL, or a placeholder if it does not parse.
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return redactURL(u)
}

// redactURL is u.Redacted, but also hides a lone userinfo word, which Redis
// URLs (unlike most) treat as the password, and query values other than db,
// which other clients accept passwords in. Fragments are dropped.
func redactURL(u *url.URL) string {
	r := *u
	r.Fragment, r.RawFragment = "", ""
	if u.User != nil {
		if _, hasPass := u.User.Password(); hasPass {
			r.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			r.User = url.User("xxxxx")
		}
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			r.RawQuery = "xxxxx"
		} else {
			for k, vs := range q {
				if k != "db" {
					for i := range vs {
						vs[i] = "xxxxx"
					}
				}
			}
			r.RawQuery = q.Encode()
		}
	}
	return r.String()
}
