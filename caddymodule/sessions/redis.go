package sessions

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
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
// (OpenRedis takes these and Sentinel URLs.) It validates the URL but does not connect: the first command does. Errors
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
	if t.master != "" {
		return nil, fmt.Errorf("sessions: %s: Sentinel URLs need OpenRedis", t.redacted)
	}
	o := opts.withDefaults()
	return newPool(t.directDial(o.dialOptions(t.options, nil)), o), nil
}

// dialOptions returns base plus the timeouts (and tlsConf, if any).
func (o PoolOptions) dialOptions(base []redis.DialOption, tlsConf *tls.Config) []redis.DialOption {
	opts := append(base[:len(base):len(base)],
		redis.DialConnectTimeout(o.DialTimeout),
		redis.DialTLSHandshakeTimeout(o.DialTimeout),
		redis.DialReadTimeout(o.ReadTimeout),
		redis.DialWriteTimeout(o.WriteTimeout),
	)
	if tlsConf != nil {
		opts = append(opts, redis.DialTLSConfig(tlsConf))
	}
	return opts
}

// directDial dials the URL's own address.
func (t *redisTarget) directDial(opts []redis.DialOption) func(context.Context) (redis.Conn, error) {
	return func(ctx context.Context) (redis.Conn, error) {
		c, err := redis.DialContext(ctx, t.network, t.address, opts...)
		if err != nil {
			// err never holds the password: redigo's errors name the
			// address, and Redis's AUTH replies do not echo it.
			return nil, fmt.Errorf("sessions: connecting to redis %s: %w", t.redacted, err)
		}
		return c, nil
	}
}

func newPool(dial func(context.Context) (redis.Conn, error), o PoolOptions) *redis.Pool {
	return &redis.Pool{
		DialContext: dial,
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
	}
}

// redisTarget is a parsed, validated Redis URL.
type redisTarget struct {
	network, address string             // empty address: found through Sentinel
	options          []redis.DialOption // auth, database, TLS
	redacted         string             // the URL without its password, for messages
	tls              bool

	// Sentinel (redis+sentinel:// URLs): the Sentinels' host:port
	// addresses and the name of the master they watch.
	sentinels []string
	master    string
}

// Sentinel URL schemes; rediss+sentinel speaks TLS to the Sentinels and
// the master alike.
const (
	schemeSentinel       = "redis+sentinel"
	schemeSentinelTLS    = "rediss+sentinel"
	defaultSentinelPort  = "26379"
	sentinelsPlaceholder = "sentinels.invalid"
)

// parseRedisURL validates rawURL. Its errors quote only the redacted URL.
func parseRedisURL(rawURL string) (*redisTarget, error) {
	// A userinfo (everything before the last '@') holding '/', '?' or '#'
	// unescaped, as a pasted password may, would be read as a host, path,
	// query or fragment, and quoted as such: refuse it before parsing,
	// quoting only what follows it.
	if scheme, rest, ok := strings.Cut(rawURL, "://"); ok {
		if at := strings.LastIndexByte(rest, '@'); at >= 0 && strings.ContainsAny(rest[:at], "/?#") {
			return nil, fmt.Errorf("sessions: invalid redis URL %s: the part before its last '@' (user and password) holds '/', '?' or '#': percent-encode them (%%2F, %%3F, %%23)",
				redactRaw(scheme, rest))
		}
	}
	var sentinelHosts string
	if scheme, rest, ok := strings.Cut(rawURL, "://"); ok && (scheme == schemeSentinel || scheme == schemeSentinelTLS) {
		// url.Parse takes one host only: the Sentinels' list is cut out
		// and parsed here, and a placeholder host parsed in its place.
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		authority := rest[:end]
		userinfo := ""
		if at := strings.LastIndexByte(authority, '@'); at >= 0 {
			userinfo, sentinelHosts = authority[:at+1], authority[at+1:]
		} else {
			sentinelHosts = authority
		}
		rawURL = scheme + "://" + userinfo + sentinelsPlaceholder + rest[end:]
	}
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
	if u.Scheme == schemeSentinel || u.Scheme == schemeSentinelTLS {
		// The placeholder follows "@" or "://" (userinfo escapes "@").
		r := t.redacted
		if i := strings.Index(r, "@"+sentinelsPlaceholder); i >= 0 {
			t.redacted = r[:i+1] + sentinelHosts + r[i+1+len(sentinelsPlaceholder):]
		} else if i := strings.Index(r, "://"+sentinelsPlaceholder); i >= 0 {
			t.redacted = r[:i+3] + sentinelHosts + r[i+3+len(sentinelsPlaceholder):]
		}
	}
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
		t.tls = u.Scheme == "rediss"
	case schemeSentinel, schemeSentinelTLS:
		if sentinelHosts == "" {
			return nil, bad("missing Sentinel addresses (want %s://host:port[,host:port...]/<master-name>[/<db>])", u.Scheme)
		}
		for _, h := range strings.Split(sentinelHosts, ",") {
			addr, err := sentinelAddr(h)
			if err != nil {
				return nil, bad("%v", err)
			}
			t.sentinels = append(t.sentinels, addr)
		}
		if u.RawQuery != "" {
			return nil, bad("unexpected query (use /<master-name>/<db>)")
		}
		path := strings.TrimPrefix(u.Path, "/")
		t.master, db, _ = strings.Cut(path, "/")
		if t.master == "" {
			return nil, bad("missing master name (want %s://host:port[,host:port...]/<master-name>[/<db>])", u.Scheme)
		}
		if strings.Contains(db, "/") {
			return nil, bad("path must be /<master-name>[/<db number>]")
		}
		t.network = "tcp"
		t.tls = u.Scheme == schemeSentinelTLS
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
		return nil, bad("missing scheme (want redis://, rediss://, redis+sentinel:// or unix://)")
	default:
		return nil, bad("unsupported scheme %q (want redis, rediss, redis+sentinel, rediss+sentinel or unix)", u.Scheme)
	}
	t.options = append(t.options, redis.DialUseTLS(t.tls))

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

