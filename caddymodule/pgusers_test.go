package caddymodule_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// health reads the health endpoint.
func (s *site) health(t testing.TB) (int, map[string]any) {
	t.Helper()
	r := s.do(t, req{method: "GET", path: "/api/health/"})
	return r.StatusCode, r.json(t)
}

// Users in PostgreSQL through a real Caddy: the same API as with bbolt,
// the CLI on the same database seen at once, the health endpoint checking
// PostgreSQL, and a reload with the same URL (also through a {$ENV}
// placeholder) keeping the pool.
func TestPostgresUsersDB(t *testing.T) {
	pg := testpg.New(t)
	rd := testredis.Start(t)
	s := startCustomSite(t, siteConfig{redisURL: rd.URL(), usersDB: pg.URL, extra: throttlesOff})

	if code, h := s.health(t); code != 200 || h["users_db"] != "ok" || h["users_backend"] != "postgres" || h["sessions"] != "redis" {
		t.Fatalf("health: %d %v", code, h)
	}
	sess := s.newUser(t, "Alice")
	if r := s.register(t, "ALICE", "a2@example.com", strongPassword); r.StatusCode != 400 {
		t.Errorf("registering ALICE after Alice: %d %s, want 400", r.StatusCode, r.body)
	}
	r := s.do(t, req{method: "GET", path: "/app/page", session: sess})
	if r.StatusCode != 200 || r.echo(t).Headers["X-Auth-Username"][0] != "Alice" {
		t.Fatalf("gated request: %d %s", r.StatusCode, r.body)
	}
	// The rows are in the test's schema, as the API wrote them.
	var n int
	if err := pg.Conn(t).QueryRow(context.Background(), "SELECT count(*) FROM session_auth_users WHERE username = 'Alice'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("session_auth_users has %d Alice rows (%v)", n, err)
	}

	// The CLI works on the database directly while Caddy runs.
	l := &cliLog{t: t}
	db := []string{"--db", pg.URL}
	l.ok("B0b-Str0ng-Secret\n", append([]string{"create-user", "--username", "bob", "--email", "bob@example.com", "--password-stdin"}, db...)...)
	bob := s.login(t, "bob", "B0b-Str0ng-Secret")
	l.ok("", append([]string{"deactivate", "--username", "alice"}, db...)...)
	refusedWithin(t, s, sess, time.Second)
	if r := s.do(t, req{method: "GET", path: "/app/page", session: bob}); r.StatusCode != 200 {
		t.Errorf("bob after alice's deactivation: %d", r.StatusCode)
	}

	// A reload with the same URL keeps the pool (and the sessions).
	before := caddymodule.UsersOf(pg.URL)
	if before == nil {
		t.Fatal("no open users database for the URL")
	}
	s.reloadWith(rd.URL(), "hash_concurrency 2")
	if after := caddymodule.UsersOf(pg.URL); after != before {
		t.Errorf("a reload with the same users_db URL made a new store")
	}
	t.Setenv("SA_TEST_USERS_DB", pg.URL)
	s.dbPath = "{$SA_TEST_USERS_DB}"
	s.reloadWith(rd.URL(), "")
	if after := caddymodule.UsersOf(pg.URL); after != before {
		t.Errorf("a reload with the same URL through {$SA_TEST_USERS_DB} made a new store")
	}
	if r := s.do(t, req{method: "GET", path: "/app/page", session: bob}); r.StatusCode != 200 || r.echo(t).Headers["X-Auth-Username"][0] != "bob" {
		t.Errorf("bob after the reloads: %d %s", r.StatusCode, r.body)
	}
	if code, h := s.health(t); code != 200 || h["users_backend"] != "postgres" {
		t.Errorf("health after the reloads: %d %v", code, h)
	}
}

