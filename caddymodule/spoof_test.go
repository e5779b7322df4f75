package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// keepDottedHeaders has Caddy's server pass dotted and underscore header
// names (it drops them by default, GHSA-49wc-4hcv-v58q), as a site whose
// Node or Go app uses such names must: the handler must not rely on the
// server for its identity headers.
const keepDottedHeaders = `servers {
		expected_dot_headers X.Auth.*
		expected_underscore_headers X_Auth_*
	}`

// dropVariants are Connection headers naming the identity headers in
// other spellings, and with other tokens around them.
var dropVariants = []string{
	"X-Auth-User-Id, X-Auth-Username, X-Auth-Email",
	"keep-alive, x-auth-user-id,x-auth-username , X-AUTH-EMAIL",
	"x_auth_user_id, X.Auth.Username, X-Auth_Email, keep-alive",
	"X-Auth-User-Id",
	"X-Auth-Groups, x_auth_groups",
	"X-Auth-Email-Verified, x_auth_email_verified",
}

func assertIdentity(t *testing.T, what string, h map[string][]string, id, username string) {
	t.Helper()
	if got := h["X-Auth-User-Id"]; len(got) != 1 || got[0] != id {
		t.Errorf("%s: X-Auth-User-Id = %v, want [%s]", what, got, id)
	}
	if got := h["X-Auth-Username"]; len(got) != 1 || got[0] != username {
		t.Errorf("%s: X-Auth-Username = %v, want [%s]", what, got, username)
	}
	if got := h["X-Auth-Email"]; len(got) != 1 || got[0] != username+"@example.com" {
		t.Errorf("%s: X-Auth-Email = %v", what, got)
	}
	// No groups: an empty header from the gate; forward_auth's copy_headers
	// drops an empty one.
	if got, ok := h["X-Auth-Groups"]; ok && (len(got) != 1 || got[0] != "") {
		t.Errorf("%s: X-Auth-Groups = %q, want [\"\"] or none", what, got)
	}
	// The e-mail of a registered user is not verified, whatever the
	// client claimed.
	if got := h["X-Auth-Email-Verified"]; len(got) != 1 || got[0] != "false" {
		t.Errorf("%s: X-Auth-Email-Verified = %q, want [false]", what, got)
	}
	for k, v := range h {
		n := strings.NewReplacer("-", "", "_", "", ".", "").Replace(strings.ToLower(k))
		if strings.HasPrefix(n, "xauth") && k != "X-Auth-User-Id" && k != "X-Auth-Username" && k != "X-Auth-Email" && k != "X-Auth-Groups" &&
			k != "X-Auth-Email-Verified" {
			t.Errorf("%s: spoofed %s: %v reached the upstream", what, k, v)
		}
	}
}

// Issue 9, item 7: a client's Connection header cannot remove the identity headers
// before reverse_proxy, dotted spellings are stripped, and trailers carry
// no identity.
func TestConnectionCannotDropIdentity(t *testing.T) {
	s := startCustomSite(t, siteConfig{global: keepDottedHeaders, extra: throttlesOff})
	sess := s.newUser(t, "conn")
	for _, c := range dropVariants {
		headers := map[string]string{"Connection": c, "X.Auth.User.Id": "999", "x.auth.username": "admin", "X.Auth.Groups": "admins",
			"X.Auth.Email.Verified": "true", "X-Auth-Email-Verified": "true"}
		r := s.do(t, req{method: "GET", path: "/app", session: sess, headers: headers})
		if r.StatusCode != 200 {
			t.Fatalf("Connection: %s: %d %s", c, r.StatusCode, r.body)
		}
		assertIdentity(t, "Connection: "+c, r.echo(t).Headers, "1", "conn")
	}
	// A public path: no identity at all, spoofed or dotted.
	s.loadCustom(siteConfig{global: keepDottedHeaders, extra: throttlesOff + "public /pub/*"})
	r := s.do(t, req{method: "GET", path: "/pub/x", headers: map[string]string{"Connection": "keep-alive", "X.Auth.User.Id": "1", "X_Auth.Username": "admin"}})
	for k := range r.echo(t).Headers {
		if n := strings.NewReplacer("-", "", "_", "", ".", "").Replace(strings.ToLower(k)); strings.HasPrefix(n, "xauth") {
			t.Errorf("public path: %s reached the upstream", k)
		}
	}
}

