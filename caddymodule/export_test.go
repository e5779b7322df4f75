package caddymodule

import (
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/passwords"
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

// UseCheapHashes makes the process hasher hash with argon2id at 1 MiB and
// one pass instead of 19 MiB and two: the in-process tests register and
// log in thousands of times, and under the race detector each default hash
// takes most of a second. Call it from TestMain, before any handler runs.
// Tests of the hashing bound and of timing compare hashes of one cost, so
// they hold at any cost; the tests that run the caddy binary (memory,
// subprocess) keep the defaults.
func UseCheapHashes() {
	hashers.Lock()
	defer hashers.Unlock()
	hasherParams = passwords.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	hashers.hasher = nil
}
