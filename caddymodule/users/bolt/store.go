package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/internal/usercache"
)

// Bucket names. "users" maps the big-endian uint64 id to a record;
// "usernames" maps UsernameKey(name) to the big-endian id and is the
// uniqueness index. The users bucket's sequence is the id allocator.
var (
	usersBucket     = []byte("users")
	usernamesBucket = []byte("usernames")
)

// Store is a users.Store over a bbolt database. It is safe for concurrent
// use; writes are serialised by bbolt, reads run in parallel. ByID is served
// from an in-memory cache of decoded users that every write through the
// store keeps exact (see usercache); so all writes to a database must go
// through one Store, which bbolt's exclusive file lock and Caddy's shared
// store already ensure.
type Store struct {
	db    *bbolt.DB
	cache *usercache.Cache
}

var _ users.Store = (*Store)(nil)

// NewStore returns a store over db, creating its buckets if missing. The
// caller keeps ownership of db and closes it.
func NewStore(db *bbolt.DB) (*Store, error) {
	return newStore(db, usercache.DefaultSize)
}

func newStore(db *bbolt.DB, cacheSize int) (*Store, error) {
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{usersBucket, usernamesBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("users: creating bucket %q: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Store{db: db, cache: usercache.New(cacheSize)}, nil
}

// Ping reports whether the database is usable (open), for health checks.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(err)
	}
	return s.db.View(func(*bbolt.Tx) error { return nil })
}

// ctxErr wraps a done context's error.
func ctxErr(err error) error { return fmt.Errorf("users: %w", err) }

// ByID implements users.Store. It is the per-request read: from the cache,
// one allocation (the copy of the User); otherwise one read transaction.
func (s *Store) ByID(ctx context.Context, id int64) (*users.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	if id <= 0 {
		return nil, users.ErrNotFound
	}
	u, gen := s.cache.Get(id)
	if u != nil {
		return u, nil
	}
	u = new(users.User)
	err := s.db.View(func(tx *bbolt.Tx) error {
		var key [8]byte
		binary.BigEndian.PutUint64(key[:], uint64(id))
		v := tx.Bucket(usersBucket).Get(key[:])
		if v == nil {
			return users.ErrNotFound
		}
		return decodeRecord(u, id, v)
	})
	if err != nil {
		return nil, wrapRecordErr(id, err)
	}
	s.cache.Put(u, gen)
	return u, nil
}

// ByUsername implements users.Store.
func (s *Store) ByUsername(ctx context.Context, name string) (*users.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	nameKey := []byte(users.UsernameKey(name))
	u := new(users.User)
	var id int64
	err := s.db.View(func(tx *bbolt.Tx) error {
		idKey := tx.Bucket(usernamesBucket).Get(nameKey)
		if idKey == nil {
			return users.ErrNotFound
		}
		var err error
		if id, err = idFromKey(idKey); err != nil {
			return err
		}
		v := tx.Bucket(usersBucket).Get(idKey)
		if v == nil {
			// Index points at a missing record: treat as absent rather
			// than fail logins, but it should never happen.
			return users.ErrNotFound
		}
		return decodeRecord(u, id, v)
	})
	if err != nil {
		return nil, wrapRecordErr(id, err)
	}
	return u, nil
}

// update runs fn in a write transaction that commits only if ctx is still
// live when fn is done.
func (s *Store) update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(err)
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return ctxErr(err)
		}
		return nil
	})
}

// Create implements users.Store.
func (s *Store) Create(ctx context.Context, u *users.User) error {
	rec := *u
	if rec.DateJoined.IsZero() {
		rec.DateJoined = time.Now()
	}
	rec.DateJoined, rec.LastLogin = users.StoredTime(rec.DateJoined), users.StoredTime(rec.LastLogin)
	rec.Groups = users.SortGroups(rec.Groups)
	defer func() { s.cache.Invalidate(rec.ID) }()
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := buckets(tx)
		if rec.ID == 0 {
			id, err := b.nextID()
			if err != nil {
				return err
			}
			rec.ID = id
		}
		return b.insert(&rec)
	})
	if err != nil {
		return err
	}
	*u = rec
	return nil
}

