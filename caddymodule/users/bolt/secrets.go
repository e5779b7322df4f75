package bolt

import (
	"bytes"
	"context"

	"go.etcd.io/bbolt"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// secretsBucket maps a secret's name to its value (users.Secrets).
var secretsBucket = []byte("secrets")

var _ users.Secrets = (*Store)(nil)

// Secret implements users.Secrets.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	var out []byte
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(secretsBucket)
		if b == nil {
			return users.ErrNotFound
		}
		v := b.Get([]byte(name))
		if v == nil {
			return users.ErrNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// UpdateSecret implements users.Secrets; bbolt serialises writers.
func (s *Store) UpdateSecret(ctx context.Context, name string, fn func(cur []byte) ([]byte, error)) ([]byte, error) {
	var out []byte
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(secretsBucket)
		if err != nil {
			return err
		}
		next, err := fn(bytes.Clone(b.Get([]byte(name))))
		if err != nil {
			return err
		}
		if len(next) == 0 {
			out = nil
			return b.Delete([]byte(name))
		}
		out = bytes.Clone(next)
		return b.Put([]byte(name), out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
