package sessions

import "sync"

// findCache holds what BoltStore.Find read (expiry and data by token), so
// that the per-request session read skips bbolt's read transaction (about a
// microsecond and nine allocations) when it can. It is exact, not a TTL
// cache: bbolt's exclusive file lock means every write to the sessions
// bucket goes through a BoltStore of this process, and BoltStore drops a
// token after every write transaction that may have changed it. Expiry is
// checked on every hit, as Find does on a read. Only found sessions are
// cached: an unknown token always costs a bbolt read.
//
// A miss fills the cache only if no write ended while it read (gen
// unchanged): see users/internal/usercache, which works the same way.
type findCache struct {
	mu  sync.RWMutex
	gen uint64
	m   map[string]cachedSession
	max int
}

type cachedSession struct {
	expiry int64  // unix nanoseconds
	data   []byte // never handed out: Find returns copies
}

// defaultFindCacheSize bounds the cache at about 200 bytes a session, a few
// MiB at most. Past it, a random entry makes room.
const defaultFindCacheSize = 10000

func newFindCache(max int) *findCache {
	return &findCache{m: make(map[string]cachedSession), max: max}
}

// get returns the cached session of token and whether there is one, and the
// generation to pass to put after reading from bbolt on a miss.
func (c *findCache) get(token string) (cachedSession, bool, uint64) {
	c.mu.RLock()
	e, ok := c.m[token]
	gen := c.gen
	c.mu.RUnlock()
	return e, ok, gen
}

// put caches a copy of data, read at generation gen, unless a write has
// ended since.
func (c *findCache) put(token string, expiry int64, data []byte, gen uint64) {
	if c.max <= 0 {
		return
	}
	e := cachedSession{expiry: expiry, data: append([]byte(nil), data...)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if _, ok := c.m[token]; !ok && len(c.m) >= c.max {
		for k := range c.m { // map order is random: a random eviction
			delete(c.m, k)
			break
		}
	}
	c.m[token] = e
}

// invalidate drops the given tokens once a write transaction has ended,
// committed or not.
func (c *findCache) invalidate(tokens ...string) {
	c.mu.Lock()
	c.gen++
	for _, t := range tokens {
		delete(c.m, t)
	}
	c.mu.Unlock()
}
