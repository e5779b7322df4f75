package bolt

import (
	"bytes"
	"context"

	"go.etcd.io/bbolt"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// factorsBucket maps the big-endian user id (as in the users bucket) to
// the user's second-factor value (users.Factors).
var factorsBucket = []byte("factors")

var _ users.Factors = (*Store)(nil)

// Factors implements users.Factors.
func (s *Store) Factors(ctx context.Context, id int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	var out []byte
	err := s.db.View(func(tx *bbolt.Tx) error {
		key := idKey(id)
		if tx.Bucket(usersBucket).Get(key) == nil {
			return users.ErrNotFound
		}
		if b := tx.Bucket(factorsBucket); b != nil {
			out = bytes.Clone(b.Get(key))
		}
		return nil
	})
	return out, err
}

// UpdateFactors implements users.Factors; bbolt serialises writers.
func (s *Store) UpdateFactors(ctx context.Context, id int64, fn func(cur []byte) ([]byte, error)) ([]byte, error) {
	var out []byte
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		key := idKey(id)
		if tx.Bucket(usersBucket).Get(key) == nil {
			return users.ErrNotFound
		}
		b, err := tx.CreateBucketIfNotExists(factorsBucket)
		if err != nil {
			return err
		}
		next, err := fn(bytes.Clone(b.Get(key)))
		if err != nil {
			return err
		}
		if len(next) == 0 {
			out = nil
			return b.Delete(key)
		}
		out = bytes.Clone(next)
		return b.Put(key, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AllFactors implements users.Factors.
func (s *Store) AllFactors(ctx context.Context) (map[int64][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	out := make(map[int64][]byte)
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(factorsBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			id, err := idFromKey(k)
			if err != nil {
				return err
			}
			out[id] = bytes.Clone(v)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// deleteFactors removes the user's second-factor value (with the user).
func deleteFactors(tx *bbolt.Tx, key []byte) error {
	if b := tx.Bucket(factorsBucket); b != nil {
		return b.Delete(key)
	}
	return nil
}
