package caddymodule_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.etcd.io/bbolt"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
)

func TestIsValidateCommand(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"caddy", "validate", "--config", "Caddyfile"}, true},
		{[]string{"/usr/bin/caddy", "validate"}, true},
		{[]string{"caddy", "adapt", "--config", "Caddyfile", "--validate"}, true},
		{[]string{"caddy", "adapt", "--config", "Caddyfile"}, false},
		{[]string{"caddy", "run", "--config", "validate"}, false},
		{[]string{"caddy", "reload", "--config", "Caddyfile"}, false},
		{[]string{"caddy"}, false},
		{[]string{"caddy.test", "-test.run", "X"}, false},
	} {
		if got := caddymodule.IsValidateCommand(c.args); got != c.want {
			t.Errorf("%q: %v, want %v", c.args, got, c.want)
		}
	}
}

// Validating takes no lock and opens no store: it works while another
// process holds users_db, creates no file, dials no Redis, and still finds
// what is wrong.
func TestValidateOpensNoStore(t *testing.T) {
	caddymodule.SetValidationOnly(true)
	defer caddymodule.SetValidationOnly(false)
	dir := t.TempDir()
	locked := filepath.Join(dir, "users.db")
	other, err := bbolt.Open(locked, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	missing := filepath.Join(dir, "sub", "new.db")
	deadRedis := fmt.Sprintf("redis://127.0.0.1:%d/0", freePort(t)) // nothing listens there
	notPEM := filepath.Join(dir, "not-a-ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct{ users, extra, wantErr string }{
		{locked, "", ""},
		{locked, "redis " + deadRedis, ""},
		{missing, "", ""},
		{locked, "redis " + deadRedis + "\n\t\tredis_tls_ca /nonexistent/ca.pem", "redis_tls_ca: needs a rediss://"},
		{locked, "redis rediss://127.0.0.1:1/0\n\t\tredis_tls_ca " + filepath.Join(dir, "no-ca.pem"), "redis_tls_ca: open"},
		{locked, "redis rediss://127.0.0.1:1/0\n\t\tredis_tls_ca " + notPEM, "no PEM certificate"},
		{locked, "identity_token\n\t\tidentity_token_key " + filepath.Join(dir, "no-key.pem"), "no-key.pem"},
		{locked, "login_page login", "already one of the API's endpoints"},
	} {
		cfg, err := adapt(fmt.Sprintf("{\n\tadmin off\n}\nhttp://127.0.0.1:%d {\n\tsession_auth {\n\t\tusers_db %s\n\t\tdb_lock_timeout 10s\n\t\t%s\n\t}\n}",
			freePort(t), c.users, c.extra))
		if err != nil {
			t.Fatal(err)
		}
		err = caddy.Validate(mustConfig(t, string(cfg)))
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s %q: %v", c.users, c.extra, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s %q: error %v, want %q", c.users, c.extra, err, c.wantErr)
		}
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("validation created %s (%v)", missing, err)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("validation created the directory of %s (%v)", missing, err)
	}
}

// The operator's `caddy validate && caddy reload` works while Caddy runs
// (issue 15), and a second `caddy run` on the same users_db still fails
// and says why.
func TestCaddyValidateWhileRunning(t *testing.T) {
	bin := caddyBinary(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "users.db")
	port := freePort(t)
	caddyfile := fmt.Sprintf(`{
	admin off
	persist_config off
}

http://127.0.0.1:%d {
	session_auth {
		users_db %s
	}
	respond "app" 200
}
`, port, dbPath)
	startCaddyProc(t, bin, dir, caddyfile, port)
	cfgPath := filepath.Join(dir, "Caddyfile")
	env := caddyEnv(dir)

	for _, args := range [][]string{
		{"validate", "--config", cfgPath, "--adapter", "caddyfile"},
		{"adapt", "--config", cfgPath, "--adapter", "caddyfile", "--validate"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("caddy %s while caddy runs: %v\n%s", strings.Join(args, " "), err, out)
		} else if args[0] == "validate" && !strings.Contains(string(out), "Valid configuration") {
			t.Errorf("caddy validate says:\n%s", out)
		}
	}

	// A config error is still found.
	bad := filepath.Join(dir, "Caddyfile.bad")
	os.WriteFile(bad, []byte(strings.Replace(caddyfile, "users_db", "redis http://127.0.0.1:6379\n\t\tusers_db", 1)), 0o600)
	cmd := exec.Command(bin, "validate", "--config", bad, "--adapter", "caddyfile")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), `unsupported scheme`) ||
		!strings.Contains(string(out), "Caddyfile.bad:8") {
		t.Errorf("caddy validate of a bad config: %v\n%s", err, out)
	}

	// Really starting a second Caddy on the same file fails clearly.
	second := filepath.Join(dir, "Caddyfile.second")
	os.WriteFile(second, []byte(strings.Replace(strings.Replace(caddyfile, fmt.Sprint(port), fmt.Sprint(freePort(t)), 1),
		"users_db", "db_lock_timeout 500ms\n\t\tusers_db", 1)), 0o600)
	cmd = exec.Command(bin, "run", "--config", second, "--adapter", "caddyfile")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "in use by another process") {
		t.Errorf("a second caddy run on the same users_db: %v\n%s", err, out)
	}
}
