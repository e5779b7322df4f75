package caddymodule_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/djangoimport"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/passwords"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
	userbolt "github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/bolt"
	userpg "github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/postgres"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
)

// cliRun is one finished `caddy session-auth ...` invocation.
type cliRun struct {
	args           []string
	stdout, stderr string
	err            error
}

// cliLog collects every invocation of a test, to check that no secret ever
// reached the output.
type cliLog struct {
	t    *testing.T
	runs []*cliRun
}

// run executes `caddy session-auth <args...>` in-process with stdin.
func (l *cliLog) run(stdin string, args ...string) *cliRun {
	l.t.Helper()
	cmd := caddymodule.NewSessionAuthCommand()
	var out, errOut bytes.Buffer
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	r := &cliRun{args: args, stdout: out.String(), stderr: errOut.String(), err: err}
	l.runs = append(l.runs, r)
	return r
}

// ok runs and fails the test unless the command succeeded.
func (l *cliLog) ok(stdin string, args ...string) *cliRun {
	l.t.Helper()
	r := l.run(stdin, args...)
	if r.err != nil {
		l.t.Fatalf("session-auth %s: %v\nstderr: %s", strings.Join(args, " "), r.err, r.stderr)
	}
	return r
}

// fails runs and fails the test unless the command failed with an error
// containing every one of want.
func (l *cliLog) fails(want []string, stdin string, args ...string) *cliRun {
	l.t.Helper()
	r := l.run(stdin, args...)
	if r.err == nil {
		l.t.Fatalf("session-auth %s succeeded, want an error; stdout: %s", strings.Join(args, " "), r.stdout)
	}
	for _, w := range want {
		if !strings.Contains(r.err.Error(), w) {
			l.t.Errorf("session-auth %s: error %q does not mention %q", strings.Join(args, " "), r.err, w)
		}
	}
	return r
}

// assertNoSecrets checks that no password, hash or hash fragment appeared
// in any output or error of the test's commands.
func (l *cliLog) assertNoSecrets(secrets ...string) {
	l.t.Helper()
	secrets = append(secrets, "$argon2", "pbkdf2_sha256$", "bcrypt_sha256$", "$2b$", "password_hash")
	for _, r := range l.runs {
		text := r.stdout + r.stderr
		if r.err != nil {
			text += r.err.Error()
		}
		for _, s := range secrets {
			if strings.Contains(text, s) {
				l.t.Errorf("session-auth %s printed a secret (%q):\n%s", strings.Join(r.args, " "), s, text)
			}
		}
	}
}

// listJSON runs list-users --json and decodes it.
func (l *cliLog) listJSON(where ...string) []map[string]any {
	l.t.Helper()
	r := l.ok("", append([]string{"list-users", "--json"}, where...)...)
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		l.t.Fatalf("list-users --json is not a JSON array: %v\n%s", err, r.stdout)
	}
	return list
}

func byUsername(list []map[string]any, name string) map[string]any {
	for _, u := range list {
		if u["username"] == name {
			return u
		}
	}
	return nil
}

// readUser opens the (closed) users DB and returns a user, as the handler
// would see it.
func readUser(t *testing.T, dbPath, username string) *users.User {
	t.Helper()
	store, closeStore := openStoreToClose(t, dbPath)
	defer closeStore()
	u, err := store.ByUsername(context.Background(), username)
	if err != nil {
		t.Fatalf("user %q: %v", username, err)
	}
	return u
}

func verifies(t *testing.T, password, hash string) bool {
	t.Helper()
	ok, _, err := passwords.NewHasher(passwords.DefaultParams, 1).Verify(context.Background(), password, hash)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return ok
}

const fixture = "djangoimport/testdata/auth_user.json"

// The fixture's plaintext passwords (see djangoimport/testdata/README.md).
var djangoPasswords = map[string]string{
	"alice":        "Alice-pbkdf2-2024",
	"bob":          "Bob-argon2-2024",
	"carol":        "Carol-bcrypt-2024",
	"dave":         "Dave-inactive-2024",
	"Zoë.Ōsaka_東京": "Zoë-ünïcode-2024",
}

