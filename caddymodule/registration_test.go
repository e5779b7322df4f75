package caddymodule_test

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

const registrationClosed = `{"detail":"Registration is closed."}`

// `registration closed`: the endpoint refuses everyone, the sign-in page
// offers no form, and operators still create users (CLI on the file before
// the start, CLI through the admin API while Caddy runs).
func TestRegistrationClosed(t *testing.T) {
	dir := t.TempDir()
	l := &cliLog{t: t}
	s := &site{t: t, dbPath: filepath.Join(dir, "users.db"), upstream: echoUpstream(t), port: freePort(t)}
	s.base = fmt.Sprintf("http://127.0.0.1:%d", s.port)
	s.client = &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	l.ok(strongPassword+"\n", "create-user", "--db", s.dbPath, "--username", "first", "--email", "first@example.com", "--password-stdin")

	adminPort := freePort(t)
	config := func(mode string) string {
		return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	storage file_system %s
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
		%s
		login_redirect
		register_throttle 3 1h
	}
	reverse_proxy %s
}
`, adminPort, filepath.Join(os.Getenv("XDG_DATA_HOME"), "caddy"), s.port, s.dbPath, mode, strings.TrimPrefix(s.upstream.URL, "http://"))
	}
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(config("registration closed")), 0o600); err != nil {
		t.Fatal(err)
	}
	s.load(config("registration closed"))
	t.Cleanup(func() {
		if err := caddy.Load([]byte(`{"admin":{"disabled":true}}`), true); err != nil {
			t.Errorf("stopping caddy's admin endpoint: %v", err)
		}
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})

	body := `{"username":"walkin","email":"w@example.com","password":"` + strongPassword + `","password2":"` + strongPassword + `"}`
	form := "username=walkin&email=w%40example.com&password=" + strongPassword + "&password2=" + strongPassword
	// More attempts than register_throttle allows: a closed endpoint is
	// refused before the throttle counts (no 429 for nobody).
	for i := range 5 {
		r := s.do(t, req{method: "POST", path: "/api/register/", body: body})
		if r.StatusCode != 403 || string(r.body) != registrationClosed {
			t.Fatalf("register %d: %d %s", i, r.StatusCode, r.body)
		}
		if r.Header.Get("Allow") != "POST, OPTIONS" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("register: headers %v", r.Header)
		}
	}
	if r := s.do(t, req{method: "POST", path: "/api/register/", body: form, ctype: "application/x-www-form-urlencoded"}); r.StatusCode != 403 || string(r.body) != registrationClosed {
		t.Errorf("form register: %d %s", r.StatusCode, r.body)
	}
	// Other methods are what they were: 405, and OPTIONS describes the
	// endpoint.
	if r := s.do(t, req{method: "GET", path: "/api/register/"}); r.StatusCode != 405 || r.Header.Get("Allow") != "POST, OPTIONS" {
		t.Errorf("GET register: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, req{method: "OPTIONS", path: "/api/register/"}); r.StatusCode != 200 || r.json(t)["name"] != "Register" {
		t.Errorf("OPTIONS register: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, req{method: "POST", path: "/api/register"}); r.StatusCode != 308 {
		t.Errorf("slash-less register: %d", r.StatusCode)
	}
	if st := s.loginStatus(t, "walkin", strongPassword); st != 400 {
		t.Errorf("refused registration created the user: login %d", st)
	}
	// Counted as closed (Caddy's admin endpoint serves the metrics).
	admin := &site{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", adminPort), client: s.client}
	m := regexp.MustCompile(`(?m)^caddy_session_auth_registrations_total\{result="closed",site="srv[0-9]+"\} ([0-9]+)$`).
		FindStringSubmatch(string(admin.do(t, req{method: "GET", path: "/metrics"}).body))
	if m == nil {
		t.Error("no registrations_total{result=\"closed\"} metric")
	} else if n, _ := strconv.Atoi(m[1]); n < 6 {
		t.Errorf("registrations_total{result=\"closed\"} = %d, want at least 6", n)
	}

	// Operators: the user made with --db before the start logs in, and
	// so does one made through the admin API now.
	s.login(t, "first", strongPassword)
	l.ok(strongPassword+"\n", "create-user", "--config", caddyfile, "--username", "second", "--email", "second@example.com", "--password-stdin")
	s.login(t, "second", strongPassword)

	// The sign-in page has no registration form and says why not.
	page := s.do(t, req{method: "GET", path: "/api/signin/"})
	assertSigninPage(t, page, "closed")

	// Open again (a reload): the form is back and registering works.
	s.load(config("registration open"))
	assertSigninPage(t, s.do(t, req{method: "GET", path: "/api/signin/"}), "open")
	if r := s.do(t, req{method: "POST", path: "/api/register/", body: body}); r.StatusCode != 201 {
		t.Errorf("open registration: %d %s", r.StatusCode, r.body)
	}
}

// assertSigninPage checks the built-in page for a registration mode, and
// that its CSP still allows exactly its inline script.
func assertSigninPage(t *testing.T, page *response, mode string) {
	t.Helper()
	html := string(page.body)
	if page.StatusCode != 200 || !strings.Contains(html, `id="signin-form"`) {
		t.Fatalf("sign-in page: %d %.300s", page.StatusCode, html)
	}
	if !strings.Contains(html, `data-registration="`+mode+`"`) {
		t.Errorf("page does not say registration is %s", mode)
	}
	hasForm := strings.Contains(html, `id="register-form"`) || strings.Contains(html, `id="show-register"`)
	if hasForm != (mode == "open") {
		t.Errorf("registration %s: page has the registration form: %v", mode, hasForm)
	}
	m := regexp.MustCompile(`(?s)<script>(.*)</script>`).FindStringSubmatch(html)
	if m == nil {
		t.Fatal("no inline script")
	}
	sum := sha256.Sum256([]byte(m[1]))
	csp := page.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q does not allow the page's script by hash", csp)
	}
}

func TestRegistrationConfig(t *testing.T) {
	cfg, err := adapt(":8000 {\n\tsession_auth {\n\t\tregistration closed\n\t}\n}")
	if err != nil || !strings.Contains(string(cfg), `"registration":"closed"`) {
		t.Errorf("adapted: %v %s", err, cfg)
	}
	for _, bad := range []struct{ body, want string }{
		{"registration", "wrong argument count"},
		{"registration open closed", "wrong argument count"},
		{"registration sometimes", `registration: want open or closed, got "sometimes"`},
	} {
		_, err := adapt(":8000 {\n\tsession_auth {\n\t\t" + bad.body + "\n\t}\n}")
		if err == nil || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), "Caddyfile:3") {
			t.Errorf("%q: error %v, want %q naming Caddyfile:3", bad.body, err, bad.want)
		}
	}
	// The JSON config: the same field, checked in Validate.
	dir := t.TempDir()
	port := freePort(t)
	load := func(value string) error {
		return caddy.Load([]byte(fmt.Sprintf(`{"admin":{"disabled":true},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:%d"],"routes":[{"handle":[{"handler":"session_auth","users_db":%q,"registration":%q}]}]}}}}}`,
			port, filepath.Join(dir, "u.db"), value)), true)
	}
	if err := load("sometimes"); err == nil || !strings.Contains(err.Error(), `registration: want open or closed, got "sometimes"`) {
		t.Errorf("JSON registration sometimes: %v", err)
	}
	if err := load("closed"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caddy.Stop() })
	s := &site{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), client: &http.Client{Timeout: 15 * time.Second}}
	if r := s.register(t, "jsonuser", "j@example.com", strongPassword); r.StatusCode != 403 || string(r.body) != registrationClosed {
		t.Errorf("JSON closed: %d %s", r.StatusCode, r.body)
	}
}
