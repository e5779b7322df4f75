package sessions

import (
	"encoding/binary"
	"log"
	"time"

	"go.etcd.io/bbolt"
)

// Cleanup works in bounded batches so that it never holds bbolt's single
// writer lock (which every login and logout also needs) for long: expired
// keys are found in a read transaction scanning at most cleanupScanBatch
// entries, then deleted in a short write transaction.
const (
	cleanupScanBatch   = 10000
	cleanupDeleteBatch = 1000
)

// DeleteExpired deletes every session whose expiry has passed and returns how
// many it deleted. The cleanup goroutine calls it; it is exported for tests
// and maintenance. It stops early, without error, once Close is called.
func (s *BoltStore) DeleteExpired() (int, error) {
	total := 0
	var from []byte // first key of the next scan; nil = start of bucket
	for {
		now := time.Now().UnixNano()
		expired, next, err := s.scanExpired(from, now)
		if err != nil {
			return total, err
		}
		if len(expired) > 0 {
			n, err := s.deleteIfExpired(expired, now)
			total += n
			if err != nil {
				return total, err
			}
		}
		if next == nil || s.stopping() {
			return total, nil
		}
		from = next
	}
}

// scanExpired reads from key from onwards and returns up to
// cleanupDeleteBatch expired keys (copied out of the tx) and the key to
// resume at, or nil at the end of the bucket.
func (s *BoltStore) scanExpired(from []byte, now int64) (expired [][]byte, next []byte, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(sessionsBucket).Cursor()
		k, v := c.First()
		if from != nil {
			k, v = c.Seek(from)
		}
		for scanned := 0; k != nil; k, v = c.Next() {
			if scanned == cleanupScanBatch || len(expired) == cleanupDeleteBatch {
				next = append([]byte(nil), k...)
				return nil
			}
			scanned++
			if isExpired(v, now) {
				expired = append(expired, append([]byte(nil), k...))
			}
		}
		return nil
	})
	return expired, next, err
}

// deleteIfExpired deletes the given keys in one write transaction,
// re-checking each one: it may have been re-committed since the scan.
func (s *BoltStore) deleteIfExpired(keys [][]byte, now int64) (int, error) {
	n := 0
	// Expired entries never count as found, cached or not: dropping them
	// only frees the cache's room.
	defer func() {
		tokens := make([]string, len(keys))
		for i, k := range keys {
			tokens[i] = string(k)
		}
		s.cache.invalidate(tokens...)
	}()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(sessionsBucket)
		for _, k := range keys {
			if v := b.Get(k); v != nil && isExpired(v, now) {
				if err := b.Delete(k); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// isExpired reports whether a stored value's expiry is at or before now.
// Corrupt (too short) values count as expired so that cleanup removes them.
func isExpired(v []byte, now int64) bool {
	return len(v) < expiryLen || int64(binary.BigEndian.Uint64(v)) <= now
}

func (s *BoltStore) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

func (s *BoltStore) cleanupLoop(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if _, err := s.DeleteExpired(); err != nil {
				// No logger is injected into this package; a failing
				// cleanup only delays space reuse, so note it and retry.
				log.Printf("sessions: deleting expired bolt sessions: %v", err)
			}
			if _, err := s.PruneUserIndex(); err != nil {
				log.Printf("sessions: pruning the user session index: %v", err)
			}
		}
	}
}
