package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

var _ users.Secrets = (*Store)(nil)

// Secret implements users.Secrets.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	var v []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM session_auth_secrets WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	if err != nil {
		return nil, s.dbErr(ctx, "reading a secret", err)
	}
	return v, nil
}

// UpdateSecret implements users.Secrets: the row is created if missing
// (ON CONFLICT DO NOTHING) and then held FOR UPDATE, so concurrent callers
// on any instance queue on it.
func (s *Store) UpdateSecret(ctx context.Context, name string, fn func(cur []byte) ([]byte, error)) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	var out []byte
	err := s.inTx(ctx, "updating a secret", func(tx pgx.Tx) error {
		// An empty placeholder row to lock; it is never left behind (fn's
		// value replaces it, or the transaction rolls back).
		if _, err := tx.Exec(ctx, `INSERT INTO session_auth_secrets (name, value) VALUES ($1, '') ON CONFLICT (name) DO NOTHING`, name); err != nil {
			return s.dbErr(ctx, "updating a secret", err)
		}
		var cur []byte
		if err := tx.QueryRow(ctx, `SELECT value FROM session_auth_secrets WHERE name = $1 FOR UPDATE`, name).Scan(&cur); err != nil {
			return s.dbErr(ctx, "updating a secret", err)
		}
		if len(cur) == 0 {
			cur = nil
		}
		next, err := fn(cur)
		if err != nil {
			return err
		}
		if len(next) == 0 {
			next = nil
			_, err = tx.Exec(ctx, `DELETE FROM session_auth_secrets WHERE name = $1`, name)
		} else {
			_, err = tx.Exec(ctx, `UPDATE session_auth_secrets SET value = $2, updated_at = now() WHERE name = $1`, name, next)
		}
		if err != nil {
			return s.dbErr(ctx, "updating a secret", err)
		}
		out = next
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
