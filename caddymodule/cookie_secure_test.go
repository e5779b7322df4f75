package caddymodule_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// loginCookies logs in with extra headers and returns the response and its
// cookies by name.
func loginCookies(t *testing.T, s *site, username string, headers map[string]string) (*response, map[string]*http.Cookie) {
	t.Helper()
	r := s.do(t, req{method: "POST", path: "/api/login/", body: credsJSON(username, strongPassword), headers: headers})
	if r.StatusCode != 200 {
		t.Fatalf("login: %d %s", r.StatusCode, r.body)
	}
	cookies := map[string]*http.Cookie{}
	for _, c := range r.Cookies() {
		cookies[c.Name] = c
	}
	return r, cookies
}

func wantSecure(t *testing.T, what string, cookies map[string]*http.Cookie, secure bool) {
	t.Helper()
	if len(cookies) != 2 {
		t.Fatalf("%s: cookies %v", what, cookies)
	}
	for name, c := range cookies {
		if c.Secure != secure {
			t.Errorf("%s: cookie %s Secure=%v, want %v", what, name, c.Secure, secure)
		}
	}
}

var https = map[string]string{"X-Forwarded-Proto": "https"}

// Behind a TLS-terminating load balancer that Caddy trusts
// (trusted_proxies), `X-Forwarded-Proto: https` makes the cookies Secure
// and the request's own origin https://; from any other peer the header
// is ignored.
func TestForwardedProtoFromTrustedProxies(t *testing.T) {
	t.Run("untrusted peer", func(t *testing.T) {
		s := startSite(t, "", "")
		s.register(t, "plain", "p@example.com", strongPassword)
		_, cookies := loginCookies(t, s, "plain", https)
		wantSecure(t, "spoofed X-Forwarded-Proto", cookies, false)
		sess := s.login(t, "plain", strongPassword)
		host := strings.TrimPrefix(s.base, "http://")
		r := s.do(t, req{method: "POST", path: "/app", session: sess, csrf: true,
			headers: map[string]string{"Origin": "https://" + host, "X-Forwarded-Proto": "https"}})
		wantStatus(t, "https:// origin from an untrusted peer", r, 403)
	})
	t.Run("trusted proxy", func(t *testing.T) {
		s := startCustomSite(t, siteConfig{global: "servers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}", extra: throttlesOff})
		s.register(t, "balanced", "b@example.com", strongPassword)
		_, cookies := loginCookies(t, s, "balanced", https)
		wantSecure(t, "X-Forwarded-Proto https from a trusted proxy", cookies, true)
		_, cookies = loginCookies(t, s, "balanced", map[string]string{"X-Forwarded-Proto": "http"})
		wantSecure(t, "X-Forwarded-Proto http", cookies, false)
		_, cookies = loginCookies(t, s, "balanced", nil)
		wantSecure(t, "no X-Forwarded-Proto", cookies, false)

		// The logout's expired cookie is Secure too.
		r, cookies := loginCookies(t, s, "balanced", https)
		sess := &session{id: cookies["sessionid"].Value, csrfCookie: cookies["csrftoken"].Value, token: r.json(t)["csrf_token"].(string)}
		// The Origin check takes the request's own origin as https://.
		host := strings.TrimPrefix(s.base, "http://")
		r = s.do(t, req{method: "POST", path: "/app", session: sess, csrf: true,
			headers: map[string]string{"Origin": "https://" + host, "X-Forwarded-Proto": "https"}})
		wantStatus(t, "same-origin POST through the balancer", r, 200)
		r = s.do(t, req{method: "POST", path: "/app", session: sess, csrf: true,
			headers: map[string]string{"Origin": "http://" + host, "X-Forwarded-Proto": "https"}})
		if r.StatusCode != 403 || !strings.Contains(string(r.body), "Origin checking failed - http://"+host) {
			t.Errorf("http:// origin of an https request: %d %s", r.StatusCode, r.body)
		}
		r = s.do(t, req{method: "POST", path: "/api/logout/", session: sess, csrf: true, headers: https})
		if c := r.cookie("sessionid"); r.StatusCode != 200 || c == nil || !c.Secure || c.MaxAge >= 0 {
			t.Errorf("logout through the balancer: %d %v", r.StatusCode, r.Header["Set-Cookie"])
		}
	})
}

