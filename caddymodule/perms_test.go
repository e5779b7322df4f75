package caddymodule_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// Issue 13: groups, require rules, the groups header and placeholders, and
// the signed identity token, through a real Caddy.

// issueRules are the issue's example rules.
const issueRules = `require staff /admin/*
require group:analysts group:managers /reports/*
require group:editors POST PUT PATCH DELETE /articles/*`

const bodyNoPermission = `{"detail":"You do not have permission to perform this action."}`

// permsConfig is a site for these tests.
type permsConfig struct {
	extra    string // session_auth lines
	upstream string // host:port of the upstream; default the site's echo server
	admin    bool   // the admin endpoint on, for the CLI's --config
	// postgres keeps the users in a fresh PostgreSQL schema (and the
	// sessions in a private Redis, as PostgreSQL users require).
	postgres bool
	// upstreamFor, if set, starts the upstream once the site's address is
	// known and returns its host:port.
	upstreamFor func(s *site) string
}

// startPermsSite runs a site whose reverse_proxy also sends the identity
// placeholders (X-Placeholder-*). With admin, the Caddyfile is written to
// a file, whose path is returned (for the CLI's --config).
func startPermsSite(t *testing.T, c permsConfig) (*site, string) {
	t.Helper()
	sc := siteConfig{extra: throttlesOff}
	redisLine := ""
	if c.postgres {
		sc.usersDB, sc.redisURL = testpg.New(t).URL, testredis.Start(t).URL()
		redisLine = "redis " + sc.redisURL
	}
	s := startCustomSite(t, sc)
	if c.upstreamFor != nil {
		c.upstream = c.upstreamFor(s)
	}
	if c.upstream == "" {
		c.upstream = strings.TrimPrefix(s.upstream.URL, "http://")
	}
	admin := "admin off"
	if c.admin {
		admin = fmt.Sprintf("admin 127.0.0.1:%d", freePort(t))
	}
	cfg := fmt.Sprintf(`{
	%s
	persist_config off
	storage file_system %s
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
		%s
		hash_concurrency 4
		login_throttle off
		register_throttle off
%s
	}
	reverse_proxy %s {
		header_up X-Placeholder-Groups "{http.auth.user.groups}"
		header_up X-Placeholder-Staff {http.auth.user.is_staff}
		header_up X-Placeholder-Superuser {http.auth.user.is_superuser}
	}
}
`, admin, filepath.Join(os.Getenv("XDG_DATA_HOME"), "caddy"), s.port, s.dbPath, redisLine, indent(c.extra, "\t\t"), c.upstream)
	s.load(cfg)
	path := ""
	if c.admin {
		path = filepath.Join(t.TempDir(), "Caddyfile")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := caddy.Load([]byte(`{"admin":{"disabled":true}}`), true); err != nil {
				t.Errorf("stopping caddy's admin endpoint: %v", err)
			}
		})
	}
	return s, path
}

