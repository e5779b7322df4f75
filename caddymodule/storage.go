package caddymodule

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.etcd.io/bbolt"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/sessions"
	userbolt "github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/bolt"
)

// Reloads provision the new config before cleaning up the old one, and bbolt
// holds an exclusive file lock: the open DB (and the Redis pool) are shared
// across configs through usage pools, keyed by what identifies them.
var (
	dbPool    = caddy.NewUsagePool()
	redisPool = caddy.NewUsagePool()
)

// sessionCleanupInterval is how often expired sessions are purged from bbolt.
const sessionCleanupInterval = 10 * time.Minute

// sharedDB is one open bbolt file with the stores over it.
type sharedDB struct {
	db       *bbolt.DB
	users    *userbolt.Store
	sessions *sessions.BoltStore
}

func (d *sharedDB) Destruct() error {
	d.sessions.Close()
	return d.db.Close()
}

func openSharedDB(path string, lockTimeout time.Duration) (*sharedDB, string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", fmt.Errorf("users_db %q: %v", path, err)
	}
	key := filepath.Clean(abs)
	v, _, err := dbPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		db, err := userbolt.OpenDB(key, lockTimeout)
		if err != nil {
			return nil, err
		}
		us, err := userbolt.NewStore(db)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("users_db %s: %v", key, err)
		}
		ss, err := sessions.NewBoltStore(db, sessionCleanupInterval)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("users_db %s: %v", key, err)
		}
		return &sharedDB{db: db, users: us, sessions: ss}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(*sharedDB), key, nil
}
