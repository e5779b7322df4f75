package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
)

// startAdminSites runs a real Caddy with its admin endpoint on a free port
// and two session_auth sites with their own users_db, from a Caddyfile
// written to a temp file (which the CLI reads with --config). It returns
// the first site, the second, and the Caddyfile's path.
func startAdminSites(t *testing.T) (*site, *site, string) {
	t.Helper()
	dir := t.TempDir()
	upstream := echoUpstream(t)
	client := &http.Client{
		// Generous: Django's bcrypt (cost 12) and argon2 (100 MiB) hashes
		// are slow under -race on a small machine. Not a timing assert.
		Timeout:       2 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	newSite := func(db string) *site {
		s := &site{t: t, dbPath: filepath.Join(dir, db), upstream: upstream, port: freePort(t), client: client}
		s.base = fmt.Sprintf("http://127.0.0.1:%d", s.port)
		return s
	}
	a, b := newSite("users-a.db"), newSite("users-b.db")
	adminPort := freePort(t)
	cfg := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	storage file_system %s
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
		hash_concurrency 4
	}
	reverse_proxy %s
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
	}
	reverse_proxy %s
}
`, adminPort, filepath.Join(os.Getenv("XDG_DATA_HOME"), "caddy"),
		a.port, a.dbPath, strings.TrimPrefix(upstream.URL, "http://"),
		b.port, b.dbPath, strings.TrimPrefix(upstream.URL, "http://"))
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	a.load(cfg)
	t.Cleanup(func() {
		// Close the admin endpoint too (caddy.Stop leaves it running).
		if err := caddy.Load([]byte(`{"admin":{"disabled":true}}`), true); err != nil {
			t.Errorf("stopping caddy's admin endpoint: %v", err)
		}
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})
	return a, b, path
}

// loginStatus posts a login and returns the status code.
func (s *site) loginStatus(t *testing.T, username, password string) int {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": username, "password": password})
	return s.do(t, req{method: "POST", path: "/api/login/", body: string(b)}).StatusCode
}

// whoami is the status of GET /api/user/ with the session.
func (s *site) whoami(t *testing.T, sess *session) int {
	t.Helper()
	r := s.do(t, req{method: "GET", path: "/api/user/", session: sess})
	if r.StatusCode == 403 && string(r.body) != `{"detail":"Authentication credentials were not provided."}` {
		t.Errorf("403 body = %s", r.body)
	}
	return r.StatusCode
}

// TestCLIThroughAdminAPI manages the users of a running Caddy with
// --config: changes reach the live handler at once.
func TestCLIThroughAdminAPI(t *testing.T) {
	a, b, caddyfile := startAdminSites(t)
	t.Cleanup(caddymodule.ForgetHashCosts) // bcrypt's cost 12 must not pad later tests' logins
	l := &cliLog{t: t}
	viaA := []string{"--config", caddyfile, "--users-db", a.dbPath}
	with := func(args ...string) []string { return append(args, viaA...) }

	// Two users databases are open: the CLI must choose.
	l.fails([]string{"2 users databases open", "--users-db", a.dbPath, b.dbPath}, "", "list-users", "--config", caddyfile)
	l.fails([]string{"matches 0 of the open users databases"}, "", "list-users", "--config", caddyfile, "--users-db", "nope.db")
	// A relative path is matched as a suffix (the CLI may run elsewhere).
	if list := l.listJSON("--config", caddyfile, "--users-db", "users-b.db"); len(list) != 0 {
		t.Errorf("site B's users: %v", list)
	}

	// Import the Django users into the running site A, then log in with the
	// old passwords: each hash is upgraded to argon2id on that login.
	r := l.ok("", with("import-django", fixture)...)
	if r.stdout != "imported 6, skipped 0\n" || !strings.Contains(r.stderr, `"eve": unusable password`) {
		t.Errorf("import: stdout %q stderr %q", r.stdout, r.stderr)
	}
	store := caddymodule.UsersOf(a.dbPath)
	if store == nil {
		t.Fatal("site A's users store is not open")
	}
	for name, prefix := range map[string]string{"alice": "pbkdf2_sha256$", "bob": "argon2$argon2id$", "carol": "bcrypt_sha256$", "Zoë.Ōsaka_東京": "argon2$argon2id$"} {
		u, err := store.ByUsername(context.Background(), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.HasPrefix(u.PasswordHash, prefix) {
			t.Fatalf("%s imported with hash %.16s…, want Django's %s", name, u.PasswordHash, prefix)
		}
		sess := a.login(t, name, djangoPasswords[name])
		if a.whoami(t, sess) != 200 {
			t.Errorf("%s: imported user's session refused", name)
		}
		u, err = store.ByUsername(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(u.PasswordHash, "$argon2id$") || u.LastLogin.IsZero() {
			t.Errorf("%s after login: hash %.16s…, last_login %v; want rehashed to $argon2id$", name, u.PasswordHash, u.LastLogin)
		}
		if !verifies(t, djangoPasswords[name], u.PasswordHash) {
			t.Errorf("%s: the rehashed password does not verify", name)
		}
	}
	if st := a.loginStatus(t, "ALICE", "wrong-"+djangoPasswords["alice"]); st != 400 {
		t.Errorf("alice with a wrong password: %d", st)
	}
	if st := a.loginStatus(t, "dave", djangoPasswords["dave"]); st != 400 {
		t.Errorf("inactive imported dave logged in: %d", st)
	}
	if st := b.loginStatus(t, "alice", djangoPasswords["alice"]); st != 400 {
		t.Errorf("site B (its own users_db) let alice in: %d", st)
	}

	// Re-importing conflicts and writes nothing; --skip-existing is a no-op.
	l.fails([]string{"nothing written", "6 conflict(s)", "--skip-existing"}, "", with("import-django", fixture)...)
	r = l.ok("", with("import-django", "--skip-existing", fixture)...)
	if r.stdout != "imported 0, skipped 6\n" {
		t.Errorf("re-import: %q", r.stdout)
	}
	u, err := store.ByUsername(context.Background(), "alice")
	if err != nil || !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
		t.Errorf("re-import touched alice: %v %.16s…", err, u.PasswordHash)
	}

	// create-user while Caddy runs; the new user logs in at once.
	const opPass, opPass2 = "0perator-Secret-One", "0perator-Secret-Two"
	r = l.ok(opPass+"\n", with("create-user", "--username", "operator", "--email", "op@Example.ORG", "--password-stdin")...)
	if r.stdout != "created user \"operator\" (id 7)\n" {
		t.Errorf("create-user: %q", r.stdout)
	}
	l.fails([]string{"already exists"}, opPass+"\n", with("create-user", "--username", "Operator", "--email", "x@example.com", "--password-stdin")...)
	l.fails([]string{"too common", "--force"}, "password\n", with("create-user", "--username", "weak", "--email", "w@example.com", "--password-stdin")...)
	r = l.ok("password\n", with("create-user", "--username", "weak", "--email", "w@example.com", "--password-stdin", "--force")...)
	if !strings.Contains(r.stderr, "warning:") || !strings.Contains(r.stderr, "too common") {
		t.Errorf("--force warning: %q", r.stderr)
	}
	sess := a.login(t, "operator", opPass)

	// deactivate: the live session is refused on the next request.
	l.ok("", with("deactivate", "--username", "operator")...)
	if st := a.whoami(t, sess); st != 403 {
		t.Errorf("deactivated user's session: %d, want 403", st)
	}
	if st := a.loginStatus(t, "operator", opPass); st != 400 {
		t.Errorf("deactivated user logged in: %d", st)
	}
	l.ok("", with("activate", "--username", "operator")...)
	if st := a.whoami(t, sess); st != 403 {
		t.Errorf("session ended by deactivate came back on activate: %d", st)
	}

	// set-password: sessions end, the old password stops working.
	sess = a.login(t, "operator", opPass)
	l.ok(opPass2+"\n", with("set-password", "--username", "OPERATOR", "--password-stdin")...)
	if st := a.whoami(t, sess); st != 403 {
		t.Errorf("session after set-password: %d, want 403", st)
	}
	if st := a.loginStatus(t, "operator", opPass); st != 400 {
		t.Errorf("old password after set-password: %d", st)
	}
	sess = a.login(t, "operator", opPass2)

	// delete-user: the session is refused.
	l.ok("", with("delete-user", "--username", "operator")...)
	if st := a.whoami(t, sess); st != 403 {
		t.Errorf("deleted user's session: %d, want 403", st)
	}

	list := l.listJSON(viaA...)
	if len(list) != 7 { // the import's 6 and weak
		t.Fatalf("list-users: %d users, want 7", len(list))
	}
	alice := byUsername(list, "alice")
	if alice == nil || alice["id"] != 1.0 || alice["is_superuser"] != true || alice["last_login"] == nil ||
		alice["last_login"] == "2024-01-02T03:04:05Z" {
		t.Errorf("alice = %v (last_login should be this test's login)", alice)
	}
	if dave := byUsername(list, "dave"); dave == nil || dave["is_active"] != false {
		t.Errorf("dave = %v", dave)
	}
	table := l.ok("", with("list-users")...).stdout
	if !strings.Contains(table, "Zoë.Ōsaka_東京") || !strings.Contains(table, "carol@Example.COM") {
		t.Errorf("table:\n%s", table)
	}

	// --db on the file the running Caddy holds fails fast, pointing to --config.
	l.fails([]string{"in use by another process", "--config"}, "", "list-users", "--db", a.dbPath)
	// Bad admin addresses and configs are clear errors.
	l.fails([]string{"cannot reach Caddy's admin API", "--db"}, "", "list-users", "--address", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	off := filepath.Join(t.TempDir(), "off.json")
	if err := os.WriteFile(off, []byte(`{"admin":{"disabled":true}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	l.fails([]string{"admin off", "--db"}, "", "list-users", "--config", off)

	secrets := []string{opPass, opPass2}
	for _, pw := range djangoPasswords {
		secrets = append(secrets, pw)
	}
	l.assertNoSecrets(secrets...)
}
