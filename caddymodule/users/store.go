package users

import (
	"context"
	"crypto/rand"
)

// Store is what the HTTP layer, the CLI and the admin API need from a user
// database. Every backend passes the conformance suite in users/storetest,
// which is the executable form of the contract written here.
//
// Implementations must be safe for concurrent use, also by several
// processes where the backend allows it (PostgreSQL): uniqueness of ids and
// usernames is enforced by the database, and Update is a read-modify-write
// that cannot lose a concurrent update. Returned *User values are owned by
// the caller.
//
// Context: every method honours ctx. A method called with a done ctx returns
// an error wrapping ctx.Err() and changes nothing. A ctx that ends during a
// call makes it return such an error; a write is then either wholly applied
// or not at all (if ctx ends while a write commits, the error cannot tell
// which, as with any database).
//
// Times (DateJoined, LastLogin) are stored as StoredTime gives them: to the
// microsecond, in UTC. A zero time stays zero.
type Store interface {
	// Create inserts u. If u.ID is 0 an id is assigned from a sequence;
	// otherwise the given id is kept and ErrIDTaken is returned if it is in
	// use. A zero DateJoined is set to now. ErrUsernameTaken is returned if
	// a user with the same UsernameKey exists. An empty username or a
	// negative id is ErrInvalidUser. On success u is updated with the stored
	// id and times; on failure u is left as it was.
	//
	// Ids are never handed out twice, not even those of deleted users; the
	// sequence may have gaps (PostgreSQL does not return the ids of failed
	// inserts).
	Create(ctx context.Context, u *User) error

	// ByID returns the user with the given id, or ErrNotFound. This is the
	// per-request read: backends serve it from an exact in-memory cache,
	// which every write (through any instance) invalidates.
	ByID(ctx context.Context, id int64) (*User, error)

	// ByUsername returns the user whose UsernameKey equals that of name, or
	// ErrNotFound.
	ByUsername(ctx context.Context, name string) (*User, error)

	// Update reads the user, lets fn modify it and writes it back, all in one
	// transaction that holds the user against concurrent writers, and
	// returns the user as stored. fn is called once. If fn returns an error
	// nothing is written and that error is returned. Changing the username
	// re-indexes it, failing with ErrUsernameTaken on a clash; changing the
	// ID or emptying the username is ErrInvalidUser. ErrNotFound if there is
	// no such user.
	Update(ctx context.Context, id int64, fn func(u *User) error) (*User, error)

	// Delete removes the user, or returns ErrNotFound.
	Delete(ctx context.Context, id int64) error

	// List returns all users ordered by id.
	List(ctx context.Context) ([]User, error)

	// CreateMany inserts all users in one transaction: either all of them
	// are written or none. A user whose id or username already exists (in
	// the store or earlier in us) is an error naming it (wrapping
	// ErrIDTaken or ErrUsernameTaken), unless skipExisting is set, in which
	// case it is skipped and not counted. Before assigning ids to users
	// without one, the sequence is moved past the largest id in us, so they
	// and later Creates get ids after it. On success the created users in
	// us get their ids and times; on failure us is left as it was.
	CreateMany(ctx context.Context, us []*User, skipExisting bool) (created int, err error)
}

// Secrets keeps small named secrets (signing and encryption keys: the
// identity token's keys, the password-reset key, the key that encrypts
// second-factor secrets) with the users, so that every instance and the CLI
// that share a users backend use the same ones. Both backends implement it
// next to Store; users/storetest checks it.
type Secrets interface {
	// Secret returns the value stored under name, or ErrNotFound.
	Secret(ctx context.Context, name string) ([]byte, error)

	// UpdateSecret reads the value stored under name (nil if there is
	// none), lets fn return the value to keep, stores it and returns it,
	// in one transaction that holds name against concurrent writers, so
	// that concurrent first-time callers, on any instance, agree on one
	// value (each sees the other's and keeps it). If fn returns an error,
	// nothing is written and that error is returned; if it returns nil
	// (or an empty value), the secret is deleted.
	UpdateSecret(ctx context.Context, name string, fn func(cur []byte) ([]byte, error)) ([]byte, error)
}

// EmailFinder finds users by e-mail address (a password-reset request
// names an address, not a user). Both backends implement it next to Store;
// users/storetest checks it.
type EmailFinder interface {
	// ByEmail returns the users whose Email equals email regardless of
	// case (as Django's email__iexact), ordered by id; none is not an
	// error. An empty email finds nobody.
	ByEmail(ctx context.Context, email string) ([]User, error)
}

// Factors keeps each user's second-factor data (the encrypted TOTP secret,
// hashed recovery codes, passkey credentials) as one value that the
// accounts layer encodes and the store does not interpret. It is kept apart
// from the User record so that the per-request ByID read never carries it.
// Both backends implement it next to Store (with Django's users, in the
// sidecar's side table); users/storetest checks it.
type Factors interface {
	// Factors returns the value stored for the user, nil if there is none,
	// or ErrNotFound if there is no such user.
	Factors(ctx context.Context, id int64) ([]byte, error)

	// UpdateFactors reads the user's value (nil if none), lets fn return
	// the value to keep, stores it and returns it, in one transaction that
	// holds the user's value against concurrent UpdateFactors calls on any
	// instance (so that a code accepted once cannot be accepted twice). If
	// fn returns an error nothing is written and that error is returned; if
	// it returns nil (or an empty value) the value is deleted. ErrNotFound
	// if there is no such user (fn is then not called). Deleting a user
	// deletes its value.
	UpdateFactors(ctx context.Context, id int64, fn func(cur []byte) ([]byte, error)) ([]byte, error)

	// AllFactors returns every stored value by user id (for listings,
	// backups and copies).
	AllFactors(ctx context.Context) (map[int64][]byte, error)
}

// RandomSecret returns the secret stored under name in sec, first storing
// size random bytes there if it holds none (or a shorter one): every
// instance agrees on the first one written.
func RandomSecret(ctx context.Context, sec Secrets, name string, size int) ([]byte, error) {
	return sec.UpdateSecret(ctx, name, func(cur []byte) ([]byte, error) {
		if len(cur) >= size {
			return cur, nil
		}
		k := make([]byte, size)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		return k, nil
	})
}