func TestCommandRegistered(t *testing.T) {
	cmd, ok := caddycmd.Commands()["session-auth"]
	if !ok {
		t.Fatal("caddy has no session-auth command")
	}
	if cmd.CobraFunc == nil || cmd.Short == "" || !strings.Contains(cmd.Long, "--config") {
		t.Errorf("session-auth command: %+v", cmd)
	}
	l := &cliLog{t: t}
	for _, sub := range []string{"create-user", "set-password", "deactivate", "activate", "delete-user", "list-users", "import-django",
		"add-to-group", "remove-from-group", "rotate-key", "reset-2fa"} {
		r := l.ok("", sub, "--help")
		if !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, "--db") || !strings.Contains(r.stdout, "--config") {
			t.Errorf("%s --help:\n%s", sub, r.stdout)
		}
	}
}

// cliDBs runs fn with --db naming a bbolt file (in a directory yet to be
// made) and a PostgreSQL database (a fresh schema).
func cliDBs(t *testing.T, fn func(t *testing.T, dbPath string)) {
	t.Run("bolt", func(t *testing.T) { fn(t, filepath.Join(t.TempDir(), "state", "users.db")) })
	t.Run("postgres", func(t *testing.T) { fn(t, testpg.New(t).URL) })
}

func TestCLIUsersWithDB(t *testing.T) { cliDBs(t, testCLIUsersWithDB) }

