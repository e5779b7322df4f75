package users

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// Bucket names. "users" maps the big-endian uint64 id to a record;
// "usernames" maps UsernameKey(name) to the big-endian id and is the
// uniqueness index. The users bucket's sequence is the id allocator.
var (
	usersBucket     = []byte("users")
	usernamesBucket = []byte("usernames")
)

// BoltStore is a Store over a bbolt database. It is safe for concurrent use;
// writes are serialised by bbolt, reads run in parallel. ByID is served from
// an in-memory cache of decoded users that every write through the store
// keeps exact (see userCache); so all writes to a database must go through
// one BoltStore, which bbolt's exclusive file lock and Caddy's shared store
// already ensure.
type BoltStore struct {
	db    *bbolt.DB
	cache *userCache
}

var _ Store = (*BoltStore)(nil)

// NewBoltStore returns a store over db, creating its buckets if missing. The
// caller keeps ownership of db and closes it.
func NewBoltStore(db *bbolt.DB) (*BoltStore, error) {
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
	return &BoltStore{db: db, cache: newUserCache(defaultUserCacheSize)}, nil
}

// ByID implements Store. It is the per-request read: from the cache, one
// allocation (the copy of the User); otherwise one read transaction.
func (s *BoltStore) ByID(id int64) (*User, error) {
	if id <= 0 {
		return nil, ErrNotFound
	}
	u, gen := s.cache.get(id)
	if u != nil {
		return u, nil
	}
	u = new(User)
	err := s.db.View(func(tx *bbolt.Tx) error {
		var key [8]byte
		binary.BigEndian.PutUint64(key[:], uint64(id))
		v := tx.Bucket(usersBucket).Get(key[:])
		if v == nil {
			return ErrNotFound
		}
		return decodeRecord(u, id, v)
	})
	if err != nil {
		return nil, wrapRecordErr(id, err)
	}
	s.cache.put(u, gen)
	return u, nil
}

// ByUsername implements Store.
func (s *BoltStore) ByUsername(name string) (*User, error) {
	nameKey := []byte(UsernameKey(name))
	u := new(User)
	var id int64
	err := s.db.View(func(tx *bbolt.Tx) error {
		idKey := tx.Bucket(usernamesBucket).Get(nameKey)
		if idKey == nil {
			return ErrNotFound
		}
		var err error
		if id, err = idFromKey(idKey); err != nil {
			return err
		}
		v := tx.Bucket(usersBucket).Get(idKey)
		if v == nil {
			// Index points at a missing record: treat as absent rather
			// than fail logins, but it should never happen.
			return ErrNotFound
		}
		return decodeRecord(u, id, v)
	})
	if err != nil {
		return nil, wrapRecordErr(id, err)
	}
	return u, nil
}

// Create implements Store.
func (s *BoltStore) Create(u *User) error {
	rec := *u
	if rec.DateJoined.IsZero() {
		rec.DateJoined = time.Now()
	}
	defer func() { s.cache.invalidate(rec.ID) }()
	err := s.db.Update(func(tx *bbolt.Tx) error {
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

// Update implements Store.
func (s *BoltStore) Update(id int64, fn func(u *User) error) (*User, error) {
	defer s.cache.invalidate(id)
	u := new(User)
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := buckets(tx)
		key := idKey(id)
		v := b.users.Get(key)
		if v == nil {
			return ErrNotFound
		}
		if err := decodeRecord(u, id, v); err != nil {
			return wrapRecordErr(id, err)
		}
		oldName := UsernameKey(u.Username)
		if err := fn(u); err != nil {
			return err
		}
		if u.ID != id {
			return fmt.Errorf("%w: Update must not change the id (%d -> %d)", ErrInvalidUser, id, u.ID)
		}
		newName := UsernameKey(u.Username)
		if newName == "" {
			return fmt.Errorf("%w: empty username", ErrInvalidUser)
		}
		if newName != oldName {
			if b.usernames.Get([]byte(newName)) != nil {
				return ErrUsernameTaken
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

// Delete implements Store.
func (s *BoltStore) Delete(id int64) error {
	defer s.cache.invalidate(id)
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := buckets(tx)
		key := idKey(id)
		v := b.users.Get(key)
		if v == nil {
			return ErrNotFound
		}
		var u User
		if err := decodeRecord(&u, id, v); err != nil {
			// A corrupt record must still be deletable (it is the way to get
			// rid of it), but its username is unknown: find its index
			// entries by value instead.
			if err := b.deleteIndexEntriesOf(key); err != nil {
				return err
			}
			return b.users.Delete(key)
		}
		nameKey := []byte(UsernameKey(u.Username))
		// Only drop the index entry if it is ours (defensive: it always is).
		if owner := b.usernames.Get(nameKey); owner != nil && string(owner) == string(key) {
			if err := b.usernames.Delete(nameKey); err != nil {
				return err
			}
		}
		return b.users.Delete(key)
	})
}

// List implements Store.
func (s *BoltStore) List() ([]User, error) {
	var out []User
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(usersBucket).ForEach(func(k, v []byte) error {
			id, err := idFromKey(k)
			if err != nil {
				return err
			}
			out = append(out, User{})
			if err := decodeRecord(&out[len(out)-1], id, v); err != nil {
				return wrapRecordErr(id, err)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CreateMany implements Store.
func (s *BoltStore) CreateMany(us []*User, skipExisting bool) (int, error) {
	recs := make([]User, len(us))
	created := make([]bool, len(us))
	now := time.Now()
	n := 0
	defer s.cache.invalidate()
	err := s.db.Update(func(tx *bbolt.Tx) error {
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
