// Package usercache is the exact in-memory cache of decoded users that the
// users backends put in front of ByID, which runs on every gated request.
//
// It is exact, not a TTL cache: the backend invalidates an entry after every
// write that may have changed it (bbolt: every write goes through the one
// process that holds the file lock; PostgreSQL: this process's writes, and
// every other writer's through LISTEN/NOTIFY). Entries are immutable
// snapshots; Get hands out copies.
//
// A read that misses fills the cache only if no invalidation happened while
// it read (the generation is unchanged), so a fill can never put back a
// value older than the last invalidation: an invalidation bumps the
// generation and deletes under the lock after the write committed, and a
// fill that got its value before that commit either sees the new generation
// or lands before the delete.
package usercache

import (
	"sync"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// DefaultSize bounds a cache: about 300 bytes a user, so a few MiB at most.
// Past it, a random entry makes room.
const DefaultSize = 10000

// Cache holds users by id. The zero value is not usable; call New.
type Cache struct {
	mu  sync.RWMutex
	gen uint64
	m   map[int64]*users.User
	max int
}

// New returns a cache of at most max users; max <= 0 disables it (Put does
// nothing).
func New(max int) *Cache {
	return &Cache{m: make(map[int64]*users.User), max: max}
}

// Get returns a copy of the cached user, or nil, and the generation to pass
// to Put after reading the user from the database on a miss.
func (c *Cache) Get(id int64) (*users.User, uint64) {
	c.mu.RLock()
	snap, gen := c.m[id], c.gen
	c.mu.RUnlock()
	if snap == nil {
		return nil, gen
	}
	u := *snap
	return &u, gen
}

// Gen returns the current generation, for a read that bypasses Get.
func (c *Cache) Gen() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// Put caches a snapshot of u, read at generation gen, unless an
// invalidation has happened since.
func (c *Cache) Put(u *users.User, gen uint64) {
	if c.max <= 0 {
		return
	}
	snap := *u
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if _, ok := c.m[u.ID]; !ok && len(c.m) >= c.max {
		for id := range c.m { // map order is random: a random eviction
			delete(c.m, id)
			break
		}
	}
	c.m[u.ID] = &snap
}

// Invalidate drops the given users (all of them if ids is empty). Call it
// once a write has ended, committed or not.
func (c *Cache) Invalidate(ids ...int64) {
	c.mu.Lock()
	c.gen++
	if len(ids) == 0 {
		clear(c.m)
	}
	for _, id := range ids {
		delete(c.m, id)
	}
	c.mu.Unlock()
}

// Len returns the number of cached users.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// Has reports whether id is cached (for tests).
func (c *Cache) Has(id int64) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[id] != nil
}
