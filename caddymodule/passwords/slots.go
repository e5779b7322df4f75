package passwords

import (
	"container/list"
	"context"
	"sync"
)

// Slots is a counting semaphore for argon2 computations whose size can
// change while it is in use, so that one bound can serve a whole process
// while its configuration changes. Waiters are served first come, first
// served. Its zero value is unusable: make one with NewSlots.
type Slots struct {
	mu      sync.Mutex
	limit   int
	used    int
	waiters list.List // of chan struct{}, closed when granted a slot
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
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.used < s.limit && s.waiters.Len() == 0 {
		s.used++
		s.mu.Unlock()
		return nil
	}
	ready := make(chan struct{})
	e := s.waiters.PushBack(ready)
	s.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		select {
		case <-ready: // granted meanwhile: hand it on
			s.used--
			s.grant()
		default:
			s.waiters.Remove(e)
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// Release gives back a slot taken by Acquire.
func (s *Slots) Release() {
	s.mu.Lock()
	if s.used <= 0 {
		s.mu.Unlock()
		panic("passwords: Slots.Release without Acquire")
	}
	s.used--
	s.grant()
	s.mu.Unlock()
}

// grant hands free slots to the longest waiters; s.mu is held.
func (s *Slots) grant() {
	for s.used < s.limit && s.waiters.Len() > 0 {
		ready := s.waiters.Remove(s.waiters.Front()).(chan struct{})
		s.used++
		close(ready)
	}
}
