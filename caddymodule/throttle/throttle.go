// Package throttle counts events per key and bans keys that fail too often,
// in the spirit of Authelia's regulation: so many failures within a window
// ban the key for a while. Counters live in memory (one instance) or in
// Redis (shared by every instance). The package knows nothing of HTTP or
// Caddy; callers choose the keys (a hashed username, a client IP).
package throttle

import (
	"errors"
	"time"
)

// Store keeps failure counts, bans and event counts. Implementations are safe
// for concurrent use. An error means the store could not be reached; callers
// decide whether that fails open or closed.
type Store interface {
	// Banned returns the longest remaining ban among keys and the index of
	// its key, or 0 and -1 when none of them is banned.
	Banned(keys ...string) (wait time.Duration, which int, err error)

	// Fail counts one failure against key. Counting starts a window of
	// length window at the first failure; the limit-th failure within it
	// bans key for ban and starts the count afresh. It returns the ban
	// that this failure started, or 0.
	Fail(key string, limit int, window, ban time.Duration) (time.Duration, error)

	// Forget clears key's failure count (not a running ban).
	Forget(key string) error

	// Take counts one event against key in a window of length window that
	// starts at the first event. It returns 0 while the count is within
	// limit and otherwise how long until the window ends.
	Take(key string, limit int, window time.Duration) (time.Duration, error)
}

// Key prefixes, so that the kinds of entry cannot collide.
const (
	failPrefix = "fail:"
	banPrefix  = "ban:"
	takePrefix = "take:"
)

var errBadArgs = errors.New("throttle: limit and durations must be positive")

func checkArgs(limit int, ds ...time.Duration) error {
	if limit <= 0 {
		return errBadArgs
	}
	for _, d := range ds {
		if d <= 0 {
			return errBadArgs
		}
	}
	return nil
}
