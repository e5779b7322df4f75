package caddymodule_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestPublicPaths(t *testing.T) {
	s := startSite(t, "", "public /static/* /health *.css")
	spoof := map[string]string{"X-Auth-Username": "admin", "x_auth_user_id": "1"}
	for _, p := range []string{"/static/app.js", "/static/", "/health", "/health?x=1", "/theme/site.css", "/static/a/b/c.png"} {
		r := s.do(t, req{method: "GET", path: p, headers: spoof, session: &session{id: strings.Repeat("z", 43)}})
		if r.StatusCode != 200 {
			t.Errorf("public %s: %d %s", p, r.StatusCode, r.body)
			continue
		}
		e := r.echo(t)
		for k := range e.Headers {
			if strings.HasPrefix(strings.ReplaceAll(strings.ToLower(k), "_", "-"), "x-auth-") {
				t.Errorf("public %s: upstream got identity header %s", p, k)
			}
		}
		if strings.Contains(strings.Join(e.Headers["Cookie"], ";"), "sessionid") {
			t.Errorf("public %s: session cookie forwarded", p)
		}
	}
	// Tricks that must not turn a protected path into a public one.
	for _, p := range []string{
		"/private", "/healthz", "/health/../private", "/static/../private", "/static/%2e%2e/private",
		"/static%2F..%2Fprivate", "/static/..%2Fprivate", "/static/x/..%2F..%2Fprivate", "//static/../private",
		"/static//../private", "/private?/static/x", "/private#/static/x", "/private/..%2Fstatic/x",
		"/private/%2E%2E/static/x", "/static\\..\\private", "/private/.%2e/static/x", "/private;/static/x",
		"/private/x.css/..%2f..%2fadmin", "/STATIC/../private", "/STATIC/app.js", "/Health",
		"/static/..;/admin", "/admin;x.css", "/admin/secret;.css", "/static/..%3b/admin", "/static/%3b/x",
	} {
		r := s.do(t, req{method: "GET", path: p})
		if r.StatusCode == 200 {
			t.Errorf("protected %q passed as public (upstream saw %s)", p, r.body)
		} else if r.StatusCode != 403 && r.StatusCode != 400 {
			t.Errorf("%q: unexpected %d %s", p, r.StatusCode, r.body)
		}
	}
}

func TestLoginRedirect(t *testing.T) {
	s := startSite(t, "", "login_redirect")
	html := map[string]string{"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
	r := s.do(t, req{method: "GET", path: "/app/page?a=1&b=two%20words", headers: html})
	if r.StatusCode != 302 {
		t.Fatalf("browser navigation: %d %s", r.StatusCode, r.body)
	}
	loc, err := url.Parse(r.Header.Get("Location"))
	if err != nil || loc.Path != "/api/signin/" || loc.Query().Get("next") != "/app/page?a=1&b=two%20words" || loc.Host != "" {
		t.Errorf("Location = %q", r.Header.Get("Location"))
	}
	// API calls still get the JSON 403; so do unsafe methods.
	assertDenied(t, s.do(t, req{method: "GET", path: "/app/page", headers: map[string]string{"Accept": "application/json"}}))
	assertDenied(t, s.do(t, req{method: "POST", path: "/app/page", headers: html}))

	page := s.do(t, req{method: "GET", path: "/api/signin/?next=/app/page"})
	if page.StatusCode != 200 || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(page.body), `id="signin-form"`) {
		t.Fatalf("sign-in page: %d %s", page.StatusCode, page.Header.Get("Content-Type"))
	}
	csp := page.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'sha256-") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP = %q", csp)
	}
	if strings.Contains(string(page.body), "src=\"http") || strings.Contains(string(page.body), "href=\"http") {
		t.Error("sign-in page loads external assets")
	}
}

func TestLoginRedirectToURL(t *testing.T) {
	s := startSite(t, "", "login_redirect https://login.example/signin?app=1")
	r := s.do(t, req{method: "HEAD", path: "/x", headers: map[string]string{"Accept": "text/html"}})
	if r.StatusCode != 302 || r.Header.Get("Location") != "https://login.example/signin?app=1&next=%2Fx" {
		t.Errorf("%d %q", r.StatusCode, r.Header.Get("Location"))
	}
}

