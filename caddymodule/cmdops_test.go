package caddymodule_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
)

// scripted answers the prompts with the given lines, in order.
func scripted(t *testing.T, answers ...string) func(string) ([]byte, error) {
	return func(label string) ([]byte, error) {
		if len(answers) == 0 {
			t.Fatalf("prompt %q asked once too often", label)
		}
		a := answers[0]
		answers = answers[1:]
		return []byte(a), nil
	}
}

func TestPasswordPromptRetries(t *testing.T) {
	var errOut bytes.Buffer
	got, err := caddymodule.AskNewPassword(scripted(t, "Abc-12345-x", "Abc-12345-y", "", "Good-Pass-123", "Good-Pass-123"), &errOut)
	if err != nil || got != "Good-Pass-123" {
		t.Errorf("third try: %q, %v", got, err)
	}
	if errOut.String() != "The passwords do not match; try again.\nThe password is empty; try again.\n" {
		t.Errorf("stderr %q", errOut.String())
	}
	errOut.Reset()
	_, err = caddymodule.AskNewPassword(scripted(t, "a1", "a2", "b1", "b2", "c1", "c2"), &errOut)
	if err == nil || err.Error() != "the passwords do not match (3 tries); nothing changed" {
		t.Errorf("three mismatches: %v", err)
	}
	if strings.Count(errOut.String(), "try again") != 2 {
		t.Errorf("stderr %q", errOut.String())
	}
}

// A username as the first argument, and update-user, with --db.
func TestCLIPositionalUsernameAndUpdateUser(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "users.db")
	db := []string{"--db", dbPath}
	l := &cliLog{t: t}
	with := func(args ...string) []string { return append(args, db...) }
	l.ok("Str0ng-Pass-Bob\n", with("create-user", "bob", "--email", "bob@example.com", "--password-stdin")...)
	l.ok("Str0ng-Pass-Al\n", with("create-user", "--username", "alice", "--email", "alice@example.com", "--password-stdin")...)

	if r := l.ok("", with("deactivate", "bob")...); r.stdout != "deactivated \"bob\" (id 1); their sessions have ended\n" {
		t.Errorf("deactivate bob: %q", r.stdout)
	}
	l.ok("", with("activate", "BOB")...)
	l.ok("N3w-Pass-For-Bob\n", with("set-password", "bob", "--password-stdin")...)
	if !verifies(t, "N3w-Pass-For-Bob", readUser(t, dbPath, "bob").PasswordHash) {
		t.Error("set-password bob did not set the password")
	}
	l.ok("", with("add-to-group", "bob", "--group", "editors")...)
	l.fails([]string{`two usernames: "bob" and --username "alice"`}, "", with("deactivate", "bob", "--username", "alice")...)
	l.fails([]string{"accepts at most 1 arg"}, "", with("deactivate", "bob", "alice")...)
	l.ok("", with("deactivate", "bob", "--username", "bob")...)
	l.ok("", with("activate", "bob")...)

	r := l.ok("", with("update-user", "bob", "--email", "Bob@New.EXAMPLE", "--staff")...)
	if r.stdout != "updated \"bob\" (id 1): email Bob@new.example, staff yes, superuser no\n" {
		t.Errorf("update-user: %q", r.stdout)
	}
	r = l.ok("", with("update-user", "--username", "bob", "--staff")...)
	if r.stdout != "\"bob\" (id 1) unchanged: email Bob@new.example, staff yes, superuser no\n" {
		t.Errorf("update-user again: %q", r.stdout)
	}
	l.ok("", with("update-user", "bob", "--no-staff", "--superuser")...)
	u := readUser(t, dbPath, "bob")
	if u.IsStaff || !u.IsSuperuser || u.Email != "Bob@new.example" || len(u.Groups) != 1 || !u.IsActive {
		t.Errorf("bob after update-user: %+v", u)
	}
	l.fails([]string{"--staff and --no-staff contradict"}, "", with("update-user", "bob", "--staff", "--no-staff")...)
	l.fails([]string{"nothing to change"}, "", with("update-user", "bob")...)
	l.fails([]string{"Enter a valid email address"}, "", with("update-user", "bob", "--email", "nope")...)
	l.fails([]string{`no user named "carol"`}, "", with("update-user", "carol", "--staff")...)
	l.fails([]string{"--username is required"}, "", with("update-user", "--staff")...)
}

// The real binary: with --config the command prints only its result
// (Caddy's "using config from file" and the like only with --verbose), and
// update-user and a positional username go through the admin API.
func TestCLIBinaryQuietThroughAdmin(t *testing.T) {
	bin := caddyBinary(t)
	dir := t.TempDir()
	port, adminPort := freePort(t), freePort(t)
	caddyfile := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}

http://127.0.0.1:%d {
	session_auth {
		users_db %s
	}
	respond "app" 200
}
`, adminPort, port, filepath.Join(dir, "users.db"))
	startCaddyProc(t, bin, dir, caddyfile, port)
	cfg := filepath.Join(dir, "Caddyfile")
	run := func(stdin string, args ...string) (string, string, error) {
		cmd := exec.Command(bin, append([]string{"session-auth"}, args...)...)
		cmd.Env = caddyEnv(dir)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		return out.String(), errOut.String(), err
	}
	out, errOut, err := run("Str0ng-Pass-Bob\n", "create-user", "bob", "--email", "bob@example.com", "--password-stdin", "--config", cfg)
	if err != nil || out != "created user \"bob\" (id 1)\n" || errOut != "" {
		t.Errorf("create-user: %v\nstdout %q\nstderr %q", err, out, errOut)
	}
	out, errOut, err = run("", "update-user", "bob", "--superuser", "--config", cfg)
	if err != nil || out != "updated \"bob\" (id 1): email bob@example.com, staff no, superuser yes\n" || errOut != "" {
		t.Errorf("update-user: %v\nstdout %q\nstderr %q", err, out, errOut)
	}
	out, errOut, err = run("", "deactivate", "bob", "--config", cfg, "--verbose")
	if err != nil || !strings.Contains(out, "deactivated \"bob\"") || !strings.Contains(errOut, "using config from file") {
		t.Errorf("deactivate --verbose: %v\nstdout %q\nstderr %q", err, out, errOut)
	}
	_, errOut, err = run("", "deactivate", "nobody", "--config", cfg)
	if err == nil || !strings.Contains(errOut, `no user named "nobody"`) || strings.Contains(errOut, "using config") {
		t.Errorf("deactivate nobody: %v\nstderr %q", err, errOut)
	}
}