// refusedWithin waits up to limit for sess to be refused on s (401 on the
// API), and fails the test if it is not.
func refusedWithin(t testing.TB, s *site, sess *session, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		r := s.do(t, req{method: "GET", path: "/api/user/", session: sess})
		if r.StatusCode == 401 || r.StatusCode == 403 {
			return time.Since(start)
		}
		if r.StatusCode != 200 {
			t.Fatalf("GET /api/user/: %d %s", r.StatusCode, r.body)
		}
		if time.Since(start) > limit {
			t.Fatalf("session still accepted %v after the change", time.Since(start))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The JSON config takes the same URL, and an {env.VAR} placeholder.
func TestPostgresUsersDBJSON(t *testing.T) {
	pg := testpg.New(t)
	rd := testredis.Start(t)
	t.Setenv("SA_TEST_JSON_USERS_DB", pg.URL)
	port := freePort(t)
	cfg := fmt.Sprintf(`{"admin":{"disabled":true},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:%d"],"routes":[{"handle":[{"handler":"session_auth","users_db":"{env.SA_TEST_JSON_USERS_DB}","redis":%q}]}]}}}}}`,
		port, rd.URL())
	if err := caddy.Load([]byte(cfg), true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caddy.Stop() })
	s := &site{t: t, port: port, base: fmt.Sprintf("http://127.0.0.1:%d", port), client: newTestClient()}
	if code, h := s.health(t); code != 200 || h["users_backend"] != "postgres" {
		t.Fatalf("health: %d %v", code, h)
	}
	if r := s.register(t, "json", "json@example.com", strongPassword); r.StatusCode != 201 {
		t.Fatalf("register: %d %s", r.StatusCode, r.body)
	}
	if caddymodule.UsersOf(pg.URL) == nil {
		t.Error("the placeholder did not open the URL it names")
	}
}

// Users in PostgreSQL without Redis: refused at start, from a Caddyfile and
// from JSON alike, saying that sessions would not be shared.
func TestPostgresNeedsRedis(t *testing.T) {
	url := "postgres://nobody@127.0.0.1:1/none?sslmode=disable"
	want := "sessions would not be shared"
	cfg, err := adapt(fmt.Sprintf("{\n\tadmin off\n}\nhttp://127.0.0.1:%d {\n\tsession_auth {\n\t\tusers_db %s\n\t}\n}", freePort(t), url))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string][]byte{
		"Caddyfile": cfg,
		"JSON": fmt.Appendf(nil, `{"admin":{"disabled":true},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:%d"],"routes":[{"handle":[{"handler":"session_auth","users_db":%q}]}]}}}}}`,
			freePort(t), strings.Replace(url, "postgres://", "postgresql://", 1)),
	} {
		err := caddy.Load(c, true)
		if err == nil {
			caddy.Stop()
			t.Fatalf("%s: loaded PostgreSQL users without redis", name)
		}
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "redis") {
			t.Errorf("%s: error %q does not say %q", name, err, want)
		}
	}
}

func newTestClient() *http.Client {
	return &http.Client{
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// A users_db URL that does not parse is a start-up error naming users_db,
// without the password; so is a database whose schema is newer than the
// binary knows.
func TestPostgresBadURLAndSchema(t *testing.T) {
	rd := testredis.Start(t)
	for _, c := range []struct{ url, want string }{
		{"postgres://u:s3cret-pw@127.0.0.1:notaport/db", "users_db"},
		{"postgresql://u:s3cret-pw@127.0.0.1:5432/db?sslmode=sometimes", "users_db"},
	} {
		cfg := fmt.Sprintf(`{"admin":{"disabled":true},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:%d"],"routes":[{"handle":[{"handler":"session_auth","users_db":%q,"redis":%q}]}]}}}}}`,
			freePort(t), c.url, rd.URL())
		err := caddy.Load([]byte(cfg), true)
		if err == nil {
			caddy.Stop()
			t.Fatalf("%s: loaded", c.url)
		}
		t.Logf("%s: %v", c.url, err)
		if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("%s: error %q (want %q, no password)", c.url, err, c.want)
		}
	}

	pg := testpg.New(t)
	conn := pg.Conn(t)
	if _, err := conn.Exec(context.Background(), "CREATE TABLE session_auth_schema (version integer PRIMARY KEY, applied_at timestamptz); INSERT INTO session_auth_schema VALUES (999, now())"); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`{"admin":{"disabled":true},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:%d"],"routes":[{"handle":[{"handler":"session_auth","users_db":%q,"redis":%q}]}]}}}}}`,
		freePort(t), pg.URL, rd.URL())
	err := caddy.Load([]byte(cfg), true)
	if err == nil {
		caddy.Stop()
		t.Fatal("loaded a database with a newer schema")
	}
	if !strings.Contains(err.Error(), "newer") || !strings.Contains(err.Error(), "999") {
		t.Errorf("schema too new: %v", err)
	}
}
