package passwords

import (
	"container/list"
	"context"
	"sync"
)

// Slots is a counting semaphore for password computations whose size can
// change while it is in use, so that one bound can serve a whole process
// while its configuration changes. A computation may take several slots
// (an argon2 hash with more memory than the Hasher's own takes one slot per
// Params.Memory it needs), so that the slots bound memory, not just a count.
// Waiters are served first come, first served. Its zero value is unusable:
// make one with NewSlots.
type Slots struct {
	mu      sync.Mutex
	limit   int
	used    int
	waiters list.List // of *slotWaiter
}

// slotWaiter is an AcquireN waiting for n slots; ready is closed when they
// are granted, granted telling how many (n, or the limit if smaller).
type slotWaiter struct {
	n, granted int
	ready      chan struct{}
}

// NewSlots returns a semaphore of n slots (at least 1).
func NewSlots(n int) *Slots {
	return &Slots{limit: max(n, 1)}
}

// Limit returns the number of slots.
func (s *Slots) Limit() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limit
}

// SetLimit changes the number of slots (at least 1). Growing serves
// waiters at once; shrinking lets the computations running finish and
// holds new ones back until fewer than n run.
func (s *Slots) SetLimit(n int) {
	s.mu.Lock()
	s.limit = max(n, 1)
	s.grant()
	s.mu.Unlock()
}

// InUse returns the number of slots taken.
func (s *Slots) InUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

// Waiting returns the number of Acquire calls waiting for a slot.
func (s *Slots) Waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiters.Len()
}

// Acquire takes a slot, waiting for one unless ctx ends first (then it
// returns ctx.Err() and holds nothing). Every successful Acquire must be
// followed by one Release.
func (s *Slots) Acquire(ctx context.Context) error {
	_, err := s.AcquireN(ctx, 1)
	return err
}

// Release gives back a slot taken by Acquire.
func (s *Slots) Release() { s.ReleaseN(1) }

// AcquireN takes n slots (at least 1; all of them if n exceeds the limit,
// so that a computation dearer than the whole bound still runs, alone),
// waiting for them unless ctx ends first (then it returns ctx.Err() and
// holds nothing). It returns how many it took: give exactly those back
// with ReleaseN.
func (s *Slots) AcquireN(ctx context.Context, n int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n = max(n, 1)
	s.mu.Lock()
	if k := min(n, s.limit); s.used+k <= s.limit && s.waiters.Len() == 0 {
		s.used += k
		s.mu.Unlock()
		return k, nil
	}
	w := &slotWaiter{n: n, ready: make(chan struct{})}
	e := s.waiters.PushBack(w)
	s.mu.Unlock()
	select {
	case <-w.ready:
		return w.granted, nil
	case <-ctx.Done():
		s.mu.Lock()
		select {
		case <-w.ready: // granted meanwhile: hand them on
			s.used -= w.granted
		default:
			s.waiters.Remove(e)
		}
		s.grant() // a large waiter leaving may unblock smaller ones behind it
		s.mu.Unlock()
		return 0, ctx.Err()
	}
}

// ReleaseN gives back n slots taken by AcquireN (its result).
func (s *Slots) ReleaseN(n int) {
	s.mu.Lock()
	if n <= 0 || s.used < n {
		s.mu.Unlock()
		panic("passwords: Slots.Release without Acquire")
	}
	s.used -= n
	s.grant()
	s.mu.Unlock()
}

// grant hands free slots to the longest waiters, in order (one waiting for
// more slots than are free holds back those behind it, so that it is not
// starved); s.mu is held.
func (s *Slots) grant() {
	for s.waiters.Len() > 0 {
		w := s.waiters.Front().Value.(*slotWaiter)
		k := min(w.n, s.limit)
		if s.used+k > s.limit {
			return
		}
		s.waiters.Remove(s.waiters.Front())
		s.used += k
		w.granted = k
		close(w.ready)
	}
}