// sentinelAddr validates one Sentinel's host[:port] (port 26379 when
// left out).
func sentinelAddr(h string) (string, error) {
	if h == "" {
		return "", errors.New("empty Sentinel address in the list")
	}
	host, port := h, defaultSentinelPort
	if strings.HasPrefix(h, "[") || strings.Count(h, ":") == 1 {
		if hp, p, err := net.SplitHostPort(h); err == nil {
			host, port = hp, p
		} else if !strings.HasSuffix(h, "]") {
			return "", fmt.Errorf("invalid Sentinel address %q", h)
		} else {
			host = strings.Trim(h, "[]")
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("invalid Sentinel port %q", port)
	}
	if host == "" || strings.ContainsAny(host, "/@[]") {
		return "", fmt.Errorf("invalid Sentinel address %q", h)
	}
	return net.JoinHostPort(host, port), nil
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

// RedactURL returns rawURL fit for logs and errors: as parseRedisURL
// shows it (password hidden as by redactURL, Sentinel URLs included) if it
// is a valid Redis URL, else with everything before its last '@' hidden
// and no query or fragment.
func RedactURL(rawURL string) string {
	if t, err := parseRedisURL(rawURL); err == nil {
		return t.redacted
	}
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		if strings.ContainsAny(rawURL, "@?#") {
			return "(unparsable URL)"
		}
		return rawURL
	}
	return redactRaw(scheme, rest)
}

// redactRaw shows scheme://rest, a URL that may not parse, with no
// userinfo (everything before the last '@' is hidden), query or fragment.
// If a '/', '?' or '#' comes before the last '@', whether that '@' ends a
// password or belongs to a query cannot be told: only the scheme is shown.
func redactRaw(scheme, rest string) string {
	userinfo := ""
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		if strings.ContainsAny(rest[:at], "/?#") {
			return scheme + "://xxxxx"
		}
		userinfo, rest = "xxxxx@", rest[at+1:]
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i] + "?xxxxx"
	}
	return scheme + "://" + userinfo + rest
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

// TLSConfigFromFiles returns a TLS configuration for rediss:// that trusts
// the CA certificates in the PEM file caFile (the system's roots if empty)
// and presents the client certificate in certFile/keyFile (none if both
// are empty; one without the other is an error).
func TLSConfigFromFiles(caFile, certFile, keyFile string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate in it", caFile)
		}
		conf.RootCAs = pool
	}
	switch {
	case certFile != "" && keyFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %v", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	case certFile != "":
		return nil, errors.New("a client certificate needs its key")
	case keyFile != "":
		return nil, errors.New("a client key needs its certificate")
	}
	return conf, nil
}
