package caddymodule_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
)

const strongPassword = "Corr3ct-Horse-Battery"

func TestRegisterLoginUserLogout(t *testing.T) {
	storeKinds(t, func(t *testing.T, redisURL string) {
		s := startSite(t, redisURL, "")

		r := s.register(t, "  testuser ", "Test@EXAMPLE.com", strongPassword)
		if r.StatusCode != 201 {
			t.Fatalf("register: %d %s", r.StatusCode, r.body)
		}
		if got := string(r.body); got != `{"id":1,"username":"testuser","email":"Test@example.com"}` {
			t.Errorf("register body = %s", got)
		}
		if len(r.Header["Set-Cookie"]) != 0 {
			t.Errorf("register set cookies: %v", r.Header["Set-Cookie"])
		}
		assertJSONHeaders(t, r, "POST, OPTIONS")

		lr := s.do(t, req{method: "POST", path: "/api/login/", body: `{"username":"TESTUSER","password":"` + strongPassword + `"}`})
		if lr.StatusCode != 200 {
			t.Fatalf("login: %d %s", lr.StatusCode, lr.body)
		}
		v := lr.json(t)
		if v["message"] != "Login successful" || len(v["csrf_token"].(string)) != 64 {
			t.Errorf("login body = %s", lr.body)
		}
		if u := v["user"].(map[string]any); u["id"] != 1.0 || u["username"] != "testuser" || u["email"] != "Test@example.com" {
			t.Errorf("login user = %v", u)
		}
		sid, ct := lr.cookie("sessionid"), lr.cookie("csrftoken")
		if sid == nil || !sid.HttpOnly || sid.MaxAge != 1209600 || sid.Path != "/" || sid.SameSite != http.SameSiteLaxMode || sid.Secure {
			t.Errorf("sessionid cookie = %+v", sid)
		}
		if ct == nil || ct.HttpOnly || ct.MaxAge != 31449600 || ct.Path != "/" || ct.SameSite != http.SameSiteLaxMode || len(ct.Value) != 64 {
			t.Errorf("csrftoken cookie = %+v", ct)
		}
		if ct.Value == v["csrf_token"] {
			t.Error("cookie and body carry the same masked token")
		}
		sess := &session{id: sid.Value, csrfCookie: ct.Value, token: v["csrf_token"].(string)}

		for _, path := range []string{"/api/user/", "/api/protected/"} {
			r := s.do(t, req{method: "GET", path: path, session: sess})
			if r.StatusCode != 200 || string(r.body) != `{"id":1,"username":"testuser","email":"Test@example.com"}` {
				t.Errorf("GET %s: %d %s", path, r.StatusCode, r.body)
			}
			assertJSONHeaders(t, r, "GET, HEAD, OPTIONS")
			h := s.do(t, req{method: "HEAD", path: path, session: sess})
			if h.StatusCode != 200 || len(h.body) != 0 {
				t.Errorf("HEAD %s: %d %q", path, h.StatusCode, h.body)
			}
		}

		// The cookie's token works as well as the body's.
		out := s.do(t, req{method: "POST", path: "/api/logout/", session: &session{id: sess.id, csrfCookie: sess.csrfCookie, token: sess.csrfCookie}, csrf: true})
		if out.StatusCode != 200 || string(out.body) != `{"message":"Logout successful"}` {
			t.Fatalf("logout: %d %s", out.StatusCode, out.body)
		}
		if c := out.cookie("sessionid"); c == nil || c.MaxAge != -1 || c.Value != "" {
			t.Errorf("logout did not expire the cookie: %v", out.Header["Set-Cookie"])
		}
		if !strings.Contains(strings.Join(out.Header["Set-Cookie"], "\n"), "Max-Age=0") {
			t.Errorf("expired cookie lacks Max-Age=0: %v", out.Header["Set-Cookie"])
		}
		// The old cookie, replayed, is anonymous and gets expired.
		again := s.do(t, req{method: "GET", path: "/api/user/", session: sess})
		assertDenied(t, again)
		if c := again.cookie("sessionid"); c == nil || c.MaxAge != -1 {
			t.Errorf("replayed cookie not expired: %v", again.Header["Set-Cookie"])
		}
	})
}

