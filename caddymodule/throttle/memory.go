package throttle

import (
	"strconv"
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
	seq       uint64 // the last attempt's ID
	now       func() time.Time
}

type entry struct {
	n     int64     // events (Take); 1 for a ban
	until time.Time // the entry is gone at this instant
	held  []held    // an attempt counter's admitted attempts
}

// held is an admitted attempt's place in a counter.
type held struct {
	id   string
	slot int
}

func (e *entry) find(id string) int {
	for j, h := range e.held {
		if h.id == id {
			return j
		}
	}
	return -1
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
// before bans, so a full store frees room in batches. (Evicting a counter
// forgets its attempts: a flood of distinct keys can reset one, which the
// bound is worth.)
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

// Admit implements Store.
func (m *Memory) Admit(limits ...Limit) (*Attempt, time.Duration, int, error) {
	if err := checkLimits(limits); err != nil {
		return nil, 0, -1, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var wait time.Duration
	which := -1
	for i, l := range limits {
		if b := m.live(banPrefix+l.Key, now); b != nil && b.until.Sub(now) > wait {
			wait, which = b.until.Sub(now), i
		}
	}
	if which >= 0 {
		return nil, wait, which, nil
	}
	for i, l := range limits {
		if c := m.live(attemptPrefix+l.Key, now); c != nil && len(c.held) >= l.Max && l.Ban > wait {
			wait, which = l.Ban, i
		}
	}
	if which >= 0 {
		return nil, wait, which, nil
	}
	m.seq++
	a := &Attempt{ID: strconv.FormatUint(m.seq, 36), Limits: limits, Slots: make([]int, len(limits))}
	for i, l := range limits {
		k := attemptPrefix + l.Key
		c := m.live(k, now)
		if c == nil {
			c = &entry{until: now.Add(l.Window)}
			m.put(k, c, now)
		}
		a.Slots[i] = len(c.held) + 1
		c.held = append(c.held, held{a.ID, a.Slots[i]})
	}
	return a, 0, -1, nil
}

// Fail implements Store.
func (m *Memory) Fail(a *Attempt) ([]bool, error) {
	banned := make([]bool, len(a.Limits))
	if !a.anyLast() {
		return banned, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for i, l := range a.Limits {
		k := attemptPrefix + l.Key
		c := m.live(k, now)
		if c == nil {
			continue
		}
		j := c.find(a.ID)
		if j < 0 || c.held[j].slot < l.Max {
			continue
		}
		delete(m.entries, k)
		bk := banPrefix + l.Key
		if b := m.live(bk, now); b != nil {
			b.until = now.Add(l.Ban)
		} else {
			m.put(bk, &entry{n: 1, until: now.Add(l.Ban)}, now)
		}
		banned[i] = true
	}
	return banned, nil
}

// Succeed implements Store.
func (m *Memory) Succeed(a *Attempt) error {
	m.release(a, true)
	return nil
}

// Cancel implements Store.
func (m *Memory) Cancel(a *Attempt) error {
	m.release(a, false)
	return nil
}

// release gives a's places back, or with success clears the counts of the
// keys whose Limit says so.
func (m *Memory) release(a *Attempt, success bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for _, l := range a.Limits {
		k := attemptPrefix + l.Key
		c := m.live(k, now)
		if c == nil {
			continue
		}
		if success && l.ClearOnSuccess {
			delete(m.entries, k)
			continue
		}
		if j := c.find(a.ID); j >= 0 {
			c.held = append(c.held[:j], c.held[j+1:]...)
		}
		if len(c.held) == 0 { // as Redis drops an empty hash
			delete(m.entries, k)
		}
	}
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
