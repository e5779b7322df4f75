package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/internal/usercache"
)

// Options tunes a Store. The zero value is the defaults.
type Options struct {
	// ConnectTimeout bounds opening one connection (TCP, TLS, startup),
	// unless the URL sets connect_timeout. Default 5s.
	ConnectTimeout time.Duration

	// QueryTimeout bounds each call (all of its statements, and waiting for
	// a pooled connection) on top of the caller's context, and is the
	// server-side statement_timeout unless the URL sets one; List and
	// CreateMany get ten times as long. So a hung server makes calls fail
	// after this long instead of hanging. Default 5s.
	QueryTimeout time.Duration

	// MaxConns is the pool size. Default pgxpool's: max(4, GOMAXPROCS),
	// or pool_max_conns in the URL.
	MaxConns int32

	// CacheSize bounds the ByID cache (users). 0 means
	// usercache.DefaultSize; negative turns the cache off.
	CacheSize int

	// Heartbeat is how often the listener connection is checked. The cache
	// is used only while the check succeeded within the last three
	// heartbeats, so a connection that hangs without breaking cannot leave
	// a missed change unseen for longer than that. Default 250ms.
	Heartbeat time.Duration

	// OnListener, if set, is called (from the listener's goroutine, one
	// call at a time) each time the invalidation listener starts or stops
	// listening: Listening false means the cache is flushed and bypassed
	// (every ByID reads the database) until it is true again. For logs.
	OnListener func(ListenerEvent)

	// Django keeps the users in Django's own auth_user table (read-only
	// groups from auth_group and auth_user_groups) with a side table for
	// what the sidecar adds; see django.go. There is no user cache then
	// (Django writes without telling), and no listener.
	Django bool
}

// ListenerEvent is a change of the invalidation listener's state.
type ListenerEvent struct {
	// Listening is the new state.
	Listening bool
	// Err is why listening stopped or could not start (when !Listening).
	Err error
	// Down is how long the listener was down (when Listening after an
	// outage).
	Down time.Duration
}

func (o Options) withDefaults() Options {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = 5 * time.Second
	}
	if o.CacheSize == 0 {
		o.CacheSize = usercache.DefaultSize
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 250 * time.Millisecond
	}
	return o
}

// Store is a users.Store in PostgreSQL, for any number of instances sharing
// one database. It is safe for concurrent use.
//
// ByID is served from an exact in-memory cache: each write through this
// Store drops the user from it when the write ends, and a trigger on the
// users table NOTIFYs every other instance, in the writing transaction, of
// the id it changed (so writes by the CLI, another instance or plain SQL
// are seen within milliseconds). A dedicated connection LISTENs; while it is
// down, or has not been confirmed alive within three heartbeats, the cache
// is flushed and bypassed.
type Store struct {
	pool  *pgxpool.Pool
	opts  Options
	cache *usercache.Cache
	url   string // redacted, for messages

	migrated   atomic.Bool
	migrateSem chan struct{}

	// The cache may be used while now() < leaseUntil: the listener sets it
	// to (start of the last successful check) + 3 heartbeats, and to 0
	// when its connection is lost.
	base       time.Time
	leaseUntil atomic.Int64
	lease      time.Duration

	listenCfg   *pgconn.Config
	listening   atomic.Bool
	listenerPID atomic.Uint32 // the listener's backend, for tests
	stop        context.CancelFunc
	done        chan struct{}
	closeOnce   sync.Once

	// Django flavour (Options.Django): the NOT NULL auth_user columns the
	// store fills with '' (first_name, last_name), and whether
	// auth_user_user_permissions exists; set by the migration's check.
	django      bool
	djangoExtra []string
	djangoPerms bool
}

var _ users.Store = (*Store)(nil)

// IsURL reports whether s is a PostgreSQL URL (postgres:// or
// postgresql://), as opposed to a bbolt file path.
func IsURL(s string) bool {
	i := strings.Index(s, "://")
	if i < 0 {
		return false
	}
	scheme := strings.ToLower(s[:i])
	return scheme == "postgres" || scheme == "postgresql"
}

