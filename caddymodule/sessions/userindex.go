package sessions

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
	"go.etcd.io/bbolt"
)

// UserIndex lists each user's sessions, by the keys they are stored under
// (for scs with HashTokenInStore: the hashed token, never the token), with
// what a user is shown of them, so that users can see and end their own
// sessions without a scan of the store. Both stores keep it next to the
// sessions. Entries of sessions that ended are dropped lazily: callers
// check each key against the store and Remove what is gone.
type UserIndex interface {
	// AddUserSession records a session of user (and drops the user's
	// expired entries).
	AddUserSession(user int64, info SessionInfo) error
	// UserSessions returns the user's entries that have not expired.
	UserSessions(user int64) ([]SessionInfo, error)
	// TouchUserSession sets the last-seen time of a recorded session; a
	// key that is not (or no longer) recorded is left alone.
	TouchUserSession(user int64, key string, seen time.Time) error
	// RemoveUserSessions forgets keys of user (no error for unknown ones),
	// and the user's expired entries.
	RemoveUserSessions(user int64, keys ...string) error
}

// SessionInfo is one session as the index keeps it.
type SessionInfo struct {
	Key       string    `json:"-"`
	Created   time.Time `json:"created"`
	LastSeen  time.Time `json:"seen"`
	Expiry    time.Time `json:"expiry"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"ua"`
}

var (
	_ UserIndex = (*BoltStore)(nil)
	_ UserIndex = (*RedisStore)(nil)
)

// userSessionsBucket holds one nested bucket per user id (8 bytes, big
// endian), mapping each session key to its SessionInfo (JSON).
var userSessionsBucket = []byte("user_sessions")

func userBucketKey(user int64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], uint64(user))
	return k[:]
}

func (s *BoltStore) userBucket(tx *bbolt.Tx, user int64, create bool) (*bbolt.Bucket, error) {
	if create {
		root, err := tx.CreateBucketIfNotExists(userSessionsBucket)
		if err != nil {
			return nil, err
		}
		return root.CreateBucketIfNotExists(userBucketKey(user))
	}
	root := tx.Bucket(userSessionsBucket)
	if root == nil {
		return nil, nil
	}
	return root.Bucket(userBucketKey(user)), nil
}

// pruneExpired deletes b's expired (or undecodable) entries.
func pruneExpired(b *bbolt.Bucket, now time.Time) error {
	var gone [][]byte
	_ = b.ForEach(func(k, v []byte) error {
		var info SessionInfo
		if json.Unmarshal(v, &info) != nil || !info.Expiry.After(now) {
			gone = append(gone, append([]byte(nil), k...))
		}
		return nil
	})
	for _, k := range gone {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// AddUserSession implements UserIndex.
func (s *BoltStore) AddUserSession(user int64, info SessionInfo) error {
	v, err := json.Marshal(info)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		b, err := s.userBucket(tx, user, true)
		if err != nil {
			return err
		}
		if err := pruneExpired(b, time.Now()); err != nil {
			return err
		}
		return b.Put([]byte(info.Key), v)
	})
}

// UserSessions implements UserIndex.
func (s *BoltStore) UserSessions(user int64) ([]SessionInfo, error) {
	now := time.Now()
	var out []SessionInfo
	err := s.db.View(func(tx *bbolt.Tx) error {
		b, _ := s.userBucket(tx, user, false)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var info SessionInfo
			if err := json.Unmarshal(v, &info); err != nil {
				return fmt.Errorf("%w: session index entry of user %d", ErrCorrupt, user)
			}
			if info.Expiry.After(now) {
				info.Key = string(k)
				out = append(out, info)
			}
			return nil
		})
	})
	return out, err
}

// TouchUserSession implements UserIndex.
func (s *BoltStore) TouchUserSession(user int64, key string, seen time.Time) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b, _ := s.userBucket(tx, user, false)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(key))
		if v == nil {
			return nil
		}
		var info SessionInfo
		if err := json.Unmarshal(v, &info); err != nil {
			return b.Delete([]byte(key))
		}
		info.LastSeen = seen
		nv, err := json.Marshal(info)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), nv)
	})
}

// RemoveUserSessions implements UserIndex.
func (s *BoltStore) RemoveUserSessions(user int64, keys ...string) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b, _ := s.userBucket(tx, user, false)
		if b == nil {
			return nil
		}
		for _, k := range keys {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		if err := pruneExpired(b, time.Now()); err != nil {
			return err
		}
		if k, _ := b.Cursor().First(); k == nil {
			return tx.Bucket(userSessionsBucket).DeleteBucket(userBucketKey(user))
		}
		return nil
	})
}

// userKey is the Redis hash of user's sessions: field <key> holds the
// SessionInfo (JSON), field <key>:seen the last-seen time (unix seconds),
// written apart so that touching never rewrites the rest.
func (s *RedisStore) userKey(user int64) string {
	return s.prefix + userKeyInfix + strconv.FormatInt(user, 10)
}

// userKeyInfix follows the key prefix in the index's hashes; session keys
// (base64url) never hold its ':', so the session cache tells them apart.
const userKeyInfix = "user:"

const seenSuffix = ":seen"

