package users

import "sync"

// userCache holds decoded users by id so that ByID, which runs on every
// gated request, skips bbolt's read transaction (about a microsecond and ten
// allocations) when it can. It is exact, not a TTL cache: bbolt holds an
// exclusive file lock, so every write to the users bucket goes through a
// BoltStore of this process, and BoltStore drops a user from the cache after
// every write transaction that may have changed it. Entries are immutable
// snapshots; ByID hands out copies.
//
// A read that misses fills the cache only if no write ended while it read
// (gen unchanged), so a fill can never put back a value older than the last
// invalidation: a write bumps gen and deletes under the lock after it
// commits, and a fill that got its value before that commit either sees the
// new gen or lands before the delete.
type userCache struct {
	mu  sync.RWMutex
	gen uint64
	m   map[int64]*User
	max int
}

// defaultUserCacheSize bounds the cache: about 300 bytes a user, so a few
// MiB at most. Past it, a random entry makes room.
const defaultUserCacheSize = 10000

func newUserCache(max int) *userCache {
	return &userCache{m: make(map[int64]*User), max: max}
}

// get returns a copy of the cached user, or nil, and the generation to pass
// to put after reading the user from bbolt on a miss.
func (c *userCache) get(id int64) (*User, uint64) {
	c.mu.RLock()
	snap, gen := c.m[id], c.gen
	c.mu.RUnlock()
	if snap == nil {
		return nil, gen
	}
	u := *snap
	return &u, gen
}

// put caches a snapshot of u, read at generation gen, unless a write has
// ended since.
func (c *userCache) put(u *User, gen uint64) {
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

// invalidate drops the given users (all of them if ids is empty) once a
// write transaction has ended, committed or not.
func (c *userCache) invalidate(ids ...int64) {
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
