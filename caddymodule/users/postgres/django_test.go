package postgres

import (
	_ "embed"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/storetest"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
)

//go:embed testdata/django_auth.sql
var djangoAuthSQL string

// djangoDB is a fresh schema holding Django's auth tables, as Django's
// migrate makes them (testdata/gen_django_auth.sh).
func djangoDB(t *testing.T) *testpg.DB {
	t.Helper()
	pg := testpg.New(t)
	if _, err := pg.Conn(t).Exec(bg, djangoAuthSQL); err != nil {
		t.Fatalf("loading Django's tables: %v", err)
	}
	return pg
}

func openDjango(t *testing.T, pg *testpg.DB) *Store {
	t.Helper()
	s, err := Open(bg, pg.URL, Options{Django: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// setDjangoGroups puts a user in groups the way Django does: auth_group
// rows by name, auth_user_groups rows linking them.
func setDjangoGroups(t *testing.T, s users.Store, id int64, groups []string) {
	t.Helper()
	pg := s.(*Store).pool
	for _, g := range groups {
		if _, err := pg.Exec(bg, `INSERT INTO auth_group (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, g); err != nil {
			t.Fatal(err)
		}
		if _, err := pg.Exec(bg, `INSERT INTO auth_user_groups (user_id, group_id) SELECT $1, id FROM auth_group WHERE name = $2
			ON CONFLICT DO NOTHING`, id, g); err != nil {
			t.Fatal(err)
		}
	}
}

// The Django flavour passes the conformance suite within Django's limits
// (128-character password column, groups owned by Django).
func TestDjangoConformance(t *testing.T) {
	storetest.RunWith(t, func(t *testing.T) users.Store {
		return openDjango(t, djangoDB(t))
	}, storetest.Options{MaxPasswordHash: 128, SetGroups: setDjangoGroups})
}

func TestDjangoMissingTables(t *testing.T) {
	pg := testpg.New(t)
	_, err := Open(bg, pg.URL, Options{Django: true})
	if !errors.Is(err, ErrNotDjango) || !strings.Contains(err.Error(), "there is no auth_user table") || !strings.Contains(err.Error(), "manage.py migrate") {
		t.Fatalf("Open without Django's tables: %v", err)
	}
	// A table that lacks a column the store needs.
	if _, err := pg.Conn(t).Exec(bg, `CREATE TABLE auth_user (id serial PRIMARY KEY, username varchar(150) NOT NULL, password varchar(128) NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	_, err = Open(bg, pg.URL, Options{Django: true})
	if !errors.Is(err, ErrNotDjango) || !strings.Contains(err.Error(), "lacks the column(s) last_login, is_superuser, email, is_staff, is_active, date_joined") {
		t.Fatalf("Open with a partial auth_user: %v", err)
	}
	// The password is not in the message.
	if strings.Contains(err.Error(), "password=") {
		t.Errorf("message shows a password: %v", err)
	}
}

// A password set in Django moves the epoch the store reports (so every
// session of the user ends), while writes through the store keep the
// epoch as the caller set it, rehashes included.
func TestDjangoPasswordChangeEndsSessions(t *testing.T) {
	pg := djangoDB(t)
	s := openDjango(t, pg)
	u := &users.User{Username: "dora", PasswordHash: "pbkdf2_sha256$1$a$b", IsActive: true, SessionEpoch: 7}
	if err := s.Create(bg, u); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ByID(bg, u.ID); got.SessionEpoch != 7 {
		t.Fatalf("epoch after Create: %d, want 7", got.SessionEpoch)
	}
	// A rehash through the store (a login upgrading the hash) keeps it.
	got, err := s.Update(bg, u.ID, func(u *users.User) error { u.PasswordHash = "pbkdf2_sha256$2$c$d"; return nil })
	if err != nil || got.SessionEpoch != 7 {
		t.Fatalf("after a rehash: %d (%v), want 7", got.SessionEpoch, err)
	}
	if got, _ := s.ByID(bg, u.ID); got.SessionEpoch != 7 {
		t.Fatalf("read after a rehash: %d, want 7", got.SessionEpoch)
	}
	// Django's set_password writes the column: the epoch moves.
	if _, err := pg.Conn(t).Exec(bg, `UPDATE auth_user SET password = 'pbkdf2_sha256$3$e$f' WHERE id = $1`, u.ID); err != nil {
		t.Fatal(err)
	}
	after, _ := s.ByID(bg, u.ID)
	if after.SessionEpoch == 7 {
		t.Fatal("a password set in Django left the session epoch as it was")
	}
	// Deactivation and deletion in Django are seen at once (no cache).
	if _, err := pg.Conn(t).Exec(bg, `UPDATE auth_user SET is_active = false WHERE id = $1`, u.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ByID(bg, u.ID); got.IsActive {
		t.Error("deactivation in Django not seen")
	}
	if _, err := pg.Conn(t).Exec(bg, `DELETE FROM auth_user WHERE id = $1`, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ByID(bg, u.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("deleted in Django: %v", err)
	}
	var side int
	if err := pg.Conn(t).QueryRow(bg, `SELECT count(*) FROM session_auth_django_users`).Scan(&side); err != nil || side != 0 {
		t.Errorf("side rows after Django's delete: %d (%v), want 0", side, err)
	}
}

// Django may already hold names that differ only by case: login takes the
// exact spelling and refuses an ambiguous one; the sidecar creates no
// further variant.
func TestDjangoUsernameVariants(t *testing.T) {
	pg := djangoDB(t)
	s := openDjango(t, pg)
	for _, name := range []string{"Bob", "bob", "Carl"} {
		if _, err := pg.Conn(t).Exec(bg, `INSERT INTO auth_user (username, password, is_superuser, first_name, last_name, email, is_staff, is_active, date_joined)
			VALUES ($1, '!', false, '', '', '', false, true, now())`, name); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]string{"Bob": "Bob", "bob": "bob", "BOB": "", "ｂｏｂ": "", "carl": "Carl", "ＣＡＲＬ": "Carl"} {
		u, err := s.ByUsername(bg, name)
		switch {
		case want == "" && !errors.Is(err, users.ErrNotFound):
			t.Errorf("ByUsername(%q) = %v, %v; want not found (ambiguous)", name, u, err)
		case want != "" && (err != nil || u.Username != want):
			t.Errorf("ByUsername(%q) = %v, %v; want %s", name, u, err, want)
		}
	}
	for _, name := range []string{"BOB", "carl", "ＣＡＲＬ"} {
		if err := s.Create(bg, &users.User{Username: name}); !errors.Is(err, users.ErrUsernameTaken) {
			t.Errorf("Create(%q): %v, want ErrUsernameTaken", name, err)
		}
	}
	// Renaming onto a variant is refused too; onto one's own variant not.
	carl, _ := s.ByUsername(bg, "Carl")
	if _, err := s.Update(bg, carl.ID, func(u *users.User) error { u.Username = "BOB"; return nil }); !errors.Is(err, users.ErrUsernameTaken) {
		t.Errorf("rename onto a variant: %v", err)
	}
	if u, err := s.Update(bg, carl.ID, func(u *users.User) error { u.Username = "carl"; return nil }); err != nil || u.Username != "carl" {
		t.Errorf("rename to one's own variant: %v %v", u, err)
	}
}

// Deleting through the store removes the rows Django's own delete would
// (group links, permissions) and the side row.
func TestDjangoDelete(t *testing.T) {
	pg := djangoDB(t)
	s := openDjango(t, pg)
	u := &users.User{Username: "eve", IsActive: true}
	if err := s.Create(bg, u); err != nil {
		t.Fatal(err)
	}
	setDjangoGroups(t, s, u.ID, []string{"staff"})
	if err := s.Delete(bg, u.ID); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pg.Conn(t).QueryRow(bg, `SELECT (SELECT count(*) FROM auth_user) + (SELECT count(*) FROM auth_user_groups) + (SELECT count(*) FROM session_auth_django_users)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("rows left: %d (%v)", n, err)
	}
	if err := s.Delete(bg, u.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

// BenchmarkDjangoByID is the per-request user read with django_users: no
// cache (Django writes without telling), one SELECT joining the side
// table and the groups.
func BenchmarkDjangoByID(b *testing.B) {
	const n = 1000
	pg := testpg.New(b)
	if _, err := pg.Conn(b).Exec(bg, djangoAuthSQL); err != nil {
		b.Fatal(err)
	}
	s, err := Open(bg, pg.URL, Options{Django: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	us := make([]*users.User, n)
	for i := range us {
		us[i] = &users.User{Username: "user" + strconv.Itoa(i), PasswordHash: "pbkdf2_sha256$1500000$abcdefghijklmnopqrstuv$0123456789abcdefghijklmnopqrstuvwxyzABCDEFG=", IsActive: true}
	}
	if _, err := s.CreateMany(bg, us, false); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.ByID(bg, int64(i%n)+1); err != nil {
			b.Fatal(err)
		}
	}
}
