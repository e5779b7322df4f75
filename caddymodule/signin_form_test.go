package caddymodule_test

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// The sign-in page without JavaScript: plain form posts register (and sign
// in at once), sign in, and come back with errors in words.
func TestSigninPageWithoutJavaScript(t *testing.T) {
	s := startSite(t, "", "login_redirect")
	form := func(path string, v url.Values) *response {
		return s.do(t, req{method: "POST", path: path, body: v.Encode(), ctype: "application/x-www-form-urlencoded",
			headers: map[string]string{"Origin": s.base, "Accept": "text/html"}})
	}
	page := "/api/signin/?next=" + url.QueryEscape("/reports/7?x=1")

	// The page names the site (its host by default) and renders next.
	r := s.do(t, req{method: "GET", path: page})
	body := string(r.body)
	if r.StatusCode != 200 || !strings.Contains(body, "<title>Sign in · 127.0.0.1</title>") || !strings.Contains(body, `<p id="site">127.0.0.1</p>`) {
		t.Errorf("page: %d\n%s", r.StatusCode, body)
	}
	if !strings.Contains(body, `name="next" value="/reports/7?x=1"`) || !strings.Contains(body, `<form id="signin-form" method="post">`) {
		t.Errorf("the forms lack next or are hidden without JavaScript:\n%s", body)
	}

	// Create account: 303 to next, signed in.
	reg := url.Values{"op": {"register"}, "next": {"/reports/7?x=1"}, "username": {"nojs"}, "email": {"nojs@example.com"},
		"password": {"No-Script-Pass-1"}, "password2": {"No-Script-Pass-1"}}
	r = form(page, reg)
	if r.StatusCode != 303 || r.Header.Get("Location") != "/reports/7?x=1" {
		t.Fatalf("register: %d %q\n%s", r.StatusCode, r.Header.Get("Location"), r.body)
	}
	sid := r.cookie("sessionid")
	if sid == nil {
		t.Fatal("register without JavaScript did not sign in")
	}
	if got := s.do(t, req{method: "GET", path: "/reports/7", session: &session{id: sid.Value}}); got.StatusCode != 200 || got.echo(t).Headers["X-Auth-Username"][0] != "nojs" {
		t.Errorf("the new session: %d", got.StatusCode)
	}

	// The same name again: the page, 400, the error in words, the form kept.
	reg.Set("email", "other@example.com")
	r = form(page, reg)
	body = html.UnescapeString(string(r.body))
	if r.StatusCode != 400 || !strings.Contains(body, "Username: a user with that username already exists.") {
		t.Errorf("taken username: %d\n%s", r.StatusCode, body)
	}
	if !strings.Contains(body, `<form id="register-form" method="post">`) || !strings.Contains(body, `value="other@example.com"`) {
		t.Errorf("the register form is not shown again with its values:\n%s", body)
	}
	if strings.Contains(body, "No-Script-Pass-1") {
		t.Error("the page echoes the password")
	}
	reg2 := url.Values{"op": {"register"}, "username": {"x y"}, "email": {"bad"}, "password": {"short"}, "password2": {"other"}}
	body = html.UnescapeString(string(form(page, reg2).body))
	for _, want := range []string{"Username: enter a valid username.", "Email: enter a valid email address.", "Password: "} {
		if !strings.Contains(body, want) {
			t.Errorf("errors lack %q:\n%s", want, body)
		}
	}

	// Sign in: wrong password, then right; an unsafe next goes to "/".
	r = form(page, url.Values{"op": {"login"}, "username": {"nojs"}, "password": {"wrong"}, "next": {"/x"}})
	if r.StatusCode != 400 || !strings.Contains(html.UnescapeString(string(r.body)), "Unable to log in with provided credentials.") ||
		r.cookie("sessionid") != nil {
		t.Errorf("wrong password: %d\n%s", r.StatusCode, r.body)
	}
	for next, want := range map[string]string{"/reports/7?x=1": "/reports/7?x=1", "//evil.example/": "/", "https://evil.example/": "/",
		"/\\evil.example": "/", "/api/logout/": "/"} {
		r = form("/api/signin/", url.Values{"op": {"login"}, "username": {"NOJS"}, "password": {"No-Script-Pass-1"}, "next": {next}})
		if r.StatusCode != 303 || r.Header.Get("Location") != want || r.cookie("sessionid") == nil {
			t.Errorf("next %q: %d %q", next, r.StatusCode, r.Header.Get("Location"))
		}
	}

	// With a session, a form post needs the CSRF token, which the page
	// renders from the CSRF cookie (as Django's csrf_token does).
	sess := s.login(t, "nojs", "No-Script-Pass-1")
	withSession := func(v url.Values) *response {
		return s.do(t, req{method: "POST", path: "/api/signin/", body: v.Encode(), ctype: "application/x-www-form-urlencoded",
			headers: map[string]string{"Origin": s.base}, session: sess})
	}
	login := url.Values{"op": {"login"}, "username": {"nojs"}, "password": {"No-Script-Pass-1"}}
	if r := withSession(login); r.StatusCode != 403 || !strings.Contains(string(r.body), "CSRF") {
		t.Errorf("form post with a session and no token: %d %s", r.StatusCode, r.body)
	}
	pageBody := string(s.do(t, req{method: "GET", path: "/api/signin/", session: sess}).body)
	if !strings.Contains(pageBody, `name="csrfmiddlewaretoken" value="`+sess.csrfCookie+`"`) {
		t.Errorf("the page lacks the CSRF token for its forms")
	}
	login.Set("csrfmiddlewaretoken", sess.csrfCookie)
	if r := withSession(login); r.StatusCode != 303 {
		t.Errorf("form post with a session and the page's token: %d %s", r.StatusCode, r.body)
	}

	// A cross-site form post is refused like any cross-site login.
	r = s.do(t, req{method: "POST", path: "/api/signin/", ctype: "application/x-www-form-urlencoded",
		body:    url.Values{"op": {"login"}, "username": {"nojs"}, "password": {"No-Script-Pass-1"}}.Encode(),
		headers: map[string]string{"Origin": "https://evil.example"}})
	if r.StatusCode != 403 || r.cookie("sessionid") != nil {
		t.Errorf("cross-site form login: %d", r.StatusCode)
	}
}

