package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/passwords"
)

// SetHashWait changes how long requests wait for a hashing slot; the
// returned func restores the default.
func SetHashWait(d time.Duration) (restore func()) {
	hashWait.Store(int64(d))
	return func() { hashWait.Store(int64(defaultHashWait)) }
}

// HoldHashSlots takes every hashing slot of the running handlers' hashers,
// so that requests that need a hash wait; release gives them back.
func HoldHashSlots() (release func()) {
	var held []*passwords.Slots
	for _, h := range runningHandlers() {
		slots := h.hasher.Slots()
		if slices.Contains(held, slots) {
			continue
		}
		for range slots.Limit() {
			if err := slots.Acquire(context.Background()); err != nil {
				panic(err)
			}
			held = append(held, slots)
		}
	}
	return func() {
		for _, s := range held {
			s.Release()
		}
	}
}

// TrackHashPeak records, from now on, when every password hash of the
// process (any handler's, the admin API's) ran; peak returns the most that
// ran at once, and stops the recording.
func TrackHashPeak() (peak func() int) {
	type span struct{ start, end time.Time }
	var mu sync.Mutex
	var spans []span
	tap := func(d time.Duration) {
		end := time.Now()
		mu.Lock()
		spans = append(spans, span{end.Add(-d), end})
		mu.Unlock()
	}
	hashTap.Store(&tap)
	return func() int {
		hashTap.Store(nil)
		mu.Lock()
		defer mu.Unlock()
		type edge struct {
			at    time.Time
			delta int
		}
		var edges []edge
		for _, s := range spans {
			edges = append(edges, edge{s.start, 1}, edge{s.end, -1})
		}
		// Ends before starts at the same instant: touching spans do not
		// overlap.
		slices.SortFunc(edges, func(a, b edge) int {
			if c := a.at.Compare(b.at); c != 0 {
				return c
			}
			return a.delta - b.delta
		})
		cur, top := 0, 0
		for _, e := range edges {
			cur += e.delta
			top = max(top, cur)
		}
		return top
	}
}

// HashWaiters returns how many requests wait for a hashing slot.
func HashWaiters() int {
	var seen []*passwords.Slots
	n := 0
	for _, h := range runningHandlers() {
		if s := h.hasher.Slots(); !slices.Contains(seen, s) {
			seen = append(seen, s)
			n += s.Waiting()
		}
	}
	return n
}

// WaitIdle waits (up to timeout) until the running handlers serve no
// request, and reports whether they got there.
func WaitIdle(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		busy := int64(0)
		for _, h := range runningHandlers() {
			busy += h.inflight.Load()
		}
		if busy == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// CorruptSession overwrites the stored record of session token in the
// bbolt file at path with bytes no session could have (a value shorter
// than its expiry prefix), as a torn or foreign write would leave it.
func CorruptSession(path, token string) error {
	abs, _ := filepath.Abs(path)
	var sdb *sharedDB
	dbPool.Range(func(key, value any) bool {
		if key == filepath.Clean(abs) {
			sdb = value.(*sharedDB)
			return false
		}
		return true
	})
	if sdb == nil {
		return fmt.Errorf("%s is not open", path)
	}
	sum := sha256.Sum256([]byte(token)) // scs's HashTokenInStore
	key := base64.RawURLEncoding.EncodeToString(sum[:])
	if err := sdb.sessions.Delete(key); err != nil { // also drops it from the read cache
		return err
	}
	return sdb.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("sessions")).Put([]byte(key), []byte{0, 1, 2})
	})
}

// ForgetHashCosts makes the process's hasher forget the check times it
// learnt (a test that checked dear imported hashes must not slow the
// logins of the tests after it).
func ForgetHashCosts() { processHasher().ForgetCosts() }

// HashLimit returns the process-wide bound on concurrent hashes.
func HashLimit() int { return processHasher().Slots().Limit() }

// SetAdminWait bounds the admin API's requests' work (a hash waiting for a
// slot) to d; restore undoes it.
func SetAdminWait(d time.Duration) (restore func()) {
	old := adminWait.Load()
	adminWait.Store(int64(d))
	return func() { adminWait.Store(old) }
}
