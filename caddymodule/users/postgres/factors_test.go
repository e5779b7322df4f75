package postgres

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
)

func appendByte(t testing.TB, s *Store, id int64, c byte) {
	t.Helper()
	if _, err := s.UpdateFactors(bg, id, func(cur []byte) ([]byte, error) { return append(cur, c), nil }); err != nil {
		t.Error(err)
	}
}

// Two instances appending to one user's value at once lose nothing (the
// row lock is the database's, not the process's), and a factors write
// sends no NOTIFY: the other instance's cached user stays cached.
func TestFactorsAcrossInstances(t *testing.T) {
	db := testpg.New(t)
	a, b := openOn(t, db.URL, Options{}), openOn(t, db.URL, Options{})
	u := mustCreate(t, a, &users.User{Username: "alice", IsActive: true})
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		s := []*Store{a, b}[i%2]
		wg.Go(func() { appendByte(t, s, u.ID, byte(i)) })
	}
	wg.Wait()
	for _, s := range []*Store{a, b} {
		if v, err := s.Factors(bg, u.ID); err != nil || len(v) != n {
			t.Fatalf("after %d appends through two instances: %d bytes (%v)", n, len(v), err)
		}
	}

	cache(t, a, u.ID)
	appendByte(t, b, u.ID, 'x')
	// A user write after it: once a sees that, it has had every NOTIFY
	// sent before.
	other := mustCreate(t, b, &users.User{Username: "bob"})
	cache(t, a, other.ID)
	seen(t, a, other.ID, bump(t, b, other.ID), 5*time.Second)
	if !a.cache.Has(u.ID) {
		t.Error("a factors write invalidated the user in another instance's cache")
	}
}

// A database at schema version 4 gets the factors table with its users
// kept; they start without a value.
func TestMigrationAddsFactors(t *testing.T) {
	db := testpg.New(t)
	c := db.Conn(t)
	if _, err := c.Exec(bg, createSchemaTable); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := c.Exec(bg, migrations[i]); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(bg, "INSERT INTO session_auth_schema (version) VALUES ($1)", i+1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Exec(bg, `INSERT INTO session_auth_users (id, username, username_key, email, password_hash,
		is_active, is_superuser, is_staff, session_epoch) VALUES (5, 'Old', 'old', 'o@x', 'h', true, false, false, 3)`); err != nil {
		t.Fatal(err)
	}
	s := openOn(t, db.URL, Options{})
	if v, err := s.Factors(bg, 5); err != nil || v != nil {
		t.Fatalf("factors of a user from before the migration: %q %v", v, err)
	}
	appendByte(t, s, 5, 'x')
	var stored []byte
	if err := c.QueryRow(bg, "SELECT data FROM session_auth_user_factors WHERE user_id = 5").Scan(&stored); err != nil || string(stored) != "x" {
		t.Errorf("stored %q (%v)", stored, err)
	}
}

// With Django's users: a side table migrated onto an existing side schema
// (version 1), values for users Django made (no side row), and removed by
// Django's own delete (plain SQL on auth_user), which the sidecar does not
// see.
func TestDjangoFactors(t *testing.T) {
	pg := djangoDB(t)
	c := pg.Conn(t)
	for _, sql := range []string{
		`CREATE TABLE session_auth_django_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
		djangoMigrations[0],
		`INSERT INTO session_auth_django_schema (version) VALUES (1)`,
		`INSERT INTO auth_user (username, password, is_superuser, first_name, last_name, email, is_staff, is_active, date_joined)
			VALUES ('dj', '!', false, '', '', '', false, true, now())`,
	} {
		if _, err := c.Exec(bg, sql); err != nil {
			t.Fatal(err)
		}
	}
	s := openDjango(t, pg)
	var versions int
	if err := c.QueryRow(bg, `SELECT count(*) FROM session_auth_django_schema`).Scan(&versions); err != nil || versions != len(djangoMigrations) {
		t.Fatalf("side schema versions: %d (%v), want %d", versions, err, len(djangoMigrations))
	}
	dj, err := s.ByUsername(bg, "dj")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Factors(bg, dj.ID); err != nil || v != nil {
		t.Fatalf("factors of a user Django made: %q %v", v, err)
	}
	appendByte(t, s, dj.ID, 'd')
	if v, _ := s.Factors(bg, dj.ID); string(v) != "d" {
		t.Fatalf("factors of a user Django made, after a write: %q", v)
	}
	// The value does not make a side row: the user reads as before.
	var side int
	if err := c.QueryRow(bg, `SELECT count(*) FROM session_auth_django_users`).Scan(&side); err != nil || side != 0 {
		t.Errorf("side rows: %d (%v)", side, err)
	}
	if _, err := c.Exec(bg, `DELETE FROM auth_user WHERE id = $1`, dj.ID); err != nil {
		t.Fatalf("Django's delete of a user with factors: %v", err)
	}
	if _, err := s.Factors(bg, dj.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("Factors after Django's delete: %v", err)
	}
	var left int
	if err := c.QueryRow(bg, `SELECT count(*) FROM session_auth_django_factors`).Scan(&left); err != nil || left != 0 {
		t.Errorf("factor rows after Django's delete: %d (%v)", left, err)
	}
}
