package sessions

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
	"go.etcd.io/bbolt"
)

// sessionsBucket holds token -> 8-byte big-endian expiry (unix nanoseconds)
// followed by the encoded session data.
var sessionsBucket = []byte("sessions")

// expiryLen is the size of the expiry prefix of every stored value.
const expiryLen = 8

// BoltStore is an scs.Store (and scs.CtxStore) over a bbolt database, for
// single-node deployments. It is safe for concurrent use.
//
// bbolt serialises write transactions and fsyncs each one, so Find, which
// runs on every request, only ever uses a read transaction; expired entries
// are left for the background cleanup rather than deleted on read. Find is
// served from an in-memory cache that every write through the store keeps
// exact (see findCache); so all writes to a database's sessions must go
// through one BoltStore, which bbolt's exclusive file lock and Caddy's
// shared store already ensure.
type BoltStore struct {
	db    *bbolt.DB
	cache *findCache

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

var _ scs.CtxStore = (*BoltStore)(nil)

// NewBoltStore returns a store over db, creating the "sessions" bucket if
// missing. If cleanupInterval is positive, a goroutine deletes expired
// sessions that often until Close is called; 0 disables it. The caller keeps
// ownership of db and must call Close before closing db.
func NewBoltStore(db *bbolt.DB, cleanupInterval time.Duration) (*BoltStore, error) {
	err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(sessionsBucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sessions: creating bucket %q: %w", sessionsBucket, err)
	}
	s := &BoltStore{db: db, cache: newFindCache(defaultFindCacheSize), stop: make(chan struct{}), done: make(chan struct{})}
	if cleanupInterval > 0 {
		go s.cleanupLoop(cleanupInterval)
	} else {
		close(s.done)
	}
	return s, nil
}

// Find implements scs.Store. An expired session is reported as not found;
// a stored value that cannot be a session's, as an error wrapping
// ErrCorrupt (callers treat it as no session, not as a failing store).
func (s *BoltStore) Find(token string) ([]byte, bool, error) {
	e, ok, gen := s.cache.get(token)
	if ok {
		if time.Now().UnixNano() >= e.expiry {
			return nil, false, nil
		}
		return append([]byte(nil), e.data...), true, nil
	}
	var b []byte
	var found bool
	var expiry int64
	// scs tokens (raw or hashed) are 43 bytes, past the 32 that Go
	// converts on the stack; a local array keeps the key off the heap.
	var buf [64]byte
	key := append(buf[:0], token...)
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(sessionsBucket).Get(key)
		if v == nil {
			return nil
		}
		if len(v) < expiryLen {
			return fmt.Errorf("%w: stored value of %d bytes has no expiry", ErrCorrupt, len(v))
		}
		expiry = int64(binary.BigEndian.Uint64(v))
		if time.Now().UnixNano() >= expiry {
			return nil
		}
		// v is bbolt's memory-mapped page, valid only inside the tx.
		b = make([]byte, len(v)-expiryLen)
		copy(b, v[expiryLen:])
		found = true
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if found {
		s.cache.put(token, expiry, b, gen)
	}
	return b, found, nil
}

// Commit implements scs.Store, overwriting any existing data and expiry.
func (s *BoltStore) Commit(token string, b []byte, expiry time.Time) error {
	v := make([]byte, expiryLen+len(b))
	binary.BigEndian.PutUint64(v, uint64(unixNanos(expiry)))
	copy(v[expiryLen:], b)
	defer s.cache.invalidate(token)
	return s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(sessionsBucket).Put([]byte(token), v)
	})
}

// Delete implements scs.Store. Deleting a missing token is not an error.
func (s *BoltStore) Delete(token string) error {
	defer s.cache.invalidate(token)
	return s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(sessionsBucket).Delete([]byte(token))
	})
}

// FindCtx implements scs.CtxStore. bbolt takes no context, so ctx is only
// checked before starting.
func (s *BoltStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	return s.Find(token)
}

// CommitCtx implements scs.CtxStore; see FindCtx about ctx.
func (s *BoltStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Commit(token, b, expiry)
}

// DeleteCtx implements scs.CtxStore; see FindCtx about ctx.
func (s *BoltStore) DeleteCtx(ctx context.Context, token string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Delete(token)
}

// Close stops the cleanup goroutine and waits for it to finish. It does not
// close the database. It is safe to call more than once.
func (s *BoltStore) Close() error {
	s.closeOnce.Do(func() { close(s.stop) })
	<-s.done
	return nil
}

// Bounds of what UnixNano can represent (years 1678 to 2262).
var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

// unixNanos is t.UnixNano clamped to int64, since UnixNano is undefined
// outside its range (e.g. for the zero time, which must read as expired).
func unixNanos(t time.Time) int64 {
	switch {
	case t.Before(minNanoTime):
		return math.MinInt64
	case t.After(maxNanoTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}
