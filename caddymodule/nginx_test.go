package caddymodule_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nginxPath finds Debian's nginx; CI sets SESSION_AUTH_REQUIRE_NGINX=1 so
// that a missing nginx fails instead of skipping.
func nginxPath(t *testing.T) string {
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("SESSION_AUTH_REQUIRE_NGINX") == "1" {
		t.Fatal("no nginx and SESSION_AUTH_REQUIRE_NGINX=1 (apt-get install nginx-light)")
	}
	t.Skip("SKIPPING nginx test: no nginx on PATH (apt-get install nginx-light)")
	return ""
}

// startNginx runs nginx in the foreground (one process) with the server
// block of examples/forward-auth/nginx.conf, listening on a free port and
// pointing at the given sidecar and app addresses. It returns the base URL.
func startNginx(t *testing.T, sidecar, app string) string {
	t.Helper()
	bin := nginxPath(t)
	recipe, err := os.ReadFile(filepath.Join("..", "examples", "forward-auth", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	server := string(recipe)
	for old, new := range map[string]string{
		"listen 443 ssl;": fmt.Sprintf("listen 127.0.0.1:%d;", port),
		"127.0.0.1:8000":  sidecar,
		"127.0.0.1:8001":  app,
	} {
		if !strings.Contains(server, old) {
			t.Fatalf("the nginx recipe no longer has %q", old)
		}
		server = strings.ReplaceAll(server, old, new)
	}
	dir := t.TempDir()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // the temp dir is root's alone
	}
	conf := fmt.Sprintf(`%s
daemon off;
master_process off;
error_log %[2]s/error.log;
pid %[2]s/nginx.pid;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
%[3]s
}
`, user, dir, server)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", path)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "http://" + addr
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
	base := startNginx(t, strings.TrimPrefix(s.base, "http://"), strings.TrimPrefix(app.URL, "http://"))
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
