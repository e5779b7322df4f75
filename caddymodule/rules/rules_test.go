package rules_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/rules"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

func mustCompile(t testing.TB, lines ...string) *rules.Set {
	t.Helper()
	var specs []rules.Spec
	for _, l := range lines {
		specs = append(specs, parse(l))
	}
	s, err := rules.Compile(specs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// parse splits a require line as the Caddyfile does.
func parse(line string) rules.Spec {
	var sp rules.Spec
	for _, a := range strings.Fields(line) {
		switch {
		case len(sp.Methods) == 0 && len(sp.Paths) == 0 && (a == "staff" || a == "superuser" || strings.HasPrefix(a, "group:")):
			sp.Who = append(sp.Who, strings.ReplaceAll(a, "_", " "))
		case len(sp.Paths) == 0 && rules.IsMethod(a):
			sp.Methods = append(sp.Methods, a)
		default:
			sp.Paths = append(sp.Paths, a)
		}
	}
	return sp
}

var (
	plainUser = &users.User{ID: 1, Username: "plain"}
	staff     = &users.User{ID: 2, Username: "staff", IsStaff: true}
	analyst   = &users.User{ID: 3, Username: "analyst", Groups: []string{"analysts"}}
	manager   = &users.User{ID: 4, Username: "manager", Groups: []string{"Content Editors", "managers"}}
	editor    = &users.User{ID: 5, Username: "editor", Groups: []string{"editors"}}
	super     = &users.User{ID: 6, Username: "root", IsSuperuser: true}
	phpUser   = &users.User{ID: 7, Username: "php", Groups: []string{"php"}}
)

func target(t testing.TB, raw string) *url.URL {
	t.Helper()
	u, err := url.ParseRequestURI(raw)
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	return u
}

type check struct {
	method, uri string
	headers     map[string]string
	allowed     []*users.User
	denied      []*users.User
}

func run(t *testing.T, s *rules.Set, checks []check) {
	t.Helper()
	for _, c := range checks {
		h := http.Header{}
		for k, v := range c.headers {
			h[k] = []string{v}
		}
		u := target(t, c.uri)
		for _, who := range c.allowed {
			if !s.Allows(who, c.method, u, h) {
				t.Errorf("%s %s %v: %s refused, want allowed", c.method, c.uri, c.headers, who.Username)
			}
		}
		for _, who := range c.denied {
			if s.Allows(who, c.method, u, h) {
				t.Errorf("%s %s %v: %s allowed, want refused", c.method, c.uri, c.headers, who.Username)
			}
		}
	}
}

// The example, and what each kind of user may do.
func TestRules(t *testing.T) {
	s := mustCompile(t,
		"staff /admin/*",
		"group:analysts group:managers /reports/*",
		"group:editors POST PUT PATCH DELETE /articles/*",
		"superuser /superadmin /superadmin/*",
		"staff GET /staffonly/*",
		"group:php *.php",
		"group:Content_Editors /cms/*",
	)
	all := []*users.User{plainUser, staff, analyst, manager, editor, super, phpUser}
	run(t, s, []check{
		{"GET", "/admin/x", nil, []*users.User{staff, super}, []*users.User{plainUser, analyst, manager, editor, phpUser}},
		{"GET", "/admin", nil, all, nil}, // /admin/* does not cover /admin, as Caddy's path matcher
		{"GET", "/reports/q?x=1", nil, []*users.User{analyst, manager, super}, []*users.User{plainUser, staff, editor}},
		{"GET", "/articles/1", nil, all, nil},
		{"POST", "/articles/1", nil, []*users.User{editor, super}, []*users.User{plainUser, staff, analyst}},
		{"DELETE", "/articles/1", nil, []*users.User{editor}, []*users.User{plainUser}},
		{"OPTIONS", "/articles/1", nil, all, nil},
		{"GET", "/superadmin", nil, []*users.User{super}, []*users.User{staff, plainUser}},
		{"GET", "/staffonly/x", nil, []*users.User{staff}, []*users.User{plainUser}},
		{"HEAD", "/staffonly/x", nil, []*users.User{staff}, []*users.User{plainUser}},    // GET covers HEAD
		{"CONNECT", "/staffonly/x", nil, []*users.User{staff}, []*users.User{plainUser}}, // and WebSockets over HTTP/2
		{"POST", "/staffonly/x", nil, all, nil},
		{"GET", "/index.php", nil, []*users.User{phpUser, super}, []*users.User{plainUser, staff}},
		{"GET", "/cms/page", nil, []*users.User{manager}, []*users.User{plainUser, staff}},
		{"GET", "/CMS/page", nil, []*users.User{manager}, []*users.User{plainUser}},
		{"GET", "/public/x", nil, all, nil},
		{"GET", "/", nil, all, nil},
	})
}

// No path trick gets past a rule: every way an upstream may read the path
// is held to the rule that decides it.
func TestPathTricksNeverDodge(t *testing.T) {
	s := mustCompile(t, "staff /admin/*", "group:php *.php", "group:editors POST DELETE /articles/*")
	for _, uri := range []string{
		"/ADMIN/x", "/Admin/x", "//admin/x", "/x/../admin/y", "/./admin/y", "/admin%2Fx", "/%61dmin/x",
		"/admin;jsessionid=1/x", "/admin./x", "/admin%20/x", "/admin%252Fx", "/static/%2e%2e/admin/x",
		"/static%2f..%2fadmin/x", "/%2e%2e/admin/x", "/admin\\x", "/static\\..\\admin\\x", "/..;/admin/x",
		"/ａｄｍｉｎ/x", "/ＡＤＭＩＮ/x", "/x/．．/admin/y", "/admin%00/x", "/adm%69n/x",
		"/static/..%5cadmin/x", "/admin/x", "/admin//x", "/admin%2F..%2Fpublic",
	} {
		run(t, s, []check{{"GET", uri, nil, []*users.User{staff, super}, []*users.User{plainUser}}})
	}
	// PHP runs the script before the path info; Windows drops trailing dots.
	for _, uri := range []string{"/app/users.php/x.css", "/app/users.php/", "/app/users.PHP", "/app/users.php.", "/app/users.php%20",
		"/app/users.php;x", "/app/users.php%3Fx.css", "/app/users.ph%70", "/app/users.php%00.css", "/app/users.ｐｈｐ"} {
		run(t, s, []check{{"GET", uri, nil, []*users.User{phpUser, super}, []*users.User{plainUser, staff}}})
	}
	// Methods: any case, and overrides.
	run(t, s, []check{
		{"post", "/articles/1", nil, []*users.User{editor}, []*users.User{plainUser}},
		{"Delete", "/articles/1", nil, []*users.User{editor}, []*users.User{plainUser}},
		{"GET", "/articles/1", map[string]string{"X-Http-Method-Override": "DELETE"}, []*users.User{editor}, []*users.User{plainUser}},
		{"POST", "/articles/1", map[string]string{"X-HTTP-Method": "delete"}, []*users.User{editor}, []*users.User{plainUser}},
		{"GET", "/articles/1", map[string]string{"X_Method_Override": "POST"}, []*users.User{editor}, []*users.User{plainUser}},
		{"GET", "/articles/1?_method=DELETE", nil, []*users.User{editor}, []*users.User{plainUser}},
		{"GET", "/articles/1?_METHOD=post", nil, []*users.User{editor}, []*users.User{plainUser}},
		{"GET", "/articles/1", map[string]string{"X-Http-Method-Override": "GET"}, []*users.User{plainUser}, nil},
		{"GET", "/articles/1?method=x", nil, []*users.User{plainUser}, nil},
	})
	// Odd paths no rule could match pass.
	run(t, s, []check{
		{"GET", "/admin%3Fx/y", nil, []*users.User{plainUser}, nil}, // /admin?x/y: "admin?x", or /admin and a query
		{"GET", "/a//b", nil, []*users.User{plainUser}, nil},
		{"GET", "/files/a%2Fb", nil, []*users.User{plainUser}, nil},
		{"GET", "/x/../y", nil, []*users.User{plainUser}, nil},
		{"GET", "/caf%C3%A9", nil, []*users.User{plainUser}, nil},
	})
	// A path too long to read every way is held to every rule.
	long := "/x" + strings.Repeat("/a", 3000) + "//y"
	run(t, s, []check{{"GET", long, nil, []*users.User{super}, []*users.User{plainUser, staff, phpUser}}})
	run(t, s, []check{{"GET", "/x" + strings.Repeat("/a", 3000), nil, []*users.User{plainUser}, nil}})
}

// First match decides, for each reading of the path.
func TestFirstMatchDecides(t *testing.T) {
	s := mustCompile(t, "staff /docs/internal/*", "group:readers /docs/*")
	reader := &users.User{ID: 9, Groups: []string{"readers"}}
	run(t, s, []check{
		{"GET", "/docs/internal/x", nil, []*users.User{staff}, []*users.User{reader, plainUser}},
		{"GET", "/docs/x", nil, []*users.User{reader}, []*users.User{staff, plainUser}},
		{"GET", "/docs/internal//x", nil, []*users.User{staff}, []*users.User{reader}},
		// Read as /docs/internal/../x by one upstream and /docs/x by another.
		{"GET", "/docs/internal/../x", nil, nil, []*users.User{staff, reader, plainUser}},
		{"GET", "/docs/internal/%2e%2e/internal/y", nil, []*users.User{staff}, []*users.User{reader}},
	})
}

func TestForwardAuthTargets(t *testing.T) {
	s := mustCompile(t, "staff /admin/*", "group:editors POST /articles/*")
	staffEditor := &users.User{ID: 8, IsStaff: true, Groups: []string{"editors"}}
	for _, tc := range []struct {
		who    *users.User
		method string
		uri    string
		want   bool
	}{
		{plainUser, "", "", false},        // nothing known: every rule
		{staffEditor, "", "", true},       // passes every rule
		{super, "", "", true},             // superuser passes every rule
		{editor, "", "/articles/1", true}, // any method: only the articles rule matches
		{plainUser, "", "/articles/1", false},
		{plainUser, "GET", "", false}, // the admin rule covers GET
		{editor, "GET", "", false},
		{staff, "GET", "", true}, // the articles rule does not cover GET
		{plainUser, "GET", "/articles/1", true},
	} {
		var u *url.URL
		if tc.uri != "" {
			u = target(t, tc.uri)
		}
		if got := s.AllowsTarget(tc.who, tc.method, u, nil); got != tc.want {
			t.Errorf("AllowsTarget(%s, %q, %q) = %v, want %v", tc.who.Username, tc.method, tc.uri, got, tc.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		spec rules.Spec
		want string
	}{
		{rules.Spec{Paths: []string{"/x"}}, "no one may pass"},
		{rules.Spec{Who: []string{"admin"}, Paths: []string{"/x"}}, `"admin": who may pass is staff, superuser or group:<name>`},
		{rules.Spec{Who: []string{"group:"}, Paths: []string{"/x"}}, "not a group name"},
		{rules.Spec{Who: []string{"group:a,b"}, Paths: []string{"/x"}}, "commas"},
		{rules.Spec{Who: []string{"staff"}, Methods: []string{"post"}, Paths: []string{"/x"}}, `"post" is not an upper-case HTTP method`},
		{rules.Spec{Who: []string{"staff"}}, "no path pattern"},
		{rules.Spec{Who: []string{"staff"}, Paths: []string{"admin/*"}}, "must begin with / or *"},
		{rules.Spec{Who: []string{"staff"}, Paths: []string{"/a/[x"}}, "syntax error"},
		{rules.Spec{Who: []string{"staff"}, Paths: []string{"/a%zz"}}, "invalid URL escape"},
	} {
		_, err := rules.Compile([]rules.Spec{{Who: []string{"staff"}, Paths: []string{"/ok"}}, tc.spec})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "rule 2") {
			t.Errorf("%+v: err = %v, want %q", tc.spec, err, tc.want)
		}
	}
}

func TestPatternsAsPublic(t *testing.T) {
	s := mustCompile(t, "staff /exact", "staff /pre/*", "staff *.sfx", "staff *mid*", "staff /g/*/admin", "staff /my%20docs/*")
	for uri, ruled := range map[string]bool{
		"/exact": true, "/EXACT": true, "/exact/": false, "/exactly": false,
		"/pre/": true, "/pre/a/b": true, "/pre": false, "/prefix": false,
		"/a/b.sfx": true, "/a/b.SFX": true, "/a/b.sfx2": false,
		"/x/mid/y": true, "/xMIDy": true, "/m/i/d": false,
		"/g/x/admin": true, "/g/x/y/admin": false, "/g/X/ADMIN": true,
		"/my%20docs/a": true, "/MY%20DOCS/a": true,
	} {
		allowed := s.Allows(plainUser, "GET", target(t, uri), nil)
		if allowed == ruled {
			t.Errorf("%s: ruled %v, want %v", uri, !allowed, ruled)
		}
	}
}

// The common request costs no allocation.
func TestNoAllocations(t *testing.T) {
	s := mustCompile(t, "staff /admin/*", "group:analysts group:managers /reports/*", "group:editors POST PUT PATCH DELETE /articles/*")
	u := target(t, "/articles/42")
	h := http.Header{"Accept": {"text/html"}, "Cookie": {"x"}, "User-Agent": {"x"}}
	if n := testing.AllocsPerRun(100, func() {
		if !s.Allows(editor, "POST", u, h) || s.Allows(plainUser, "POST", u, h) {
			t.Fatal("wrong decision")
		}
	}); n != 0 {
		t.Errorf("%v allocations per decision", n)
	}
}
