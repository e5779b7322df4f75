package users

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
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

	// EmailVerified says the user proved they receive mail at Email
	// (the e-mail verification flow, an operator, or an import from
	// Django). Changing Email does not clear it by itself: the accounts
	// package does.
	EmailVerified bool

	// SessionEpoch is bumped to invalidate all of the user's sessions: a
	// session records the epoch it was created under and is rejected once the
	// user's epoch has moved on.
	SessionEpoch int64

	// Groups are the names of the user's groups (as Django's auth_group
	// names them), sorted and without repeats; nil when there are none.
	// Stores keep them as SortGroups leaves them, and every read returns
	// its own slice.
	Groups []string
}

// InGroup reports whether the user is in the named group (names are
// compared exactly, as Django compares them).
func (u *User) InGroup(name string) bool {
	_, found := slices.BinarySearch(u.Groups, name)
	return found
}

// SortGroups returns the group names sorted and without repeats, in a new
// slice, or nil when there are none. Stores apply it to every user they
// write.
func SortGroups(groups []string) []string {
	if len(groups) == 0 {
		return nil
	}
	out := slices.Clone(groups)
	slices.Sort(out)
	return slices.Compact(out)
}

// Equal reports whether two users are the same, field by field (times
// exactly, and nil and empty Groups alike).
func Equal(a, b *User) bool {
	x, y := *a, *b
	if !slices.Equal(x.Groups, y.Groups) {
		return false
	}
	x.Groups, y.Groups = nil, nil
	// Times compare with == on purpose (location and monotonic reading
	// included), as the stores promise them exactly.
	return reflect.DeepEqual(x, y)
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

// CheckUpdated is what every Store's Update does with the user its fn
// left: it refuses a changed id or an empty username (ErrInvalidUser),
// stores the times and groups as the backends keep them, and returns the
// new username's key.
func CheckUpdated(id int64, u *User) (string, error) {
	if u.ID != id {
		return "", fmt.Errorf("%w: Update must not change the id (%d -> %d)", ErrInvalidUser, id, u.ID)
	}
	key := UsernameKey(u.Username)
	if key == "" {
		return "", fmt.Errorf("%w: empty username", ErrInvalidUser)
	}
	u.DateJoined, u.LastLogin = StoredTime(u.DateJoined), StoredTime(u.LastLogin)
	u.Groups = SortGroups(u.Groups)
	return key, nil
}
