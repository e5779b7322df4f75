package caddymodule_test

import (
	"context"
	"strings"
	"testing"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// spoofed are identity headers a client might forge, in every spelling.
var spoofed = map[string]string{
	"X-Auth-User-Id":  "999",
	"x-auth-username": "admin",
	"X_Auth_Email":    "evil@example.com",
	"X_AUTH_USER_ID":  "998",
	"x-AUTH_username": "root",
	"X-Auth-Groups":   "admins",
	"x_auth_GROUPS":   "admins",
}

func TestGate(t *testing.T) {
	storeKinds(t, func(t *testing.T, redisURL string) {
		s := startSite(t, redisURL, "")

		// Anonymous: refused, spoofed headers or not.
		assertDenied(t, s.do(t, req{method: "GET", path: "/app/page", headers: spoofed}))
		assertDenied(t, s.do(t, req{method: "POST", path: "/app/page", body: `{}`}))
		r := s.do(t, req{method: "GET", path: "/app/page", session: &session{id: strings.Repeat("x", 43)}})
		assertDenied(t, r)
		if c := r.cookie("sessionid"); c == nil || c.MaxAge != -1 {
			t.Errorf("forged cookie not expired: %v", r.Header["Set-Cookie"])
		}

		sess := s.newUser(t, "gated")
		headers := map[string]string{"Cookie": "theme=dark; other=1"}
		for k, v := range spoofed {
			headers[k] = v
		}
		r = s.do(t, req{method: "GET", path: "/app/page?q=1", session: sess, headers: headers})
		if r.StatusCode != 200 {
			t.Fatalf("gated GET: %d %s", r.StatusCode, r.body)
		}
		e := r.echo(t)
		want := map[string]string{"X-Auth-User-Id": "1", "X-Auth-Username": "gated", "X-Auth-Email": "gated@example.com", "X-Auth-Groups": "",
			"X-Auth-Email-Verified": "false"}
		for k, v := range want {
			if got := e.Headers[k]; len(got) != 1 || got[0] != v {
				t.Errorf("upstream got %s = %v, want [%s]", k, got, v)
			}
		}
		for k := range e.Headers {
			n := strings.ReplaceAll(strings.ToLower(k), "_", "-")
			if _, ok := want[k]; strings.HasPrefix(n, "x-auth-") && !ok {
				t.Errorf("spoofed header %s reached the upstream: %v", k, e.Headers[k])
			}
		}
		cookies := strings.Join(e.Headers["Cookie"], "; ")
		if strings.Contains(cookies, "sessionid") || strings.Contains(cookies, sess.id) {
			t.Errorf("session cookie forwarded: %q", cookies)
		}
		if !strings.Contains(cookies, "theme=dark") || !strings.Contains(cookies, "csrftoken=") {
			t.Errorf("other cookies lost: %q", cookies)
		}

		// Unsafe methods need the CSRF token, as on the API.
		if r := s.do(t, req{method: "DELETE", path: "/app/thing/1", session: sess}); r.StatusCode != 403 ||
			string(r.body) != `{"detail":"CSRF Failed: CSRF token missing or incorrect."}` {
			t.Errorf("DELETE without token: %d %s", r.StatusCode, r.body)
		}
		if r := s.do(t, req{method: "DELETE", path: "/app/thing/1", session: sess, csrf: true}); r.StatusCode != 200 || r.echo(t).Method != "DELETE" {
			t.Errorf("DELETE with token: %d %s", r.StatusCode, r.body)
		}

		// An operator's changes to the user take effect at once.
		store := caddymodule.UsersOf(s.dbPath)
		if store == nil {
			t.Fatal("no users store for the site's DB")
		}
		bump := func(fn func(u *users.User)) {
			if _, err := store.Update(context.Background(), 1, func(u *users.User) error { fn(u); return nil }); err != nil {
				t.Fatal(err)
			}
		}
		bump(func(u *users.User) { u.IsActive = false })
		assertDenied(t, s.do(t, req{method: "GET", path: "/app/page", session: sess}))
		bump(func(u *users.User) { u.IsActive = true })
		if r := s.do(t, req{method: "GET", path: "/app/page", session: sess}); r.StatusCode != 200 {
			t.Errorf("reactivated user refused: %d", r.StatusCode)
		}
		bump(func(u *users.User) { u.SessionEpoch++ })
		assertDenied(t, s.do(t, req{method: "GET", path: "/app/page", session: sess}))
		if err := store.Delete(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		fresh := s.do(t, req{method: "GET", path: "/api/user/", session: sess})
		assertDenied(t, fresh)
	})
}
