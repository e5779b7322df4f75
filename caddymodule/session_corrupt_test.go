package caddymodule_test

import (
	"testing"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
)

// A session record in bbolt that does not decode is no session: the
// request is anonymous and the cookie expired, not a 503 on every request
// until the cleanup removes the record.
func TestCorruptBoltSessionIsNoSession(t *testing.T) {
	s := startSite(t, "", "")
	sess := s.newUser(t, "torn")
	if err := caddymodule.CorruptSession(s.dbPath, sess.id); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/user/", "/app"} {
		r := s.do(t, req{method: "GET", path: path, session: sess})
		assertDenied(t, r)
		if c := r.cookie("sessionid"); c == nil || c.MaxAge >= 0 {
			t.Errorf("GET %s: the cookie of a corrupt session was not expired: %v", path, r.Header["Set-Cookie"])
		}
	}
	// Logging in with that cookie still works, and the new session too.
	b := s.do(t, req{method: "POST", path: "/api/login/", session: sess, body: credsJSON("torn", strongPassword)})
	wantStatus(t, "login over a corrupt session", b, 200)
	// (The stale cookie's expiry comes first, then the new one: the last
	// Set-Cookie of a name wins.)
	var fresh *session
	for _, c := range b.Cookies() {
		if c.Name == "sessionid" {
			fresh = &session{id: c.Value}
		}
	}
	wantStatus(t, "the new session", s.do(t, req{method: "GET", path: "/api/user/", session: fresh}), 200)
}
