package caddymodule_test

import (
	"encoding/json"
	"testing"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
)

func passwordBody(old, new1, new2 string) string {
	b, _ := json.Marshal(map[string]string{"old_password": old, "new_password": new1, "new_password2": new2})
	return string(b)
}

const newPassword = "Fr3sh-Staple-Orbit"

func TestPasswordChange(t *testing.T) {
	storeKinds(t, func(t *testing.T, redisURL string) {
		s := startCustomSite(t, siteConfig{redisURL: redisURL, extra: "login_throttle 3 100 1m 1m\nregister_throttle off"})
		a := s.newUser(t, "changer")
		b := s.login(t, "changer", strongPassword) // another device
		post := func(sess *session, csrf bool, body string) *response {
			return s.do(t, req{method: "POST", path: "/api/password/", session: sess, csrf: csrf, body: body})
		}

		cases := []struct {
			name, body, want string
		}{
			{"empty", `{}`, `{"old_password":["This field is required."],"new_password":["This field is required."],"new_password2":["This field is required."]}`},
			{"wrong old", passwordBody("not-my-password", newPassword, newPassword), `{"old_password":["Your old password was entered incorrectly. Please enter it again."]}`},
			{"mismatch", passwordBody(strongPassword, newPassword, newPassword+"x"), `{"new_password2":["The two password fields didn’t match."]}`},
			{"weak", passwordBody(strongPassword, "12345678", "12345678"), `{"new_password2":["This password is too common.","This password is entirely numeric."]}`},
			{"like the username", passwordBody(strongPassword, "changer1", "changer1"), `{"new_password2":["The password is too similar to the username."]}`},
			{"not a string", `{"old_password":"` + strongPassword + `","new_password":1,"new_password2":{}}`, `{"new_password":["Not a valid string."],"new_password2":["Not a valid string."]}`},
		}
		for _, c := range cases {
			if r := post(a, true, c.body); r.StatusCode != 400 || string(r.body) != c.want {
				t.Errorf("%s: %d %s\nwant 400 %s", c.name, r.StatusCode, r.body, c.want)
			}
		}
		// DRF's order: authentication, CSRF, then the method.
		assertDenied(t, post(nil, false, passwordBody(strongPassword, newPassword, newPassword)))
		if r := post(a, false, passwordBody(strongPassword, newPassword, newPassword)); r.StatusCode != 403 ||
			string(r.body) != `{"detail":"CSRF Failed: CSRF token missing or incorrect."}` {
			t.Errorf("without CSRF: %d %s", r.StatusCode, r.body)
		}
		if r := s.do(t, req{method: "GET", path: "/api/password/", session: a}); r.StatusCode != 405 {
			t.Errorf("GET: %d %s", r.StatusCode, r.body)
		} else {
			assertJSONHeaders(t, r, "POST, OPTIONS")
		}

		r := post(a, true, passwordBody(strongPassword, newPassword, newPassword))
		if r.StatusCode != 200 || string(r.body) != `{"detail":"New password has been saved."}` {
			t.Fatalf("change: %d %s", r.StatusCode, r.body)
		}
		c := r.cookie("sessionid")
		if c == nil || c.Value == a.id || c.MaxAge <= 0 {
			t.Fatalf("change did not rotate the session cookie: %v", r.Header["Set-Cookie"])
		}
		// This session goes on under the new token, with its CSRF token.
		rotated := &session{id: c.Value, csrfCookie: a.csrfCookie, token: a.token}
		if r := s.do(t, req{method: "POST", path: "/app/form", session: rotated, csrf: true, body: `{}`}); r.StatusCode != 200 {
			t.Errorf("rotated session: %d %s", r.StatusCode, r.body)
		}
		// Every other session ended, the old token of this one too.
		assertDenied(t, s.do(t, req{method: "GET", path: "/api/user/", session: a}))
		assertDenied(t, s.do(t, req{method: "GET", path: "/api/user/", session: b}))
		wantStatus(t, "old password", s.loginAs(t, "changer", strongPassword, nil), 400)
		s.login(t, "changer", newPassword)

		// Wrong old passwords count as failed logins (3 ban here; the
		// success above cleared the first one).
		for range 3 {
			wantStatus(t, "wrong old", post(rotated, true, passwordBody("guess", "Another-0ne-Here", "Another-0ne-Here")), 400)
		}
		hashes := caddymodule.CountHashes()
		assertThrottled(t, "guessing the old password", post(rotated, true, passwordBody(newPassword, "Another-0ne-Here", "Another-0ne-Here")), 60)
		if n := hashes(); n != 0 {
			t.Errorf("%d hashes for a throttled password change", n)
		}
	})
}

func TestLogoutAll(t *testing.T) {
	storeKinds(t, func(t *testing.T, redisURL string) {
		s := startSite(t, redisURL, "")
		a := s.newUser(t, "everywhere")
		b := s.login(t, "everywhere", strongPassword)
		other := s.newUser(t, "someone")

		assertDenied(t, s.do(t, req{method: "POST", path: "/api/logout/all/"}))
		if r := s.do(t, req{method: "POST", path: "/api/logout/all/", session: a}); r.StatusCode != 403 {
			t.Errorf("without CSRF: %d %s", r.StatusCode, r.body)
		}
		if r := s.do(t, req{method: "GET", path: "/api/logout/all/", session: a}); r.StatusCode != 405 {
			t.Errorf("GET: %d %s", r.StatusCode, r.body)
		} else {
			assertJSONHeaders(t, r, "POST, OPTIONS")
		}
		if r := s.do(t, req{method: "POST", path: "/api/logout/all"}); r.StatusCode != 308 || r.Header.Get("Location") != "/api/logout/all/" {
			t.Errorf("slash-less: %d %q", r.StatusCode, r.Header.Get("Location"))
		}

		r := s.do(t, req{method: "POST", path: "/api/logout/all/", session: a, csrf: true})
		if r.StatusCode != 200 || string(r.body) != `{"message":"Logged out of all sessions"}` {
			t.Fatalf("logout all: %d %s", r.StatusCode, r.body)
		}
		if c := r.cookie("sessionid"); c == nil || c.MaxAge != -1 {
			t.Errorf("cookie not expired: %v", r.Header["Set-Cookie"])
		}
		assertDenied(t, s.do(t, req{method: "GET", path: "/api/user/", session: a}))
		assertDenied(t, s.do(t, req{method: "GET", path: "/app/page", session: b}))
		if r := s.do(t, req{method: "GET", path: "/api/user/", session: other}); r.StatusCode != 200 {
			t.Errorf("another user's session ended: %d", r.StatusCode)
		}
		fresh := s.login(t, "everywhere", strongPassword)
		if r := s.do(t, req{method: "GET", path: "/api/user/", session: fresh}); r.StatusCode != 200 {
			t.Errorf("new login after logout all: %d %s", r.StatusCode, r.body)
		}
	})
}
