package caddymodule_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// The admin API (CLI --config) on a Caddy with a bbolt site and a
// PostgreSQL site: --users-db takes the URL (also as the messages show it,
// password redacted), and no message shows the password.
func TestCLIThroughAdminAPIPostgres(t *testing.T) {
	pg := testpg.New(t)
	rd := testredis.Start(t)
	pgURL := pg.URL
	const secret = "hunter2-not-shown"
	if strings.Contains(pgURL, "://postgres@") {
		// Trust authentication ignores it; the messages must not show it.
		pgURL = strings.Replace(pgURL, "://postgres@", "://postgres:"+secret+"@", 1)
	}
	dir := t.TempDir()
	upstream := echoUpstream(t)
	boltPath := filepath.Join(dir, "users.db")
	pgSite := &site{t: t, port: freePort(t), upstream: upstream, dbPath: pgURL, client: newTestClient()}
	pgSite.base = fmt.Sprintf("http://127.0.0.1:%d", pgSite.port)
	adminPort := freePort(t)
	cfg := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	storage file_system %s
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
	}
	reverse_proxy %s
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
		redis %s
	}
	reverse_proxy %s
}
`, adminPort, filepath.Join(os.Getenv("XDG_DATA_HOME"), "caddy"),
		freePort(t), boltPath, strings.TrimPrefix(upstream.URL, "http://"),
		pgSite.port, pgURL, rd.URL(), strings.TrimPrefix(upstream.URL, "http://"))
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	pgSite.load(cfg)
	t.Cleanup(func() {
		if err := caddy.Load([]byte(`{"admin":{"disabled":true}}`), true); err != nil {
			t.Errorf("stopping caddy's admin endpoint: %v", err)
		}
		caddy.Stop()
	})

	l := &cliLog{t: t}
	r := l.fails([]string{"2 users databases open", "--users-db", boltPath, "postgres://"}, "", "list-users", "--config", path)
	shown := ""
	for _, f := range strings.Split(r.err.Error(), ", ") {
		if i := strings.Index(f, "postgres://"); i >= 0 {
			shown = strings.TrimSpace(f[i:])
		}
	}
	if shown == "" {
		t.Fatalf("the error lists no postgres:// database: %v", r.err)
	}
	l.ok("Pg-Admin-Secret-1\n", "create-user", "--config", path, "--users-db", pgURL,
		"--username", "viaadmin", "--email", "v@example.com", "--password-stdin")
	if list := l.listJSON("--config", path, "--users-db", boltPath); len(list) != 0 {
		t.Errorf("the bbolt site has %d users, want 0", len(list))
	}
	if shown != "" {
		// The URL as the error message showed it chooses the same database.
		if list := l.listJSON("--config", path, "--users-db", shown); len(list) != 1 || list[0]["username"] != "viaadmin" {
			t.Errorf("--users-db %s: %v", shown, list)
		}
	}
	l.fails([]string{"not open in this Caddy"}, "", "list-users", "--config", path, "--users-db", "postgres://elsewhere/db")
	pgSite.client.Timeout = time.Minute
	if st := pgSite.loginStatus(t, "viaadmin", "Pg-Admin-Secret-1"); st != http.StatusOK {
		t.Errorf("login on the PostgreSQL site as the user made through the admin API: %d", st)
	}
	l.assertNoSecrets("Pg-Admin-Secret-1", secret)
}
