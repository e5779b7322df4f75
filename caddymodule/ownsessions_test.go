package caddymodule_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

type sessionEntry struct {
	ID        string    `json:"id"`
	Created   time.Time `json:"created"`
	LastSeen  time.Time `json:"last_seen"`
	ClientIP  string    `json:"client_ip"`
	UserAgent string    `json:"user_agent"`
	Current   bool      `json:"current"`
}

// loginUA logs in with a user agent and returns the session.
func (s *site) loginUA(t testing.TB, username, password, ua string) *session {
	t.Helper()
	return sessionOf(t, s.do(t, req{method: "POST", path: "/api/login/", body: jsonBody(map[string]string{"username": username, "password": password}),
		headers: map[string]string{"User-Agent": ua}}))
}

func (s *site) sessionList(t testing.TB, sess *session) []sessionEntry {
	t.Helper()
	r := s.do(t, req{method: "GET", path: "/api/sessions/", session: sess})
	if r.StatusCode != 200 {
		t.Fatalf("GET /api/sessions/: %d %s", r.StatusCode, r.body)
	}
	var list []sessionEntry
	if err := json.Unmarshal(r.body, &list); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	return list
}

// Own sessions through a real Caddy on both session stores: the list
// (opaque ids, current, IP, user agent), ending one (CSRF-checked, 204),
// nobody else's, and the list following logout and logout/all.
func TestOwnSessions(t *testing.T) {
	backendsAndStores(t, func(t *testing.T, c siteConfig) {
		s := startWith(t, c, "")
		if r := s.register(t, "gil", "gil@example.com", strongPassword); r.StatusCode != 201 {
			t.Fatalf("register: %d", r.StatusCode)
		}
		a := s.loginUA(t, "gil", strongPassword, "Browser A/1.0")
		b := s.loginUA(t, "gil", strongPassword, "Browser B/2.0")
		other := s.newUser(t, "hal")

		list := s.sessionList(t, a)
		if len(list) != 2 {
			t.Fatalf("%d sessions listed, want 2: %+v", len(list), list)
		}
		var idA, idB string
		for _, e := range list {
			if e.ID == "" || strings.Contains(e.ID, a.id) || strings.Contains(e.ID, b.id) || e.ID == a.id || e.ID == b.id {
				t.Fatalf("session id %q gives away a token", e.ID)
			}
			if e.ClientIP != "127.0.0.1" || e.Created.IsZero() || e.LastSeen.Before(e.Created) {
				t.Errorf("entry %+v", e)
			}
			switch e.UserAgent {
			case "Browser A/1.0":
				idA = e.ID
				if !e.Current {
					t.Error("the caller's own session is not current")
				}
			case "Browser B/2.0":
				idB = e.ID
				if e.Current {
					t.Error("another session is marked current")
				}
			default:
				t.Errorf("user agent %q", e.UserAgent)
			}
		}
		if idA == "" || idB == "" {
			t.Fatalf("sessions not told apart: %+v", list)
		}
		if r := s.do(t, req{method: "GET", path: "/api/sessions/"}); r.StatusCode != 403 {
			t.Fatalf("anonymous list: %d", r.StatusCode)
		}
		// Nobody ends a session that is not theirs.
		if r := s.do(t, req{method: "DELETE", path: "/api/sessions/" + idB + "/", session: other, csrf: true}); r.StatusCode != 404 {
			t.Fatalf("another user's DELETE: %d %s", r.StatusCode, r.body)
		}
		if r := s.do(t, req{method: "DELETE", path: "/api/sessions/" + idB + "/", session: a}); r.StatusCode != 403 || !strings.Contains(string(r.body), "CSRF") {
			t.Fatalf("DELETE without the CSRF token: %d %s", r.StatusCode, r.body)
		}
		if r := s.do(t, req{method: "DELETE", path: "/api/sessions/nope/", session: a, csrf: true}); r.StatusCode != 404 {
			t.Fatalf("DELETE of an unknown id: %d", r.StatusCode)
		}
		if r := s.do(t, req{method: "DELETE", path: "/api/sessions/" + idB + "/", session: a, csrf: true}); r.StatusCode != 204 || len(r.body) != 0 {
			t.Fatalf("DELETE: %d %s", r.StatusCode, r.body)
		}
		if s.whoami(t, b) != 403 {
			t.Fatal("the ended session still works")
		}
		if s.whoami(t, a) != 200 || s.whoami(t, other) != 200 {
			t.Fatal("ending one session ended another")
		}
		if list := s.sessionList(t, a); len(list) != 1 || list[0].ID != idA {
			t.Fatalf("after DELETE: %+v", list)
		}
		// Ending the current one logs the caller out.
		r := s.do(t, req{method: "DELETE", path: "/api/sessions/" + idA, session: a, csrf: true})
		if r.StatusCode != 204 || r.cookie("sessionid") == nil || r.cookie("sessionid").MaxAge >= 0 {
			t.Fatalf("DELETE of the current session: %d, cookie %v", r.StatusCode, r.Header["Set-Cookie"])
		}
		if s.whoami(t, a) != 403 {
			t.Fatal("the current session outlived its DELETE")
		}
		// logout and logout/all keep the list right.
		sc := s.loginUA(t, "gil", strongPassword, "C")
		d := s.loginUA(t, "gil", strongPassword, "D")
		if r := s.do(t, req{method: "POST", path: "/api/logout/", session: d, csrf: true}); r.StatusCode != 200 {
			t.Fatalf("logout: %d", r.StatusCode)
		}
		if list := s.sessionList(t, sc); len(list) != 1 || list[0].UserAgent != "C" {
			t.Fatalf("after logout: %+v", list)
		}
		e := s.loginUA(t, "gil", strongPassword, "E")
		if r := s.do(t, req{method: "POST", path: "/api/logout/all/", session: sc, csrf: true}); r.StatusCode != 200 {
			t.Fatalf("logout/all: %d", r.StatusCode)
		}
		if s.whoami(t, e) != 403 {
			t.Fatal("logout/all left a session")
		}
		f := s.loginUA(t, "gil", strongPassword, "F")
		if list := s.sessionList(t, f); len(list) != 1 || list[0].UserAgent != "F" {
			t.Fatalf("after logout/all: %+v", list)
		}
		// A password change keeps the caller's session (listed) only.
		g := s.loginUA(t, "gil", strongPassword, "G")
		r = s.do(t, req{method: "POST", path: "/api/password/", session: g, csrf: true,
			body: jsonBody(map[string]string{"old_password": strongPassword, "new_password": "N3w-Secret-Words", "new_password2": "N3w-Secret-Words"})})
		if r.StatusCode != 200 {
			t.Fatalf("password change: %d %s", r.StatusCode, r.body)
		}
		g.id = r.cookie("sessionid").Value
		if list := s.sessionList(t, g); len(list) != 1 || !list[0].Current {
			t.Fatalf("after a password change: %+v", list)
		}
	})
}