// cookie_secure always: Secure on every response, plain HTTP included.
func TestCookieSecureAlways(t *testing.T) {
	s := startSite(t, "", "cookie_secure always")
	s.register(t, "strict", "s@example.com", strongPassword)
	_, cookies := loginCookies(t, s, "strict", nil)
	wantSecure(t, "cookie_secure always over plain HTTP", cookies, true)
}

// `__Host-` cookie names: Secure, Path=/, no Domain, and the session works
// under them.
func TestHostPrefixedCookies(t *testing.T) {
	s := startSite(t, "", "session_cookie __Host-sessionid\ncsrf_cookie __Host-csrftoken\ncookie_secure always")
	s.register(t, "hosted", "h@example.com", strongPassword)
	r, cookies := loginCookies(t, s, "hosted", nil)
	sid, ct := cookies["__Host-sessionid"], cookies["__Host-csrftoken"]
	if sid == nil || ct == nil {
		t.Fatalf("cookies %v", r.Header["Set-Cookie"])
	}
	for _, c := range []*http.Cookie{sid, ct} {
		if !c.Secure || c.Path != "/" || c.Domain != "" {
			t.Errorf("%s: Secure=%v Path=%q Domain=%q, want a valid __Host- cookie", c.Name, c.Secure, c.Path, c.Domain)
		}
	}
	cookie := "__Host-sessionid=" + sid.Value + "; __Host-csrftoken=" + ct.Value
	wantStatus(t, "user with __Host- cookies", s.do(t, req{method: "GET", path: "/api/user/", headers: map[string]string{"Cookie": cookie}}), 200)
	up := s.do(t, req{method: "POST", path: "/app", headers: map[string]string{"Cookie": cookie, "X-CSRFToken": r.json(t)["csrf_token"].(string)}})
	if up.StatusCode != 200 {
		t.Fatalf("gated POST: %d %s", up.StatusCode, up.body)
	}
	if got := strings.Join(up.echo(t).Headers["Cookie"], "; "); strings.Contains(got, "__Host-sessionid") {
		t.Errorf("the session cookie reached the upstream: %q", got)
	}
}

// Cookie names that browsers would refuse with these settings are config
// errors, in JSON as in the Caddyfile.
func TestCookieSecureConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ fields, want string }{
		{`"cookie_secure":"sometimes"`, `cookie_secure: want auto or always, got "sometimes"`},
		{`"session_cookie":"__Host-sid"`, `cookie name "__Host-sid": browsers accept a __Host- cookie only with Secure: set cookie_secure always`},
		{`"csrf_cookie":"__secure-csrf","cookie_secure":"auto"`, `cookie name "__secure-csrf": browsers accept a __secure- cookie only with Secure`},
		{`"session_cookie":"__Host-sid","cookie_secure":"always","cookie_domain":"example.com"`, `browsers refuse a __Host- cookie with a Domain`},
	} {
		cfg := fmt.Sprintf(`{"admin":{"disabled":true},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:%d"],"routes":[{"handle":[{"handler":"session_auth","users_db":%q,%s}]}]}}}}}`,
			freePort(t), filepath.Join(dir, "u.db"), c.fields)
		if err := caddy.Load([]byte(cfg), true); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.fields, err, c.want)
		}
	}
	cfg, err := adapt(":8000 {\n\tsession_auth {\n\t\tcookie_secure always\n\t}\n}")
	if err != nil || !strings.Contains(string(cfg), `"cookie_secure":"always"`) {
		t.Errorf("cookie_secure always: %v\n%s", err, cfg)
	}
	if _, err := adapt(":8000 {\n\tsession_auth {\n\t\tcookie_secure never\n\t}\n}"); err == nil ||
		!strings.Contains(err.Error(), "cookie_secure: want auto or always") || !strings.Contains(err.Error(), "Caddyfile:3") {
		t.Errorf("cookie_secure never: %v", err)
	}
}
