package caddymodule_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Bad input of every kind gets a clear 4xx with a JSON body (or, for what
// Go's HTTP server refuses before Caddy sees it, Go's own 4xx), never a 5xx.
func TestBadInput(t *testing.T) {
	s := startSite(t, "", "")
	sess := s.newUser(t, "target")
	wantUser := `{"id":1,"username":"target","email":"target@example.com"}`
	reg := func(fields string) string {
		return `{` + fields + `,"email":"x@example.com","password":"` + strongPassword + `","password2":"` + strongPassword + `"}`
	}
	withSession := func(id string) *session { return &session{id: id, csrfCookie: sess.csrfCookie, token: sess.token} }
	withToken := func(token string) *session { return &session{id: sess.id, csrfCookie: sess.csrfCookie, token: token} }
	const csrfBad = `{"detail":"CSRF Failed: CSRF token missing or incorrect."}`
	const denied = `{"detail":"Authentication credentials were not provided."}`
	const notString = `"Not a valid string."`
	const badName = `{"username":["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."]}`

	cases := []struct {
		name   string
		q      req
		status int
		body   string // exact body, or a substring when prefixed with "~"
	}{
		// Sizes.
		{"body over 64 KiB", req{method: "POST", path: "/api/login/", body: `{"username":"` + strings.Repeat("a", 64<<10) + `"}`}, 413, `~Request body is too large`},
		{"form over 64 KiB", req{method: "POST", path: "/api/login/", ctype: "application/x-www-form-urlencoded", body: "username=" + strings.Repeat("a", 64<<10)}, 413, `~too large`},
		{"multipart over 64 KiB", req{method: "POST", path: "/api/login/", ctype: "multipart/form-data; boundary=XX",
			body: "--XX\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\n" + strings.Repeat("a", 64<<10) + "\r\n--XX--\r\n"}, 413, `~too large`},
		{"huge username within the limit", req{method: "POST", path: "/api/register/", body: reg(`"username":"` + strings.Repeat("a", 60<<10) + `"`)}, 400, `{"username":["Ensure this field has no more than 150 characters."]}`},
		{"many keys", req{method: "POST", path: "/api/login/", body: manyKeys(4000)}, 400, `{"username":["This field is required."],"password":["This field is required."]}`},

		// Encoding and characters.
		{"invalid UTF-8 in JSON", req{method: "POST", path: "/api/login/", body: "{\"username\":\"\xc3\x28\",\"password\":\"x\"}"}, 400, `{"detail":"JSON parse error - invalid UTF-8 in request body"}`},
		{"invalid UTF-8 in a form", req{method: "POST", path: "/api/login/", ctype: "application/x-www-form-urlencoded", body: "username=%C3%28&password=x"}, 400, `{"username":[` + notString + `]}`},
		{"NUL in username", req{method: "POST", path: "/api/register/", body: reg(`"username":"ab\u0000"`)}, 400, badName},
		{"control character in username", req{method: "POST", path: "/api/register/", body: reg(`"username":"a\u0007b"`)}, 400, badName},
		{"bidi override in username", req{method: "POST", path: "/api/register/", body: reg(`"username":"adm\u202enimi"`)}, 400, badName},
		{"zero-width space in username", req{method: "POST", path: "/api/register/", body: reg(`"username":"tar\u200bget"`)}, 400, badName},
		{"control character in email", req{method: "POST", path: "/api/register/", body: `{"username":"newname","email":"a\u0001@example.com","password":"` + strongPassword + `","password2":"` + strongPassword + `"}`}, 400, `{"email":["Enter a valid email address."]}`},
		{"fullwidth look-alike is taken", req{method: "POST", path: "/api/register/", body: reg(`"username":"ＴＡＲＧＥＴ"`)}, 400, `{"username":["A user with that username already exists."]}`},
		{"ligature is normalised", req{method: "POST", path: "/api/register/", body: reg(`"username":"pro\ufb01le"`)}, 201, `{"id":2,"username":"profile","email":"x@example.com"}`},
		{"ligature twin is taken", req{method: "POST", path: "/api/register/", body: reg(`"username":"PROFILE"`)}, 400, `{"username":["A user with that username already exists."]}`},
		{"circled look-alike is taken", req{method: "POST", path: "/api/register/", body: reg(`"username":"ⓣⓐⓡⓖⓔⓣ"`)}, 400, `{"username":["A user with that username already exists."]}`},

		// JSON shapes.
		{"deeply nested beyond the decoder", req{method: "POST", path: "/api/login/", body: `{"username":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`}, 400, `~JSON parse error - `},
		{"deeply nested within the decoder", req{method: "POST", path: "/api/login/", body: `{"username":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `,"password":"x"}`}, 400, `{"username":[` + notString + `]}`},
		{"nested body", req{method: "POST", path: "/api/login/", body: strings.Repeat("[", 30000)}, 400, `~JSON parse error - `},
		{"duplicate keys", req{method: "POST", path: "/api/login/", body: `{"username":"a","password":"x","password":"y"}`}, 400, `{"detail":"JSON parse error - duplicate key \"password\""}`},
		{"duplicate keys by escape", req{method: "POST", path: "/api/login/", body: `{"username":"a","user\u006eame":"b","password":"x"}`}, 400, `{"detail":"JSON parse error - duplicate key \"username\""}`},
		{"number for string", req{method: "POST", path: "/api/login/", body: `{"username":12,"password":1e999999}`}, 400, `{"username":[` + notString + `],"password":[` + notString + `]}`},
		{"object, list, bool for string", req{method: "POST", path: "/api/register/", body: `{"username":{},"email":[],"password":true,"password2":false}`}, 400,
			`{"username":[` + notString + `],"email":[` + notString + `],"password":[` + notString + `],"password2":[` + notString + `]}`},
		{"null body", req{method: "POST", path: "/api/login/", body: `null`}, 400, `{"non_field_errors":["Invalid data. Expected a dictionary, but got NoneType."]}`},
		{"string body", req{method: "POST", path: "/api/login/", body: `"x"`}, 400, `{"non_field_errors":["Invalid data. Expected a dictionary, but got str."]}`},
		{"truncated JSON", req{method: "POST", path: "/api/login/", body: `{"username":"a","pass`}, 400, `~JSON parse error - `},
		{"truncated multipart", req{method: "POST", path: "/api/login/", ctype: "multipart/form-data; boundary=XX", body: "--XX\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nabc"}, 400, `~`},
		{"bad content type", req{method: "POST", path: "/api/login/", ctype: "application/json; ===", body: `{}`}, 415, `~Unsupported media type`},

		// Session cookies.
		{"forged session", req{method: "GET", path: "/api/user/", session: withSession(strings.Repeat("Q", 43))}, 403, denied},
		{"truncated session", req{method: "GET", path: "/api/user/", session: withSession(sess.id[:42])}, 403, denied},
		{"oversized session", req{method: "GET", path: "/api/user/", session: withSession(sess.id + "A")}, 403, denied},
		{"session near the header limit", req{method: "GET", path: "/api/user/", session: withSession(strings.Repeat("A", 12<<10))}, 403, denied},
		{"session of other characters", req{method: "GET", path: "/api/user/", session: withSession(strings.Repeat("!", 43))}, 403, denied},
		{"session of high bytes", req{method: "GET", path: "/app/x", headers: map[string]string{"Cookie": "sessionid=" + strings.Repeat("\xff", 43)}}, 403, denied},
		{"quoted session", req{method: "GET", path: "/api/user/", headers: map[string]string{"Cookie": `sessionid="` + sess.id + `"`}}, 200, wantUser},
		{"forged session first", req{method: "GET", path: "/api/user/", headers: map[string]string{"Cookie": "sessionid=" + strings.Repeat("Q", 43) + "; sessionid=" + sess.id}}, 403, denied},
		{"empty session", req{method: "GET", path: "/api/user/", headers: map[string]string{"Cookie": "sessionid=; csrftoken=x"}}, 403, denied},
		{"cookie soup", req{method: "GET", path: "/api/user/", headers: map[string]string{"Cookie": ";;; =; ==; sessionid; sessionid==" + sess.id + "; a=b"}}, 403, denied},

		// CSRF tokens.
		{"forged CSRF token", req{method: "POST", path: "/app/x", session: withToken(strings.Repeat("a", 64)), csrf: true}, 403, csrfBad},
		{"truncated CSRF token", req{method: "POST", path: "/app/x", session: withToken(sess.token[:63]), csrf: true}, 403, csrfBad},
		{"oversized CSRF token", req{method: "POST", path: "/app/x", session: withToken(sess.token + "a"), csrf: true}, 403, csrfBad},
		{"huge CSRF token", req{method: "POST", path: "/app/x", session: withToken(strings.Repeat("a", 12<<10)), csrf: true}, 403, csrfBad},
		{"non-ASCII CSRF token", req{method: "POST", path: "/app/x", session: withToken(strings.Repeat("\xe9", 64)), csrf: true}, 403, csrfBad},
		{"the good token", req{method: "POST", path: "/app/x", session: sess, csrf: true}, 200, ``},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.do(t, c.q)
			if r.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %.300s", r.StatusCode, c.status, r.body)
			}
			if c.status == 200 && c.body == "" {
				return // the upstream's answer
			}
			if r.Header.Get("Content-Type") != "application/json" || !json.Valid(r.body) {
				t.Errorf("not a JSON answer: %q %.300s", r.Header.Get("Content-Type"), r.body)
			}
			switch {
			case strings.HasPrefix(c.body, "~"):
				if !strings.Contains(string(r.body), c.body[1:]) {
					t.Errorf("body %.300s lacks %q", r.body, c.body[1:])
				}
			case c.body != "" && string(r.body) != c.body:
				t.Errorf("body\n got %.300s\nwant %s", r.body, c.body)
			}
		})
	}

	// Look-alikes log in as the same user.
	for _, name := range []string{"TARGET", "ｔａｒｇｅｔ", "ⓣⓐⓡⓖⓔⓣ"} {
		if r := s.loginAs(t, name, strongPassword, nil); r.StatusCode != 200 {
			t.Errorf("login as %q: %d %s", name, r.StatusCode, r.body)
		}
	}
	// A chunked body (no Content-Length) over the limit is cut off too.
	hr, _ := http.NewRequest("POST", s.base+"/api/login/", io.MultiReader(strings.NewReader(`{"username":"`), strings.NewReader(strings.Repeat("a", 100<<10))))
	hr.Header.Set("Content-Type", "application/json")
	if resp, err := s.client.Do(hr); err != nil {
		t.Errorf("chunked: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("chunked body over the limit: %d", resp.StatusCode)
		}
	}
}

