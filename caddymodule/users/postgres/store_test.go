package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/storetest"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
)

func TestMain(m *testing.M) { testpg.Main(m) }

var bg = context.Background()

// openOn opens a store on url, closed at cleanup, and waits until its
// listener is up (so the cache is in use, as in production).
func openOn(t testing.TB, url string, opts Options) *Store {
	t.Helper()
	s, err := Open(bg, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	waitFor(t, "the listener to be up", s.Listening)
	return s
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) users.Store {
		return openOn(t, testpg.New(t).URL, Options{})
	})
}

func TestConformanceWithoutCache(t *testing.T) {
	storetest.Run(t, func(t *testing.T) users.Store {
		return openOn(t, testpg.New(t).URL, Options{CacheSize: -1})
	})
}

func mustCreate(t testing.TB, s users.Store, u *users.User) *users.User {
	t.Helper()
	if err := s.Create(bg, u); err != nil {
		t.Fatalf("Create(%q): %v", u.Username, err)
	}
	return u
}

func mustByID(t testing.TB, s users.Store, id int64) *users.User {
	t.Helper()
	u, err := s.ByID(bg, id)
	if err != nil {
		t.Fatalf("ByID(%d): %v", id, err)
	}
	return u
}

func TestURLs(t *testing.T) {
	for s, want := range map[string]bool{
		"postgres://h/db": true, "postgresql://u:p@h:5432/db?sslmode=require": true, "POSTGRES://h/db": true,
		"./data/users.db": false, "/var/lib/users.db": false, "host=h dbname=d": false, "redis://h": false, "": false,
	} {
		if got := IsURL(s); got != want {
			t.Errorf("IsURL(%q) = %v", s, got)
		}
	}
	for in, want := range map[string]string{
		"postgres://alice:s3cret@h/db":              "postgres://alice:xxxxx@h/db",
		"postgres://h/db?password=s3cret&sslmode=x": "postgres://h/db?password=xxxxx&sslmode=x",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := New("./users.db", Options{}); err == nil || !strings.Contains(err.Error(), "not a postgres://") {
		t.Errorf("New(path) err = %v", err)
	}
	_, err := New("postgres://alice:s3cret@127.0.0.1:5432/db?sslmode=bogus", Options{})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("New with a bad sslmode: err = %v (must fail without showing the password)", err)
	}
}

