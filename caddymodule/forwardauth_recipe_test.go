package caddymodule_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// examples/forward-auth/Caddyfile as it is (its sites on free ports, without
// TLS): the app gets the identity and every cookie but the sidecar's
// session, which forward_auth still sends to the sidecar.
func TestForwardAuthCaddyRecipe(t *testing.T) {
	b, err := os.ReadFile("../examples/forward-auth/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	app := echoUpstream(t)
	authPort, appPort := freePort(t), freePort(t)
	usersDB := createAlice(t)
	cfg := string(b)
	for _, r := range [][2]string{
		{"auth.example.com {", fmt.Sprintf("http://127.0.0.1:%d {", authPort)},
		{"app.example.com {", fmt.Sprintf("http://127.0.0.1:%d {", appPort)},
		{"forward_auth auth.example.com {", fmt.Sprintf("forward_auth 127.0.0.1:%d {", authPort)},
		{"users_db /var/lib/caddy/session_auth/users.db", "users_db " + usersDB},
		{"reverse_proxy 127.0.0.1:8001", "reverse_proxy " + strings.TrimPrefix(app.URL, "http://")},
	} {
		if !strings.Contains(cfg, r[0]) {
			t.Fatalf("examples/forward-auth/Caddyfile no longer has %q; update this test", r[0])
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	loadCaddy(t, fmt.Sprintf("{\n\tadmin off\n\tpersist_config off\n\tstorage file_system %s\n}\n",
		filepath.Join(os.Getenv("XDG_DATA_HOME"), "caddy"))+cfg)

	auth := &site{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", authPort), client: &http.Client{Timeout: 15 * time.Second}}
	sess := auth.login(t, "alice", strongPassword)
	s := &site{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", appPort), client: auth.client}
	for _, c := range []struct{ cookie, want string }{
		{"theme=dark; sessionid=" + sess.id + "; csrftoken=" + sess.csrfCookie + "; xsessionid=keep",
			"theme=dark; csrftoken=" + sess.csrfCookie + "; xsessionid=keep"},
		{"sessionid=" + sess.id + "; theme=dark", "theme=dark"},
		{"theme=dark; sessionid=" + sess.id, "theme=dark"},
		{"sessionid=" + sess.id + "; a=1; sessionid=" + sess.id + "; b=2", "a=1; b=2"},
		{"sessionid=" + sess.id, ""},
	} {
		r := s.do(t, req{method: "GET", path: "/page", headers: map[string]string{"Cookie": c.cookie}})
		if r.StatusCode != 200 {
			t.Fatalf("GET /page on the app: %d %s", r.StatusCode, r.body)
		}
		e := r.echo(t)
		if got := strings.Join(e.Headers["Cookie"], " | "); got != c.want {
			t.Errorf("Cookie %q reached the app as %q, want %q", c.cookie, got, c.want)
		}
		if got := e.Headers["X-Auth-Username"]; !slices.Equal(got, []string{"alice"}) {
			t.Errorf("X-Auth-Username at the app: %q", got)
		}
	}
	if r := s.do(t, req{method: "GET", path: "/page", headers: map[string]string{"Cookie": "theme=dark"}}); r.StatusCode != 403 {
		t.Errorf("without a session: %d %s", r.StatusCode, r.body)
	}
}