func testCLIUsersWithDB(t *testing.T, dbPath string) {
	db := []string{"--db", dbPath}
	l := &cliLog{t: t}
	const alicePass, bobPass, newPass = "Tr1cky-Passw0rd-A", "Bob-Str0ng-Secret", "N3w-Passw0rd-Alice"

	// Where the users are must be said, and only once.
	l.fails([]string{"--db", "--config"}, "", "list-users")
	l.fails([]string{"one or the other"}, "", "list-users", "--db", dbPath, "--config", "Caddyfile")
	if !userpg.IsURL(dbPath) {
		// Commands on existing users don't create the file.
		l.fails([]string{"does not exist"}, "", append([]string{"list-users"}, db...)...)
		if _, err := os.Stat(dbPath); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("list-users created %s", dbPath)
		}
	}

	r := l.ok(alicePass+"\n", append([]string{"create-user", "--username", " alice ", "--email", "Alice@EXAMPLE.com",
		"--superuser", "--password-stdin"}, db...)...)
	if r.stdout != "created user \"alice\" (id 1)\n" || r.stderr != "" {
		t.Errorf("create-user: stdout %q stderr %q", r.stdout, r.stderr)
	}
	// Same rules as registration: case-insensitive uniqueness, NFKC,
	// Django's username characters, email syntax, password validators.
	l.fails([]string{"ALICE", "already exists"}, bobPass+"\n",
		append([]string{"create-user", "--username", "ALICE", "--email", "a@example.com", "--password-stdin"}, db...)...)
	l.fails([]string{`"alice"`, "already exists"}, bobPass+"\n",
		append([]string{"create-user", "--username", "ａｌｉｃｅ", "--email", "a@example.com", "--password-stdin"}, db...)...)
	l.fails([]string{"Enter a valid username"}, bobPass+"\n",
		append([]string{"create-user", "--username", "bad name!", "--email", "a@example.com", "--password-stdin"}, db...)...)
	l.fails([]string{"no more than 150 characters"}, bobPass+"\n",
		append([]string{"create-user", "--username", strings.Repeat("x", 151), "--email", "a@example.com", "--password-stdin"}, db...)...)
	l.fails([]string{"Enter a valid email address"}, bobPass+"\n",
		append([]string{"create-user", "--username", "bob", "--email", "not-an-email", "--password-stdin"}, db...)...)
	l.fails([]string{"This password is too common.", "This password is too short", "--force"}, "12345\n",
		append([]string{"create-user", "--username", "bob", "--email", "bob@example.com", "--password-stdin"}, db...)...)
	l.fails([]string{"too similar to the username"}, "bobbybob1\n",
		append([]string{"create-user", "--username", "bobbybob", "--email", "bob@example.com", "--password-stdin"}, db...)...)
	l.fails([]string{"no password on stdin"}, "\n",
		append([]string{"create-user", "--username", "bob", "--email", "bob@example.com", "--password-stdin"}, db...)...)
	l.fails([]string{"not a terminal", "--password-stdin"}, bobPass+"\n",
		append([]string{"create-user", "--username", "bob", "--email", "bob@example.com"}, db...)...)
	// --force sets a refused password, with a warning on stderr.
	r = l.ok("password\r\nsecond line ignored\n", append([]string{"create-user", "--username", "ｗｅａｋ", "--email", "weak@example.com",
		"--password-stdin", "--force"}, db...)...)
	if r.stdout != "created user \"weak\" (id 2)\n" || !strings.Contains(r.stderr, "warning:") || !strings.Contains(r.stderr, "This password is too common.") {
		t.Errorf("create-user --force: stdout %q stderr %q", r.stdout, r.stderr)
	}
	if u := readUser(t, dbPath, "weak"); !verifies(t, "password", u.PasswordHash) {
		t.Error("--password-stdin did not take the first line without its \\r\\n")
	}
	l.ok(bobPass, append([]string{"create-user", "--username", "bob", "--email", "bob@example.com", "--password-stdin"}, db...)...)

	list := l.listJSON(db...)
	if len(list) != 3 {
		t.Fatalf("list-users: %d users, want 3: %v", len(list), list)
	}
	alice := byUsername(list, "alice")
	if alice == nil || alice["id"] != 1.0 || alice["email"] != "Alice@example.com" || alice["is_active"] != true ||
		alice["is_superuser"] != true || alice["is_staff"] != true || alice["last_login"] != nil {
		t.Errorf("alice = %v", alice)
	}
	if _, err := time.Parse(time.RFC3339, alice["date_joined"].(string)); err != nil {
		t.Errorf("date_joined: %v", err)
	}
	if bob := byUsername(list, "bob"); bob == nil || bob["is_superuser"] != false || bob["is_staff"] != false {
		t.Errorf("bob = %v", bob)
	}
	for _, u := range list {
		if len(u) != 11 || mustJSON(u["groups"]) != "[]" || u["email_verified"] != false || mustJSON(u["second_factors"]) != "[]" {
			t.Errorf("list-users --json object has %d keys, want 11 (groups [], email_verified false, second_factors []): %v", len(u), u)
		}
	}
	table := l.ok("", append([]string{"list-users"}, db...)...).stdout
	for _, want := range []string{"ID", "USERNAME", "LAST LOGIN", "alice", "Alice@example.com", "never", "weak"} {
		if !strings.Contains(table, want) {
			t.Errorf("list-users table lacks %q:\n%s", want, table)
		}
	}

	// set-password: new hash, validated against the user's own attributes,
	// and the session epoch moves on.
	before := readUser(t, dbPath, "alice")
	l.fails([]string{"too similar to the email"}, "Alice@example.com1\n",
		append([]string{"set-password", "--username", "alice", "--password-stdin"}, db...)...)
	l.fails([]string{"no user named \"nobody\""}, newPass+"\n",
		append([]string{"set-password", "--username", "nobody", "--password-stdin"}, db...)...)
	r = l.ok(newPass+"\n", append([]string{"set-password", "--username", "ALICE", "--password-stdin"}, db...)...)
	if !strings.Contains(r.stdout, `password of "alice" (id 1) changed`) {
		t.Errorf("set-password: %q", r.stdout)
	}
	after := readUser(t, dbPath, "alice")
	if !verifies(t, newPass, after.PasswordHash) || verifies(t, alicePass, after.PasswordHash) {
		t.Error("set-password did not replace the password")
	}
	if !strings.HasPrefix(after.PasswordHash, "$argon2id$") || after.SessionEpoch != before.SessionEpoch+1 {
		t.Errorf("after set-password: hash %.10s…, epoch %d (was %d)", after.PasswordHash, after.SessionEpoch, before.SessionEpoch)
	}

	// deactivate ends sessions; activate brings the account back.
	r = l.ok("", append([]string{"deactivate", "--username", "bob"}, db...)...)
	if r.stdout != "deactivated \"bob\" (id 3); their sessions have ended\n" {
		t.Errorf("deactivate: %q", r.stdout)
	}
	if u := readUser(t, dbPath, "bob"); u.IsActive || u.SessionEpoch != 1 {
		t.Errorf("deactivated bob: active %v epoch %d", u.IsActive, u.SessionEpoch)
	}
	l.ok("", append([]string{"activate", "--username", "bob"}, db...)...)
	r = l.ok("", append([]string{"activate", "--username", "bob"}, db...)...)
	if !strings.Contains(r.stdout, "already active") {
		t.Errorf("second activate: %q", r.stdout)
	}
	if u := readUser(t, dbPath, "bob"); !u.IsActive || u.SessionEpoch != 1 {
		t.Errorf("activated bob: active %v epoch %d", u.IsActive, u.SessionEpoch)
	}

	r = l.ok("", append([]string{"delete-user", "--username", "weak"}, db...)...)
	if r.stdout != "deleted \"weak\" (id 2); their sessions have ended\n" {
		t.Errorf("delete-user: %q", r.stdout)
	}
	l.fails([]string{`no user named "weak"`}, "", append([]string{"delete-user", "--username", "weak"}, db...)...)
	l.fails([]string{"username", "blank"}, "", append([]string{"deactivate"}, db...)...)
	// A deleted user's id is not handed out again.
	r = l.ok("An0ther-Secret-Pass\n", append([]string{"create-user", "--username", "carl", "--email", "carl@example.com", "--password-stdin"}, db...)...)
	if r.stdout != "created user \"carl\" (id 4)\n" {
		t.Errorf("create after delete: %q", r.stdout)
	}
	if got := len(l.listJSON(db...)); got != 3 {
		t.Errorf("%d users after delete and create, want 3", got)
	}

	l.assertNoSecrets(alicePass, bobPass, newPass, "An0ther-Secret-Pass", "Alice@example.com1")
}