func TestMigrationIdempotentAndVersioned(t *testing.T) {
	db := testpg.New(t)
	a := openOn(t, db.URL, Options{})
	mustCreate(t, a, &users.User{Username: "kept"})
	a.Close()
	b := openOn(t, db.URL, Options{}) // migrating again changes nothing
	if _, err := b.ByUsername(bg, "KEPT"); err != nil {
		t.Fatalf("user lost by a second Open: %v", err)
	}
	c := db.Conn(t)
	var versions string
	if err := c.QueryRow(bg, "SELECT string_agg(version::text, ',' ORDER BY version) FROM session_auth_schema").Scan(&versions); err != nil {
		t.Fatal(err)
	}
	want := make([]string, SchemaVersion)
	for i := range want {
		want[i] = fmt.Sprint(i + 1)
	}
	if versions != strings.Join(want, ",") {
		t.Errorf("schema versions %q, want each of 1..%d once", versions, SchemaVersion)
	}
	var tables []string
	rows, err := c.Query(bg, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	if fmt.Sprint(tables) != "[session_auth_schema session_auth_secrets session_auth_user_factors session_auth_users]" {
		t.Errorf("tables %v", tables)
	}
}

// Instances starting at once on an empty database: every Open succeeds and
// the migration runs once.
func TestMigrationConcurrentOpens(t *testing.T) {
	db := testpg.New(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s, err := Open(bg, db.URL, Options{})
			if err == nil {
				err = s.Create(bg, &users.User{Username: fmt.Sprint("u", i)})
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: %v", i, err)
		}
	}
	var rows int
	if err := db.Conn(t).QueryRow(bg, "SELECT count(*) FROM session_auth_schema").Scan(&rows); err != nil || rows != SchemaVersion {
		t.Errorf("session_auth_schema has %d rows (%v), want %d", rows, err, SchemaVersion)
	}
}

func TestSchemaTooNewRefused(t *testing.T) {
	db := testpg.New(t)
	openOn(t, db.URL, Options{}).Close()
	newer := SchemaVersion + 1
	if _, err := db.Conn(t).Exec(bg, "INSERT INTO session_auth_schema (version) VALUES ($1)", newer); err != nil {
		t.Fatal(err)
	}
	_, err := Open(bg, db.URL, Options{})
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema: err = %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{fmt.Sprintf("schema version %d", newer), fmt.Sprintf("versions up to %d", SchemaVersion), "upgrade"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// A store made with New refuses every call the same way.
	s, err := New(db.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.ByID(bg, 1); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("ByID on a newer schema: %v", err)
	}
}

// The tables can share a database with an application's, and the
// uniqueness of names is the database's own rule: a row written by plain
// SQL with a taken key is refused.
func TestUniqueKeyEnforcedByDatabase(t *testing.T) {
	db := testpg.New(t)
	s := openOn(t, db.URL, Options{})
	mustCreate(t, s, &users.User{Username: "Alice"})
	_, err := db.Conn(t).Exec(bg, `INSERT INTO session_auth_users (username, username_key, email, password_hash, is_active, is_superuser, is_staff)
		VALUES ('ALICE', $1, '', '', true, false, false)`, users.UsernameKey("ALICE"))
	if err == nil || !strings.Contains(err.Error(), usernameConstraint) {
		t.Fatalf("plain INSERT of a taken key: %v", err)
	}
}

// Text PostgreSQL cannot store is a clear ErrInvalidUser, not a 500-ish
// driver error.
func TestUnstorableText(t *testing.T) {
	s := openOn(t, testpg.New(t).URL, Options{})
	if err := s.Create(bg, &users.User{Username: "nul", Email: "a\x00b"}); !errors.Is(err, users.ErrInvalidUser) {
		t.Errorf("Create with a NUL byte: %v, want ErrInvalidUser", err)
	}
	// Past the btree's limit (about 2.7 kB a key; random, so that
	// compression cannot shrink it).
	long := make([]byte, 8000)
	for i := range long {
		long[i] = 'a' + byte(rand.IntN(26))
	}
	if err := s.Create(bg, &users.User{Username: string(long)}); !errors.Is(err, users.ErrInvalidUser) {
		t.Errorf("Create with an 8000-byte name: %v, want ErrInvalidUser", err)
	}
	if n, _ := s.List(bg); len(n) != 0 {
		t.Errorf("%d users stored", len(n))
	}
	// Upper-case schemes work like lower-case ones.
	u, _ := url.Parse(testpg.New(t).URL)
	u.Scheme = "PostgreSQL"
	up, err := Open(bg, u.String(), Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", u.Scheme, err)
	}
	up.Close()
}

// Two instances registering case variants of one name at the same moment:
// exactly one wins, by the database's unique index.
func TestConcurrentCreatesAcrossInstances(t *testing.T) {
	db := testpg.New(t)
	a, b := openOn(t, db.URL, Options{}), openOn(t, db.URL, Options{})
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		s := []*Store{a, b}[i%2]
		wg.Go(func() {
			errs[i] = s.Create(bg, &users.User{Username: []string{"carol", "CAROL", "Carol", "ｃａｒｏｌ"}[i%4]})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !errors.Is(err, users.ErrUsernameTaken) {
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d creates succeeded, want 1", ok)
	}
}

// A database at schema version 2 (before groups) is migrated with its users
// kept: they read with no groups, and groups can be given to them.
func TestMigrationAddsGroups(t *testing.T) {
	db := testpg.New(t)
	c := db.Conn(t)
	if _, err := c.Exec(bg, createSchemaTable); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := c.Exec(bg, migrations[i]); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(bg, "INSERT INTO session_auth_schema (version) VALUES ($1)", i+1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Exec(bg, `INSERT INTO session_auth_users (id, username, username_key, email, password_hash,
		is_active, is_superuser, is_staff, session_epoch) VALUES (5, 'Old', 'old', 'o@x', 'h', true, false, true, 3)`); err != nil {
		t.Fatal(err)
	}
	s := openOn(t, db.URL, Options{})
	u := mustByID(t, s, 5)
	if u.Username != "Old" || !u.IsStaff || u.SessionEpoch != 3 || u.Groups != nil {
		t.Fatalf("migrated user = %+v", u)
	}
	got, err := s.Update(bg, 5, func(u *users.User) error { u.Groups = []string{"b", "a"}; return nil })
	if err != nil || fmt.Sprint(got.Groups) != "[a b]" {
		t.Fatalf("Update groups: %+v %v", got, err)
	}
	var stored []string
	if err := c.QueryRow(bg, "SELECT groups FROM session_auth_users WHERE id = 5").Scan(&stored); err != nil || fmt.Sprint(stored) != "[a b]" {
		t.Errorf("groups column = %q %v", stored, err)
	}
}