func assertJSONHeaders(t testing.TB, r *response, allow string) {
	t.Helper()
	want := map[string]string{
		"Content-Type":           "application/json",
		"Vary":                   "Accept, Cookie, Origin",
		"Allow":                  allow,
		"X-Frame-Options":        "DENY",
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "same-origin",
	}
	for k, v := range want {
		if got := r.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func assertDenied(t testing.TB, r *response) {
	t.Helper()
	if r.StatusCode != 403 || string(r.body) != `{"detail":"Authentication credentials were not provided."}` {
		t.Errorf("want 403 not-authenticated, got %d %s", r.StatusCode, r.body)
	}
	if r.Header.Get("WWW-Authenticate") != "" {
		t.Error("403 carries WWW-Authenticate")
	}
}

func TestRegisterErrors(t *testing.T) {
	s := startSite(t, "", "")
	if r := s.register(t, "taken", "t@example.com", strongPassword); r.StatusCode != 201 {
		t.Fatalf("setup: %d %s", r.StatusCode, r.body)
	}
	long := strings.Repeat("a", 151)
	cases := []struct {
		name  string
		body  string
		ctype string
		want  int
		body2 string
	}{
		{"empty object", `{}`, "", 400, `{"username":["This field is required."],"email":["This field is required."],"password":["This field is required."],"password2":["This field is required."]}`},
		{"blank fields", `{"username":" ","email":"","password":"","password2":""}`, "", 400, `{"username":["This field may not be blank."],"email":["This field may not be blank."],"password":["This field may not be blank."],"password2":["This field may not be blank."]}`},
		{"taken any case", `{"username":"TAKEN","email":"a@example.com","password":"` + strongPassword + `","password2":"` + strongPassword + `"}`, "", 400, `{"username":["A user with that username already exists."]}`},
		{"taken fullwidth", `{"username":"ｔａｋｅｎ","email":"a@example.com","password":"` + strongPassword + `","password2":"` + strongPassword + `"}`, "", 400, `{"username":["A user with that username already exists."]}`},
		{"bad username", `{"username":"bad name!","email":"a@example.com","password":"` + strongPassword + `","password2":"` + strongPassword + `"}`, "", 400, `{"username":["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."]}`},
		{"long username", `{"username":"` + long + `","email":"a@example.com","password":"` + strongPassword + `","password2":"` + strongPassword + `"}`, "", 400, `{"username":["Ensure this field has no more than 150 characters."]}`},
		{"nul in username", `{"username":"a\u0000b","email":"a@example.com","password":"` + strongPassword + `","password2":"` + strongPassword + `"}`, "", 400, `{"username":["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."]}`},
		{"bad email", `{"username":"newbie","email":"not-an-email","password":"` + strongPassword + `","password2":"` + strongPassword + `"}`, "", 400, `{"email":["Enter a valid email address."]}`},
		{"weak password", `{"username":"newbie","email":"a@example.com","password":"1234567","password2":"1234567"}`, "", 400, `{"password":["This password is too short. It must contain at least 8 characters.","This password is too common.","This password is entirely numeric."]}`},
		{"similar password", `{"username":"longusername","email":"a@example.com","password":"longusername1","password2":"longusername1"}`, "", 400, `{"password":["The password is too similar to the username."]}`},
		{"mismatch", `{"username":"newbie","email":"a@example.com","password":"` + strongPassword + `","password2":"other-Pass-42x"}`, "", 400, `{"password":["Password fields didn't match."]}`},
		{"mismatch hidden by field errors", `{"username":"","email":"a@example.com","password":"` + strongPassword + `","password2":"other-Pass-42x"}`, "", 400, `{"username":["This field may not be blank."]}`},
		{"number for string", `{"username":12,"email":"a@example.com","password":"` + strongPassword + `","password2":"` + strongPassword + `"}`, "", 400, `{"username":["Not a valid string."]}`},
		{"object for string", `{"username":"newbie","email":{"a":1},"password":"` + strongPassword + `","password2":"` + strongPassword + `"}`, "", 400, `{"email":["Not a valid string."]}`},
		{"null", `{"username":null,"email":"a@example.com","password":"` + strongPassword + `","password2":"` + strongPassword + `"}`, "", 400, `{"username":["This field may not be null."]}`},
		{"list body", `[1,2]`, "", 400, `{"non_field_errors":["Invalid data. Expected a dictionary, but got list."]}`},
		{"malformed", `{"username": `, "", 400, ``},
		{"duplicate keys", `{"username":"a","username":"b"}`, "", 400, `{"detail":"JSON parse error - duplicate key \"username\""}`},
		{"trailing data", `{} {}`, "", 400, `{"detail":"JSON parse error - extra data after the JSON value"}`},
		{"invalid utf-8", "{\"username\":\"\xff\"}", "", 400, `{"detail":"JSON parse error - invalid UTF-8 in request body"}`},
		{"text/plain", `hello`, "text/plain", 415, `{"detail":"Unsupported media type \"text/plain\" in request."}`},
		{"too large", `{"username":"` + strings.Repeat("x", 70<<10) + `"}`, "", 413, ``},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.do(t, req{method: "POST", path: "/api/register/", body: c.body, ctype: c.ctype})
			if r.StatusCode != c.want {
				t.Fatalf("status %d, want %d: %s", r.StatusCode, c.want, r.body)
			}
			if c.body2 != "" && string(r.body) != c.body2 {
				t.Errorf("body\n got %s\nwant %s", r.body, c.body2)
			}
			if r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
			}
			v := r.json(t)
			if d, ok := v["detail"].(string); ok && c.name == "malformed" && !strings.HasPrefix(d, "JSON parse error - ") {
				t.Errorf("detail %q", d)
			}
		})
	}
}

