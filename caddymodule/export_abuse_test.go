package caddymodule

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.etcd.io/bbolt"
)

// runningHandlers returns the session_auth handlers of the running config.
func runningHandlers() []*SessionAuth {
	app, err := caddy.ActiveContext().AppIfConfigured("http")
	if err != nil || app == nil {
		return nil
	}
	var found []*SessionAuth
	var walk func(caddyhttp.RouteList)
	walk = func(routes caddyhttp.RouteList) {
		for _, r := range routes {
			for _, h := range r.Handlers {
				switch h := h.(type) {
				case *SessionAuth:
					found = append(found, h)
				case *caddyhttp.Subroute:
					walk(h.Routes)
				}
			}
		}
	}
	for _, srv := range app.(*caddyhttp.App).Servers {
		walk(srv.Routes)
	}
	return found
}

// CountHashes counts, from now on, the password hashes and verifications
// (argon2 runs, dummy ones included) of the running config's handlers.
func CountHashes() func() int64 {
	var n atomic.Int64
	for _, h := range runningHandlers() {
		h.hasher.SetObserver(func(d time.Duration) {
			n.Add(1)
			observeHash(d)
		})
	}
	return n.Load
}

// SnapshotDB writes a consistent copy of the open users DB at path to dst,
// as a backup taken with bbolt's hot copy would be.
func SnapshotDB(path, dst string) error {
	abs, _ := filepath.Abs(path)
	var db *bbolt.DB
	dbPool.Range(func(key, value any) bool {
		if key == filepath.Clean(abs) {
			db = value.(*sharedDB).db
			return false
		}
		return true
	})
	if db == nil {
		return fmt.Errorf("%s is not open", path)
	}
	os.Remove(dst)
	return db.View(func(tx *bbolt.Tx) error { return tx.CopyFile(dst, 0o600) })
}
