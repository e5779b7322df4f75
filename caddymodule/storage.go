package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/passwords"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/sessions"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
	userbolt "github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/bolt"
	userpg "github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/postgres"
)

// Reloads provision the new config before cleaning up the old one, and bbolt
// holds an exclusive file lock: the open users database (and the Redis
// pool) are shared across configs through usage pools, keyed by what
// identifies them: the absolute path of a bbolt file, the URL of a
// PostgreSQL database (so a reload that keeps the URL keeps the pool).
var (
	dbPool    = caddy.NewUsagePool()
	redisPool = caddy.NewUsagePool()
)

// sessionCleanupInterval is how often expired sessions are purged from bbolt.
const sessionCleanupInterval = 10 * time.Minute

// Timeouts of the PostgreSQL users backend in a running Caddy: a request
// that needs a database that is down or hung gets its 503 within 5 s (as
// with Redis), the connect and the statement each bounded by this.
const pgTimeout = 3 * time.Second

// pgStartCheck bounds the check at start-up (schema migration): a server
// that does not answer by then is logged, and Caddy starts anyway.
const pgStartCheck = 4 * time.Second

// sharedDB is one open users database: a bbolt file (with the sessions
// kept in it when there is no Redis) or a PostgreSQL database. It is made in
// one place, openUsersDB, for Caddy and for the CLI alike; nothing above it
// needs to know which it is beyond users.Store.
type sharedDB struct {
	users users.Store
	// name is the path, or the URL with its password redacted, for
	// messages and logs.
	name string

	// bbolt only.
	db       *bbolt.DB
	sessions *sessions.BoltStore // nil in the CLI

	// PostgreSQL only.
	pg *userpg.Store
	// scheme is how new password hashes are written: the zero value
	// (argon2id), or with django_users what password_hasher says.
	scheme passwords.Scheme
}

// kind names the backend: "bolt" or "postgres".
func (d *sharedDB) kind() string {
	if d.pg != nil {
		return "postgres"
	}
	return "bolt"
}

// ping reports whether the database answers (health).
func (d *sharedDB) ping(ctx context.Context) error {
	if d.pg != nil {
		return d.pg.Ping(ctx)
	}
	return d.db.View(func(*bbolt.Tx) error { return nil })
}

// Destruct closes the database (the usage pool calls it).
func (d *sharedDB) Destruct() error {
	if d.pg != nil {
		d.pg.Close()
		return nil
	}
	if d.sessions != nil {
		d.sessions.Close()
	}
	return d.db.Close()
}

// isUsersURL reports whether users_db names a PostgreSQL database
// (postgres:// or postgresql://) rather than a bbolt file.
func isUsersURL(spec string) bool { return userpg.IsURL(strings.TrimSpace(spec)) }

// usersDBKey is what identifies the users database spec names: the URL as
// given, or the file's clean absolute path.
func usersDBKey(spec string) (string, error) {
	if _, _, django := parseDjangoKey(spec); django {
		return strings.TrimSpace(spec), nil // djangousers.go: already a key
	}
	if isUsersURL(spec) {
		return strings.TrimSpace(spec), nil
	}
	abs, err := filepath.Abs(spec)
	if err != nil {
		return "", fmt.Errorf("users_db %q: %v", spec, err)
	}
	return filepath.Clean(abs), nil
}

// displayDBKey is a pool key fit for messages (no password).
func displayDBKey(key string) string {
	if url, _, django := parseDjangoKey(key); django {
		return "django_users " + userpg.RedactURL(url)
	}
	if isUsersURL(key) {
		return userpg.RedactURL(key)
	}
	return key
}

// usersDBOptions says how openUsersDB opens a database.
type usersDBOptions struct {
	// lockTimeout is how long to wait for a bbolt file's lock.
	lockTimeout time.Duration
	// sessions also opens the bbolt session store in the file (Caddy).
	sessions bool
	// mustExist refuses a bbolt file that does not exist (CLI commands
	// other than create-user and import).
	mustExist bool
	// pgTimeout bounds PostgreSQL connects and calls (0: the store's
	// default).
	pgTimeout time.Duration
	// logger, if set, is told when PostgreSQL's invalidation listener
	// stops or starts (the cache is bypassed meanwhile).
	logger *zap.Logger
}

