package caddymodule_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// A cookie_domain that browsers would not store the sidecar's cookies
// under (a port, a scheme or path, an IP, a public suffix, a bad label) is
// refused at load, with the same error from a Caddyfile and from JSON: it
// would otherwise leave the sidecar's cookies host-only while the cookie
// guard protected a domain cookie nobody has.
func TestCookieDomainChecked(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"example.com:8443", "https://example.com", "example.com/app", "127.0.0.1", "::1",
		"com", "co.uk", "localhost", "exa mple.com", "example..com", "example.com.", "..example.com", "."} {
		want := "cookie_domain: want a domain name such as example.com"
		cfg, err := adapt(fmt.Sprintf(":%d {\n\tsession_auth {\n\t\tusers_db %s\n\t\tcookie_domain %q\n\t}\n}", freePort(t), filepath.Join(dir, "u.db"), d))
		if err != nil {
			t.Fatalf("%q: adapting: %v", d, err)
		}
		errCaddyfile := caddy.Load(cfg, true)
		errJSON := caddy.Load([]byte(jsonConfig(t, filepath.Join(dir, "u.db"), `"cookie_domain":`+quote(d))), true)
		for what, err := range map[string]error{"Caddyfile": errCaddyfile, "JSON": errJSON} {
			if err == nil {
				caddy.Stop()
				t.Errorf("%s: cookie_domain %q loaded", what, d)
			} else if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: cookie_domain %q: %v, want %q", what, d, err, want)
			}
		}
	}
	for _, d := range []string{"example.com", ".Example.COM", "app.example.co.uk"} {
		err := caddy.Load([]byte(jsonConfig(t, filepath.Join(dir, "u.db"), `"cookie_domain":`+quote(d))), true)
		if err != nil {
			t.Errorf("cookie_domain %q refused: %v", d, err)
		} else {
			caddy.Stop()
		}
	}
}

// On a host that cookie_domain does not cover, browsers refuse the
// sidecar's domain cookies: an app's host-only cookies of the same names
// would take their place, so the guard drops those there.
func TestCookieGuardOnHostOutsideCookieDomain(t *testing.T) {
	s, _ := cookieSite(t, "cookie_domain .Example.COM")
	sess := s.newUser(t, "otherhost") // the harness speaks to 127.0.0.1: outside example.com
	r := s.do(t, req{method: "GET", path: "/page", session: sess})
	if r.StatusCode != 200 {
		t.Fatalf("GET /page: %d %s", r.StatusCode, r.body)
	}
	want := without("app-session", "app-csrf", "no-path", "relative-path", "empty-domain", "last-path-wins")
	if got := cookieValues(r.Header["Set-Cookie"]); !slices.Equal(got, want) {
		t.Errorf("Set-Cookie values\n got %q\nwant %q", got, want)
	}
}