// login_page_title and login_page_css carry the product's name and look,
// the CSS allowed by its hash.
func TestSigninPageLook(t *testing.T) {
	css := "main{border-top:6px solid #7a1fa2}#site{font-weight:bold}"
	cssFile := filepath.Join(t.TempDir(), "brand.css")
	os.WriteFile(cssFile, []byte(css), 0o600)
	s := startSite(t, "", "login_page_title \"Acme <Books>\"\nlogin_page_css "+cssFile)
	r := s.do(t, req{method: "GET", path: "/api/signin/"})
	body := string(r.body)
	if !strings.Contains(body, "<title>Sign in · Acme &lt;Books&gt;</title>") || !strings.Contains(body, "<style>"+css+"</style>") {
		t.Errorf("page:\n%s", body)
	}
	sum := sha256.Sum256([]byte(css))
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
		t.Errorf("CSP does not allow the custom CSS: %s", csp)
	}
	if _, err := adapt(":8000 {\n\tsession_auth {\n\t\tlogin_page_css\n\t}\n}"); err == nil {
		t.Error("login_page_css without a file adapted")
	}
	bad := filepath.Join(t.TempDir(), "bad.css")
	os.WriteFile(bad, []byte("x{}</style><script>alert(1)</script>"), 0o600)
	cfg, _ := adapt(":8000 {\n\tsession_auth {\n\t\tlogin_page_css " + bad + "\n\t}\n}")
	if err := caddy.Validate(mustConfig(t, string(cfg))); err == nil || !strings.Contains(err.Error(), "contains </style") {
		t.Errorf("CSS that closes its style block: %v", err)
	}
}

