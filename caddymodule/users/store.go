package users

// Store is what the HTTP layer needs from a user database. It is kept small so
// that a shared backend (e.g. SQL) can be added later next to BoltStore.
//
// Implementations must be safe for concurrent use. Returned *User values are
// owned by the caller.
type Store interface {
	// Create inserts u. If u.ID is 0 an id is assigned from a sequence;
	// otherwise the given id is kept and ErrIDTaken is returned if it is in
	// use. A zero DateJoined is set to now. ErrUsernameTaken is returned if
	// a user with the same UsernameKey exists. On success u is updated with
	// the stored id and DateJoined.
	Create(u *User) error

	// ByID returns the user with the given id, or ErrNotFound.
	ByID(id int64) (*User, error)

	// ByUsername returns the user whose UsernameKey equals that of name, or
	// ErrNotFound.
	ByUsername(name string) (*User, error)

	// Update reads the user, lets fn modify it and writes it back, all in one
	// transaction. If fn returns an error nothing is written and that error
	// is returned. Changing the username re-indexes it, failing with
	// ErrUsernameTaken on a clash; fn must not change the ID.
	Update(id int64, fn func(u *User) error) (*User, error)

	// Delete removes the user, or returns ErrNotFound.
	Delete(id int64) error

	// List returns all users ordered by id.
	List() ([]User, error)

	// CreateMany inserts all users in one transaction: either all of them
	// are written or none. A user whose id or username already exists (in
	// the store or earlier in us) is an error naming it, unless
	// skipExisting is set, in which case it is skipped and not counted.
	// The id sequence continues after the largest id in the store or in us.
	CreateMany(us []*User, skipExisting bool) (created int, err error)
}