// Issue 9, item 7: identity names sent as request trailers never reach the upstream.
func TestTrailersCarryNoIdentity(t *testing.T) {
	s := startSite(t, "", "")
	type seen struct {
		Headers  http.Header `json:"headers"`
		Trailers http.Header `json:"trailers"`
		Body     string      `json:"body"`
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		json.NewEncoder(w).Encode(seen{r.Header, r.Trailer, string(b)})
	}))
	t.Cleanup(up.Close)
	s.load(fmt.Sprintf(`{
	admin off
	persist_config off
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
		public /pub/*
	}
	reverse_proxy %s
}
`, s.port, s.dbPath, strings.TrimPrefix(up.URL, "http://")))
	sess := s.newUser(t, "trailer")
	for _, path := range []string{"/app/form", "/pub/form"} {
		hr := s.newRequest(t, req{method: "POST", path: path, session: sess, csrf: true, headers: map[string]string{"Origin": s.base}})
		hr.Body = io.NopCloser(strings.NewReader("payload"))
		hr.ContentLength = -1 // chunked, so that trailers can follow
		hr.Trailer = http.Header{"X-Auth-User-Id": {"999"}, "X-Auth-Username": {"admin"}, "X_auth_email": {"evil@example.com"}, "X-Other": {"kept"}}
		resp, err := s.client.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		var v seen
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || v.Body != "payload" {
			t.Fatalf("%s: %d %v %+v", path, resp.StatusCode, err, v)
		}
		if got := v.Trailers.Get("X-Other"); got != "kept" {
			t.Errorf("%s: the upstream got no trailers at all (X-Other = %q): the test proves nothing", path, got)
		}
		for k, vv := range v.Trailers {
			if n := strings.NewReplacer("-", "", "_", "", ".", "").Replace(strings.ToLower(k)); strings.HasPrefix(n, "xauth") {
				t.Errorf("%s: trailer %s: %v reached the upstream", path, k, vv)
			}
		}
		if path == "/app/form" {
			if got := v.Headers.Get("X-Auth-User-Id"); got != "1" {
				t.Errorf("identity header lost: %q", got)
			}
		}
	}
}

// Issue 9, item 7 with PHP: Connection cannot hide the user from the script.
func TestConnectionCannotDropIdentityPHP(t *testing.T) {
	p := startPHPSite(t, "", "")
	sess := p.newUser(t, "phpconn")
	for _, c := range dropVariants {
		r := p.do(t, req{method: "GET", path: "/whoami.php", session: sess, headers: map[string]string{"Connection": c}})
		if r.StatusCode != 200 {
			t.Fatalf("Connection: %s: %d %s", c, r.StatusCode, r.body)
		}
		saw := p.saw(t, r)
		if saw.UserID == nil || *saw.UserID != "1" || saw.Username == nil || *saw.Username != "phpconn" ||
			saw.Email == nil || *saw.Email != "phpconn@example.com" {
			t.Errorf("Connection: %s: PHP saw user %v/%v/%v (all of $_SERVER's HTTP_*: %v)", c, deref(saw.UserID), deref(saw.Username), deref(saw.Email), saw.HTTP)
		}
	}
}

