// Package throttle bounds attempts per key and bans keys that fail too
// often, in the spirit of Authelia's regulation: so many failed attempts
// within a window ban the key for a while. Counters live in memory (one
// instance) or in Redis (shared by every instance). The package knows
// nothing of HTTP or Caddy; callers choose the keys (a hashed username, a
// client IP).
//
// An attempt is counted before it is made, not after it failed: Admit takes
// one of the key's Max places in its window, atomically with the check of a
// ban, and refuses once they are all taken, whether their attempts failed
// or are still running. So however many attempts run at once, on however
// many instances sharing a Redis, no more than Max are ever made per key
// and window. The caller then settles each admitted attempt: Fail (the
// window's last place failing bans the key), Succeed (a success clears the
// key's count, or gives back its place) or Cancel (never made, or its
// outcome never told: the place is given back).
//
// A limit with a Pass is a lockout that known clients get past: every
// success records its Pass (e.g. a hashed client IP) under the key, and
// while the key is banned an attempt whose Pass was recorded is admitted
// anyway; its success lifts the ban. Such a ban may last until lifted
// (Ban 0), by a success or by Unban.
package throttle

import (
	"errors"
	"math"
	"time"
)

// Indefinitely is the wait Admit reports for a ban that lasts until it is
// lifted.
const Indefinitely = time.Duration(math.MaxInt64)

// MaxPasses is how many passes (the most recent) a key keeps.
const MaxPasses = 10

// Store keeps attempt counts, bans and event counts. Implementations are
// safe for concurrent use. An error means the store could not be reached;
// callers decide whether that fails open or closed.
type Store interface {
	// Admit counts one attempt against every limit (distinct keys) in one
	// atomic step, or against none. It refuses when a key is banned
	// (wait: the longest remaining ban) or when a key has admitted its Max
	// attempts of the current window already (wait: that limit's Ban, the
	// longest the pending attempts may cause); which is then the index of
	// the limit that refused, and a is nil. Otherwise a is the admitted
	// attempt, to be settled by exactly one of Fail, Succeed or Cancel.
	// A key's window starts at its first counted attempt.
	Admit(limits ...Limit) (a *Attempt, wait time.Duration, which int, err error)

	// Fail settles a as failed. It stays counted, and every key whose
	// window a was the last place of (Attempt.Last) is banned for its Ban,
	// its count starting afresh; banned[i] tells whether Limits[i]'s key
	// was banned. A key whose count was cleared meanwhile (by a success,
	// or its window's end) is not banned.
	Fail(a *Attempt) (banned []bool, err error)

	// Succeed settles a as successful: keys whose Limit has
	// ClearOnSuccess lose their whole count, the others get a's place
	// back. A limit with a Pass also records it among its key's passes
	// (for PassTTL; the MaxPasses most recent are kept) and lifts its
	// key's ban; other bans stay.
	Succeed(a *Attempt) error

	// Cancel settles a as never made (or made without its outcome told to
	// anyone): every key gets a's place back.
	Cancel(a *Attempt) error

	// Take counts one event against key in a window of length window that
	// starts at the first event. It returns 0 while the count is within
	// limit and otherwise how long until the window ends. Unlike Admit it
	// counts even refused events.
	Take(key string, limit int, window time.Duration) (time.Duration, error)

	// Unban lifts the bans of keys and clears their counts (their passes
	// stay). lifted reports whether any of them was banned.
	Unban(keys ...string) (lifted bool, err error)
}

// Limit is one key's budget of attempts.
type Limit struct {
	Key string
	// Max is the number of attempts admitted per window; the failure of
	// the Max-th bans Key.
	Max int
	// Window runs from Key's first counted attempt.
	Window time.Duration
	// Ban is how long a ban of Key lasts. With a Pass, 0 means until a
	// success or Unban lifts it.
	Ban time.Duration
	// ClearOnSuccess makes a successful attempt clear Key's count (e.g. a
	// username's); otherwise it gives back only its own place (e.g. a
	// client IP's, shared by users who may still be guessing).
	ClearOnSuccess bool
	// Pass, if set, is what identifies the client of this attempt to Key
	// (e.g. a hash of its IP): see the package documentation. PassTTL is
	// how long a success keeps it known.
	Pass    string
	PassTTL time.Duration
}

// banFor is l's ban in the form Admit reports waits.
func (l Limit) banFor() time.Duration {
	if l.Ban == 0 {
		return Indefinitely
	}
	return l.Ban
}

// Attempt is an attempt that Admit admitted.
type Attempt struct {
	// ID tells this attempt from every other, so that settling it (and,
	// in Redis, retrying any of its operations) touches only its own place.
	ID string
	// Limits are those it was admitted under.
	Limits []Limit
	// Slots[i] is its place (from 1) among the attempts counted against
	// Limits[i].Key in the window.
	Slots []int
}

// Last reports whether a took the last place of Limits[i]'s window, so
// that its failure bans the key.
func (a *Attempt) Last(i int) bool { return a.Slots[i] >= a.Limits[i].Max }

// anyLast reports whether a took the last place of any of its windows.
func (a *Attempt) anyLast() bool {
	for i := range a.Slots {
		if a.Last(i) {
			return true
		}
	}
	return false
}

// Key prefixes, so that the kinds of entry cannot collide. Attempt counters
// are Redis hashes under their own prefix (not the strings that failure
// counters were under "fail:"), so that instances of an older version
// sharing the Redis never meet a key of the wrong type.
const (
	attemptPrefix = "attempts:"
	banPrefix     = "ban:"
	takePrefix    = "take:"
	passPrefix    = "passes:"
)

var errBadArgs = errors.New("throttle: limits and durations must be positive, keys distinct")

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

func checkLimits(limits []Limit) error {
	if len(limits) == 0 {
		return errBadArgs
	}
	seen := make(map[string]bool, len(limits))
	for _, l := range limits {
		durations := []time.Duration{l.Window, l.Ban}
		switch {
		case l.Pass != "":
			durations = []time.Duration{l.Window, l.PassTTL}
			if l.Ban < 0 {
				return errBadArgs
			}
		case l.PassTTL != 0:
			return errBadArgs
		}
		if err := checkArgs(l.Max, durations...); err != nil {
			return err
		}
		if seen[l.Key] {
			return errBadArgs
		}
		seen[l.Key] = true
	}
	return nil
}
