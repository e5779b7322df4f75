package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testphp"
)

// phpSite is a real PHP site: Caddy's php_fastcgi in front of a private
// php-fpm, behind session_auth with the given extra lines.
type phpSite struct {
	*site
	docroot string
	fpm     *testphp.Server
}

// whoamiPHP reports what PHP saw: the script run, PATH_INFO and the
// identity headers as PHP reads them (HTTP_X_AUTH_*).
const whoamiPHP = `<?php
header('Content-Type: application/json');
$seen = [];
foreach ($_SERVER as $k => $v) {
	if (strncmp($k, 'HTTP_', 5) === 0) { $seen[$k] = $v; }
}
echo json_encode([
	'script' => $_SERVER['SCRIPT_NAME'] ?? '',
	'path_info' => $_SERVER['PATH_INFO'] ?? '',
	'user_id' => $_SERVER['HTTP_X_AUTH_USER_ID'] ?? null,
	'username' => $_SERVER['HTTP_X_AUTH_USERNAME'] ?? null,
	'email' => $_SERVER['HTTP_X_AUTH_EMAIL'] ?? null,
	'http' => $seen,
]);
`

func startPHPSite(t *testing.T, global, extra string) *phpSite {
	t.Helper()
	fpm := testphp.Start(t)
	s := startSite(t, "", "")
	docroot := t.TempDir()
	for name, body := range map[string]string{
		"admin/users.php": whoamiPHP,
		"whoami.php":      whoamiPHP,
		"style/site.css":  "body { color: black }\n",
	} {
		p := filepath.Join(docroot, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := &phpSite{site: s, docroot: docroot, fpm: fpm}
	p.reloadPHP(global, extra)
	return p
}

// reloadPHP (re)loads the PHP site's config with the given global options
// and session_auth lines.
func (p *phpSite) reloadPHP(global, extra string) {
	p.t.Helper()
	p.load(fmt.Sprintf(`{
	admin off
	persist_config off
	%s
}
http://127.0.0.1:%d {
	root * %s
	session_auth {
		users_db %s
		login_throttle off
		register_throttle off
		%s
	}
	php_fastcgi %s
	file_server
}
`, global, p.port, p.docroot, p.dbPath, extra, p.fpm.Addr))
	p.client.CloseIdleConnections()
}

// phpSaw is whoamiPHP's answer.
type phpSaw struct {
	Script   string            `json:"script"`
	PathInfo string            `json:"path_info"`
	UserID   *string           `json:"user_id"`
	Username *string           `json:"username"`
	Email    *string           `json:"email"`
	HTTP     map[string]string `json:"http"`
}

func (p *phpSite) saw(t *testing.T, r *response) phpSaw {
	t.Helper()
	var v phpSaw
	if err := json.Unmarshal(r.body, &v); err != nil || v.Script == "" {
		t.Fatalf("not PHP's answer (status %d): %q\nphp-fpm log:\n%s", r.StatusCode, r.body, p.fpm.Log())
	}
	return v
}

func deref(p *string) string {
	if p == nil {
		return "<none>"
	}
	return *p
}
