package caddymodule_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// Issue 9, item 4: with `public *.css`, /admin/users.php/x.css must not run
// /admin/users.php anonymously through PATH_INFO.
func TestPublicSuffixPathInfoPHP(t *testing.T) {
	p := startPHPSite(t, "", "public *.css")

	// The site works: the stylesheet is public, the script is gated and
	// runs for a user.
	if r := p.do(t, req{method: "GET", path: "/style/site.css"}); r.StatusCode != 200 || !strings.Contains(string(r.body), "color") {
		t.Fatalf("public stylesheet: %d %q", r.StatusCode, r.body)
	}
	assertDenied(t, p.do(t, req{method: "GET", path: "/admin/users.php"}))
	sess := p.newUser(t, "phpadmin")
	if saw := p.saw(t, p.do(t, req{method: "GET", path: "/admin/users.php/x.css", session: sess})); saw.Script != "/admin/users.php" ||
		saw.PathInfo != "/x.css" || saw.Username == nil || *saw.Username != "phpadmin" {
		t.Errorf("PHP for a user through PATH_INFO: %+v", saw)
	}

	for _, path := range []string{
		"/admin/users.php/x.css",
		"/admin/users.php/a/b.css",
		"/admin/users.php/.css",
		"/admin/users.php%3F.css",
		"/admin/users.php%3f/x.css",
		"/admin/users.php%23.css",
		"/admin/users.php%25.css",
	} {
		r := p.do(t, req{method: "GET", path: path})
		if r.StatusCode == 200 {
			t.Errorf("anonymous GET %s ran PHP: %s", path, r.body)
			continue
		}
		assertDenied(t, r)
	}
}

// Issue 9, item 4 without PHP: what a `*`-pattern may match, and encoded ?, #, %.
func TestPublicSuffixSegments(t *testing.T) {
	s := startSite(t, "", "public *.css /static/* /docs/*.html")
	for _, p := range []string{"/site.css", "/theme/site.css", "/a/b/c.css", "/static/v1.2/app.js", "/static/x.php/y", "/docs/index.html"} {
		if r := s.do(t, req{method: "GET", path: p}); r.StatusCode != 200 {
			t.Errorf("public %s: %d %s", p, r.StatusCode, r.body)
		}
	}
	for _, p := range []string{
		"/admin/users.php/x.css", "/a.b/c.css", "/x.php/y/z.css", "/.hidden/x.css",
		"/x%3F.css", "/x%3f.css", "/x%23.css", "/x%25.css", "/x%2525.css",
		"/static/x%3F", "/static/x%23y", "/static/x%25y", "/static/a%3fb/c",
		"/docs/x.php/y.html",
	} {
		r := s.do(t, req{method: "GET", path: p})
		if r.StatusCode == 200 {
			t.Errorf("protected %q passed as public (upstream saw %s)", p, r.body)
		} else if r.StatusCode != 403 && r.StatusCode != 400 {
			t.Errorf("%q: unexpected %d %s", p, r.StatusCode, r.body)
		}
	}
}

// Issue 9, item 5: public patterns keep their case.
func TestPublicPatternCase(t *testing.T) {
	s := startSite(t, "", "public /Docs/* /Status/Health *.CSS /lower/*")
	for _, p := range []string{"/Docs/x", "/Docs/", "/Status/Health", "/theme/Site.CSS", "/lower/x"} {
		if r := s.do(t, req{method: "GET", path: p}); r.StatusCode != 200 {
			t.Errorf("public %s: %d %s", p, r.StatusCode, r.body)
		}
	}
	for _, p := range []string{"/docs/x", "/DOCS/x", "/status/health", "/STATUS/HEALTH", "/theme/site.css", "/Lower/x"} {
		r := s.do(t, req{method: "GET", path: p})
		if r.StatusCode == 200 {
			t.Errorf("%s passed as public (patterns are case-sensitive)", p)
			continue
		}
		assertDenied(t, r)
	}
}

// rawGet sends a request line as given (a Go client would clean or escape
// the path) and returns the response.
// Issue 9, item 12: path settings that can never match are refused in one place,
// with the same error for a JSON config and a Caddyfile.
func TestPathSettingsChecked(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ json, caddyfile, want string }{
		{`"health_path":"health"`, "health_path health", `health_path: "health" is not an absolute path`},
		{`"health_path":"api/health/"`, "health_path api/health/", `health_path: "api/health/" is not an absolute path`},
		{`"public_paths":["/ok/*","static/*"]`, "public /ok/* static/*", `public: "static/*" is not a path pattern (it must start with / or *)`},
		{`"public_paths":["favicon.ico"]`, "public favicon.ico", `public: "favicon.ico" is not a path pattern (it must start with / or *)`},
		{`"public_paths":[""]`, `public ""`, `public: "" is not a path pattern (it must start with / or *)`},
	} {
		port := freePort(t)
		db := filepath.Join(dir, "u.db")
		cfg := fmt.Sprintf(`{"admin":{"disabled":true},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:%d"],"routes":[{"handle":[{"handler":"session_auth","users_db":%q,%s}]}]}}}}}`,
			port, db, c.json)
		if err := caddy.Load([]byte(cfg), true); err == nil || !strings.Contains(err.Error(), c.want) {
			caddy.Stop()
			t.Errorf("JSON %s: error %v, want %q", c.json, err, c.want)
		}
		adapted, err := adapt(fmt.Sprintf("{\n\tadmin off\n}\nhttp://127.0.0.1:%d {\n\tsession_auth {\n\t\tusers_db %s\n\t\t%s\n\t}\n}\n", port, db, c.caddyfile))
		if err != nil {
			t.Errorf("Caddyfile %s: adapting: %v", c.caddyfile, err)
			continue
		}
		if err := caddy.Load(adapted, true); err == nil || !strings.Contains(err.Error(), c.want) {
			caddy.Stop()
			t.Errorf("Caddyfile %s: error %v, want %q", c.caddyfile, err, c.want)
		}
	}
}
