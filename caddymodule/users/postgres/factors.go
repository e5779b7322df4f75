package postgres

import (
	"bytes"
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

var _ users.Factors = (*Store)(nil)

// factorsSQL are the users.Factors statements of one flavour: the
// sidecar's own tables (schema v5) or Django's auth_user with the side
// table session_auth_django_factors (side version 2). Neither touches the
// users' rows, so no NOTIFY is sent and the ByID cache stays as it is.
type factorsSQL struct {
	read, lockUser, readLocked, upsert, delete, all string
}

func newFactorsSQL(usersTable, factorsTable string) factorsSQL {
	return factorsSQL{
		read: `SELECT f.data FROM ` + usersTable + ` u LEFT JOIN ` + factorsTable + ` f ON f.user_id = u.id WHERE u.id = $1`,
		// The user's row is the lock every UpdateFactors of that user
		// queues on (whether or not it has a value yet), and that Delete
		// waits for. NO KEY: the row's id does not change, so inserts
		// referring to the user are not held up.
		lockUser:   `SELECT 1 FROM ` + usersTable + ` WHERE id = $1 FOR NO KEY UPDATE`,
		readLocked: `SELECT data FROM ` + factorsTable + ` WHERE user_id = $1`,
		upsert: `INSERT INTO ` + factorsTable + ` (user_id, data) VALUES ($1, $2)
			ON CONFLICT (user_id) DO UPDATE SET data = EXCLUDED.data, updated_at = now()`,
		delete: `DELETE FROM ` + factorsTable + ` WHERE user_id = $1`,
		all:    `SELECT user_id, data FROM ` + factorsTable,
	}
}

var (
	ownFactorsSQL    = newFactorsSQL("session_auth_users", "session_auth_user_factors")
	djangoFactorsSQL = newFactorsSQL("auth_user", "session_auth_django_factors")
)

func (s *Store) factorsSQL() *factorsSQL {
	if s.django {
		return &djangoFactorsSQL
	}
	return &ownFactorsSQL
}

// Factors implements users.Factors: one statement that tells a user
// without a value (NULL) from no user (no row).
func (s *Store) Factors(ctx context.Context, id int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	var v []byte
	err := s.pool.QueryRow(ctx, s.factorsSQL().read, id).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	if err != nil {
		return nil, s.dbErr(ctx, "reading second-factor data", err)
	}
	if len(v) == 0 {
		v = nil
	}
	return v, nil
}

// UpdateFactors implements users.Factors: the user's row is locked (FOR NO
// KEY UPDATE), then the value read, fn called and the value written or
// deleted, in one transaction. Concurrent callers on any instance queue on
// the row lock; in READ COMMITTED each statement after the lock sees what
// the previous holder committed, so fn always gets the latest value.
func (s *Store) UpdateFactors(ctx context.Context, id int64, fn func(cur []byte) ([]byte, error)) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	q := s.factorsSQL()
	const op = "updating second-factor data"
	var out []byte
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, q.lockUser, id).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return users.ErrNotFound
		}
		if err != nil {
			return s.dbErr(ctx, op, err)
		}
		var cur []byte
		err = tx.QueryRow(ctx, q.readLocked, id).Scan(&cur)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return s.dbErr(ctx, op, err)
		}
		if len(cur) == 0 {
			cur = nil
		}
		next, err := fn(cur)
		if err != nil {
			return err
		}
		if len(next) == 0 {
			out = nil
			_, err = tx.Exec(ctx, q.delete, id)
		} else {
			out = bytes.Clone(next)
			_, err = tx.Exec(ctx, q.upsert, id, out)
		}
		if err != nil {
			return s.dbErr(ctx, op, err)
		}
		return nil
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
	ctx, cancel := context.WithTimeout(ctx, 10*s.opts.QueryTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	const op = "listing second-factor data"
	rows, err := s.pool.Query(ctx, s.factorsSQL().all)
	if err != nil {
		return nil, s.dbErr(ctx, op, err)
	}
	defer rows.Close()
	out := make(map[int64][]byte)
	for rows.Next() {
		var id int64
		var v []byte
		if err := rows.Scan(&id, &v); err != nil {
			return nil, s.dbErr(ctx, op, err)
		}
		out[id] = v
	}
	if err := rows.Err(); err != nil {
		return nil, s.dbErr(ctx, op, err)
	}
	return out, nil
}
