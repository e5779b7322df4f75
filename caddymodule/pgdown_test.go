package caddymodule_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// pgOutageRequests are the requests that need the users database, for a
// logged-in sess of user name.
func pgOutageRequests(name string, sess *session) []struct {
	name string
	q    req
} {
	pw := `{"old_password":"` + strongPassword + `","new_password":"N3w-Horse-Battery","new_password2":"N3w-Horse-Battery"}`
	return []struct {
		name string
		q    req
	}{
		{"gated GET", req{method: "GET", path: "/app/page", session: sess}},
		{"current user", req{method: "GET", path: "/api/user/", session: sess}},
		{"login", req{method: "POST", path: "/api/login/", body: credsJSON(name, strongPassword)}},
		{"register", req{method: "POST", path: "/api/register/", body: `{"username":"newbie","email":"n@example.com","password":"` + strongPassword + `","password2":"` + strongPassword + `"}`}},
		{"gated POST", req{method: "POST", path: "/app/form", session: sess, csrf: true, body: `{}`}},
		{"logout all", req{method: "POST", path: "/api/logout/all/", session: sess, csrf: true}},
		{"password change", req{method: "POST", path: "/api/password/", session: sess, csrf: true, body: pw}},
	}
}

// PostgreSQL down, then hung, under a running Caddy: every request that
// needs a user gets the same 503 JSON as a Redis outage within 5 s, keeps
// its cookies, nothing is written, the health endpoint says so, and the
// first request after PostgreSQL is back succeeds with the old session.
func TestPostgresDownAndBack(t *testing.T) {
	pg := testpg.New(t)
	proxy, url := testpg.Through(t, pg.URL)
	rd := testredis.Start(t)
	s := startCustomSite(t, siteConfig{redisURL: rd.URL(), usersDB: url})
	sess := s.newUser(t, "survivor")
	store := caddymodule.UsersOf(url)
	before, err := store.ByUsername(context.Background(), "survivor")
	if err != nil {
		t.Fatal(err)
	}

	for _, fault := range []struct {
		name       string
		start, end func()
	}{
		{"down", proxy.Cut, proxy.Restore},
		{"hung", proxy.Freeze, proxy.Thaw},
	} {
		fault.start()
		for i, c := range pgOutageRequests("survivor", sess) {
			if fault.name == "hung" && i%2 == 1 {
				continue // each waits out the timeout (3 s): half of them will do
			}
			var r *response
			took := timed(func() { r = s.do(t, c.q) })
			assertUnavailable(t, fault.name+": "+c.name, r, took)
			t.Logf("PostgreSQL %s: %s: %d in %v", fault.name, c.name, r.StatusCode, took.Round(time.Millisecond))
		}
		var code int
		var h map[string]any
		took := timed(func() { code, h = s.health(t) })
		if code != 503 || h["users_db"] != "unavailable" || h["status"] != "unavailable" {
			t.Errorf("PostgreSQL %s: health %d %v", fault.name, code, h)
		}
		if took > maxOutageAnswer {
			t.Errorf("PostgreSQL %s: health took %v", fault.name, took)
		}
		fault.end()
		// The first request after PostgreSQL is back succeeds, with the
		// old session.
		var r *response
		took = timed(func() { r = s.do(t, req{method: "GET", path: "/app/page", session: sess}) })
		if r.StatusCode != 200 || r.echo(t).Headers["X-Auth-Username"][0] != "survivor" {
			t.Fatalf("PostgreSQL %s: first request after it is back: %d %s", fault.name, r.StatusCode, r.body)
		}
		t.Logf("PostgreSQL %s: first request after it is back: 200 in %v", fault.name, took.Round(time.Millisecond))
	}
	after, err := store.ByUsername(context.Background(), "survivor")
	if err != nil {
		t.Fatal(err)
	}
	if after.PasswordHash != before.PasswordHash || after.SessionEpoch != before.SessionEpoch || !after.IsActive {
		t.Errorf("user changed during the outages: %+v -> %+v", before, after)
	}
	if all, _ := store.List(context.Background()); len(all) != 1 {
		t.Errorf("%d users after the outages, want 1 (nothing written half)", len(all))
	}
	if r := s.do(t, req{method: "POST", path: "/api/logout/", session: sess, csrf: true}); r.StatusCode != 200 {
		t.Errorf("logout after PostgreSQL came back: %d %s", r.StatusCode, r.body)
	}
	s.login(t, "survivor", strongPassword)
	if code, h := s.health(t); code != 200 {
		time.Sleep(1100 * time.Millisecond) // the health result is kept a second
		if code, h = s.health(t); code != 200 {
			t.Errorf("health after the outages: %d %v", code, h)
		}
	}
}

// Caddy starts while PostgreSQL is unreachable (the schema cannot even be
// created), answers 503 meanwhile, and serves once it is up, nothing
// restarted.
func TestStartsWithoutPostgres(t *testing.T) {
	pg := testpg.New(t)
	proxy, url := testpg.Through(t, pg.URL)
	proxy.Cut()
	rd := testredis.Start(t)
	var s *site
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	took := timed(func() {
		s = startCustomSite(t, siteConfig{redisURL: rd.URL(), usersDB: url, extra: throttlesOff,
			global: "log {\n\t\toutput file " + logFile + "\n\t}"})
	})
	t.Logf("Caddy started with PostgreSQL down in %v", took.Round(time.Millisecond))
	if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), "PostgreSQL unreachable at start") {
		t.Errorf("the log does not say PostgreSQL is unreachable:\n%s", b)
	}
	var r *response
	took = timed(func() { r = s.register(t, "early", "early@example.com", strongPassword) })
	assertUnavailable(t, "register with PostgreSQL down", r, took)
	if code, h := s.health(t); code != 503 || h["users_db"] != "unavailable" {
		t.Errorf("health: %d %v", code, h)
	}
	proxy.Restore()
	if r := s.register(t, "early", "early@example.com", strongPassword); r.StatusCode != 201 {
		t.Fatalf("first registration after PostgreSQL came up: %d %s", r.StatusCode, r.body)
	}
	sess := s.login(t, "early", strongPassword)
	if r := s.do(t, req{method: "GET", path: "/app/page", session: sess}); r.StatusCode != 200 {
		t.Errorf("gated: %d %s", r.StatusCode, r.body)
	}
}
