package bolt

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// txBuckets holds the two buckets of one write transaction and the
// operations shared by Create and CreateMany.
type txBuckets struct {
	users, usernames *bbolt.Bucket
}

func buckets(tx *bbolt.Tx) txBuckets {
	return txBuckets{users: tx.Bucket(usersBucket), usernames: tx.Bucket(usernamesBucket)}
}

// nextID allocates an id from the users bucket's sequence.
func (b txBuckets) nextID() (int64, error) {
	seq, err := b.users.NextSequence()
	if err != nil {
		return 0, err
	}
	return int64(seq), nil
}

// bumpSequence makes sure the sequence is at least id, so that explicitly
// chosen ids are never handed out again.
func (b txBuckets) bumpSequence(id int64) error {
	if id > 0 && uint64(id) > b.users.Sequence() {
		return b.users.SetSequence(uint64(id))
	}
	return nil
}

// exists reports whether u's id (if set) or username is already stored.
func (b txBuckets) exists(u *users.User) bool {
	if u.ID > 0 && b.users.Get(idKey(u.ID)) != nil {
		return true
	}
	return b.usernames.Get([]byte(users.UsernameKey(u.Username))) != nil
}

// insert validates u (whose ID must be set) and writes its record and index
// entry, failing if the id or username is taken.
func (b txBuckets) insert(u *users.User) error {
	if u.ID <= 0 {
		return fmt.Errorf("%w: id %d is not positive", users.ErrInvalidUser, u.ID)
	}
	nameKey := []byte(users.UsernameKey(u.Username))
	if len(nameKey) == 0 {
		return fmt.Errorf("%w: empty username", users.ErrInvalidUser)
	}
	key := idKey(u.ID)
	if b.users.Get(key) != nil {
		return users.ErrIDTaken
	}
	if b.usernames.Get(nameKey) != nil {
		return users.ErrUsernameTaken
	}
	if err := b.bumpSequence(u.ID); err != nil {
		return err
	}
	if err := b.usernames.Put(nameKey, key); err != nil {
		return err
	}
	return b.users.Put(key, encodeRecord(u))
}

// idKey is the users bucket key for id: big-endian, so keys sort by id.
func idKey(id int64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, uint64(id))
	return k
}

func idFromKey(k []byte) (int64, error) {
	if len(k) != 8 {
		return 0, fmt.Errorf("%w: bad id key of %d bytes", errCorrupt, len(k))
	}
	return int64(binary.BigEndian.Uint64(k)), nil
}

// deleteIndexEntriesOf removes every username index entry pointing at key.
// It scans the whole index, so it is only for the rare corrupt-record case.
func (b txBuckets) deleteIndexEntriesOf(key []byte) error {
	var stale [][]byte
	err := b.usernames.ForEach(func(k, v []byte) error {
		if string(v) == string(key) {
			stale = append(stale, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range stale {
		if err := b.usernames.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
