package caddymodule_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The nginx recipe (examples/forward-auth/nginx.conf), run for real with
// Debian's nginx in front of the sidecar and an app.

// nginxPath returns an nginx with the auth_request module; else the test
// skips loudly, or fails under SESSION_AUTH_REQUIRE_NGINX=1 (.ci/run).
func nginxPath(t *testing.T) string {
	t.Helper()
	missing := func(msg string) {
		if os.Getenv("SESSION_AUTH_REQUIRE_NGINX") == "1" {
			t.Fatal(msg + " and SESSION_AUTH_REQUIRE_NGINX=1")
		}
		t.Skip("SKIPPING nginx test: " + msg)
	}
	path, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			missing("no nginx (apt-get install nginx-light)")
		}
		path = "/usr/sbin/nginx"
	}
	out, err := exec.Command(path, "-V").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--with-http_auth_request_module") {
		missing(fmt.Sprintf("%s has no auth_request module (%v)", path, err))
	}
	return path
}

// startNginx runs examples/forward-auth/nginx.conf (its server on a free
// port, without TLS) with the sidecar at sidecar and the app at app, both
// host:port, and the further replacements given. It returns nginx's base
// URL.
func startNginx(t *testing.T, nginx, sidecar, app string, more ...[2]string) string {
	t.Helper()
	b, err := os.ReadFile("../examples/forward-auth/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	conf := string(b)
	for _, r := range append([][2]string{
		{"listen 443 ssl;", fmt.Sprintf("listen 127.0.0.1:%d;", port)},
		{"127.0.0.1:8000", sidecar},
		{"127.0.0.1:8001", app},
	}, more...) {
		if !strings.Contains(conf, r[0]) {
			t.Fatalf("examples/forward-auth/nginx.conf no longer has %q; update this test", r[0])
		}
		conf = strings.ReplaceAll(conf, r[0], r[1])
	}
	dir := t.TempDir()
	main := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
%[2]s
}
`, dir, conf)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	cmd := exec.Command(nginx, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			logged, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", out, logged)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return "http://" + addr
		}
		if time.Now().After(deadline) {
			logged, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not listen on %s: %v\n%s\n%s", addr, err, out, logged)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sidecarOnly loads a Caddy with just the sidecar (its API and /api/auth/)
// over usersDB, and returns its host:port.
func sidecarOnly(t *testing.T, usersDB string) string {
	port := freePort(t)
	loadCaddy(t, fmt.Sprintf(`{
	admin off
	persist_config off
	storage file_system %s
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
	}
}
`, filepath.Join(os.Getenv("XDG_DATA_HOME"), "caddy"), port, usersDB))
	return fmt.Sprintf("127.0.0.1:%d", port)
}

func TestNginxRecipe(t *testing.T) {
	nginx := nginxPath(t)

	// The app gets the identity and every cookie but the sidecar's session.
	t.Run("cookies", func(t *testing.T) {
		app := echoUpstream(t)
		sidecar := sidecarOnly(t, createAlice(t))
		s := &site{t: t, base: startNginx(t, nginx, sidecar, strings.TrimPrefix(app.URL, "http://")),
			client: &http.Client{Timeout: 15 * time.Second}}
		sess := s.login(t, "alice", strongPassword)

		for _, c := range []struct{ cookie, want string }{
			{"theme=dark; sessionid=" + sess.id + "; csrftoken=" + sess.csrfCookie + "; xsessionid=keep",
				"theme=dark; csrftoken=" + sess.csrfCookie + "; xsessionid=keep"},
			{"sessionid=" + sess.id + "; theme=dark", "theme=dark"},
			{"a=1;sessionid=" + sess.id + ";b=2", "a=1;b=2"},
			{"theme=dark; sessionid=" + sess.id, "theme=dark"},
			// A host-only and a domain cookie: both go.
			{"sessionid=" + sess.id + "; a=1; sessionid=" + sess.id + "; b=2", "a=1; b=2"},
			{"a=1; sessionid=" + sess.id + "; sessionid=" + sess.id, "a=1"},
			{"sessionid=" + sess.id, ""},
		} {
			r := s.do(t, req{method: "GET", path: "/page", headers: map[string]string{
				"Cookie": c.cookie, "X-Auth-Username": "spoof", "X_Auth_Username": "spoof2"}})
			if r.StatusCode != 200 {
				t.Fatalf("GET /page through nginx: %d %s", r.StatusCode, r.body)
			}
			e := r.echo(t)
			if got := strings.Join(e.Headers["Cookie"], " | "); got != c.want {
				t.Errorf("Cookie %q reached the app as %q, want %q", c.cookie, got, c.want)
			}
			if got := e.Headers["X-Auth-Username"]; !slices.Equal(got, []string{"alice"}) {
				t.Errorf("X-Auth-Username at the app: %q", got)
			}
			if e.Headers["X_auth_username"] != nil || e.Headers["X_Auth_Username"] != nil {
				t.Errorf("an underscore spelling reached the app: %v", e.Headers)
			}
		}
		if r := s.do(t, req{method: "GET", path: "/page", headers: map[string]string{"Cookie": "theme=dark"}}); r.StatusCode != 403 {
			t.Errorf("without a session: %d %s", r.StatusCode, r.body)
		}
	})

	// The Django recipe behind nginx, as examples/django-app/README.md
	// says: the project as it is, and nginx sending Remote-User. Its
	// settings and middleware keep the sidecar's cookies intact although
	// nginx passes Django's Set-Cookie.
	t.Run("django", func(t *testing.T) {
		python := djangoPython(t)
		django := startDjango(t, python)
		sidecar := sidecarOnly(t, createAlice(t))
		remoteUser := [2]string{
			"        proxy_set_header X-Auth-Email    $auth_email;\n",
			"        proxy_set_header X-Auth-Email    $auth_email;\n        proxy_set_header Remote-User $auth_username;\n",
		}
		djangoFlow(t, newJarClient(t, startNginx(t, nginx, sidecar, django, remoteUser)), true, true)
	})
}

// The nginx auth_request recipe, run by a real nginx: nginx drops the
// hop-by-hop Upgrade from the auth request, yet a cross-site WebSocket
// handshake is refused (Sec-WebSocket-Version gives it away); unsafe
// requests are held to the Origin rule with the original origin from
// X-Forwarded-Host (host:port) and -Proto.
func TestNginxForwardAuthOrigin(t *testing.T) {
	s := startSite(t, "", "")
	// The app: a WebSocket at /socket, and the identity it got elsewhere.
	ws, _ := wsUpstream(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/socket" {
			ws.Config.Handler.ServeHTTP(w, r)
			return
		}
		fmt.Fprintf(w, "app: %s %s", r.Method, r.Header.Get("X-Auth-Username"))
	}))
	t.Cleanup(app.Close)
	base := startNginx(t, nginxPath(t), strings.TrimPrefix(s.base, "http://"), strings.TrimPrefix(app.URL, "http://"))
	sess := s.newUser(t, "nginxuser")

	evil := map[string]string{"Origin": "https://evil.example"}
	if r := wsUpgrade(t, base, "/socket", sess, map[string]string{"Origin": base}); r.status != 101 || r.message != "hello nginxuser" {
		t.Errorf("same-origin WebSocket through nginx: %d %q %q", r.status, r.body, r.message)
	}
	if r := wsUpgrade(t, base, "/socket", sess, evil); r.status != 403 {
		t.Errorf("cross-site WebSocket through nginx: %d %q %q", r.status, r.body, r.message)
	}
	if r := wsUpgrade(t, base, "/socket", sess, map[string]string{"Sec-Fetch-Site": "cross-site"}); r.status != 403 {
		t.Errorf("cross-site WebSocket without Origin through nginx: %d %q", r.status, r.body)
	}

	ng := &site{t: t, base: base, client: s.client}
	if r := ng.do(t, req{method: "POST", path: "/form", session: sess, csrf: true, headers: map[string]string{"Origin": base}}); string(r.body) != "app: POST nginxuser" {
		t.Errorf("same-origin POST through nginx: %d %s", r.StatusCode, r.body)
	}
	if r := ng.do(t, req{method: "POST", path: "/form", session: sess, csrf: true, headers: evil}); r.StatusCode != 403 {
		t.Errorf("cross-site POST through nginx: %d %s", r.StatusCode, r.body)
	}
	if r := ng.do(t, req{method: "POST", path: "/form", session: sess, headers: map[string]string{"Origin": base}}); r.StatusCode != 403 {
		t.Errorf("POST without token through nginx: %d %s", r.StatusCode, r.body)
	}
	if r := ng.do(t, req{method: "GET", path: "/page", session: sess, headers: map[string]string{"Sec-Fetch-Site": "cross-site"}}); string(r.body) != "app: GET nginxuser" {
		t.Errorf("cross-site link through nginx: %d %s", r.StatusCode, r.body)
	}
	if r := ng.do(t, req{method: "GET", path: "/page"}); r.StatusCode != 403 {
		t.Errorf("anonymous through nginx: %d %s", r.StatusCode, r.body)
	}
}
