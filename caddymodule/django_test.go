package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// The Django recipe (examples/django-app), run for real: Debian's Django 3.2
// behind a real Caddy with the example's Caddyfile, one cookie jar.

const debianPython = "/usr/bin/python3" // Debian's, with python3-django (not a pyenv one)

// djangoPython returns Debian's python3 if it can import Django; else the
// test skips loudly, or fails under SESSION_AUTH_REQUIRE_DJANGO=1 (.ci/run).
func djangoPython(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(debianPython, "-c", "import django; print(django.get_version())").CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("no Django for %s (apt-get install python3-django): %v: %s", debianPython, err, out)
		if os.Getenv("SESSION_AUTH_REQUIRE_DJANGO") == "1" {
			t.Fatal(msg + " and SESSION_AUTH_REQUIRE_DJANGO=1")
		}
		t.Skip("SKIPPING Django test: " + msg)
	}
	t.Logf("Django %s", strings.TrimSpace(string(out)))
	return debianPython
}

// lockedBuffer collects a child process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startDjango migrates a fresh SQLite file and runs the example project
// with `runserver --noreload` on a free port; env adds to its environment
// (e.g. another DJANGO_SETTINGS_MODULE). It returns host:port.
func startDjango(t *testing.T, python string, env ...string) string {
	t.Helper()
	dir, err := filepath.Abs("../examples/django-app")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	env = append(append(os.Environ(),
		"PYTHONDONTWRITEBYTECODE=1", // nothing written into the repository
		"DJANGO_SETTINGS_MODULE=mysite.settings",
		"DJANGO_DB="+filepath.Join(tmp, "db.sqlite3"),
		"DJANGO_SECRET_KEY=test-"+filepath.Base(tmp),
		"HOME="+tmp,
	), env...)
	migrate := exec.Command(python, "manage.py", "migrate", "--noinput")
	migrate.Dir, migrate.Env = dir, env
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("manage.py migrate: %v\n%s", err, out)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	out := &lockedBuffer{}
	srv := exec.Command(python, "manage.py", "runserver", "--noreload", addr)
	srv.Dir, srv.Env, srv.Stdout, srv.Stderr = dir, env, out, out
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Kill()
		srv.Wait()
		if t.Failed() {
			t.Logf("Django's output:\n%s", out)
		}
	})
	client := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("Django did not answer on %s: %v\n%s", addr, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// exampleCaddyfile is examples/django-app/Caddyfile with its site address,
// users_db and upstream pointed at this test's.
func exampleCaddyfile(t *testing.T, port int, usersDB, upstream string) string {
	t.Helper()
	b, err := os.ReadFile("../examples/django-app/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, r := range [][2]string{
		{"example.com {", fmt.Sprintf("http://127.0.0.1:%d {", port)},
		{"users_db /var/lib/caddy/session_auth/users.db", "users_db " + usersDB},
		{"\t\tredis {$SESSION_AUTH_REDIS}\n", ""},
		{"reverse_proxy 127.0.0.1:8001", "reverse_proxy " + upstream},
	} {
		if !strings.Contains(cfg, r[0]) {
			t.Fatalf("examples/django-app/Caddyfile no longer has %q; update this test", r[0])
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	return fmt.Sprintf("{\n\tadmin off\n\tpersist_config off\n\tstorage file_system %s\n}\n",
		filepath.Join(os.Getenv("XDG_DATA_HOME"), "caddy")) + cfg
}

// jarClient is a browser-like client: one cookie jar, no redirects followed.
type jarClient struct {
	t    *testing.T
	base *url.URL
	jar  *cookiejar.Jar
	c    *http.Client
}

func newJarClient(t *testing.T, base string) *jarClient {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(base)
	return &jarClient{t: t, base: u, jar: jar, c: &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (j *jarClient) cookie(name string) string {
	for _, c := range j.jar.Cookies(j.base) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// do sends a request (JSON body if any, X-CSRFToken if token is set) and
// decodes a JSON answer.
func (j *jarClient) do(method, path, body, token string) (int, map[string]any, http.Header) {
	j.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	hr, err := http.NewRequest(method, j.base.String()+path, rd)
	if err != nil {
		j.t.Fatal(err)
	}
	hr.Header.Set("Accept", "application/json")
	if body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		hr.Header.Set("X-CSRFToken", token)
	}
	resp, err := j.c.Do(hr)
	if err != nil {
		j.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		v = map[string]any{"not JSON": string(raw)} // e.g. nginx's own error page
	}
	return resp.StatusCode, v, resp.Header
}

func TestDjangoRecipe(t *testing.T) {
	python := djangoPython(t)

	// The recipe as documented: examples/django-app's settings and
	// middleware.
	t.Run("recipe", func(t *testing.T) {
		djangoBehindSidecar(t, python, true)
	})
	// What issue 9 ran: startproject's settings (Django's session under the
	// default `sessionid`) with a RemoteUserMiddleware subclass that only
	// sets the header. Django logs in anew on every request and answers
	// with its own sessionid and a rotated csrftoken; the sidecar keeps its
	// cookies all the same.
	t.Run("startproject-defaults", func(t *testing.T) {
		djangoBehindSidecar(t, python, false)
	})
}

// bareDjango writes the settings issue 9 ran (startproject's, with a
// RemoteUserMiddleware subclass that only sets the header) and returns the
// environment that selects them.
func bareDjango(t *testing.T) []string {
	dir := t.TempDir()
	files := map[string]string{
		"bare_settings.py": "from mysite.settings import *  # noqa\n" +
			"SESSION_COOKIE_NAME = 'sessionid'\n" +
			"MIDDLEWARE = ['bare_middleware.HeaderOnly' if m == 'myapp.middleware.SidecarUserMiddleware' else m for m in MIDDLEWARE]\n",
		"bare_middleware.py": "from django.contrib.auth.middleware import RemoteUserMiddleware\n\n\n" +
			"class HeaderOnly(RemoteUserMiddleware):\n    header = 'HTTP_REMOTE_USER'\n",
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"PYTHONPATH=" + dir, "DJANGO_SETTINGS_MODULE=bare_settings"}
}

// createAlice makes the test's user in a new users_db, as an operator would
// (so the test holds whatever the example says about registration).
func createAlice(t *testing.T) string {
	usersDB := filepath.Join(t.TempDir(), "users.db")
	(&cliLog{t: t}).ok(strongPassword+"\n", "create-user", "--db", usersDB,
		"--username", "alice", "--email", "alice@example.com", "--password-stdin")
	return usersDB
}

// loadCaddy loads cfg into this process's Caddy until the test ends.
func loadCaddy(t *testing.T, cfg string) {
	(&site{t: t}).load(cfg)
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})
}

func djangoBehindSidecar(t *testing.T, python string, recipe bool) {
	var env []string
	if !recipe {
		env = bareDjango(t)
	}
	django := startDjango(t, python, env...)
	usersDB := createAlice(t)
	port := freePort(t)
	loadCaddy(t, exampleCaddyfile(t, port, usersDB, django))
	djangoFlow(t, newJarClient(t, fmt.Sprintf("http://127.0.0.1:%d", port)), recipe, false)
}

// djangoFlow is one browser session against the Django project, through
// the sidecar (behindNginx: through nginx's auth_request to it): login,
// three GETs, POSTs with the tokens a page can have, logout. recipe: the
// example's settings (Django's session kept under its own name).
func djangoFlow(t *testing.T, b *jarClient, recipe, behindNginx bool) {
	code, v, _ := b.do("POST", "/api/login/", credsJSON("alice", strongPassword), "")
	if code != 200 {
		t.Fatalf("login: %d %v", code, v)
	}
	loginToken, _ := v["csrf_token"].(string)
	sid, csrfCookie := b.cookie("sessionid"), b.cookie("csrftoken")
	if sid == "" || csrfCookie == "" || loginToken == "" {
		t.Fatalf("login gave no session or CSRF token: %v %v", b.jar.Cookies(b.base), v)
	}
	// The sidecar's cookies stay as its login set them, whatever Django
	// says. Caddy drops the app's Set-Cookie for them; nginx cannot, so
	// there the recipe must keep Django from sending other values.
	sidecarCookiesKept := func(what string, h http.Header) {
		t.Helper()
		if got := b.cookie("sessionid"); got != sid {
			t.Fatalf("%s: the sidecar's sessionid was replaced (%q)", what, got)
		}
		if got := b.cookie("csrftoken"); got != csrfCookie {
			t.Fatalf("%s: the sidecar's csrftoken was replaced (%q)", what, got)
		}
		for _, line := range h["Set-Cookie"] {
			name, _, _ := strings.Cut(strings.TrimSpace(line), "=")
			if name == "sessionid" || (name == "csrftoken" && !behindNginx) {
				t.Errorf("%s: the app's %s cookie reached the client: %q", what, name, line)
			}
		}
	}

	// Three GETs. The first is Django's login (RemoteUserMiddleware), which
	// rotates its CSRF token and writes its session.
	var djangoToken string
	var djangoSessions []any
	for i, path := range []string{"/csrf/", "/whoami/", "/whoami/"} {
		code, v, h := b.do("GET", path, "", "")
		if code != 200 {
			t.Fatalf("GET %s (#%d after login): %d %v", path, i+1, code, v)
		}
		sidecarCookiesKept("GET "+path, h)
		if path == "/csrf/" {
			djangoToken, _ = v["csrf_token"].(string)
		} else {
			if v["user"] != "alice" {
				t.Errorf("GET %s: Django's user is %v", path, v["user"])
			}
			djangoSessions = append(djangoSessions, v["django_session"])
		}
	}
	if recipe && djangoSessions[0] != djangoSessions[1] {
		t.Errorf("Django logged in again on each request: sessions %v (SESSION_COOKIE_NAME)", djangoSessions)
	}
	if !recipe && djangoSessions[0] == djangoSessions[1] {
		t.Errorf("Django kept its session under the sidecar's cookie name: %v", djangoSessions)
	}

	// A POST with the sidecar's token passes the sidecar's check and
	// Django's CsrfViewMiddleware (which reads the sidecar's csrftoken).
	for _, tok := range []struct{ what, token string }{
		{"login's csrf_token", loginToken},
		{"csrftoken cookie", csrfCookie},
	} {
		code, v, h := b.do("POST", "/notes/", `{"note":"hi"}`, tok.token)
		if code != 201 || v["by"] != "alice" {
			t.Fatalf("POST /notes/ with the %s: %d %v", tok.what, code, v)
		}
		sidecarCookiesKept("POST /notes/", h)
	}
	if recipe {
		// The token Django renders ({% csrf_token %}, get_token) in the
		// request that logged it in is one that both checks accept.
		if code, v, _ := b.do("POST", "/notes/", `{"note":"form"}`, djangoToken); code != 201 {
			t.Errorf("POST /notes/ with Django's get_token(): %d %v", code, v)
		}
	}
	// Without the token, the sidecar refuses before Django sees it.
	if code, v, _ := b.do("POST", "/notes/", `{"note":"x"}`, ""); code != 403 ||
		(!behindNginx && !strings.HasPrefix(fmt.Sprint(v["detail"]), "CSRF Failed")) {
		t.Errorf("POST without a token: %d %v", code, v)
	}
	if !behindNginx {
		// A public page reaches Django without identity; the next gated
		// request is alice again.
		if code, v, h := b.do("GET", "/", "", ""); code != 200 || v["user"] != nil {
			t.Errorf("public GET /: %d %v", code, v)
		} else {
			sidecarCookiesKept("GET /", h)
		}
		if code, v, _ := b.do("GET", "/whoami/", "", ""); code != 200 || v["user"] != "alice" {
			t.Errorf("GET /whoami/ after the public page: %d %v", code, v)
		}
	}
	// Logging out of the sidecar ends access to the app.
	if code, v, _ := b.do("POST", "/api/logout/", "", csrfCookie); code != 200 {
		t.Fatalf("logout: %d %v", code, v)
	}
	if code, v, _ := b.do("GET", "/whoami/", "", ""); code != 403 ||
		(!behindNginx && v["detail"] != "Authentication credentials were not provided.") {
		t.Errorf("GET /whoami/ after logout: %d %v", code, v)
	}
}