func TestFormAndMultipartBodies(t *testing.T) {
	s := startSite(t, "", "")
	form := "username=formuser&email=f%40example.com&password=" + strongPassword + "&password2=" + strongPassword
	if r := s.do(t, req{method: "POST", path: "/api/register/", body: form, ctype: "application/x-www-form-urlencoded"}); r.StatusCode != 201 {
		t.Fatalf("form register: %d %s", r.StatusCode, r.body)
	}
	mp := "--XX\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nformuser\r\n" +
		"--XX\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n" + strongPassword + "\r\n--XX--\r\n"
	r := s.do(t, req{method: "POST", path: "/api/login/", body: mp, ctype: "multipart/form-data; boundary=XX"})
	if r.StatusCode != 200 {
		t.Fatalf("multipart login: %d %s", r.StatusCode, r.body)
	}
}

func TestLoginErrors(t *testing.T) {
	s := startSite(t, "", "")
	s.register(t, "known", "k@example.com", strongPassword)
	bad := `{"non_field_errors":["Unable to log in with provided credentials."]}`
	cases := []struct{ name, body, want string }{
		{"wrong password", `{"username":"known","password":"wrong-password"}`, bad},
		{"unknown user", `{"username":"nobody","password":"wrong-password"}`, bad},
		{"missing", `{}`, `{"username":["This field is required."],"password":["This field is required."]}`},
		{"blank", `{"username":"","password":"x"}`, `{"username":["This field may not be blank."]}`},
	}
	for _, c := range cases {
		r := s.do(t, req{method: "POST", path: "/api/login/", body: c.body})
		if r.StatusCode != 400 || string(r.body) != c.want {
			t.Errorf("%s: %d %s", c.name, r.StatusCode, r.body)
		}
		if len(r.Header["Set-Cookie"]) != 0 {
			t.Errorf("%s: set cookies %v", c.name, r.Header["Set-Cookie"])
		}
	}
}