// Issue 9, item 7 with PHP: a dotted spelling, which PHP reads as the identity
// header, never reaches the script (even when Caddy's server lets dotted
// names through).
func TestDottedIdentityPHP(t *testing.T) {
	p := startPHPSite(t, keepDottedHeaders, "")
	anon := p.do(t, req{method: "GET", path: "/style/site.css"})
	if anon.StatusCode != 403 {
		t.Fatalf("not gated: %d", anon.StatusCode)
	}
	sess := p.newUser(t, "phpdot")
	for i := range 10 {
		r := p.do(t, req{method: "GET", path: "/whoami.php", session: sess, headers: map[string]string{
			"X.Auth.User.Id": "999", "X.Auth.Username": "admin", "X_Auth_Email": "evil@example.com"}})
		saw := p.saw(t, r)
		if saw.UserID == nil || *saw.UserID != "1" || saw.Username == nil || *saw.Username != "phpdot" ||
			saw.Email == nil || *saw.Email != "phpdot@example.com" {
			t.Fatalf("try %d: PHP saw user %v/%v/%v (HTTP_*: %v)", i, deref(saw.UserID), deref(saw.Username), deref(saw.Email), saw.HTTP)
		}
		for k, v := range saw.HTTP {
			if strings.Contains(k, ".") || v == "999" || v == "admin" || v == "evil@example.com" {
				t.Fatalf("try %d: spoofed %s=%s reached PHP", i, k, v)
			}
		}
	}
	// An anonymous request with the dotted names gets no identity either.
	p.reloadPHP(keepDottedHeaders, "public /whoami.php")
	saw := p.saw(t, p.do(t, req{method: "GET", path: "/whoami.php", headers: map[string]string{"X.Auth.User.Id": "999", "X.Auth.Username": "admin"}}))
	if saw.UserID != nil || saw.Username != nil {
		t.Errorf("public path: PHP saw %v/%v", deref(saw.UserID), deref(saw.Username))
	}
}

// forwardAuthAppLines are the request_header lines of the app site in
// examples/forward-auth/Caddyfile: the test runs what the example says.
func forwardAuthAppLines(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../examples/forward-auth/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	inApp := false
	for line := range strings.SplitSeq(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "app.example.com"):
			inApp = true
		case inApp && strings.HasPrefix(trimmed, "request_header"):
			lines = append(lines, trimmed)
		case inApp && trimmed == "}":
			inApp = false
		}
	}
	if len(lines) == 0 {
		t.Fatal("no request_header lines in the example's app site")
	}
	return strings.Join(lines, "\n\t")
}

// Issue 9, item 7 with forward_auth: with the example's config, Connection cannot
// remove what copy_headers set.
func TestConnectionCannotDropForwardAuthIdentity(t *testing.T) {
	s := startSite(t, "", "")
	appPort := freePort(t)
	s.load(fmt.Sprintf(`{
	admin off
	persist_config off
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
	}
}
http://127.0.0.1:%d {
	%s
	forward_auth 127.0.0.1:%d {
		uri /api/auth/
		copy_headers X-Auth-User-Id X-Auth-Username X-Auth-Email X-Auth-Groups X-Auth-Email-Verified
	}
	reverse_proxy %s
}
`, s.port, s.dbPath, appPort, forwardAuthAppLines(t), s.port, strings.TrimPrefix(s.upstream.URL, "http://")))
	sess := s.newUser(t, "fwdconn")
	app := &site{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", appPort), client: s.client}
	for _, c := range append(dropVariants, "Upgrade-Insecure, X-Auth-User-Id") {
		r := app.do(t, req{method: "GET", path: "/dashboard", session: sess, headers: map[string]string{"Connection": c}})
		if r.StatusCode != 200 {
			t.Fatalf("Connection: %s: %d %s", c, r.StatusCode, r.body)
		}
		assertIdentity(t, "forward_auth, Connection: "+c, r.echo(t).Headers, "1", "fwdconn")
	}
	// Connection still works for what it is for.
	r := app.do(t, req{method: "GET", path: "/dashboard", session: sess, headers: map[string]string{"Connection": "X-Drop-Me", "X-Drop-Me": "1"}})
	if h := r.echo(t).Headers; h["X-Drop-Me"] != nil {
		t.Errorf("a header named in Connection reached the upstream: %v", h["X-Drop-Me"])
	}
}
