package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// The Django flavour (Options.Django): users are the rows of Django's own
// auth_user table, groups are read from auth_group and auth_user_groups,
// and the Django schema is never altered. What the sidecar needs beyond it
// lives in its own side table, keyed by auth_user.id and removed with the
// user (ON DELETE CASCADE):
//
//	session_auth_django_users (
//	    user_id        bigint PRIMARY KEY REFERENCES auth_user (id) ON DELETE CASCADE,
//	    session_epoch  bigint NOT NULL,  -- see below
//	    email_verified boolean)          -- NULL: a user made in Django, counted as verified
//	session_auth_django_factors (                     -- users.Factors (side version 2)
//	    user_id bigint PRIMARY KEY REFERENCES auth_user (id) ON DELETE CASCADE,
//	    data    bytea NOT NULL, updated_at timestamptz)
//	session_auth_django_schema (version, applied_at)  -- the side tables' versions
//	session_auth_secrets                               -- as in the sidecar's own schema
//
// Session epoch and Django's password changes. Django ends a user's
// sessions when the password changes by keeping a digest of the password
// hash in each session. Here the digest is folded into the epoch the
// sessions record: the store reports SessionEpoch = side epoch XOR
// digest(password hash), and on every write keeps side epoch =
// SessionEpoch XOR digest(new hash). So a write through the sidecar leaves
// SessionEpoch exactly as the caller set it (a rehash at login keeps the
// sessions; a password change bumps the epoch as with the other backends),
// while a password set in Django (set_password, createsuperuser, the admin)
// changes the reported epoch, and every session of the user is refused at
// its next request. There is no user cache in this flavour (Django writes
// the table without telling anyone), so deactivation and deletion in
// Django are seen at the next request too.
//
// Usernames. Django's unique index is case-sensitive. The sidecar still
// refuses to create a case or look-alike variant of an existing name:
// creations and renames take a transaction-level advisory lock on the
// normalised name (users.UsernameKey), then look for variants. Candidates
// are found in SQL (lower(normalize(username, NFKC)) with ß and final
// sigma folded as Unicode case folding does) and compared in Go with
// UsernameKey. ByUsername prefers the exact spelling; a name that only
// matches two or more variants (possible when Django created them) is
// ambiguous and not found.

// djangoMigrations are the side tables' versions, as migrations.
var djangoMigrations = [...]string{
	`
CREATE TABLE session_auth_django_users (
	user_id        bigint PRIMARY KEY REFERENCES auth_user (id) ON DELETE CASCADE,
	session_epoch  bigint NOT NULL DEFAULT 0,
	email_verified boolean
);
CREATE TABLE IF NOT EXISTS session_auth_secrets (
	name       text PRIMARY KEY,
	value      bytea NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);
`,
	// 2: each user's second-factor value (users.Factors), apart from the
	// side row that ByID joins.
	`
CREATE TABLE session_auth_django_factors (
	user_id    bigint PRIMARY KEY REFERENCES auth_user (id) ON DELETE CASCADE,
	data       bytea NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT session_auth_django_factors_data_not_empty CHECK (octet_length(data) > 0)
);
`,
}

// ErrNotDjango is returned (wrapped, naming what is missing) when
// Options.Django is set and the database has no usable auth_user table.
var ErrNotDjango = errors.New("users: postgres: no Django auth tables")

// djangoRequired are the auth_user columns the store reads and writes.
var djangoRequired = []string{"id", "password", "last_login", "is_superuser", "username", "email", "is_staff", "is_active", "date_joined"}

// djangoMigrationLock serialises side-table migrations ("sa_djang").
const djangoMigrationLock int64 = 0x73615f646a616e67

const (
	djangoColumns = `u.id, u.username, u.email, u.password, u.is_active, u.is_superuser, u.is_staff, u.date_joined, u.last_login,
		COALESCE(e.session_epoch, 0),
		ARRAY(SELECT g.name::text FROM auth_user_groups ug JOIN auth_group g ON g.id = ug.group_id
			WHERE ug.user_id = u.id ORDER BY g.name COLLATE "C"),
		COALESCE(e.email_verified, true)`
	djangoFrom = ` FROM auth_user u LEFT JOIN session_auth_django_users e ON e.user_id = u.id`

	// djangoFold approximates Unicode case folding in SQL, to find the
	// candidates that UsernameKey then compares exactly.
	djangoFold       = `translate(replace(lower(normalize(%s, NFKC)), 'ß', 'ss'), 'ς', 'σ')`
	djangoCandidates = `SELECT u.id, u.username FROM auth_user u WHERE ` + "%s" + ` = ` + "%s"

	djangoUpsertSide = `INSERT INTO session_auth_django_users (user_id, session_epoch, email_verified) VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET session_epoch = EXCLUDED.session_epoch, email_verified = EXCLUDED.email_verified`
)