// manyKeys is a JSON object of n irrelevant keys.
func manyKeys(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"k%d":"v"`, i)
	}
	b.WriteString("}")
	return b.String()
}

// What Go's HTTP server refuses before Caddy: headers over Caddy's limit
// (16 KiB) get 431, malformed header bytes 400; Caddy stays up.
func TestBadHeaders(t *testing.T) {
	s := startSite(t, "", "")
	sess := s.newUser(t, "headers")
	raw := func(name, request string) string {
		t.Helper()
		conn, err := net.DialTimeout("tcp", strings.TrimPrefix(s.base, "http://"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, request); err != nil {
			t.Fatalf("%s: writing: %v", name, err)
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			t.Fatalf("%s: no answer: %v", name, err)
		}
		return strings.TrimSpace(line)
	}
	host := "Host: " + strings.TrimPrefix(s.base, "http://") + "\r\n"
	for _, c := range []struct{ name, request, want string }{
		{"cookie over the header limit", "GET /api/user/ HTTP/1.1\r\n" + host + "Cookie: sessionid=" + strings.Repeat("A", 40<<10) + "\r\n\r\n", "HTTP/1.1 431 "},
		{"many headers over the limit", "GET /api/user/ HTTP/1.1\r\n" + host + strings.Repeat("X-Pad: "+strings.Repeat("p", 100)+"\r\n", 400) + "\r\n", "HTTP/1.1 431 "},
		{"NUL in a cookie", "GET /api/user/ HTTP/1.1\r\n" + host + "Cookie: sessionid=a\x00b\r\n\r\n", "HTTP/1.1 400 "},
		{"newline smuggling", "GET /api/user/ HTTP/1.1\r\n" + host + "Cookie: sessionid=a\rX-Auth-User-Id: 1\r\n\r\n", "HTTP/1.1 400 "},
		{"control characters in the CSRF header", "POST /app/x HTTP/1.1\r\n" + host + "Cookie: sessionid=" + sess.id + "; csrftoken=" + sess.csrfCookie + "\r\nX-CSRFToken: \x01\x02\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 400 "},
	} {
		if got := raw(c.name, c.request); !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	// Still serving, and the session is fine.
	if r := s.do(t, req{method: "GET", path: "/api/user/", session: sess}); r.StatusCode != 200 {
		t.Errorf("after bad headers: %d %s", r.StatusCode, r.body)
	}
}
