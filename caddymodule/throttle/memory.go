package throttle

import (
	"sync"
	"time"
)

// DefaultMaxKeys bounds a Memory store made with maxKeys <= 0. An entry
// costs about 150 bytes, so the default bounds the store near 10 MB.
const DefaultMaxKeys = 65536

// sweepEvery is how often, at most, expired entries are swept on write.
const sweepEvery = time.Minute

// Memory is a Store in this process's memory, for a single instance. Its
// size is bounded: expired entries are swept as it is written to, and when
// it is full of live entries the oldest-looking counters (then bans) make
// room, so a flood of distinct keys cannot grow it without bound.
type Memory struct {
	mu        sync.Mutex
	entries   map[string]*entry
	maxKeys   int
	lastSweep time.Time
	now       func() time.Time
}

type entry struct {
	n     int64
	until time.Time // the entry is gone at this instant
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty store holding at most maxKeys entries
// (DefaultMaxKeys if maxKeys <= 0).
func NewMemory(maxKeys int) *Memory {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Memory{entries: make(map[string]*entry), maxKeys: maxKeys, now: time.Now}
}

// Len returns the number of entries, live or not yet swept.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// live returns key's entry if it has not expired.
func (m *Memory) live(key string, now time.Time) *entry {
	e := m.entries[key]
	if e == nil {
		return nil
	}
	if !now.Before(e.until) {
		delete(m.entries, key)
		return nil
	}
	return e
}

// put stores a new entry, making room first if needed.
func (m *Memory) put(key string, e *entry, now time.Time) {
	if now.Sub(m.lastSweep) >= sweepEvery || len(m.entries) >= m.maxKeys {
		m.sweep(now)
	}
	if len(m.entries) >= m.maxKeys {
		m.evict()
	}
	m.entries[key] = e
}

func (m *Memory) sweep(now time.Time) {
	m.lastSweep = now
	for k, e := range m.entries {
		if !now.Before(e.until) {
			delete(m.entries, k)
		}
	}
}

// evict drops an eighth of the entries (map order is random), counters
// before bans, so a full store frees room in batches.
func (m *Memory) evict() {
	target := len(m.entries) - m.maxKeys*7/8
	for _, bansToo := range []bool{false, true} {
		for k := range m.entries {
			if target <= 0 {
				return
			}
			if !bansToo && len(k) >= len(banPrefix) && k[:len(banPrefix)] == banPrefix {
				continue
			}
			delete(m.entries, k)
			target--
		}
	}
}

// Banned implements Store.
func (m *Memory) Banned(keys ...string) (time.Duration, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var longest time.Duration
	which := -1
	for i, k := range keys {
		if e := m.live(banPrefix+k, now); e != nil && e.until.Sub(now) > longest {
			longest, which = e.until.Sub(now), i
		}
	}
	return longest, which, nil
}

// Fail implements Store.
func (m *Memory) Fail(key string, limit int, window, ban time.Duration) (time.Duration, error) {
	if err := checkArgs(limit, window, ban); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	fk := failPrefix + key
	e := m.live(fk, now)
	if e == nil {
		e = &entry{until: now.Add(window)}
		m.put(fk, e, now)
	}
	e.n++
	if e.n < int64(limit) {
		return 0, nil
	}
	delete(m.entries, fk)
	bk := banPrefix + key
	if b := m.live(bk, now); b != nil {
		b.until = now.Add(ban)
	} else {
		m.put(bk, &entry{n: 1, until: now.Add(ban)}, now)
	}
	return ban, nil
}

// Forget implements Store.
func (m *Memory) Forget(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, failPrefix+key)
	return nil
}

// Take implements Store.
func (m *Memory) Take(key string, limit int, window time.Duration) (time.Duration, error) {
	if err := checkArgs(limit, window); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	tk := takePrefix + key
	e := m.live(tk, now)
	if e == nil {
		e = &entry{until: now.Add(window)}
		m.put(tk, e, now)
	}
	e.n++
	if e.n <= int64(limit) {
		return 0, nil
	}
	return e.until.Sub(now), nil
}
