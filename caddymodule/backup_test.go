package caddymodule_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	userbolt "github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/bolt"
)

const pgDumpWords = "PostgreSQL database: back it up with PostgreSQL's own tools"

// assertBackupFile checks mode 0600, no temporary file left beside it,
// and that it holds the given users.
func assertBackupFile(t *testing.T, path string, usernames ...string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v, want 0600", st.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*.tmp-*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	for _, name := range usernames {
		readUser(t, path, name) // fails the test if absent
	}
}

// With Caddy stopped, --db copies the file; while something holds it, the
// command says to go through Caddy; nothing is written on failure.
func TestBackupWithDB(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "users.db")
	l := &cliLog{t: t}
	for _, u := range []string{"alice", "bob"} {
		l.ok("Str0ng-Backup-Pass\n", "create-user", "--db", dbPath, "--username", u, "--email", u+"@example.com", "--password-stdin")
	}
	out := filepath.Join(dir, "backups", "users-backup.db")
	os.Mkdir(filepath.Dir(out), 0o755)
	r := l.ok("", "backup", "--db", dbPath, out)
	if !strings.HasPrefix(r.stdout, "wrote "+out+" (") {
		t.Errorf("backup says %q", r.stdout)
	}
	assertBackupFile(t, out, "alice", "bob")

	// Over an older backup: replaced.
	l.ok("Str0ng-Backup-Pass\n", "create-user", "--db", dbPath, "--username", "carol", "--email", "carol@example.com", "--password-stdin")
	l.ok("", "backup", "--db", dbPath, out)
	assertBackupFile(t, out, "alice", "bob", "carol")

	l.fails([]string{"the users database itself"}, "", "backup", "--db", dbPath, dbPath)
	l.fails([]string{"no such file"}, "", "backup", "--db", filepath.Join(dir, "nope.db"), filepath.Join(dir, "x.db"))
	l.fails([]string{"--db FILE", "--config FILE"}, "", "backup", out)
	l.fails([]string{"one or the other"}, "", "backup", "--db", dbPath, "--config", "Caddyfile", out)

	held, err := userbolt.OpenDB(dbPath, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	locked := filepath.Join(dir, "locked.db")
	l.fails([]string{"in use by another process", "--config"}, "", "backup", "--db", dbPath, locked)
	held.Close()
	if _, err := os.Stat(locked); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed backup left %s", locked)
	}

	// PostgreSQL users: pg_dump, and a non-zero exit (an error).
	l.fails([]string{pgDumpWords, "pg_dump", "pg_restore"}, "", "backup", "--db", "postgres://u:secret@127.0.0.1/users", filepath.Join(dir, "pg.db"))
	// Spelled as users_db accepts it (scheme in any case).
	l.fails([]string{pgDumpWords, "pg_dump"}, "", "backup", "--db", "PostgreSQL://u:secret@127.0.0.1/users", filepath.Join(dir, "pg.db"))
	cfg := filepath.Join(dir, "pg.json")
	os.WriteFile(cfg, []byte(`{"apps":{"http":{"servers":{"s":{"listen":[":0"],"routes":[{"handle":[{"handler":"session_auth","users_db":"postgresql://u:secret@127.0.0.1/users"}]}]}}}}}`), 0o600)
	r = l.fails([]string{pgDumpWords}, "", "backup", "--config", cfg, filepath.Join(dir, "pg.db"))
	if strings.Contains(r.err.Error(), "secret") {
		t.Errorf("the error shows the database password: %v", r.err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pg.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("the PostgreSQL refusal wrote a file")
	}
}

// While Caddy runs, --config takes a snapshot through the admin API; the
// documented restore (stop, copy back, start) brings every user back with
// the password they had at backup time.
func TestBackupThroughAdminAndRestore(t *testing.T) {
	a, b, caddyfile := startAdminSites(t)
	l := &cliLog{t: t}
	passwords := map[string]string{}
	for i := range 4 {
		name := fmt.Sprintf("user%d", i)
		passwords[name] = fmt.Sprintf("Backup-Pass-%d-xyz", i)
		if r := a.register(t, name, name+"@example.com", passwords[name]); r.StatusCode != 201 {
			t.Fatalf("register %s: %d %s", name, r.StatusCode, r.body)
		}
	}
	out := filepath.Join(t.TempDir(), "snapshot.db")
	// Two users databases are open: the command must be told which.
	l.fails([]string{"2 users databases open", "--users-db"}, "", "backup", "--config", caddyfile, out)
	r := l.ok("", "backup", "--config", caddyfile, "--users-db", a.dbPath, out)
	if !strings.HasPrefix(r.stdout, "wrote "+out) {
		t.Errorf("backup says %q", r.stdout)
	}
	// The site kept serving: a login works right after.
	if st := a.loginStatus(t, "user0", passwords["user0"]); st != 200 {
		t.Errorf("login after the backup: %d", st)
	}
	assertBackupFile(t, out, "user0", "user1", "user2", "user3")

	// Changes after the backup...
	l.ok("Changed-After-Backup-1\n", "set-password", "--config", caddyfile, "--users-db", a.dbPath, "--username", "user1", "--password-stdin")
	l.ok("", "delete-user", "--config", caddyfile, "--users-db", a.dbPath, "--username", "user2")
	if r := a.register(t, "late", "late@example.com", "Late-User-Pass-1"); r.StatusCode != 201 {
		t.Fatalf("register late: %d", r.StatusCode)
	}

	// ...are undone by the restore: stop, copy back, start.
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.dbPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(caddyfile)
	if err != nil {
		t.Fatal(err)
	}
	a.load(string(cfg))
	for name, pass := range passwords {
		if st := a.loginStatus(t, name, pass); st != 200 {
			t.Errorf("after restore, %s logs in with the backup-time password: %d", name, st)
		}
	}
	if st := a.loginStatus(t, "late", "Late-User-Pass-1"); st != 400 && st != 401 && st != 403 {
		t.Errorf("after restore, a user created after the backup logs in: %d", st)
	}
	_ = b
	l.assertNoSecrets("Changed-After-Backup-1")
}