// A running Caddy holds the bbolt lock: --db must fail fast and point to
// --config.
func TestCLILockedDB(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "users.db")
	held, err := userbolt.OpenDB(dbPath, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	l := &cliLog{t: t}
	l.fails([]string{dbPath, "in use by another process", "--config"}, "", "list-users", "--db", dbPath)
	l.fails([]string{"in use by another process", "--config"}, "S0me-Str0ng-Pass\n",
		"create-user", "--db", dbPath, "--username", "x", "--email", "x@example.com", "--password-stdin")
}

func TestCLIImportDjangoWithDB(t *testing.T) { cliDBs(t, testCLIImportDjangoWithDB) }

func testCLIImportDjangoWithDB(t *testing.T, dbPath string) {
	dir := t.TempDir()
	db := []string{"--db", dbPath}
	l := &cliLog{t: t}

	dumpFile, err := os.Open(fixture)
	if err != nil {
		t.Fatal(err)
	}
	dump, err := djangoimport.Parse(dumpFile)
	dumpFile.Close()
	if err != nil {
		t.Fatal(err)
	}

	// A conflict aborts the import and writes nothing: CAROL (id 1) clashes
	// with the dump's alice (id 1) and carol (username).
	l.ok("Car0l-Was-Here-First\n", append([]string{"create-user", "--username", "CAROL", "--email", "c@example.com", "--password-stdin"}, db...)...)
	for _, skip := range [][]string{nil, {"--skip-existing"}} {
		r := l.fails([]string{"nothing written", "2 conflict(s)", `id 1 "alice": id 1 is user "CAROL"`,
			`id 3 "carol": the username is taken (regardless of case) by user 1 "CAROL"`},
			"", append(append([]string{"import-django", fixture}, skip...), db...)...)
		if r.stdout != "" {
			t.Errorf("failed import printed %q", r.stdout)
		}
		if list := l.listJSON(db...); len(list) != 1 {
			t.Fatalf("after a failed import: %d users, want 1", len(list))
		}
	}
	l.ok("", append([]string{"delete-user", "--username", "carol"}, db...)...)

	r := l.ok("", append([]string{"import-django", fixture}, db...)...)
	if r.stdout != "imported 6, skipped 0\n" {
		t.Errorf("import: %q", r.stdout)
	}
	if !strings.Contains(r.stderr, `id 6 "eve": unusable password`) {
		t.Errorf("import did not warn about eve's unusable password: %q", r.stderr)
	}
	list := l.listJSON(db...)
	if len(list) != 6 {
		t.Fatalf("imported %d users, want 6", len(list))
	}
	for _, want := range dump.Users {
		got := byUsername(list, want.Username)
		if got == nil {
			t.Errorf("%q not imported", want.Username)
			continue
		}
		if got["id"] != float64(want.ID) || got["email"] != want.Email || got["is_active"] != want.IsActive ||
			got["is_superuser"] != want.IsSuperuser || got["is_staff"] != want.IsStaff ||
			got["date_joined"] != want.DateJoined.Format(time.RFC3339Nano) {
			t.Errorf("%q imported as %v, dump has %+v", want.Username, got, want)
		}
		if want.LastLogin.IsZero() != (got["last_login"] == nil) {
			t.Errorf("%q last_login = %v, dump has %v", want.Username, got["last_login"], want.LastLogin)
		}
		stored := readUser(t, dbPath, want.Username)
		if stored.PasswordHash != want.PasswordHash || !stored.LastLogin.Equal(want.LastLogin) {
			t.Errorf("%q: hash or last_login not kept", want.Username)
		}
	}
	// (TestCLIThroughAdminAPI logs in with every kind of hash; one here.)
	if !verifies(t, djangoPasswords["alice"], readUser(t, dbPath, "alice").PasswordHash) {
		t.Error("alice's Django password does not verify after the import")
	}
	if byUsername(list, "alice")["last_login"] != "2024-01-02T03:04:05Z" {
		t.Errorf("alice last_login = %v", byUsername(list, "alice")["last_login"])
	}

	// Re-running: every user conflicts (nothing written) unless
	// --skip-existing, which makes it a no-op.
	l.fails([]string{"6 conflict(s)", `id 2 "bob" is already there`, "--skip-existing"}, "",
		append([]string{"import-django", fixture}, db...)...)
	for range 2 {
		r = l.ok("", append([]string{"import-django", "--skip-existing", fixture}, db...)...)
		if r.stdout != "imported 0, skipped 6\n" {
			t.Errorf("re-import: %q", r.stdout)
		}
	}
	// New users continue after the largest imported id.
	r = l.ok("Fr3sh-User-Pass\n", append([]string{"create-user", "--username", "fresh", "--email", "f@example.com", "--password-stdin"}, db...)...)
	if r.stdout != "created user \"fresh\" (id 7)\n" {
		t.Errorf("create after import: %q", r.stdout)
	}

	// A broken dump is reported with where the problem is; stdin works.
	bad := `[{"model":"auth.user","pk":9,"fields":{"username":"has space","password":"","date_joined":"2020-01-01T00:00:00Z"}}]`
	l.fails([]string{"import refused", `id 9: username "has space": Enter a valid username`}, bad,
		append([]string{"import-django", "-"}, db...)...)
	l.fails([]string{"expected a JSON array"}, `{}`, append([]string{"import-django", "-"}, db...)...)
	l.fails([]string{"no-such-file.json"}, "", append([]string{"import-django", filepath.Join(dir, "no-such-file.json")}, db...)...)
	l.fails([]string{"accepts 1 arg"}, "", append([]string{"import-django"}, db...)...)

	secrets := []string{"Car0l-Was-Here-First", "Fr3sh-User-Pass"}
	for _, u := range dump.Users {
		secrets = append(secrets, u.PasswordHash)
	}
	for _, pw := range djangoPasswords {
		secrets = append(secrets, pw)
	}
	l.assertNoSecrets(secrets...)
}
