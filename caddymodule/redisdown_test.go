package caddymodule_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// maxOutageAnswer is how long a request may take to be refused while
// Redis is down.
const maxOutageAnswer = 5 * time.Second

// assertUnavailable checks a transient-failure answer: 503 with a JSON
// detail, quickly, and no cookie touched.
func assertUnavailable(t *testing.T, what string, r *response, took time.Duration) {
	t.Helper()
	if r.StatusCode != 503 {
		t.Errorf("%s: %d %s, want 503", what, r.StatusCode, r.body)
		return
	}
	if d, _ := r.json(t)["detail"].(string); d == "" {
		t.Errorf("%s: 503 without a detail: %s", what, r.body)
	}
	if sc := r.Header["Set-Cookie"]; len(sc) != 0 {
		t.Errorf("%s: a transient failure touched cookies: %v", what, sc)
	}
	if took > maxOutageAnswer {
		t.Errorf("%s: took %v with Redis down", what, took)
	}
}

// Redis stopped mid-run: every request that needs it gets a quick 503 and
// keeps its cookie, bbolt's users are untouched, and service comes back by
// itself, old sessions included, from the first request after Redis does.
func TestRedisDownAndBack(t *testing.T) {
	srv := testredis.StartPersistent(t)
	if !srv.Private() {
		t.Skip("external Redis: cannot stop it")
	}
	// The throttles at their defaults: their counters are in Redis too.
	s := startCustomSite(t, siteConfig{redisURL: srv.URL()})
	sess := s.newUser(t, "survivor")
	store := caddymodule.UsersOf(s.dbPath)
	before, err := store.ByUsername(context.Background(), "survivor")
	if err != nil {
		t.Fatal(err)
	}
	// Leave several idle pooled connections, all dead once Redis goes.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { s.try(t, req{method: "GET", path: "/api/user/", session: sess}) })
	}
	wg.Wait()

	srv.Stop()
	pw := `{"old_password":"` + strongPassword + `","new_password":"N3w-Horse-Battery","new_password2":"N3w-Horse-Battery"}`
	for _, c := range []struct {
		name string
		q    req
	}{
		{"login", req{method: "POST", path: "/api/login/", body: credsJSON("survivor", strongPassword)}},
		{"register", req{method: "POST", path: "/api/register/", body: `{"username":"newbie","email":"n@example.com","password":"` + strongPassword + `","password2":"` + strongPassword + `"}`}},
		{"current user", req{method: "GET", path: "/api/user/", session: sess}},
		{"gated GET", req{method: "GET", path: "/app/page", session: sess}},
		{"gated POST", req{method: "POST", path: "/app/form", session: sess, csrf: true, body: `{}`}},
		{"logout", req{method: "POST", path: "/api/logout/", session: sess, csrf: true}},
		{"logout all", req{method: "POST", path: "/api/logout/all/", session: sess, csrf: true}},
		{"password change", req{method: "POST", path: "/api/password/", session: sess, csrf: true, body: pw}},
	} {
		var r *response
		took := timed(func() { r = s.do(t, c.q) })
		assertUnavailable(t, c.name, r, took)
		t.Logf("%s with Redis down: %d in %v", c.name, r.StatusCode, took.Round(time.Millisecond))
	}
	after, err := store.ByUsername(context.Background(), "survivor")
	if err != nil {
		t.Fatal(err)
	}
	if after.PasswordHash != before.PasswordHash || after.SessionEpoch != before.SessionEpoch ||
		!after.LastLogin.Equal(before.LastLogin) || !after.IsActive {
		t.Errorf("user changed during the outage: %+v -> %+v", before, after)
	}
	if all, _ := store.List(context.Background()); len(all) != 1 {
		t.Errorf("%d users after the outage, want 1", len(all))
	}

	srv.Restart()
	// The first request after Redis is back succeeds, with the old session.
	if r := s.do(t, req{method: "GET", path: "/app/page", session: sess}); r.StatusCode != 200 {
		t.Fatalf("first request after Redis came back: %d %s", r.StatusCode, r.body)
	}
	// A quick restart that no request noticed: every pooled connection is
	// dead, and still the first request succeeds (one retry, then the
	// idle connections are checked before use).
	for range 8 {
		wg.Go(func() { s.try(t, req{method: "GET", path: "/api/user/", session: sess}) })
	}
	wg.Wait()
	srv.Restart()
	if r := s.do(t, req{method: "GET", path: "/api/user/", session: sess}); r.StatusCode != 200 {
		t.Fatalf("first request after a quick Redis restart: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, req{method: "POST", path: "/api/logout/", session: sess, csrf: true}); r.StatusCode != 200 {
		t.Errorf("logout after Redis came back: %d %s", r.StatusCode, r.body)
	}
	s.login(t, "survivor", strongPassword)
}

// Caddy starts while Redis is unreachable, says so in its log, answers 503
// meanwhile, and serves once Redis is up, with nothing restarted.
func TestStartsWithoutRedis(t *testing.T) {
	srv := testredis.Start(t)
	if !srv.Private() {
		t.Skip("external Redis: cannot stop it")
	}
	srv.Stop()
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	var s *site
	took := timed(func() {
		s = startCustomSite(t, siteConfig{
			redisURL: srv.URL(),
			global:   "log {\n\t\toutput file " + logPath + "\n\t\tformat json\n\t}",
		})
	})
	if took > 10*time.Second {
		t.Errorf("start-up with Redis down took %v", took)
	}
	logged, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logged), "redis unreachable at start") || strings.Contains(string(logged), `"level":"fatal"`) {
		t.Errorf("log does not warn that Redis is unreachable:\n%s", logged)
	}
	var r *response
	took = timed(func() {
		r = s.do(t, req{method: "POST", path: "/api/login/", body: credsJSON("nobody", strongPassword)})
	})
	assertUnavailable(t, "login before Redis is up", r, took)

	srv.Restart()
	if r := s.register(t, "late", "late@example.com", strongPassword); r.StatusCode != 201 {
		t.Fatalf("register once Redis is up: %d %s", r.StatusCode, r.body)
	}
	sess := s.login(t, "late", strongPassword)
	if r := s.do(t, req{method: "GET", path: "/api/user/", session: sess}); r.StatusCode != 200 {
		t.Errorf("session once Redis is up: %d %s", r.StatusCode, r.body)
	}
}