func TestMethodsAndRedirects(t *testing.T) {
	storeKinds(t, func(t *testing.T, redisURL string) {
		s := startSite(t, redisURL, "")
		sess := s.newUser(t, "methods")
		cases := []struct {
			method, path string
			sess         *session
			csrf         bool
			status       int
			body         string
		}{
			{"GET", "/api/login/", nil, false, 405, `{"detail":"Method \"GET\" not allowed."}`},
			{"PUT", "/api/register/", nil, false, 405, `{"detail":"Method \"PUT\" not allowed."}`},
			// Auth comes before the method on protected endpoints.
			{"PUT", "/api/user/", nil, false, 403, `{"detail":"Authentication credentials were not provided."}`},
			{"GET", "/api/logout/", nil, false, 403, `{"detail":"Authentication credentials were not provided."}`},
			{"DELETE", "/api/protected/", nil, false, 403, `{"detail":"Authentication credentials were not provided."}`},
			{"GET", "/api/logout/", sess, false, 405, `{"detail":"Method \"GET\" not allowed."}`},
			{"PUT", "/api/user/", sess, true, 405, `{"detail":"Method \"PUT\" not allowed."}`},
			// CSRF comes before the method for a live session.
			{"PUT", "/api/user/", sess, false, 403, `{"detail":"CSRF Failed: CSRF token missing or incorrect."}`},
		}
		for _, c := range cases {
			r := s.do(t, req{method: c.method, path: c.path, session: c.sess, csrf: c.csrf})
			if r.StatusCode != c.status || string(r.body) != c.body {
				t.Errorf("%s %s: %d %s", c.method, c.path, r.StatusCode, r.body)
			}
		}
		r := s.do(t, req{method: "POST", path: "/api/login?next=x", body: `{}`})
		if r.StatusCode != 308 || r.Header.Get("Location") != "/api/login/?next=x" {
			t.Errorf("slash redirect: %d %q", r.StatusCode, r.Header.Get("Location"))
		}
		o := s.do(t, req{method: "OPTIONS", path: "/api/login/"})
		if o.StatusCode != 200 || o.json(t)["name"] != "Login" || o.Header.Get("Allow") != "POST, OPTIONS" {
			t.Errorf("OPTIONS: %d %s", o.StatusCode, o.body)
		}
	})
}