func TestPlaceholdersAndHeaderNames(t *testing.T) {
	s := startSite(t, "", "identity_headers Remote-User-Id Remote-User Remote-Email")
	cfg := fmt.Sprintf(`{
	admin off
	persist_config off
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
		identity_headers Remote-User-Id Remote-User Remote-Email
	}
	reverse_proxy %s {
		header_up X-From-Placeholder "{http.auth.user.id}/{http.auth.user.username}/{http.auth.user.email}"
	}
}
`, s.port, s.dbPath, strings.TrimPrefix(s.upstream.URL, "http://"))
	s.load(cfg)
	sess := s.newUser(t, "placeholder")
	r := s.do(t, req{method: "GET", path: "/x", session: sess, headers: map[string]string{"Remote-User": "spoof", "remote_user": "spoof2"}})
	e := r.echo(t)
	if got := e.Headers["X-From-Placeholder"]; len(got) != 1 || got[0] != "1/placeholder/placeholder@example.com" {
		t.Errorf("placeholders: %v", got)
	}
	if got := e.Headers["Remote-User"]; len(got) != 1 || got[0] != "placeholder" {
		t.Errorf("Remote-User = %v", got)
	}
	if e.Headers["Remote_user"] != nil || e.Headers["X-Auth-Username"] != nil {
		t.Errorf("unexpected headers: %v", e.Headers)
	}
}

// Caddy's forward_auth guarding a second site with the sidecar's /api/auth/.
func TestForwardAuthWithCaddy(t *testing.T) {
	s := startSite(t, "", "")
	appPort := freePort(t)
	cfg := fmt.Sprintf(`{
	admin off
	persist_config off
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
		login_redirect
	}
}
http://127.0.0.1:%d {
	request_header -X_Auth_User_Id
	request_header -X_Auth_Username
	request_header -X_Auth_Email
	request_header -X_Auth_Groups
	forward_auth 127.0.0.1:%d {
		uri /api/auth/
		copy_headers X-Auth-User-Id X-Auth-Username X-Auth-Email X-Auth-Groups
	}
	reverse_proxy %s
}
`, s.port, s.dbPath, appPort, s.port, strings.TrimPrefix(s.upstream.URL, "http://"))
	s.load(cfg)
	sess := s.newUser(t, "forwarded")
	app := &site{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", appPort), client: s.client}

	assertDenied(t, app.do(t, req{method: "GET", path: "/dashboard", headers: map[string]string{"X-Auth-Username": "spoof"}}))
	r := app.do(t, req{method: "GET", path: "/dashboard?tab=1", headers: map[string]string{"Accept": "text/html"}})
	if r.StatusCode != 302 || !strings.Contains(r.Header.Get("Location"), "next=%2Fdashboard%3Ftab%3D1") {
		t.Errorf("browser redirect via forward_auth: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	r = app.do(t, req{method: "GET", path: "/dashboard", session: sess, headers: spoofed})
	if r.StatusCode != 200 {
		t.Fatalf("forwarded: %d %s", r.StatusCode, r.body)
	}
	e := r.echo(t)
	if got := e.Headers["X-Auth-Username"]; len(got) != 1 || got[0] != "forwarded" {
		t.Errorf("X-Auth-Username = %v", got)
	}
	if got := e.Headers["X-Auth-User-Id"]; len(got) != 1 || got[0] != "1" {
		t.Errorf("X-Auth-User-Id = %v", got)
	}
	for k := range e.Headers {
		if strings.Contains(k, "_") {
			t.Errorf("underscore spelling %s reached the app: %v", k, e.Headers[k])
		}
	}
	// Unsafe methods need the CSRF token through forward-auth too.
	if r := app.do(t, req{method: "POST", path: "/dashboard", session: sess}); r.StatusCode != 403 {
		t.Errorf("POST without CSRF via forward_auth: %d", r.StatusCode)
	}
	if r := app.do(t, req{method: "POST", path: "/dashboard", session: sess, csrf: true, headers: map[string]string{"Origin": app.base}}); r.StatusCode != 200 {
		t.Errorf("POST with CSRF via forward_auth: %d %s", r.StatusCode, r.body)
	}
}

func TestCookieDomain(t *testing.T) {
	s := startSite(t, "", "cookie_domain example.test")
	s.register(t, "domainer", "d@example.com", strongPassword)
	r := s.do(t, req{method: "POST", path: "/api/login/", body: `{"username":"domainer","password":"` + strongPassword + `"}`})
	for _, c := range r.Header["Set-Cookie"] {
		if !strings.Contains(c, "Domain=example.test") {
			t.Errorf("cookie without the configured domain: %s", c)
		}
	}
	if len(r.Header["Set-Cookie"]) != 2 {
		t.Errorf("cookies: %v", r.Header["Set-Cookie"])
	}
}