// AddUserSession implements UserIndex; the hash lives as long as its
// longest-lived session. An entry that has expired already is not added.
func (s *RedisStore) AddUserSession(user int64, info SessionInfo) error {
	if !info.Expiry.After(time.Now()) {
		return nil
	}
	v, err := json.Marshal(info)
	if err != nil {
		return err
	}
	if err := s.RemoveUserSessions(user); err != nil { // prune the expired
		return err
	}
	return s.c.Do(func() error {
		conn := s.c.Pool.Get()
		defer conn.Close()
		k := s.userKey(user)
		ms := info.Expiry.UnixMilli()
		// Extend the hash's life, never shorten it (PEXPIRETIME needs
		// Redis 7: compare in a script that only uses PTTL).
		_, err := extendScript.Do(conn, k, info.Key, v, ms, time.Now().UnixMilli())
		return err
	})
}

// extendScript: HSET, then PEXPIREAT the hash to ARGV[3] unless it lives
// longer already.
var extendScript = redis.NewScript(1, `redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 or tonumber(ARGV[4]) + ttl < tonumber(ARGV[3]) then
	redis.call('PEXPIREAT', KEYS[1], ARGV[3])
end
return 0`)

func (s *RedisStore) readUser(user int64) (map[string]string, error) {
	var m map[string]string
	err := s.c.Do(func() error {
		conn := s.c.Pool.Get()
		defer conn.Close()
		var err error
		m, err = redis.StringMap(conn.Do("HGETALL", s.userKey(user)))
		return err
	})
	return m, err
}

// UserSessions implements UserIndex.
func (s *RedisStore) UserSessions(user int64) ([]SessionInfo, error) {
	m, err := s.readUser(user)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out []SessionInfo
	for k, v := range m {
		if strings.HasSuffix(k, seenSuffix) {
			continue
		}
		var info SessionInfo
		if json.Unmarshal([]byte(v), &info) != nil || !info.Expiry.After(now) {
			continue
		}
		info.Key = k
		if secs, err := strconv.ParseInt(m[k+seenSuffix], 10, 64); err == nil && secs > info.LastSeen.Unix() {
			info.LastSeen = time.Unix(secs, 0).UTC()
		}
		out = append(out, info)
	}
	return out, nil
}

// touchScript sets the seen field only while the session's entry exists.
var touchScript = redis.NewScript(1, `if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
	redis.call('HSET', KEYS[1], ARGV[1] .. ':seen', ARGV[2])
end
return 0`)

// TouchUserSession implements UserIndex.
func (s *RedisStore) TouchUserSession(user int64, key string, seen time.Time) error {
	return s.c.Do(func() error {
		conn := s.c.Pool.Get()
		defer conn.Close()
		_, err := touchScript.Do(conn, s.userKey(user), key, seen.Unix())
		return err
	})
}

// RemoveUserSessions implements UserIndex.
func (s *RedisStore) RemoveUserSessions(user int64, keys ...string) error {
	m, err := s.readUser(user)
	if err != nil {
		return err
	}
	now := time.Now()
	var gone []any
	for _, k := range keys {
		gone = append(gone, k, k+seenSuffix)
	}
	for k, v := range m {
		if strings.HasSuffix(k, seenSuffix) {
			if _, ok := m[strings.TrimSuffix(k, seenSuffix)]; !ok {
				gone = append(gone, k)
			}
			continue
		}
		var info SessionInfo
		if json.Unmarshal([]byte(v), &info) != nil || !info.Expiry.After(now) {
			gone = append(gone, k, k+seenSuffix)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	return s.c.Do(func() error {
		conn := s.c.Pool.Get()
		defer conn.Close()
		_, err := conn.Do("HDEL", append([]any{s.userKey(user)}, gone...)...)
		return err
	})
}

// pruneBatch bounds the users PruneUserIndex looks at per read transaction.
const pruneBatch = 1000

// PruneUserIndex drops the index entries of expired sessions (and the
// buckets of users left with none), for users who never log in again;
// the cleanup goroutine calls it after DeleteExpired. It returns how many
// users' entries it pruned.
func (s *BoltStore) PruneUserIndex() (int, error) {
	pruned := 0
	var from []byte
	for {
		var users []int64
		var next []byte
		now := time.Now()
		err := s.db.View(func(tx *bbolt.Tx) error {
			root := tx.Bucket(userSessionsBucket)
			if root == nil {
				return nil
			}
			c := root.Cursor()
			k, _ := c.First()
			if from != nil {
				k, _ = c.Seek(from)
			}
			for n := 0; k != nil; k, _ = c.Next() {
				if n == pruneBatch {
					next = append([]byte(nil), k...)
					return nil
				}
				n++
				b := root.Bucket(k)
				if b == nil || len(k) != 8 {
					continue
				}
				stale := false
				_ = b.ForEach(func(_, v []byte) error {
					var info SessionInfo
					if json.Unmarshal(v, &info) != nil || !info.Expiry.After(now) {
						stale = true
					}
					return nil
				})
				if stale {
					users = append(users, int64(binary.BigEndian.Uint64(k)))
				}
			}
			return nil
		})
		if err != nil {
			return pruned, err
		}
		for _, u := range users {
			if err := s.RemoveUserSessions(u); err != nil {
				return pruned, err
			}
			pruned++
		}
		if next == nil || s.stopping() {
			return pruned, nil
		}
		from = next
	}
}
