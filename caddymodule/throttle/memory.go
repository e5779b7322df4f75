package throttle

import (
	"errors"
	"slices"
	"strconv"
	"strings"
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
// it is full of live entries the counters with the fewest counts (then
// passes) make room, so a flood of distinct keys can neither grow it without
// bound nor reset a key's count cheaply. Bans are never evicted: a store
// full of bans refuses new keys with ErrFull (fail closed).
type Memory struct {
	mu        sync.Mutex
	entries   map[string]*entry
	maxKeys   int
	lastSweep time.Time
	fullUntil time.Time // new keys are refused until then: nothing to evict
	seq       uint64    // the last attempt's ID
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

// room makes room for n new entries, sweeping expired ones and evicting
// live ones if the store is full, never evicting a ban or an entry under one
// of keep (the keys the caller is about to use). It returns ErrFull when
// the store cannot take them (fail closed: bans are never forgotten).
func (m *Memory) room(n int, now time.Time, keep ...string) error {
	if n == 0 {
		return nil
	}
	if now.Sub(m.lastSweep) >= sweepEvery {
		m.sweep(now)
	}
	if len(m.entries)+n <= m.maxKeys {
		return nil
	}
	if now.Before(m.fullUntil) {
		return ErrFull
	}
	m.sweep(now)
	if len(m.entries)+n > m.maxKeys {
		m.evict(n, keep)
	}
	if len(m.entries)+n > m.maxKeys {
		m.fullUntil = now.Add(fullRetry)
		return ErrFull
	}
	return nil
}

// fullRetry is how long a store that found nothing to evict refuses new
// keys before it looks again (unless entries are removed meanwhile), so a
// flood against a store full of bans costs no scan per request.
const fullRetry = time.Second

// put stores a new entry; the caller made room for it.
func (m *Memory) put(key string, e *entry) {
	m.entries[key] = e
	m.fullUntil = time.Time{}
}

func (m *Memory) sweep(now time.Time) {
	m.lastSweep = now
	for k, e := range m.entries {
		if e.expired(now) {
			delete(m.entries, k)
		}
	}
	m.fullUntil = time.Time{}
}

// evict drops live entries until n new ones fit and an eighth of the store
// is free (so a full store frees room in batches), in this order: counters
// (attempt and event counts) with the fewest counted events first, those
// whose window ends soonest among equals; then passes, the soonest expiring
// first. Bans are never evicted, and neither are the entries under keep.
//
// So a flood of distinct keys cannot reset a key's count or lift a ban:
// evicting a counter of c events takes a flood of keys that have each
// counted c events, costing the flooder far more attempts than forgetting
// the count gives back.
func (m *Memory) evict(n int, keep []string) {
	target := len(m.entries) + n - m.maxKeys*7/8
	type candidate struct {
		key   string
		rank  int // 0: counter, 1: passes
		count int64
		until time.Time
	}
	cands := make([]candidate, 0, len(m.entries))
	for k, e := range m.entries {
		var c candidate
		switch {
		case strings.HasPrefix(k, banPrefix):
			continue
		case strings.HasPrefix(k, passPrefix):
			c = candidate{key: k, rank: 1, until: e.until}
		case strings.HasPrefix(k, attemptPrefix):
			c = candidate{key: k, count: int64(len(e.held)), until: e.until}
		default:
			c = candidate{key: k, count: e.n, until: e.until}
		}
		if slices.Contains(keep, k) {
			continue
		}
		cands = append(cands, c)
	}
	if target > len(cands) {
		target = len(cands)
	}
	if target <= 0 {
		return
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		if a.rank != b.rank {
			return a.rank - b.rank
		}
		if a.count != b.count {
			if a.count < b.count {
				return -1
			}
			return 1
		}
		return a.until.Compare(b.until)
	})
	for _, c := range cands[:target] {
		delete(m.entries, c.key)
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
	keys := make([]string, len(limits))
	fresh := 0
	for i, l := range limits {
		keys[i] = attemptPrefix + l.Key
		if m.live(keys[i], now) == nil {
			fresh++
		}
	}
	if err := m.room(fresh, now, keys...); err != nil {
		return nil, 0, -1, err
	}
	m.seq++
	a := &Attempt{ID: strconv.FormatUint(m.seq, 36), Limits: limits, Slots: make([]int, len(limits))}
	for i, l := range limits {
		k := keys[i]
		c := m.live(k, now)
		if c == nil {
			c = &entry{until: now.Add(l.Window)}
			m.put(k, c)
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
		if b == nil { // in the room of the counter just deleted: a ban is never refused
			b = &entry{n: 1}
			m.put(bk, b)
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
		if err := m.room(1, now, tk); err != nil {
			return 0, err
		}
		e = &entry{until: now.Add(window)}
		m.put(tk, e)
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
		if m.room(1, now, k) != nil {
			return // not remembered: the client is not known (fail closed)
		}
		e = &entry{}
		m.put(k, e)
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

// ErrFull is the Memory store's refusal of a new key when every entry it
// holds is a ban (bans are never evicted): fail closed.
var ErrFull = errors.New("throttle: memory store full of bans")