// RedactURL returns rawURL with its password replaced, for messages.
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// New returns a store for the database at rawURL (postgres:// or
// postgresql://, with libpq's parameters, e.g. sslmode) without connecting:
// the pool connects on first use, the schema is created or migrated on
// first use (see Migrate), and the invalidation listener keeps trying to
// connect in the background. So a server that is down when New is called
// only makes calls fail until it is back. Close releases the store.
func New(rawURL string, opts Options) (*Store, error) {
	if !IsURL(rawURL) {
		return nil, fmt.Errorf("users: postgres: %s is not a postgres:// or postgresql:// URL", RedactURL(rawURL))
	}
	// pgx knows the schemes in lower case only; URL schemes are not case
	// sensitive.
	i := strings.Index(rawURL, "://")
	cfg, err := pgxpool.ParseConfig(strings.ToLower(rawURL[:i]) + rawURL[i:])
	if err != nil {
		// pgx's message redacts the password.
		return nil, fmt.Errorf("users: postgres: %w", err)
	}
	opts = opts.withDefaults()
	cc := &cfg.ConnConfig.Config
	if cc.ConnectTimeout <= 0 {
		cc.ConnectTimeout = opts.ConnectTimeout
	}
	setDefault(cc.RuntimeParams, "application_name", "caddy-session-auth")
	setDefault(cc.RuntimeParams, "statement_timeout", strconv.FormatInt(opts.QueryTimeout.Milliseconds(), 10))
	// A client that hangs inside a transaction (holding a row lock from
	// Update) is cut off by the server.
	setDefault(cc.RuntimeParams, "idle_in_transaction_session_timeout", strconv.FormatInt((4*opts.QueryTimeout).Milliseconds(), 10))
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	listenCfg := cc.Copy()
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("users: postgres: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Store{
		pool:       pool,
		opts:       opts,
		cache:      usercache.New(opts.CacheSize),
		url:        RedactURL(rawURL),
		base:       time.Now(),
		lease:      3 * opts.Heartbeat,
		listenCfg:  listenCfg,
		migrateSem: make(chan struct{}, 1),
		stop:       stop,
		done:       make(chan struct{}),
		django:     opts.Django,
	}
	if s.django {
		close(s.done) // no listener: ByID always reads the database
		return s, nil
	}
	listenCfg.OnNotification = s.onNotification
	go s.listen(ctx)
	return s, nil
}

// Open is New followed by Migrate: it fails if the database cannot be
// reached within ctx (and QueryTimeout) or its schema is newer than this
// package knows (ErrSchemaTooNew).
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	s, err := New(rawURL, opts)
	if err != nil {
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Migrate creates or migrates the schema now (every other method does it on
// first use). It is safe to call from any number of instances at once.
func (s *Store) Migrate(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	return s.ready(ctx)
}

// ready migrates the schema once per Store.
func (s *Store) ready(ctx context.Context) error {
	if s.migrated.Load() {
		return nil
	}
	// One migration at a time per Store; waiting for it honours ctx (a
	// hung server must not queue callers behind one another's timeouts).
	select {
	case s.migrateSem <- struct{}{}:
	case <-ctx.Done():
		return s.dbErr(ctx, "migrating the schema", ctx.Err())
	}
	defer func() { <-s.migrateSem }()
	if s.migrated.Load() {
		return nil
	}
	if err := s.migrate(ctx); err != nil {
		return err
	}
	s.migrated.Store(true)
	return nil
}

// Ping checks that the database answers (and migrates the schema if that
// has not happened yet), for health checks.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.Migrate(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		return s.dbErr(ctx, "ping", err)
	}
	return nil
}

// Listening reports whether the invalidation listener is connected (and so
// the ByID cache in use).
func (s *Store) Listening() bool { return s.listening.Load() }

// Close stops the listener and closes the pool's connections. Calls made
// after Close fail.
func (s *Store) Close() {
	s.closeOnce.Do(func() {
		s.stop()
		<-s.done
		s.pool.Close()
	})
}

