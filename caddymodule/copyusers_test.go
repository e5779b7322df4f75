package caddymodule_test

import (
	"bytes"
	"context"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/idtoken"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/mfa"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
	userbolt "github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/bolt"
	userpg "github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/postgres"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// openStore opens a users database (bbolt file or PostgreSQL URL) as the
// CLI does, for reading what a command wrote; closed at cleanup.
func openStore(t *testing.T, spec string) users.Store {
	t.Helper()
	st, closeStore := openStoreToClose(t, spec)
	t.Cleanup(closeStore)
	return st
}

// openStoreToClose is openStore, closed by the caller with the function
// it returns (a bbolt file is locked while open: close it before a
// command or Caddy opens it).
func openStoreToClose(t *testing.T, spec string) (users.Store, func()) {
	t.Helper()
	if userpg.IsURL(spec) {
		st, err := userpg.Open(context.Background(), spec, userpg.Options{CacheSize: -1})
		if err != nil {
			t.Fatal(err)
		}
		return st, st.Close
	}
	db, err := userbolt.OpenDB(spec, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	st, err := userbolt.NewStore(db)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	return st, func() { db.Close() }
}

// dump reads every user and the identity token's key set of a database,
// closing it again (a bbolt file is locked while open).
func dump(t *testing.T, spec string) ([]users.User, []byte) {
	t.Helper()
	var list []users.User
	var secret []byte
	t.Run("read", func(t *testing.T) { // a subtest, so its cleanup closes the database
		st := openStore(t, spec)
		var err error
		if list, err = st.List(context.Background()); err != nil {
			t.Fatal(err)
		}
		secret, _ = st.(users.Secrets).Secret(context.Background(), idtoken.SecretName)
	})
	return list, secret
}

// dumpFactors reads every second-factor value and the second factor's
// key of a database, closing it again.
func dumpFactors(t *testing.T, spec string) (map[int64][]byte, []byte) {
	t.Helper()
	var all map[int64][]byte
	var key []byte
	t.Run("read factors", func(t *testing.T) {
		st := openStore(t, spec)
		var err error
		if all, err = st.(users.Factors).AllFactors(context.Background()); err != nil {
			t.Fatal(err)
		}
		key, _ = st.(users.Secrets).Secret(context.Background(), mfa.KeySecret)
	})
	return all, key
}

// setFactors stores second-factor values (by username) and the second
// factor's key in a database, closing it again.
func setFactors(t *testing.T, spec string, values map[string][]byte, key []byte) {
	t.Helper()
	t.Run("write factors", func(t *testing.T) {
		st := openStore(t, spec)
		ctx := context.Background()
		for name, v := range values {
			u, err := st.ByUsername(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.(users.Factors).UpdateFactors(ctx, u.ID, func([]byte) ([]byte, error) { return v, nil }); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := st.(users.Secrets).UpdateSecret(ctx, mfa.KeySecret, func([]byte) ([]byte, error) { return key, nil }); err != nil {
			t.Fatal(err)
		}
	})
}

func sameFactors(t *testing.T, what string, got, want map[int64][]byte) {
	t.Helper()
	if len(want) == 0 || !maps.EqualFunc(got, want, bytes.Equal) {
		t.Errorf("%s: second factors %v, want %v", what, got, want)
	}
}

func sameUsers(t *testing.T, what string, got, want []users.User) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d users, want %d", what, len(got), len(want))
	}
	for i := range want {
		if !users.Equal(&got[i], &want[i]) {
			t.Errorf("%s: user %d differs:\n got %+v\nwant %+v", what, i, got[i], want[i])
		}
	}
}

// copy-users moves a bbolt install to PostgreSQL and back: every field of
// every user (ids, hashes, flags, dates, epochs, groups) and the identity
// token's keys, atomically, into an empty database only.
func TestCLICopyUsers(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "users.db")
	pg := testpg.New(t)
	db := []string{"--db", src}
	l := &cliLog{t: t}

	// A source with what an install accumulates: Django imports (old hash
	// kinds, last logins, inactive users, a gap in the ids), groups, a
	// deleted user, changed passwords and epochs, keys.
	l.ok("", append([]string{"import-django", fixture}, db...)...)
	l.ok("Fr3sh-User-Pass\n", append([]string{"create-user", "--username", "fresh", "--email", "f@example.com", "--password-stdin", "--staff"}, db...)...)
	l.ok("Gone-User-Pass-1\n", append([]string{"create-user", "--username", "gone", "--email", "g@example.com", "--password-stdin"}, db...)...)
	l.ok("", append([]string{"delete-user", "--username", "gone"}, db...)...)
	l.ok("", append([]string{"add-to-group", "--username", "fresh", "--group", "editors"}, db...)...)
	l.ok("N3w-Alice-Secret\n", append([]string{"set-password", "--username", "alice", "--password-stdin"}, db...)...)
	l.ok("", append([]string{"deactivate", "--username", "bob"}, db...)...)
	l.ok("", append([]string{"rotate-key"}, db...)...)
	// Second factors (opaque to the store) of two users, one of them
	// binary, and the key that encrypts TOTP secrets.
	setFactors(t, src, map[string][]byte{"fresh": []byte(`{"totp":{"secret":"c2VhbGVk"}}`), "alice": {0, 1, 2, 0xff}},
		[]byte("0123456789abcdef0123456789abcdef"))
	want, wantKeys := dump(t, src)
	if len(want) != 7 || len(wantKeys) == 0 {
		t.Fatalf("source: %d users, key set %d bytes", len(want), len(wantKeys))
	}
	wantFactors, wantMFAKey := dumpFactors(t, src)
	if len(wantFactors) != 2 || len(wantMFAKey) != 32 {
		t.Fatalf("source: %d second factors, key %d bytes", len(wantFactors), len(wantMFAKey))
	}

	// Refusals, before anything is written.
	l.fails([]string{"--from SRC and --to DST"}, "", "copy-users", "--from", src)
	l.fails([]string{"same database"}, "", "copy-users", "--from", src, "--to", filepath.Join(dir, ".", "users.db"))
	l.fails([]string{"--from", "does not exist"}, "", "copy-users", "--from", filepath.Join(dir, "missing.db"), "--to", pg.URL)
	l.fails([]string{"--db does not apply"}, "", "copy-users", "--from", src, "--to", pg.URL, "--db", src)

	// bbolt -> PostgreSQL.
	r := l.ok("", "copy-users", "--from", src, "--to", pg.URL)
	if !strings.HasPrefix(r.stdout, "copied 7 users from "+src+" to postgres://") || !strings.Contains(r.stdout, "identity token") ||
		!strings.Contains(r.stdout, "the second factors of 2 user(s)") {
		t.Errorf("copy-users: %q", r.stdout)
	}
	got, gotKeys := dump(t, pg.URL)
	sameUsers(t, "bbolt -> PostgreSQL", got, want)
	if !bytes.Equal(gotKeys, wantKeys) {
		t.Error("the identity token's keys were not copied")
	}
	gotFactors, gotMFAKey := dumpFactors(t, pg.URL)
	sameFactors(t, "bbolt -> PostgreSQL", gotFactors, wantFactors)
	if !bytes.Equal(gotMFAKey, wantMFAKey) {
		t.Error("the second factor's key was not copied")
	}
	// Logging in with the old passwords works on the copy.
	if !verifies(t, "N3w-Alice-Secret", readUser(t, pg.URL, "alice").PasswordHash) ||
		!verifies(t, djangoPasswords["carol"], readUser(t, pg.URL, "carol").PasswordHash) {
		t.Error("passwords do not verify after the copy")
	}

	// A non-empty destination is refused, and left as it was.
	l.fails([]string{"already has 7 user(s)", "empty database"}, "", "copy-users", "--from", src, "--to", pg.URL)
	again, _ := dump(t, pg.URL)
	sameUsers(t, "after a refused second copy", again, want)

	// New users on the copy get ids after the largest copied one (the
	// deleted user's id included: ids are never handed out twice).
	maxID := want[len(want)-1].ID
	r = l.ok("Next-User-Pass-9\n", "create-user", "--username", "next", "--email", "n@example.com", "--password-stdin", "--db", pg.URL)
	if u := readUser(t, pg.URL, "next"); u.ID <= maxID {
		t.Errorf("first user created after the copy got id %d, want > %d (%s)", u.ID, maxID, r.stdout)
	}

	// PostgreSQL -> a new bbolt file: the way back.
	back := filepath.Join(dir, "back", "users.db")
	l.ok("", "copy-users", "--from", pg.URL, "--to", back)
	fromPG, _ := dump(t, pg.URL)
	gotBack, backKeys := dump(t, back)
	sameUsers(t, "PostgreSQL -> bbolt", gotBack, fromPG)
	if !bytes.Equal(backKeys, wantKeys) {
		t.Error("the identity token's keys were not copied back")
	}
	backFactors, backMFAKey := dumpFactors(t, back)
	sameFactors(t, "PostgreSQL -> bbolt", backFactors, wantFactors)
	if !bytes.Equal(backMFAKey, wantMFAKey) {
		t.Error("the second factor's key was not copied back")
	}

	// A source bbolt file that a running Caddy holds is refused with what
	// to do.
	held, err := userbolt.OpenDB(src, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	l.fails([]string{"--from", "in use by another process", "Stop the Caddy"}, "", "copy-users", "--from", src, "--to", testpg.New(t).URL)
	held.Close()

	l.assertNoSecrets("Fr3sh-User-Pass", "N3w-Alice-Secret", "Next-User-Pass-9", "Gone-User-Pass-1")
}

// The copy is atomic: a user the destination cannot store (a NUL byte,
// which bbolt keeps and PostgreSQL's text refuses) fails the whole copy,
// and the destination has no user.
func TestCLICopyUsersAtomic(t *testing.T) {
	src := filepath.Join(t.TempDir(), "users.db")
	pg := testpg.New(t)
	func() {
		st, closeStore := openStoreToClose(t, src)
		defer closeStore()
		for _, u := range []*users.User{
			{Username: "first", Email: "first@example.com", IsActive: true},
			{Username: "second", Email: "second@example.com", IsActive: true},
			{Username: "broken", Email: "bro\x00ken@example.com", IsActive: true},
		} {
			if err := st.Create(context.Background(), u); err != nil {
				t.Fatal(err)
			}
		}
	}()
	l := &cliLog{t: t}
	l.fails([]string{"no user was written"}, "", "copy-users", "--from", src, "--to", pg.URL)
	if got, _ := dump(t, pg.URL); len(got) != 0 {
		t.Errorf("a failed copy left %d users in the destination", len(got))
	}
}

// The users and their second factors are written in separate transactions:
// when a second factor cannot be written (here a trigger in the
// destination refuses it), the copied users are removed again and the
// destination is left without users, ready for another run.
func TestCLICopyUsersFactorsFailure(t *testing.T) {
	src := filepath.Join(t.TempDir(), "users.db")
	pg := testpg.New(t)
	func() {
		st, closeStore := openStoreToClose(t, src)
		defer closeStore()
		for _, name := range []string{"first", "second"} {
			u := &users.User{Username: name, IsActive: true}
			if err := st.Create(context.Background(), u); err != nil {
				t.Fatal(err)
			}
			if _, err := st.(users.Factors).UpdateFactors(context.Background(), u.ID, func([]byte) ([]byte, error) { return []byte(name), nil }); err != nil {
				t.Fatal(err)
			}
		}
	}()
	openStore(t, pg.URL) // the tables, for the trigger
	refuse := `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.data = 'second' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER refuse BEFORE INSERT ON session_auth_user_factors FOR EACH ROW EXECUTE FUNCTION refuse();`
	if _, err := pg.Conn(t).Exec(context.Background(), refuse); err != nil {
		t.Fatal(err)
	}
	l := &cliLog{t: t}
	l.fails([]string{"copying second factors", "user id 2", "refused by the test", "removed again", "no user was written"}, "", "copy-users", "--from", src, "--to", pg.URL)
	if got, _ := dump(t, pg.URL); len(got) != 0 {
		t.Errorf("a failed copy left %d users in the destination", len(got))
	}
	if got, _ := dumpFactors(t, pg.URL); len(got) != 0 {
		t.Errorf("a failed copy left second factors %v in the destination", got)
	}
	// Once the destination can take them, the copy goes through.
	if _, err := pg.Conn(t).Exec(context.Background(), `DROP TRIGGER refuse ON session_auth_user_factors`); err != nil {
		t.Fatal(err)
	}
	if r := l.ok("", "copy-users", "--from", src, "--to", pg.URL); !strings.HasPrefix(r.stdout, "copied 2 users") {
		t.Errorf("copy-users after the failure: %q", r.stdout)
	}
	got, _ := dumpFactors(t, pg.URL)
	sameFactors(t, "after a second run", got, map[int64][]byte{1: []byte("first"), 2: []byte("second")})
}

// Moving a running install from bbolt to PostgreSQL, as README "Scaling
// out" describes it for a sidecar that already keeps sessions in Redis: a
// reload switches users_db to an empty PostgreSQL database (releasing the
// file), copy-users fills it, and the users' sessions stay valid (ids and
// epochs are kept), their passwords too. (A request between the reload and
// the copy would find no users and end its session: the README has the
// sidecar stopped for the copy; here no request comes in between.)
func TestMoveToPostgresKeepsSessions(t *testing.T) {
	rd := testredis.Start(t)
	pg := testpg.New(t)
	s := startCustomSite(t, siteConfig{redisURL: rd.URL(), extra: throttlesOff})
	boltPath := s.dbPath
	sess := s.newUser(t, "mover")
	s.newUser(t, "other")

	s.dbPath = pg.URL
	s.reloadWith(rd.URL(), "")
	// The file is released once the old config's requests are done.
	var r *cliRun
	l := &cliLog{t: t}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if r = l.run("", "copy-users", "--from", boltPath, "--to", pg.URL); r.err == nil || time.Now().After(deadline) {
			break
		}
	}
	if r.err != nil || !strings.HasPrefix(r.stdout, "copied 2 users") {
		t.Fatalf("copy-users after the reload: %v %s", r.err, r.stdout)
	}
	resp := s.do(t, req{method: "GET", path: "/app/page", session: sess})
	if resp.StatusCode != 200 || resp.echo(t).Headers["X-Auth-Username"][0] != "mover" {
		t.Fatalf("the session from before the move: %d %s", resp.StatusCode, resp.body)
	}
	s.login(t, "other", strongPassword)
	if code, h := s.health(t); code != 200 || h["users_backend"] != "postgres" {
		t.Errorf("health after the move: %d %v", code, h)
	}
}