func indent(lines, prefix string) string {
	var out []string
	for l := range strings.SplitSeq(lines, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, prefix+strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}

// member is a logged-in user of a perms site.
type member struct {
	*session
	id int64
}

// newMember registers and logs in name; staff and superuser set the flags,
// groups are added through the accounts package, as the CLI does.
func (s *site) newMember(t *testing.T, name string, staff, superuser bool, groups ...string) member {
	t.Helper()
	sess := s.newUser(t, name)
	m := member{sess, int64(sess.userID)}
	store := caddymodule.UsersOf(s.dbPath)
	if staff || superuser {
		if _, err := store.Update(context.Background(), m.id, func(u *users.User) error {
			u.IsStaff, u.IsSuperuser = staff, superuser
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range groups {
		if _, _, err := (&accounts.Service{Store: store}).AddToGroup(context.Background(), m.id, g); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func assertNoPermission(t *testing.T, what string, r *response) {
	t.Helper()
	if r.StatusCode != 403 || string(r.body) != bodyNoPermission {
		t.Errorf("%s: %d %s (Location %q), want 403 %s", what, r.StatusCode, r.body, r.Header.Get("Location"), bodyNoPermission)
	}
}

func assertThrough(t *testing.T, what string, r *response) echo {
	t.Helper()
	if r.StatusCode != 200 {
		t.Errorf("%s: %d %s, want 200 from the upstream", what, r.StatusCode, r.body)
		return echo{}
	}
	return r.echo(t)
}

func TestRequireRules(t *testing.T) {
	for _, backend := range []string{"bolt", "postgres"} {
		t.Run(backend, func(t *testing.T) { testRequireRules(t, backend == "postgres") })
	}
}

// testRequireRules runs on either users backend: the rules read the groups
// and flags through users.Store, whichever database keeps them.
func testRequireRules(t *testing.T, postgres bool) {
	s, _ := startPermsSite(t, permsConfig{postgres: postgres, extra: issueRules + `
		require superuser /superadmin/*
		login_redirect
		public /admin/public.css`})
	ctx := context.Background()
	plain := s.newMember(t, "plain", false, false)
	staff := s.newMember(t, "staffer", true, false)
	analyst := s.newMember(t, "analyst", false, false, "analysts")
	manager := s.newMember(t, "manager", false, false, "managers", "Content Editors")
	editor := s.newMember(t, "editor", false, false, "editors")
	root := s.newMember(t, "root", false, true) // a superuser without the staff flag
	get := func(m member, path string, headers ...string) *response {
		h := map[string]string{}
		for i := 0; i+1 < len(headers); i += 2 {
			h[headers[i]] = headers[i+1]
		}
		return s.do(t, req{method: "GET", path: path, session: m.session, headers: h})
	}

	// Who may see /admin/*: staff and superusers; browsers of others get the
	// 403 too, never the sign-in page (they are signed in).
	assertNoPermission(t, "plain /admin/", get(plain, "/admin/users"))
	assertNoPermission(t, "plain browser /admin/", get(plain, "/admin/users", "Accept", "text/html"))
	assertNoPermission(t, "analyst /admin/", get(analyst, "/admin/users"))
	assertThrough(t, "staff /admin/", get(staff, "/admin/users"))
	assertThrough(t, "superuser /admin/", get(root, "/admin/users"))
	// Anonymous requests keep their answers.
	assertDenied(t, s.do(t, req{method: "GET", path: "/admin/users"}))
	if r := s.do(t, req{method: "GET", path: "/admin/users", headers: map[string]string{"Accept": "text/html"}}); r.StatusCode != 302 {
		t.Errorf("anonymous browser: %d, want 302 to sign in", r.StatusCode)
	}
	// A public path is public, rules or not (and carries no identity).
	if e := assertThrough(t, "public under /admin/", get(plain, "/admin/public.css")); e.Headers["X-Auth-Username"] != nil {
		t.Errorf("public path got identity %v", e.Headers["X-Auth-Username"])
	}

	// No path trick gets past the rule.
	for _, p := range []string{"/ADMIN/users", "/Admin/users", "//admin/users", "/x/../admin/users", "/admin%2Fusers",
		"/%61dmin/users", "/admin;x=1/users", "/admin./users", "/admin%252Fusers", "/static/%2e%2e/admin/users",
		"/admin\\users", "/%EF%BD%81dmin/users", "/app/..%2Fadmin/users"} {
		assertNoPermission(t, "plain "+p, get(plain, p))
		assertThrough(t, "staff "+p, get(staff, p))
	}

	// Groups: any of those named.
	for _, m := range []member{analyst, manager, root} {
		assertThrough(t, "member /reports/", get(m, "/reports/q4?x=1"))
	}
	for _, m := range []member{plain, staff, editor} {
		assertNoPermission(t, "non-member /reports/", get(m, "/reports/q4"))
	}

	// Methods: reading articles is open, changing them is for editors, in
	// any spelling of the method and through overrides.
	assertThrough(t, "plain GET /articles/", get(plain, "/articles/7"))
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE", "post", "Delete"} {
		assertNoPermission(t, "plain "+m, s.do(t, req{method: m, path: "/articles/7", session: plain.session, csrf: true}))
		assertThrough(t, "editor "+m, s.do(t, req{method: m, path: "/articles/7", session: editor.session, csrf: true}))
	}
	assertNoPermission(t, "override header", get(plain, "/articles/7", "X-HTTP-Method-Override", "DELETE"))
	assertNoPermission(t, "override _method", get(plain, "/articles/7?_method=DELETE"))
	assertThrough(t, "editor override", get(editor, "/articles/7", "X-HTTP-Method-Override", "DELETE"))
	// CSRF is checked first, as DRF authenticates before permissions.
	if r := s.do(t, req{method: "POST", path: "/articles/7", session: plain.session}); !strings.Contains(string(r.body), "CSRF Failed") {
		t.Errorf("POST without token: %d %s", r.StatusCode, r.body)
	}

	// A superuser passes every rule.
	assertThrough(t, "root /superadmin/", get(root, "/superadmin/x"))
	assertNoPermission(t, "staff /superadmin/", get(staff, "/superadmin/x"))

	// No rule: any logged-in user.
	assertThrough(t, "plain /dashboard", get(plain, "/dashboard"))

	// Groups and flags reach the upstream: header and placeholders.
	e := assertThrough(t, "manager /dashboard", get(manager, "/dashboard", "X-Auth-Groups", "admins", "X_Auth_Groups", "admins"))
	if got := e.Headers["X-Auth-Groups"]; !slices.Equal(got, []string{"Content Editors,managers"}) {
		t.Errorf("X-Auth-Groups = %q", got)
	}
	if got := e.Headers["X-Placeholder-Groups"]; !slices.Equal(got, []string{"Content Editors,managers"}) {
		t.Errorf("{http.auth.user.groups} = %q", got)
	}
	for k := range e.Headers {
		if strings.Contains(k, "_") {
			t.Errorf("%s reached the upstream", k)
		}
	}
	e = assertThrough(t, "staff /dashboard", get(staff, "/dashboard"))
	if e.Headers["X-Placeholder-Staff"][0] != "true" || e.Headers["X-Placeholder-Superuser"][0] != "false" || e.Headers["X-Auth-Groups"][0] != "" {
		t.Errorf("staff: placeholders %q %q, groups %q", e.Headers["X-Placeholder-Staff"], e.Headers["X-Placeholder-Superuser"], e.Headers["X-Auth-Groups"])
	}
	e = assertThrough(t, "root /dashboard", get(root, "/dashboard"))
	if e.Headers["X-Placeholder-Staff"][0] != "false" || e.Headers["X-Placeholder-Superuser"][0] != "true" {
		t.Errorf("root: placeholders %q %q", e.Headers["X-Placeholder-Staff"], e.Headers["X-Placeholder-Superuser"])
	}

	// Group changes apply at once, without a new login.
	acc := &accounts.Service{Store: caddymodule.UsersOf(s.dbPath)}
	if _, _, err := acc.RemoveFromGroup(ctx, analyst.id, "analysts"); err != nil {
		t.Fatal(err)
	}
	assertNoPermission(t, "analyst removed", get(analyst, "/reports/q4"))
	if _, _, err := acc.AddToGroup(ctx, plain.id, "managers"); err != nil {
		t.Fatal(err)
	}
	assertThrough(t, "plain added", get(plain, "/reports/q4"))
	if g := assertThrough(t, "plain added", get(plain, "/dashboard")).Headers["X-Auth-Groups"]; !slices.Equal(g, []string{"managers"}) {
		t.Errorf("after adding: X-Auth-Groups %q", g)
	}
}

// Forward-auth holds X-Forwarded-Method and -Uri to the rules and answers
// with the groups header.
func TestForwardAuthRules(t *testing.T) {
	s, _ := startPermsSite(t, permsConfig{extra: issueRules + "\nlogin_redirect"})
	plain := s.newMember(t, "plain", false, false)
	staff := s.newMember(t, "staffer", true, false, "b-team", "a-team")
	editor := s.newMember(t, "editor", false, false, "editors")
	root := s.newMember(t, "root", false, true)
	auth := func(m *member, method, uri string, more ...string) *response {
		h := map[string]string{}
		if method != "" {
			h["X-Forwarded-Method"] = method
		}
		if uri != "" {
			h["X-Forwarded-Uri"] = uri
		}
		for i := 0; i+1 < len(more); i += 2 {
			h[more[i]] = more[i+1]
		}
		q := req{method: "GET", path: "/api/auth/", headers: h}
		if m != nil {
			q.session = m.session
		}
		return s.do(t, q)
	}
	ok := func(what string, r *response) {
		t.Helper()
		if r.StatusCode != 200 {
			t.Errorf("%s: %d %s, want 200", what, r.StatusCode, r.body)
		}
	}
	assertNoPermission(t, "plain /admin/", auth(&plain, "GET", "/admin/x"))
	assertNoPermission(t, "plain browser /admin/", auth(&plain, "GET", "/admin/x", "Accept", "text/html"))
	assertNoPermission(t, "plain //admin/", auth(&plain, "GET", "//admin/x"))
	assertNoPermission(t, "plain /ADMIN/", auth(&plain, "GET", "/ADMIN/x?y=1"))
	r := auth(&staff, "GET", "/admin/x")
	ok("staff /admin/", r)
	if got := r.Header.Values("X-Auth-Groups"); !slices.Equal(got, []string{"a-team,b-team"}) {
		t.Errorf("forward-auth X-Auth-Groups = %q", got)
	}
	ok("plain GET /articles/", auth(&plain, "GET", "/articles/1"))
	assertNoPermission(t, "plain DELETE /articles/", auth(&plain, "DELETE", "/articles/1", "Origin", s.base, "X-CSRFToken", plain.token))
	ok("editor DELETE /articles/", auth(&editor, "DELETE", "/articles/1", "Origin", s.base, "X-CSRFToken", editor.token))
	// What the proxy does not say, every rule may apply to.
	assertNoPermission(t, "plain, no URI", auth(&plain, "GET", ""))
	assertNoPermission(t, "editor, no URI", auth(&editor, "GET", "")) // the admin rule covers GET
	ok("editor, no method", auth(&editor, "", "/articles/1", "Origin", s.base))
	ok("superuser, nothing known", auth(&root, "", "", "Origin", s.base))
	assertNoPermission(t, "plain, unparsable URI", auth(&plain, "GET", "http://[::1"))
	// Anonymous: as before.
	assertDenied(t, auth(nil, "GET", "/admin/x"))
	if r := auth(nil, "GET", "/admin/x", "Accept", "text/html"); r.StatusCode != 302 {
		t.Errorf("anonymous browser: %d", r.StatusCode)
	}
}

// The rules' errors are the same from the Caddyfile and from JSON.
func TestRequireConfig(t *testing.T) {
	cfg, err := adapt(`:8000 {
	session_auth {
		require staff /admin/*
		require "group:Content Editors" group:x POST DELETE /a/* *.php
		identity_headers Remote-User-Id Remote-User Remote-Email Remote-Groups
	}
}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"rules":[{"paths":["/admin/*"],"who":["staff"]},{"methods":["POST","DELETE"],"paths":["/a/*","*.php"],"who":["group:Content Editors","group:x"]}]`,
		`"identity_headers":{"email":"Remote-Email","groups":"Remote-Groups","user_id":"Remote-User-Id","username":"Remote-User"}`,
	} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("adapted config lacks %s:\n%s", want, cfg)
		}
	}
	for _, b := range []struct{ body, want string }{
		{"require", "wrong argument count"},
		{"require /admin/*", `"/admin/*": begin with who may pass`},
		{"require staff", "no path pattern"},
		{"require staff post /x", `"post" is neither an upper-case HTTP method nor a path pattern`},
		{"require staff /x GET", `"GET" is not a path pattern`},
		{"identity_token_issuer https://x", "identity_token_issuer needs identity_token"},
		{"identity_token a b", "wrong argument count"},
		{"identity_headers a b c d e f", "identity_headers: takes 3 to 5 header names"},
	} {
		_, err := adapt(":8000 {\n\tsession_auth {\n\t\t" + b.body + "\n\t}\n}")
		if err == nil || !strings.Contains(err.Error(), b.want) || !strings.Contains(err.Error(), "Caddyfile:3") {
			t.Errorf("%q: error %v, want %q naming Caddyfile:3", b.body, err, b.want)
		}
	}
	// What parses but cannot work is refused when the config loads, from
	// JSON as from a Caddyfile.
	dir := t.TempDir()
	for _, c := range []struct{ field, want string }{
		{`"rules":[{"who":["admins"],"paths":["/x"]}]`, `rule 1 (require admins /x): "admins": who may pass is staff, superuser or group:<name>`},
		{`"rules":[{"who":["staff"],"methods":["get"],"paths":["/x"]}]`, `"get" is not an upper-case HTTP method`},
		{`"rules":[{"who":["staff"],"paths":["x"]}]`, "must begin with / or *"},
		{`"rules":[{"who":["staff"]}]`, "no path pattern"},
		{`"rules":[{"who":["group:a,b"],"paths":["/x"]}]`, "commas"},
		{`"rules":[{"who":["staff"],"paths":["/x"]},{"who":[],"paths":["/y"]}]`, "rule 2"},
		{`"identity_token":{"header":"X-Auth-Email"}`, `header "X-Auth-Email" is taken`},
		{`"identity_token":{"header":"bad header"}`, "not a header name"},
		{`"identity_token":{"key_files":["/nonexistent/key.pem"]}`, "identity token key"},
	} {
		cfg := fmt.Sprintf(`{"admin":{"disabled":true},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:%d"],"routes":[{"handle":[{"handler":"session_auth","users_db":%q,%s}]}]}}}}}`,
			freePort(t), filepath.Join(dir, "u.db"), c.field)
		err := caddy.Load([]byte(cfg), true)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.field, err, c.want)
		}
	}
}