// The account page (<api>/account/): anonymous visitors go to the sign-in
// page and come back; it is served under its own hash-based CSP; the
// sign-in page's form posts lead a user who must add a second factor
// there, and ask a user who has one for the code.
func TestAccountPage(t *testing.T) {
	s := startSite(t, "", "login_redirect\ntwo_factor required group:admins")
	r := s.do(t, req{method: "GET", path: "/api/account/?next=/x"})
	if loc := r.Header.Get("Location"); r.StatusCode != 302 || loc != "/api/signin/?next=%2Fapi%2Faccount%2F%3Fnext%3D%2Fx" {
		t.Errorf("anonymous: %d %q", r.StatusCode, loc)
	}
	sess := s.newUser(t, "erin")
	r = s.do(t, req{method: "GET", path: "/api/account/?next=/books", session: sess})
	body := string(r.body)
	if r.StatusCode != 200 || !strings.Contains(body, "<title>Your account · 127.0.0.1</title>") ||
		!strings.Contains(body, `<strong id="who">erin</strong>`) || !strings.Contains(body, `<a id="continue" href="/books">`) {
		t.Fatalf("account page: %d\n%s", r.StatusCode, body)
	}
	script := body[strings.Index(body, "<script>")+len("<script>") : strings.LastIndex(body, "</script>")]
	sum := sha256.Sum256([]byte(script))
	csp := r.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"';") || !strings.HasPrefix(csp, "default-src 'none';") {
		t.Errorf("the account page's CSP does not allow exactly its script: %s", csp)
	}
	if strings.Contains(body, "API_PREFIX") || strings.Contains(body, "SIGNIN_PAGE") || !strings.Contains(body, `var signinPage = "/api/signin/";`) {
		t.Error("the account page's script is not filled in")
	}
	if got := s.do(t, req{method: "GET", path: "/api/account/?next=//evil.example/", session: sess}); !strings.Contains(string(got.body), `<a id="continue" href="/">`) {
		t.Error("the account page links to an unsafe next")
	}
	if r := s.do(t, req{method: "POST", path: "/api/account/", session: sess, csrf: true}); r.StatusCode != 405 {
		t.Errorf("POST to the account page: %d", r.StatusCode)
	}

	form := func(v url.Values, headers map[string]string) *response {
		h := map[string]string{"Origin": s.base}
		for k, x := range headers {
			h[k] = x
		}
		return s.do(t, req{method: "POST", path: "/api/signin/", body: v.Encode(), ctype: "application/x-www-form-urlencoded", headers: h})
	}
	// The account page is a next the sign-in page follows.
	r = form(url.Values{"op": {"login"}, "username": {"erin"}, "password": {strongPassword}, "next": {"/api/account/?next=/b"}}, nil)
	if r.StatusCode != 303 || r.Header.Get("Location") != "/api/account/?next=/b" {
		t.Errorf("next = the account page: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	// Who must add a second factor is led to the account page.
	s.newMember(t, "fay", false, false, "admins")
	r = form(url.Values{"op": {"login"}, "username": {"fay"}, "password": {strongPassword}, "next": {"/ledger"}}, nil)
	if r.StatusCode != 303 || r.Header.Get("Location") != "/api/account/?next=%2Fledger" || r.cookie("sessionid") == nil {
		t.Errorf("enrolment required, without JavaScript: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	// Who has one is asked for the code, with the pending login's cookie.
	secret, _ := s.enrolTOTP(t, sess)
	r = form(url.Values{"op": {"login"}, "username": {"erin"}, "password": {strongPassword}, "next": {"/ledger"}}, nil)
	body = string(r.body)
	if r.StatusCode != 200 || r.cookie("sessionid") != nil || !strings.Contains(body, `<form id="mfa-form" method="post">`) ||
		!strings.Contains(body, `<form id="signin-form" method="post" hidden>`) || !strings.Contains(body, `name="next" value="/ledger"`) {
		t.Fatalf("password step without JavaScript: %d\n%s", r.StatusCode, body)
	}
	pending := stateCookie(t, r)
	// The code form: a wrong code stays on it; without the pending cookie
	// the page asks to sign in again; the right code signs in and goes on.
	r = form(url.Values{"op": {"mfa"}, "code": {"zzzzz-zzzzz"}, "next": {"/ledger"}}, pending)
	if body := html.UnescapeString(string(r.body)); r.StatusCode != 400 || !strings.Contains(body, "Code: invalid code.") ||
		!strings.Contains(body, `<form id="mfa-form" method="post">`) {
		t.Errorf("wrong code: %d\n%s", r.StatusCode, body)
	}
	r = form(url.Values{"op": {"mfa"}, "code": {"123456"}, "next": {"/ledger"}}, nil)
	if body := string(r.body); r.StatusCode != 400 || !strings.Contains(body, "No sign-in is waiting") ||
		!strings.Contains(body, `<form id="signin-form" method="post">`) {
		t.Errorf("code without a pending login: %d\n%s", r.StatusCode, body)
	}
	r = form(url.Values{"op": {"mfa"}, "code": {totpCode(t, secret, time.Now().Add(30*time.Second))}, "next": {"/ledger"}}, pending)
	if r.StatusCode != 303 || r.Header.Get("Location") != "/ledger" || r.cookie("sessionid") == nil {
		t.Fatalf("right code: %d %q %s", r.StatusCode, r.Header.Get("Location"), r.body)
	}
	assertThrough(t, "after the code step without JavaScript", s.do(t, req{method: "GET", path: "/ledger", session: &session{id: r.cookie("sessionid").Value}}))

	// The account page's path is taken.
	if err := adaptAndValidate(t, "login_page account/"); err == nil || !strings.Contains(err.Error(), "already one of the API's endpoints") {
		t.Errorf("login_page account/: %v", err)
	}
}