// Update implements users.Store.
func (s *Store) Update(ctx context.Context, id int64, fn func(u *users.User) error) (*users.User, error) {
	defer s.cache.Invalidate(id)
	u := new(users.User)
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := buckets(tx)
		key := idKey(id)
		v := b.users.Get(key)
		if v == nil {
			return users.ErrNotFound
		}
		if err := decodeRecord(u, id, v); err != nil {
			return wrapRecordErr(id, err)
		}
		oldName := users.UsernameKey(u.Username)
		if err := fn(u); err != nil {
			return err
		}
		newName, err := users.CheckUpdated(id, u)
		if err != nil {
			return err
		}
		if newName != oldName {
			if b.usernames.Get([]byte(newName)) != nil {
				return users.ErrUsernameTaken
			}
			if err := b.usernames.Delete([]byte(oldName)); err != nil {
				return err
			}
			if err := b.usernames.Put([]byte(newName), key); err != nil {
				return err
			}
		}
		return b.users.Put(key, encodeRecord(u))
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// Delete implements users.Store.
func (s *Store) Delete(ctx context.Context, id int64) error {
	defer s.cache.Invalidate(id)
	return s.update(ctx, func(tx *bbolt.Tx) error {
		b := buckets(tx)
		key := idKey(id)
		v := b.users.Get(key)
		if v == nil {
			return users.ErrNotFound
		}
		if err := deleteFactors(tx, key); err != nil {
			return err
		}
		var u users.User
		if err := decodeRecord(&u, id, v); err != nil {
			// A corrupt record must still be deletable (it is the way to get
			// rid of it), but its username is unknown: find its index
			// entries by value instead.
			if err := b.deleteIndexEntriesOf(key); err != nil {
				return err
			}
			return b.users.Delete(key)
		}
		nameKey := []byte(users.UsernameKey(u.Username))
		// Only drop the index entry if it is ours (defensive: it always is).
		if owner := b.usernames.Get(nameKey); owner != nil && string(owner) == string(key) {
			if err := b.usernames.Delete(nameKey); err != nil {
				return err
			}
		}
		return b.users.Delete(key)
	})
}

// List implements users.Store.
func (s *Store) List(ctx context.Context) ([]users.User, error) {
	return s.scan(ctx, nil)
}

// scan reads every user, in id order, keeping those keep accepts (all if
// keep is nil).
func (s *Store) scan(ctx context.Context, keep func(u *users.User) bool) ([]users.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	var out []users.User
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(usersBucket).ForEach(func(k, v []byte) error {
			id, err := idFromKey(k)
			if err != nil {
				return err
			}
			out = append(out, users.User{}) // decoded in place: no copy
			u := &out[len(out)-1]
			if err := decodeRecord(u, id, v); err != nil {
				return wrapRecordErr(id, err)
			}
			if keep != nil && !keep(u) {
				out = out[:len(out)-1]
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CreateMany implements users.Store.
func (s *Store) CreateMany(ctx context.Context, us []*users.User, skipExisting bool) (int, error) {
	recs := make([]users.User, len(us))
	created := make([]bool, len(us))
	now := time.Now()
	n := 0
	defer s.cache.Invalidate()
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := buckets(tx)
		// Move the sequence past every explicit id first, so ids assigned
		// to id-less users below cannot collide with later entries.
		var maxID int64
		for _, u := range us {
			maxID = max(maxID, u.ID)
		}
		if err := b.bumpSequence(maxID); err != nil {
			return err
		}
		for i, u := range us {
			rec := *u
			if rec.DateJoined.IsZero() {
				rec.DateJoined = now
			}
			rec.DateJoined, rec.LastLogin = users.StoredTime(rec.DateJoined), users.StoredTime(rec.LastLogin)
			rec.Groups = users.SortGroups(rec.Groups)
			if skipExisting && b.exists(&rec) {
				continue
			}
			if rec.ID == 0 {
				id, err := b.nextID()
				if err != nil {
					return err
				}
				rec.ID = id
			}
			if err := b.insert(&rec); err != nil {
				return fmt.Errorf("users: CreateMany: user #%d (id %d, username %q): %w", i, rec.ID, rec.Username, err)
			}
			recs[i], created[i] = rec, true
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	// Only now that the transaction committed, report ids back.
	for i, ok := range created {
		if ok {
			*us[i] = recs[i]
		}
	}
	return n, nil
}

// wrapRecordErr adds the id to decoding errors; other errors pass through.
func wrapRecordErr(id int64, err error) error {
	if errors.Is(err, errCorrupt) {
		return fmt.Errorf("user %d: %w", id, err)
	}
	return err
}

// ByEmail implements users.EmailFinder: a scan of the users (bbolt has no
// index on the address; a reset request is rare and runs off the request
// path).
func (s *Store) ByEmail(ctx context.Context, email string) ([]users.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	if email == "" {
		return nil, nil
	}
	return s.scan(ctx, func(u *users.User) bool { return strings.EqualFold(u.Email, email) })
}
