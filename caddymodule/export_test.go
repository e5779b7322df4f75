package caddymodule

import (
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// UsersOf returns the users store of the open DB at path, so tests can
// change a user behind a running Caddy as an operator would.
func UsersOf(path string) users.Store {
	want, _ := usersDBKey(path)
	var found users.Store
	dbPool.Range(func(key, value any) bool {
		if key == want {
			found = value.(*sharedDB).users
			return false
		}
		return true
	})
	return found
}
