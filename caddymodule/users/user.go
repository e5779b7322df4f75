package users

import (
	"errors"
	"time"
)

// User is one account. The zero value of a time field means "never" (for
// LastLogin) or "not yet set" (for DateJoined, which Create fills in).
type User struct {
	ID           int64
	Username     string
	Email        string
	PasswordHash string
	IsActive     bool
	IsSuperuser  bool
	IsStaff      bool
	DateJoined   time.Time
	LastLogin    time.Time // zero = never logged in

	// SessionEpoch is bumped to invalidate all of the user's sessions: a
	// session records the epoch it was created under and is rejected once the
	// user's epoch has moved on.
	SessionEpoch int64
}

// Errors returned by Store implementations. Callers should test for them with
// errors.Is, since they may be wrapped with details (e.g. by CreateMany).
var (
	ErrNotFound      = errors.New("users: user not found")
	ErrUsernameTaken = errors.New("users: a user with that username already exists")
	ErrIDTaken       = errors.New("users: a user with that id already exists")
	ErrInvalidUser   = errors.New("users: invalid user")
)

// StoredTime is t as stores keep it: in UTC, truncated to the microsecond
// (PostgreSQL's resolution), without a monotonic clock reading. The zero
// time stays zero. Backends apply it to every time they write, so a user
// reads back the same whatever the backend.
func StoredTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}