// String names the database (password redacted).
func (s *Store) String() string { return "postgres " + s.url }

func setDefault(m map[string]string, k, v string) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

func ctxErr(err error) error { return fmt.Errorf("users: %w", err) }

// dbErr maps a database error: unique violations to users.ErrIDTaken and
// users.ErrUsernameTaken, text PostgreSQL cannot store to
// users.ErrInvalidUser, and anything else to an error that names the
// operation and wraps ctx's error if ctx has ended (so errors.Is(err,
// context.DeadlineExceeded) tells a timeout).
func (s *Store) dbErr(ctx context.Context, op string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505" && pe.ConstraintName == pkeyConstraint:
			return users.ErrIDTaken
		case pe.Code == "23505" && pe.ConstraintName == usernameConstraint:
			return users.ErrUsernameTaken
		case pe.Code == "22021" || pe.Code == "22P05": // e.g. a NUL byte
			return fmt.Errorf("%w: %s", users.ErrInvalidUser, pe.Message)
		case pe.Code == "54000": // e.g. a name too long for the unique index
			return fmt.Errorf("%w: %s", users.ErrInvalidUser, pe.Message)
		case pe.Code == "57014": // statement_timeout
			return fmt.Errorf("users: postgres: %s: timed out after %s (statement_timeout): %w", op, s.opts.QueryTimeout, err)
		}
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("users: postgres: %s: %w (%v)", op, cerr, err)
	}
	return fmt.Errorf("users: postgres: %s: %w", op, err)
}

// inTx runs fn in a transaction and commits it if fn returns nil. fn's
// errors are returned as they are.
func (s *Store) inTx(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.dbErr(ctx, op, err)
	}
	defer func() {
		// After Commit this is a no-op. Not ctx: it may have ended; if the
		// rollback fails the connection is closed, which rolls back too.
		rctx, cancel := context.WithTimeout(context.Background(), s.opts.QueryTimeout)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return s.dbErr(ctx, op+": commit", err)
	}
	return nil
}

const userColumns = `id, username, email, password_hash, is_active, is_superuser, is_staff, date_joined, last_login, session_epoch, groups, email_verified`

func scanUser(row pgx.Row, u *users.User) error {
	var joined, last pgtype.Timestamptz
	if err := row.Scan(&u.ID, &u.Username, &u.Email, &u.PasswordHash, &u.IsActive, &u.IsSuperuser, &u.IsStaff,
		&joined, &last, &u.SessionEpoch, &u.Groups, &u.EmailVerified); err != nil {
		return err
	}
	u.DateJoined, u.LastLogin = fromTimestamptz(joined), fromTimestamptz(last)
	if len(u.Groups) == 0 {
		u.Groups = nil // '{}' reads as an empty slice
	}
	return nil
}

func fromTimestamptz(t pgtype.Timestamptz) time.Time {
	if !t.Valid || t.InfinityModifier != pgtype.Finite {
		return time.Time{}
	}
	return users.StoredTime(t.Time)
}