func TestCSRF(t *testing.T) {
	storeKinds(t, func(t *testing.T, redisURL string) {
		s := startSite(t, redisURL, "cors_origins http://localhost:3000\n csrf_trusted_origins https://trusted.example")
		sess := s.newUser(t, "csrfuser")
		noCookie := &session{id: sess.id, token: sess.token}
		cases := []struct {
			name    string
			sess    *session
			csrf    bool
			headers map[string]string
			status  int
			body    string
		}{
			{"no token", sess, false, nil, 403, `{"detail":"CSRF Failed: CSRF token missing or incorrect."}`},
			{"no cookie", noCookie, true, nil, 403, `{"detail":"CSRF Failed: CSRF cookie not set."}`},
			{"forged token", &session{id: sess.id, csrfCookie: sess.csrfCookie, token: strings.Repeat("a", 64)}, true, nil, 403, `{"detail":"CSRF Failed: CSRF token missing or incorrect."}`},
			{"truncated token", &session{id: sess.id, csrfCookie: sess.csrfCookie, token: sess.token[:40]}, true, nil, 403, `{"detail":"CSRF Failed: CSRF token missing or incorrect."}`},
			{"evil origin", sess, true, map[string]string{"Origin": "https://evil.example"}, 403, `{"detail":"CSRF Failed: Origin checking failed - https://evil.example does not match any trusted origins."}`},
			{"cors origin", sess, true, map[string]string{"Origin": "http://localhost:3000"}, 200, ``},
			{"trusted origin", sess, true, map[string]string{"Origin": "https://trusted.example"}, 200, ``},
			{"own origin", sess, true, map[string]string{"Origin": s.base}, 200, ``},
		}
		for _, c := range cases {
			r := s.do(t, req{method: "POST", path: "/some/app/path", session: c.sess, csrf: c.csrf, headers: c.headers})
			if r.StatusCode != c.status || (c.body != "" && string(r.body) != c.body) {
				t.Errorf("%s: %d %s", c.name, r.StatusCode, r.body)
			}
		}
		// A token from a previous login no longer works: each login rotates the secret.
		second := s.login(t, "csrfuser", strongPassword)
		stale := &session{id: second.id, csrfCookie: second.csrfCookie, token: sess.token}
		if r := s.do(t, req{method: "POST", path: "/api/logout/", session: stale, csrf: true}); r.StatusCode != 403 {
			t.Errorf("old CSRF token accepted: %d %s", r.StatusCode, r.body)
		}
		// Logging in again with a live session needs the token too.
		body := `{"username":"csrfuser","password":"` + strongPassword + `"}`
		if r := s.do(t, req{method: "POST", path: "/api/login/", body: body, session: second}); r.StatusCode != 403 {
			t.Errorf("re-login without CSRF: %d %s", r.StatusCode, r.body)
		}
		if r := s.do(t, req{method: "POST", path: "/api/login/", body: body, session: second, csrf: true}); r.StatusCode != 200 {
			t.Errorf("re-login with CSRF: %d %s", r.StatusCode, r.body)
		} else if r.cookie("sessionid").Value == second.id {
			t.Error("re-login kept the session token")
		} else if old := s.do(t, req{method: "GET", path: "/api/user/", session: second}); old.StatusCode != 403 {
			t.Errorf("session replaced by re-login still live: %d", old.StatusCode)
		}
	})
}

func TestSessionsAreIndependent(t *testing.T) {
	storeKinds(t, func(t *testing.T, redisURL string) {
		s := startSite(t, redisURL, "")
		a := s.newUser(t, "multi")
		b := s.login(t, "multi", strongPassword)
		if a.id == b.id {
			t.Fatal("two logins share a token")
		}
		if r := s.do(t, req{method: "POST", path: "/api/logout/", session: a, csrf: true}); r.StatusCode != 200 {
			t.Fatalf("logout a: %d %s", r.StatusCode, r.body)
		}
		if r := s.do(t, req{method: "GET", path: "/api/user/", session: b}); r.StatusCode != 200 {
			t.Errorf("logout of one session ended another: %d", r.StatusCode)
		}
		// A token the client invents is never adopted.
		forged := &session{id: strings.Repeat("A", 43)}
		r := s.do(t, req{method: "POST", path: "/api/login/", session: forged, body: `{"username":"multi","password":"` + strongPassword + `"}`})
		if r.StatusCode != 200 || r.cookie("sessionid").Value == forged.id {
			t.Errorf("login with a chosen token: %d %v", r.StatusCode, r.Header["Set-Cookie"])
		}
	})
}

func TestConcurrentRegistrationOfOneName(t *testing.T) {
	// This is about uniqueness, not the bounded wait for a hashing slot:
	// 50 argon2 hashes under the race detector on a busy machine can queue
	// past the default wait.
	defer caddymodule.SetHashWait(time.Minute)()
	s := startSite(t, "", "")
	var wg sync.WaitGroup
	statuses := make(chan int, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.register(t, "racer", fmt.Sprintf("r%d@example.com", i), strongPassword)
			statuses <- r.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for c := range statuses {
		counts[c]++
	}
	if counts[201] != 1 || counts[400] != 49 {
		t.Errorf("statuses = %v, want one 201 and 49 400", counts)
	}
}
