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
	n       int64     // events (Take); 1 for a ban
	until   time.Time // the entry is gone at this instant
	forever bool      // a ban until lifted: until does not apply
	held    []held    // an attempt counter's admitted attempts
	passes  []pass    // a key's passes, oldest first
}

func (e *entry) expired(now time.Time) bool { return !e.forever && !now.Before(e.until) }

// pass is a recorded Limit.Pass and when it expires.
type pass struct {
	pass  string
	until time.Time
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
	if e.expired(now) {
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
		if e.expired(now) {
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
	passed := make([]bool, len(limits))
	for i, l := range limits {
		passed[i] = l.Pass != "" && m.knows(l.Key, l.Pass, now)
	}
	for i, l := range limits {
		b := m.live(banPrefix+l.Key, now)
		if b == nil || passed[i] {
			continue
		}
		left := Indefinitely
		if !b.forever {
			left = b.until.Sub(now)
		}
		if left > wait {
			wait, which = left, i
		}
	}
	if which >= 0 {
		return nil, wait, which, nil
	}
	for i, l := range limits {
		if c := m.live(attemptPrefix+l.Key, now); c != nil && !passed[i] && len(c.held) >= l.Max && l.banFor() > wait {
			wait, which = l.banFor(), i
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
		b := m.live(bk, now)
		if b == nil {
			b = &entry{n: 1}
			m.put(bk, b, now)
		}
		b.until, b.forever = now.Add(l.Ban), l.Ban == 0
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
		if success && l.Pass != "" {
			delete(m.entries, banPrefix+l.Key)
			m.remember(l, now)
		}
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

// knows reports whether p is among key's live passes.
func (m *Memory) knows(key, p string, now time.Time) bool {
	e := m.live(passPrefix+key, now)
	if e == nil {
		return false
	}
	for _, q := range e.passes {
		if q.pass == p && now.Before(q.until) {
			return true
		}
	}
	return false
}

// remember records l.Pass among l.Key's passes, dropping expired ones and
// keeping the MaxPasses most recent.
func (m *Memory) remember(l Limit, now time.Time) {
	k := passPrefix + l.Key
	e := m.live(k, now)
	if e == nil {
		e = &entry{}
		m.put(k, e, now)
	}
	kept := e.passes[:0]
	for _, q := range e.passes {
		if q.pass != l.Pass && now.Before(q.until) {
			kept = append(kept, q)
		}
	}
	kept = append(kept, pass{l.Pass, now.Add(l.PassTTL)})
	if len(kept) > MaxPasses {
		kept = kept[len(kept)-MaxPasses:]
	}
	e.passes = kept
	for _, q := range kept {
		if q.until.After(e.until) {
			e.until = q.until
		}
	}
}

// Unban implements Store.
func (m *Memory) Unban(keys ...string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	lifted := false
	for _, key := range keys {
		if m.live(banPrefix+key, now) != nil {
			lifted = true
		}
		delete(m.entries, banPrefix+key)
		delete(m.entries, attemptPrefix+key)
	}
	return lifted, nil
}
