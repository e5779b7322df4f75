package passwords

import "time"

// SetWaitObserver registers fn to be called with how long each hash or
// verification waited for a slot (also when it gave up because its
// context ended): the figure that grows in a login flood. A nil fn removes
// the observer. Safe to call at any time.
func (h *Hasher) SetWaitObserver(fn func(d time.Duration)) {
	if fn == nil {
		h.waited.Store(nil)
		return
	}
	h.waited.Store(&fn)
}

func (h *Hasher) observeWait(d time.Duration) {
	if fn := h.waited.Load(); fn != nil {
		(*fn)(d)
	}
}