// timestamptz is t as a query argument: NULL for the zero time.
func timestamptz(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// now is the monotonic time since the store was made, for the lease.
func (s *Store) now() int64 { return int64(time.Since(s.base)) }

// cacheUsable reports whether the listener has vouched for the cache
// recently enough.
func (s *Store) cacheUsable() bool { return s.now() < s.leaseUntil.Load() }

// ByID implements users.Store: from the cache while it is usable (one
// allocation), else one indexed SELECT.
func (s *Store) ByID(ctx context.Context, id int64) (*users.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	if id <= 0 {
		return nil, users.ErrNotFound
	}
	cached := s.cacheUsable()
	var gen uint64
	if cached {
		var u *users.User
		if u, gen = s.cache.Get(id); u != nil {
			return u, nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	if s.django {
		return s.djangoByID(ctx, id)
	}
	u := new(users.User)
	err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM session_auth_users WHERE id = $1`, id), u)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	if err != nil {
		return nil, s.dbErr(ctx, "reading a user", err)
	}
	if cached {
		// Lands only if nothing was invalidated since Get (see usercache),
		// which covers a NOTIFY or a lost listener during the SELECT.
		s.cache.Put(u, gen)
	}
	return u, nil
}

// ByUsername implements users.Store.
func (s *Store) ByUsername(ctx context.Context, name string) (*users.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	key := users.UsernameKey(name)
	if key == "" {
		return nil, users.ErrNotFound
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	if s.django {
		return s.djangoByUsername(ctx, name, key)
	}
	u := new(users.User)
	err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM session_auth_users WHERE username_key = $1`, key), u)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	if err != nil {
		return nil, s.dbErr(ctx, "reading a user by name", err)
	}
	return u, nil
}

// prepare fills in a new user's defaults and checks it, returning its
// username key.
func prepare(rec *users.User, now time.Time) (string, error) {
	if rec.DateJoined.IsZero() {
		rec.DateJoined = now
	}
	rec.DateJoined, rec.LastLogin = users.StoredTime(rec.DateJoined), users.StoredTime(rec.LastLogin)
	rec.Groups = users.SortGroups(rec.Groups)
	if rec.ID < 0 {
		return "", fmt.Errorf("%w: id %d is not positive", users.ErrInvalidUser, rec.ID)
	}
	key := users.UsernameKey(rec.Username)
	if key == "" {
		return "", fmt.Errorf("%w: empty username", users.ErrInvalidUser)
	}
	return key, nil
}

const (
	insertWithID = `INSERT INTO session_auth_users (id, username, username_key, email, password_hash,
		is_active, is_superuser, is_staff, date_joined, last_login, session_epoch, groups, email_verified)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`
	insertNoID = `INSERT INTO session_auth_users (username, username_key, email, password_hash,
		is_active, is_superuser, is_staff, date_joined, last_login, session_epoch, groups, email_verified)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id`

	// lockForIDs keeps other writers (and so nextval in their inserts)
	// out until the transaction ends, so that moving the sequence past
	// explicit ids cannot race with ids being handed out; reads go on.
	// Sequences are not transactional: a move is kept even if the
	// transaction rolls back, which only leaves a gap.
	lockForIDs = `LOCK TABLE session_auth_users IN SHARE ROW EXCLUSIVE MODE`
	bumpSeq    = `SELECT setval('session_auth_users_id_seq', $1) FROM session_auth_users_id_seq
		WHERE (CASE WHEN is_called THEN last_value ELSE last_value - 1 END) < $1`
)

func insertArgs(u *users.User, key string) []any {
	return []any{u.Username, key, u.Email, u.PasswordHash, u.IsActive, u.IsSuperuser, u.IsStaff,
		timestamptz(u.DateJoined), timestamptz(u.LastLogin), u.SessionEpoch, groupsArg(u.Groups), u.EmailVerified}
}

// groupsArg is the groups as a text[] argument: '{}' when there are none
// (a nil slice would be NULL).
func groupsArg(groups []string) []string {
	if groups == nil {
		return []string{}
	}
	return groups
}

// Create implements users.Store.
func (s *Store) Create(ctx context.Context, u *users.User) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(err)
	}
	rec := *u
	key, err := prepare(&rec, time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return err
	}
	if s.django {
		if err := s.djangoCreate(ctx, &rec, key); err != nil {
			return err
		}
		*u = rec
		return nil
	}
	if rec.ID == 0 {
		// One statement: the INSERT and its NOTIFY commit together.
		err := s.pool.QueryRow(ctx, insertNoID, insertArgs(&rec, key)...).Scan(&rec.ID)
		if err != nil {
			return s.dbErr(ctx, "creating a user", err)
		}
	} else {
		defer s.cache.Invalidate(rec.ID)
		err := s.inTx(ctx, "creating a user", func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, lockForIDs); err != nil {
				return s.dbErr(ctx, "creating a user", err)
			}
			if _, err := tx.Exec(ctx, insertWithID, append([]any{rec.ID}, insertArgs(&rec, key)...)...); err != nil {
				return s.dbErr(ctx, "creating a user", err)
			}
			if _, err := tx.Exec(ctx, bumpSeq, rec.ID); err != nil {
				return s.dbErr(ctx, "creating a user: moving the id sequence", err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	*u = rec
	return nil
}

// Update implements users.Store: SELECT ... FOR UPDATE, fn, UPDATE, in one
// transaction, so concurrent updates of a user (from any instance) queue
// instead of overwriting each other.
func (s *Store) Update(ctx context.Context, id int64, fn func(u *users.User) error) (*users.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	if s.django {
		return s.djangoUpdate(ctx, id, fn)
	}
	defer s.cache.Invalidate(id)
	u := new(users.User)
	err := s.inTx(ctx, "updating a user", func(tx pgx.Tx) error {
		err := scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM session_auth_users WHERE id = $1 FOR UPDATE`, id), u)
		if errors.Is(err, pgx.ErrNoRows) {
			return users.ErrNotFound
		}
		if err != nil {
			return s.dbErr(ctx, "updating a user: reading it", err)
		}
		if err := fn(u); err != nil {
			return err
		}
		key, err := users.CheckUpdated(id, u)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE session_auth_users SET username = $2, username_key = $3, email = $4,
			password_hash = $5, is_active = $6, is_superuser = $7, is_staff = $8, date_joined = $9,
			last_login = $10, session_epoch = $11, groups = $12, email_verified = $13 WHERE id = $1`, append([]any{id}, insertArgs(u, key)...)...)
		if err != nil {
			return s.dbErr(ctx, "updating a user", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// Delete implements users.Store.
func (s *Store) Delete(ctx context.Context, id int64) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return err
	}
	if s.django {
		return s.djangoDelete(ctx, id)
	}
	defer s.cache.Invalidate(id)
	tag, err := s.pool.Exec(ctx, `DELETE FROM session_auth_users WHERE id = $1`, id)
	if err != nil {
		return s.dbErr(ctx, "deleting a user", err)
	}
	if tag.RowsAffected() == 0 {
		return users.ErrNotFound
	}
	return nil
}

// List implements users.Store.
func (s *Store) List(ctx context.Context) ([]users.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*s.opts.QueryTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	if s.django {
		return s.queryUsers(ctx, "listing users", scanDjangoUser, `SELECT `+djangoColumns+djangoFrom+` ORDER BY u.id`)
	}
	return s.queryUsers(ctx, "listing users", scanUser, `SELECT `+userColumns+` FROM session_auth_users ORDER BY id`)
}

// queryUsers runs a query of users, each read with scan; op names it in
// errors.
func (s *Store) queryUsers(ctx context.Context, op string, scan func(pgx.Row, *users.User) error, sql string, args ...any) ([]users.User, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, s.dbErr(ctx, op, err)
	}
	defer rows.Close()
	var out []users.User
	for rows.Next() {
		out = append(out, users.User{})
		if err := scan(rows, &out[len(out)-1]); err != nil {
			return nil, s.dbErr(ctx, op, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.dbErr(ctx, op, err)
	}
	return out, nil
}

// CreateMany implements users.Store. The table is locked against other
// inserts for the transaction, the sequence moved past the batch's largest
// id, and the inserts sent in one pipelined batch.
func (s *Store) CreateMany(ctx context.Context, us []*users.User, skipExisting bool) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, ctxErr(err)
	}
	if len(us) == 0 {
		return 0, nil
	}
	now := time.Now()
	recs := make([]users.User, len(us))
	keys := make([]string, len(us))
	var maxID int64
	for i, u := range us {
		recs[i] = *u
		key, err := prepare(&recs[i], now)
		if err != nil {
			return 0, manyErr(i, &recs[i], err)
		}
		keys[i] = key
		maxID = max(maxID, u.ID)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*s.opts.QueryTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return 0, err
	}
	if s.django {
		created, n, err := s.djangoCreateMany(ctx, recs, keys, skipExisting)
		if err != nil {
			return 0, err
		}
		for i, ok := range created {
			if ok {
				*us[i] = recs[i]
			}
		}
		return n, nil
	}
	defer s.cache.Invalidate()
	created := make([]bool, len(us))
	n := 0
	err := s.inTx(ctx, "creating users", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockForIDs); err != nil {
			return s.dbErr(ctx, "creating users", err)
		}
		if maxID > 0 {
			if _, err := tx.Exec(ctx, bumpSeq, maxID); err != nil {
				return s.dbErr(ctx, "creating users: moving the id sequence", err)
			}
		}
		if skipExisting {
			if err := s.markExisting(ctx, tx, recs, keys, created); err != nil {
				return err
			}
		} else {
			for i := range created {
				created[i] = true
			}
		}
		b := &pgx.Batch{}
		var order []int
		for i := range recs {
			if !created[i] {
				continue
			}
			if recs[i].ID == 0 {
				b.Queue(insertNoID, insertArgs(&recs[i], keys[i])...)
			} else {
				b.Queue(insertWithID, append([]any{recs[i].ID}, insertArgs(&recs[i], keys[i])...)...)
			}
			order = append(order, i)
		}
		if len(order) == 0 {
			return nil
		}
		br := tx.SendBatch(ctx, b)
		for _, i := range order {
			var err error
			if recs[i].ID == 0 {
				err = br.QueryRow().Scan(&recs[i].ID)
			} else {
				_, err = br.Exec()
			}
			if err != nil {
				br.Close()
				return manyErr(i, &recs[i], s.dbErr(ctx, "creating users", err))
			}
			n++
		}
		if err := br.Close(); err != nil {
			return s.dbErr(ctx, "creating users", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for i, ok := range created {
		if ok {
			*us[i] = recs[i]
		}
	}
	return n, nil
}

// markExisting sets created[i] for the users to insert with skipExisting:
// not those whose id or name is taken in the table or earlier in the batch.
func (s *Store) markExisting(ctx context.Context, tx pgx.Tx, recs []users.User, keys []string, created []bool) error {
	var ids []int64
	for _, r := range recs {
		if r.ID > 0 {
			ids = append(ids, r.ID)
		}
	}
	rows, err := tx.Query(ctx, `SELECT id, username_key FROM session_auth_users WHERE id = ANY($1) OR username_key = ANY($2)`, ids, keys)
	if err != nil {
		return s.dbErr(ctx, "creating users: looking for existing ones", err)
	}
	takenID, takenKey := map[int64]bool{}, map[string]bool{}
	for rows.Next() {
		var id int64
		var key string
		if err := rows.Scan(&id, &key); err != nil {
			rows.Close()
			return s.dbErr(ctx, "creating users: looking for existing ones", err)
		}
		takenID[id], takenKey[key] = true, true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s.dbErr(ctx, "creating users: looking for existing ones", err)
	}
	for i, r := range recs {
		if (r.ID > 0 && takenID[r.ID]) || takenKey[keys[i]] {
			continue
		}
		created[i] = true
		if r.ID > 0 {
			takenID[r.ID] = true
		}
		takenKey[keys[i]] = true
	}
	return nil
}

func manyErr(i int, u *users.User, err error) error {
	return fmt.Errorf("users: CreateMany: user #%d (id %d, username %q): %w", i, u.ID, u.Username, err)
}

// ByEmail implements users.EmailFinder, on the index on lower(email).
func (s *Store) ByEmail(ctx context.Context, email string) ([]users.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	if email == "" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	if s.django {
		return s.queryUsers(ctx, "finding users by e-mail", scanDjangoUser,
			`SELECT `+djangoColumns+djangoFrom+` WHERE lower(u.email) = lower($1) ORDER BY u.id`, email)
	}
	return s.queryUsers(ctx, "finding users by e-mail", scanUser,
		`SELECT `+userColumns+` FROM session_auth_users WHERE lower(email) = lower($1) ORDER BY id`, email)
}