var djangoCandidatesSQL = fmt.Sprintf(djangoCandidates, fmt.Sprintf(djangoFold, "u.username"), fmt.Sprintf(djangoFold, "$1"))

// passwordDigest is what the epoch is folded with: 64 bits of SHA-256 of
// the password hash (not secret: sessions are kept on the server side).
func passwordDigest(hash string) int64 {
	sum := sha256.Sum256([]byte("caddy-session-auth django epoch\x00" + hash))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// scanDjangoUser reads djangoColumns. The query already gives the groups
// in byte order (COLLATE "C"), and each once (auth_group.name and
// auth_user_groups (user_id, group_id) are unique): SortGroups, which
// copies, runs only if a server's encoding ordered them otherwise.
func scanDjangoUser(row pgx.Row, u *users.User) error {
	if err := scanUser(row, u); err != nil {
		return err
	}
	u.SessionEpoch ^= passwordDigest(u.PasswordHash)
	if !slices.IsSorted(u.Groups) {
		u.Groups = users.SortGroups(u.Groups)
	}
	return nil
}

// sideEpoch is what the side table keeps for u.
func sideEpoch(u *users.User) int64 { return u.SessionEpoch ^ passwordDigest(u.PasswordHash) }

// checkDjangoTables refuses a database without Django's auth tables, naming
// what is missing, and notes the optional columns and tables.
func (s *Store) checkDjangoTables(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT a.attname, a.attnotnull AND NOT a.atthasdef FROM pg_attribute a
		WHERE a.attrelid = to_regclass('auth_user') AND a.attnum > 0 AND NOT a.attisdropped`)
	if err != nil {
		return s.dbErr(ctx, "checking Django's auth_user table", err)
	}
	have := map[string]bool{}
	for rows.Next() {
		var name string
		var required bool
		if err := rows.Scan(&name, &required); err != nil {
			rows.Close()
			return s.dbErr(ctx, "checking Django's auth_user table", err)
		}
		have[name] = required
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s.dbErr(ctx, "checking Django's auth_user table", err)
	}
	if len(have) == 0 {
		return fmt.Errorf("%w: django_users: there is no auth_user table in %s (search_path): run Django's `manage.py migrate` on this database first, or point users_db at the database Django uses", ErrNotDjango, s.url)
	}
	var missing []string
	for _, c := range djangoRequired {
		if _, ok := have[c]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: django_users: auth_user in %s lacks the column(s) %s that django.contrib.auth's user has (a custom user model with its own table is not supported)",
			ErrNotDjango, s.url, strings.Join(missing, ", "))
	}
	// Other NOT NULL columns without a default (Django keeps defaults in
	// Python): first_name and last_name in Django's own model get ''.
	s.djangoExtra = nil
	for c, required := range have {
		if required && !slices.Contains(djangoRequired, c) {
			if c != "first_name" && c != "last_name" {
				return fmt.Errorf("%w: django_users: auth_user in %s has a NOT NULL column %q without a default that the sidecar cannot fill", ErrNotDjango, s.url, c)
			}
			s.djangoExtra = append(s.djangoExtra, c)
		}
	}
	slices.Sort(s.djangoExtra)
	for _, table := range []string{"auth_group", "auth_user_groups"} {
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&ok); err != nil {
			return s.dbErr(ctx, "checking Django's auth tables", err)
		}
		if !ok {
			return fmt.Errorf("%w: django_users: there is no %s table in %s: run Django's `manage.py migrate`", ErrNotDjango, table, s.url)
		}
	}
	if err := tx.QueryRow(ctx, `SELECT to_regclass('auth_user_user_permissions') IS NOT NULL`).Scan(&s.djangoPerms); err != nil {
		return s.dbErr(ctx, "checking Django's auth tables", err)
	}
	return nil
}

// lockUsername takes the transaction-level advisory lock on a normalised
// name, so that two creations of variants of one name queue.
func lockUsername(ctx context.Context, tx pgx.Tx, key string) error {
	sum := sha256.Sum256([]byte("caddy-session-auth username\x00" + key))
	_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(binary.BigEndian.Uint64(sum[:8])))
	return err
}

// variantTaken reports whether a user other than self has a name with the
// same UsernameKey.
func (s *Store) variantTaken(ctx context.Context, tx pgx.Tx, name, key string, self int64) (bool, error) {
	rows, err := tx.Query(ctx, djangoCandidatesSQL, name)
	if err != nil {
		return false, s.dbErr(ctx, "looking for usernames alike", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var other string
		if err := rows.Scan(&id, &other); err != nil {
			return false, s.dbErr(ctx, "looking for usernames alike", err)
		}
		if id != self && users.UsernameKey(other) == key {
			return true, nil
		}
	}
	if err := rows.Err(); err != nil {
		return false, s.dbErr(ctx, "looking for usernames alike", err)
	}
	return false, nil
}

func (s *Store) djangoByID(ctx context.Context, id int64) (*users.User, error) {
	u := new(users.User)
	err := scanDjangoUser(s.pool.QueryRow(ctx, `SELECT `+djangoColumns+djangoFrom+` WHERE u.id = $1`, id), u)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	if err != nil {
		return nil, s.dbErr(ctx, "reading a user", err)
	}
	return u, nil
}

// djangoByUsername: the exact spelling, else the one variant.
func (s *Store) djangoByUsername(ctx context.Context, name, key string) (*users.User, error) {
	u := new(users.User)
	err := scanDjangoUser(s.pool.QueryRow(ctx, `SELECT `+djangoColumns+djangoFrom+` WHERE u.username = $1`, name), u)
	if err == nil {
		return u, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, s.dbErr(ctx, "reading a user by name", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+djangoColumns+djangoFrom+` WHERE `+fmt.Sprintf(djangoFold, "u.username")+` = `+fmt.Sprintf(djangoFold, "$1"), name)
	if err != nil {
		return nil, s.dbErr(ctx, "reading a user by name", err)
	}
	defer rows.Close()
	var found *users.User
	for rows.Next() {
		c := new(users.User)
		if err := scanDjangoUser(rows, c); err != nil {
			return nil, s.dbErr(ctx, "reading a user by name", err)
		}
		if users.UsernameKey(c.Username) != key {
			continue
		}
		if found != nil {
			return nil, users.ErrNotFound // ambiguous: Django holds two variants
		}
		found = c
	}
	if err := rows.Err(); err != nil {
		return nil, s.dbErr(ctx, "reading a user by name", err)
	}
	if found == nil {
		return nil, users.ErrNotFound
	}
	return found, nil
}

// djangoInsert inserts rec (prepared) in tx: the auth_user row and the
// side row. With an explicit id the sequence is moved past it.
func (s *Store) djangoInsert(ctx context.Context, tx pgx.Tx, rec *users.User, key string) error {
	if len(rec.Groups) > 0 {
		return fmt.Errorf("%w: with django_users, groups are Django's (auth_user_groups): add the user to groups in Django", users.ErrInvalidUser)
	}
	if err := lockUsername(ctx, tx, key); err != nil {
		return s.dbErr(ctx, "creating a user", err)
	}
	if taken, err := s.variantTaken(ctx, tx, rec.Username, key, 0); err != nil {
		return err
	} else if taken {
		return users.ErrUsernameTaken
	}
	cols := "username, email, password, is_active, is_superuser, is_staff, date_joined, last_login"
	vals := "$1, $2, $3, $4, $5, $6, $7, $8"
	args := []any{rec.Username, rec.Email, rec.PasswordHash, rec.IsActive, rec.IsSuperuser, rec.IsStaff,
		timestamptz(rec.DateJoined), timestamptz(rec.LastLogin)}
	for _, c := range s.djangoExtra {
		cols += ", " + c
		vals += ", ''"
	}
	if rec.ID != 0 {
		args = append(args, rec.ID)
		cols += ", id"
		vals += fmt.Sprintf(", $%d", len(args))
	}
	// No savepoint: a unique violation aborts the transaction, and
	// CreateMany returns it as that user's error (nothing is written).
	err := tx.QueryRow(ctx, `INSERT INTO auth_user (`+cols+`) VALUES (`+vals+`) RETURNING id`, args...).Scan(&rec.ID)
	if err != nil {
		return s.djangoErr(ctx, "creating a user", err)
	}
	if _, err := tx.Exec(ctx, djangoUpsertSide, rec.ID, sideEpoch(rec), rec.EmailVerified); err != nil {
		return s.djangoErr(ctx, "creating a user", err)
	}
	return nil
}

// djangoErr is dbErr with Django's constraint names: any unique violation
// on auth_user is the id (primary key) or the username.
func (s *Store) djangoErr(ctx context.Context, op string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505" && pe.TableName == "auth_user" && strings.HasSuffix(pe.ConstraintName, "_pkey"):
			return users.ErrIDTaken
		case pe.Code == "23505" && pe.TableName == "auth_user":
			return users.ErrUsernameTaken
		case pe.Code == "22001": // value too long for Django's varchar columns
			return fmt.Errorf("%w: %s", users.ErrInvalidUser, pe.Message)
		case pe.Code == "23503":
			return fmt.Errorf("users: postgres: %s: other tables of the Django app refer to this user (%s): delete it in Django, which removes those rows too", op, pe.ConstraintName)
		}
	}
	return s.dbErr(ctx, op, err)
}

func (s *Store) djangoCreate(ctx context.Context, rec *users.User, key string) error {
	return s.inTx(ctx, "creating a user", func(tx pgx.Tx) error {
		if rec.ID != 0 {
			if _, err := tx.Exec(ctx, `LOCK TABLE auth_user IN SHARE ROW EXCLUSIVE MODE`); err != nil {
				return s.dbErr(ctx, "creating a user", err)
			}
		}
		if err := s.djangoInsert(ctx, tx, rec, key); err != nil {
			return err
		}
		if rec.ID != 0 {
			return s.djangoBumpSeq(ctx, tx, rec.ID)
		}
		return nil
	})
}

// djangoBumpSeq moves auth_user's id sequence so that nextval gives more
// than id (never back).
func (s *Store) djangoBumpSeq(ctx context.Context, tx pgx.Tx, id int64) error {
	var seq *string
	if err := tx.QueryRow(ctx, `SELECT pg_get_serial_sequence('auth_user', 'id')`).Scan(&seq); err != nil {
		return s.dbErr(ctx, "moving the id sequence", err)
	}
	if seq == nil {
		return nil // ids without a sequence: nothing to move
	}
	var last int64
	var called bool
	if err := tx.QueryRow(ctx, `SELECT last_value, is_called FROM `+pgx.Identifier(strings.Split(*seq, ".")).Sanitize()).Scan(&last, &called); err != nil {
		return s.dbErr(ctx, "moving the id sequence", err)
	}
	if !called {
		last--
	}
	if last >= id {
		return nil
	}
	if _, err := tx.Exec(ctx, `SELECT setval($1, $2)`, *seq, id); err != nil {
		return s.dbErr(ctx, "moving the id sequence", err)
	}
	return nil
}

func (s *Store) djangoUpdate(ctx context.Context, id int64, fn func(u *users.User) error) (*users.User, error) {
	u := new(users.User)
	err := s.inTx(ctx, "updating a user", func(tx pgx.Tx) error {
		// Lock the row first, then read the user in a new statement: in
		// READ COMMITTED a locking read re-checks the locked row but not
		// the joined side row, which a writer ahead of us may have changed.
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM auth_user WHERE id = $1 FOR UPDATE`, id).Scan(&one)
		if err == nil {
			err = scanDjangoUser(tx.QueryRow(ctx, `SELECT `+djangoColumns+djangoFrom+` WHERE u.id = $1`, id), u)
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return users.ErrNotFound
		}
		if err != nil {
			return s.dbErr(ctx, "updating a user: reading it", err)
		}
		before := *u
		if err := fn(u); err != nil {
			return err
		}
		key, err := users.CheckUpdated(id, u)
		if err != nil {
			return err
		}
		if !slices.Equal(u.Groups, before.Groups) {
			return fmt.Errorf("%w: with django_users, groups are Django's (auth_user_groups): change them in Django", users.ErrInvalidUser)
		}
		if u.Username != before.Username && key != users.UsernameKey(before.Username) {
			if err := lockUsername(ctx, tx, key); err != nil {
				return s.dbErr(ctx, "updating a user", err)
			}
			if taken, err := s.variantTaken(ctx, tx, u.Username, key, id); err != nil {
				return err
			} else if taken {
				return users.ErrUsernameTaken
			}
		}
		_, err = tx.Exec(ctx, `UPDATE auth_user SET username = $2, email = $3, password = $4, is_active = $5,
			is_superuser = $6, is_staff = $7, date_joined = $8, last_login = $9 WHERE id = $1`,
			id, u.Username, u.Email, u.PasswordHash, u.IsActive, u.IsSuperuser, u.IsStaff, timestamptz(u.DateJoined), timestamptz(u.LastLogin))
		if err != nil {
			return s.djangoErr(ctx, "updating a user", err)
		}
		if _, err := tx.Exec(ctx, djangoUpsertSide, id, sideEpoch(u), u.EmailVerified); err != nil {
			return s.djangoErr(ctx, "updating a user", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

func (s *Store) djangoDelete(ctx context.Context, id int64) error {
	return s.inTx(ctx, "deleting a user", func(tx pgx.Tx) error {
		// Django's own auth rows that refer to the user go with it, as
		// Django's delete() removes them.
		if _, err := tx.Exec(ctx, `DELETE FROM auth_user_groups WHERE user_id = $1`, id); err != nil {
			return s.djangoErr(ctx, "deleting a user", err)
		}
		if s.djangoPerms {
			if _, err := tx.Exec(ctx, `DELETE FROM auth_user_user_permissions WHERE user_id = $1`, id); err != nil {
				return s.djangoErr(ctx, "deleting a user", err)
			}
		}
		tag, err := tx.Exec(ctx, `DELETE FROM auth_user WHERE id = $1`, id)
		if err != nil {
			return s.djangoErr(ctx, "deleting a user", err)
		}
		if tag.RowsAffected() == 0 {
			return users.ErrNotFound
		}
		// Django's foreign keys are deferred: check them now, so that a
		// refusal names the cause rather than failing at commit.
		if _, err := tx.Exec(ctx, `SET CONSTRAINTS ALL IMMEDIATE`); err != nil {
			return s.djangoErr(ctx, "deleting a user", err)
		}
		return nil
	})
}

func (s *Store) djangoCreateMany(ctx context.Context, recs []users.User, keys []string, skipExisting bool) ([]bool, int, error) {
	created := make([]bool, len(recs))
	n := 0
	var maxID int64
	for _, r := range recs {
		maxID = max(maxID, r.ID)
	}
	err := s.inTx(ctx, "creating users", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE auth_user IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return s.dbErr(ctx, "creating users", err)
		}
		if maxID > 0 {
			if err := s.djangoBumpSeq(ctx, tx, maxID); err != nil {
				return err
			}
		}
		for i := range recs {
			if skipExisting {
				skip := false
				if recs[i].ID > 0 {
					if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM auth_user WHERE id = $1)`, recs[i].ID).Scan(&skip); err != nil {
						return s.dbErr(ctx, "creating users", err)
					}
				}
				if !skip {
					taken, err := s.variantTaken(ctx, tx, recs[i].Username, keys[i], 0)
					if err != nil {
						return err
					}
					skip = taken
				}
				if skip {
					continue
				}
			}
			if err := s.djangoInsert(ctx, tx, &recs[i], keys[i]); err != nil {
				return manyErr(i, &recs[i], err)
			}
			created[i] = true
			n++
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return created, n, nil
}

// djangoMigrate checks Django's tables and brings the side tables to the
// newest version, under an advisory lock, in one transaction.
func (s *Store) djangoMigrate(ctx context.Context) error {
	return s.inTx(ctx, "migrating the side tables", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", djangoMigrationLock); err != nil {
			return s.dbErr(ctx, "migrating the side tables: taking the lock", err)
		}
		if err := s.checkDjangoTables(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS session_auth_django_schema (
			version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return s.dbErr(ctx, "migrating the side tables", err)
		}
		var v int
		if err := tx.QueryRow(ctx, "SELECT COALESCE(max(version), 0) FROM session_auth_django_schema").Scan(&v); err != nil {
			return s.dbErr(ctx, "migrating the side tables: reading the version", err)
		}
		if v > len(djangoMigrations) {
			return fmt.Errorf("%w: the session_auth_django_ tables are at version %d, this caddy-session-auth knows versions up to %d: "+
				"upgrade caddy-session-auth to the version that migrated them", ErrSchemaTooNew, v, len(djangoMigrations))
		}
		for i := v; i < len(djangoMigrations); i++ {
			if _, err := tx.Exec(ctx, djangoMigrations[i]); err != nil {
				return s.dbErr(ctx, fmt.Sprintf("migrating the side tables to version %d", i+1), err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO session_auth_django_schema (version) VALUES ($1)", i+1); err != nil {
				return s.dbErr(ctx, fmt.Sprintf("migrating the side tables to version %d", i+1), err)
			}
		}
		return nil
	})
}