// openUsersDB opens the users database key names (see usersDBKey): the one
// place that turns users_db, or the CLI's --db, into a users.Store. A
// PostgreSQL store does not connect here (see userpg.New): it connects on
// first use, so a caller that must know whether the server answers checks
// it (Caddy logs it, the CLI fails).
func openUsersDB(key string, o usersDBOptions) (*sharedDB, error) {
	key, scheme, django := parseDjangoKey(key) // djangousers.go
	if isUsersURL(key) {
		opts := userpg.Options{ConnectTimeout: o.pgTimeout, QueryTimeout: o.pgTimeout, Django: django}
		name := userpg.RedactURL(key)
		if o.logger != nil {
			logger := o.logger.With(zap.String("users_db", name))
			opts.OnListener = func(ev userpg.ListenerEvent) {
				switch {
				case ev.Listening && ev.Down > 0:
					logger.Info("PostgreSQL invalidation listener back; user cache in use again", zap.Duration("down", ev.Down))
				case ev.Listening:
					logger.Debug("PostgreSQL invalidation listener connected")
				default:
					logger.Warn("PostgreSQL invalidation listener down; every user read goes to the database until it is back", zap.Error(ev.Err))
				}
			}
		}
		st, err := userpg.New(key, opts)
		if err != nil {
			return nil, fmt.Errorf("users_db %s: %v", name, err)
		}
		return &sharedDB{users: st, name: name, pg: st, scheme: scheme}, nil
	}
	if o.mustExist {
		if _, err := os.Stat(key); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("users db %s does not exist", key)
		}
	}
	db, err := userbolt.OpenDB(key, o.lockTimeout)
	if err != nil {
		return nil, err
	}
	d := &sharedDB{name: key, db: db}
	us, err := userbolt.NewStore(db)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("users db %s: %v", key, err)
	}
	d.users = us
	if o.sessions {
		if d.sessions, err = sessions.NewBoltStore(db, sessionCleanupInterval); err != nil {
			db.Close()
			return nil, fmt.Errorf("users db %s: %v", key, err)
		}
	}
	return d, nil
}

// openSharedDB returns the running Caddy's users database for spec (a path
// or a URL), opening it if no config has it open, and its pool key, to be
// released with dbPool.Delete. A PostgreSQL database opened here is checked
// (and its schema migrated) once: one whose schema is too new is refused;
// one that does not answer is logged, and Caddy starts anyway.
func openSharedDB(spec string, lockTimeout time.Duration) (*sharedDB, string, error) {
	key, err := usersDBKey(spec)
	if err != nil {
		return nil, "", err
	}
	v, loaded, err := dbPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		return openUsersDB(key, usersDBOptions{
			lockTimeout: lockTimeout, sessions: true, pgTimeout: pgTimeout,
			logger: caddy.Log().Named("session_auth.users_db"),
		})
	})
	if err != nil {
		return nil, "", err
	}
	d := v.(*sharedDB)
	if !loaded && d.pg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), pgStartCheck)
		err := d.pg.Migrate(ctx)
		cancel()
		switch {
		case errors.Is(err, userpg.ErrSchemaTooNew), errors.Is(err, userpg.ErrNotDjango):
			_, _ = dbPool.Delete(key)
			return nil, "", fmt.Errorf("users_db %s: %v", d.name, err)
		case err != nil:
			caddy.Log().Named("session_auth.users_db").Warn(
				"PostgreSQL unreachable at start; requests that need users will get 503 until it is back",
				zap.String("users_db", d.name), zap.Error(err))
		}
	}
	return d, key, nil
}

// checkSharedSessions refuses users in PostgreSQL without Redis: every
// instance sharing the users would keep its own sessions and throttles,
// so a user logged in through one would be anonymous on the next.
func (s *SessionAuth) checkSharedSessions() error {
	if s.Redis == "" && isUsersURL(s.UsersDB) {
		return fmt.Errorf("users_db %s is PostgreSQL, shared by every instance that uses it, but redis is not set: "+
			"sessions would not be shared (each instance would keep its own, and the login throttles too); "+
			"set redis to a Redis server all the instances use", userpg.RedactURL(s.UsersDB))
	}
	return nil
}
