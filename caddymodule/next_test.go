package caddymodule_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func rawGet(t *testing.T, base, target string, headers map[string]string) *http.Response {
	t.Helper()
	u, _ := url.Parse(base)
	c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", target, u.Host)
	for k, v := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// nextOf returns the `next` parameter of a redirect to the sign-in page.
func nextOf(t *testing.T, target string, resp *http.Response, loginPath string) string {
	t.Helper()
	if resp.StatusCode != 302 {
		t.Fatalf("GET %s: %d, want 302", target, resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Path != loginPath || loc.Host != "" {
		t.Fatalf("GET %s: Location %q", target, resp.Header.Get("Location"))
	}
	return loc.Query().Get("next")
}

// offSite says whether a browser would leave the site for next, read as
// a relative URL, also after decoding it once more (a custom sign-in page
// may unescape it again).
func offSite(next string) bool {
	for _, n := range []string{next, unescapeOnce(next)} {
		// Browsers drop tabs and newlines and read '\' as '/'.
		n = strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(n)
		if !strings.HasPrefix(n, "/") || strings.HasPrefix(n, "//") {
			return true
		}
	}
	return false
}

func unescapeOnce(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

var offSiteTargets = map[string]string{
	"//evil.com/":          "/evil.com/",
	"///evil.com/":         "/evil.com/",
	"//evil.com/x?y=1":     "/evil.com/x?y=1",
	`/\evil.com/`:          "/evil.com/",
	`/\/evil.com`:          "/evil.com",
	"/%2F/evil.com/":       "/evil.com/",
	"/%2f%2fevil.com/":     "/evil.com/",
	"/%5Cevil.com/":        "/evil.com/",
	"/%5c/evil.com":        "/evil.com",
	"/%09/evil.com":        "/evil.com",
	"/app/page?next=//x":   "/app/page?next=//x",
	"/app//page":           "/app//page",
	"/app/%2F/page?a=%2F2": "/app/%2F/page?a=%2F2",
}

// Issue 9, item 6: `next` never points off-site, from the gate or forward-auth.
func TestLoginRedirectNextStaysOnSite(t *testing.T) {
	s := startSite(t, "", "login_redirect /signin")
	appPort := freePort(t)
	s.load(fmt.Sprintf(`{
	admin off
	persist_config off
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
		login_redirect /signin
	}
	reverse_proxy %s
}
http://127.0.0.1:%d {
	forward_auth 127.0.0.1:%d {
		uri /api/auth/
		copy_headers X-Auth-User-Id X-Auth-Username X-Auth-Email
	}
	reverse_proxy %s
}
`, s.port, s.dbPath, strings.TrimPrefix(s.upstream.URL, "http://"), appPort, s.port, strings.TrimPrefix(s.upstream.URL, "http://")))
	html := map[string]string{"Accept": "text/html"}
	bases := []string{s.base, fmt.Sprintf("http://127.0.0.1:%d", appPort)}
	for _, base := range bases {
		waitServing(t, base) // the reload above replaces the listeners' servers
	}
	for _, base := range bases {
		for target, want := range offSiteTargets {
			next := nextOf(t, target, rawGet(t, base, target, html), "/signin")
			if offSite(next) {
				t.Errorf("%s GET %s: next=%q points off-site", base, target, next)
			} else if next != want {
				t.Errorf("%s GET %s: next=%q, want %q", base, target, next, want)
			}
		}
	}
}

// Issue 9, item 6 on the sidecar's own endpoint, with X-Forwarded-Uri as nginx's
// auth_request sends it ($request_uri, raw).
func TestForwardAuthNextStaysOnSite(t *testing.T) {
	s := startSite(t, "", "login_redirect /signin")
	for target, want := range offSiteTargets {
		r := s.do(t, req{method: "GET", path: "/api/auth/", headers: map[string]string{"Accept": "text/html", "X-Forwarded-Uri": target}})
		next := nextOf(t, target, r.Response, "/signin")
		if offSite(next) {
			t.Errorf("X-Forwarded-Uri %s: next=%q points off-site", target, next)
		} else if next != want && unescapeOnce(next) != unescapeOnce(want) {
			t.Errorf("X-Forwarded-Uri %s: next=%q, want %q", target, next, want)
		}
	}
}

// waitServing waits (up to 5 s) until base accepts a connection and
// answers a request: right after a config load, a connection can be reset
// while the old servers hand over.
func waitServing(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := http.Get(base + "/api/health/")
		if err == nil {
			r.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not serving after the load: %v", base, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
