package caddymodule_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testsmtp"
)

// The audit log: a Caddy `log` block sends http.handlers.session_auth.audit
// to a file, and every security event shows up there once as its own JSON
// line with its fields, never with a password, token or key. The CLI goes
// through the admin API for user_created, user_changed and user_deleted.
func TestAuditLog(t *testing.T) {
	mail := testsmtp.Start(t, testsmtp.Plain)
	s, logPath, caddyfile, _ := startAuditedSite(t, siteConfig{extra: "register_throttle off\nlogin_throttle 3 100 1m 1m\nsmtp " + mail.URL() +
		"\nemail_from noreply@example.com\nemail_verification mandatory"}, "")
	l := &cliLog{t: t}
	via := []string{"--config", caddyfile}
	secrets := []string{strongPassword, "N3w-Secret-Words", "Op3rator-Secret-Words"}

	// register, login_failed unverified, email_verified, login
	if r := s.register(t, "ivy", "ivy@example.com", strongPassword); r.StatusCode != 201 {
		t.Fatalf("register: %d %s", r.StatusCode, r.body)
	}
	key := verifyLinkRE.FindStringSubmatch(mail.WaitFor(t, "ivy@example.com", 10*time.Second, nil).Body)[2]
	secrets = append(secrets, key)
	s.post(t, "/api/login/", map[string]string{"username": "ivy", "password": strongPassword})
	wantBody(t, s.post(t, "/api/registration/verify-email/", map[string]string{"key": key}), 200, `{"detail":"ok"}`)
	a := s.loginUA(t, "ivy", strongPassword, "Audit UA")
	b := s.login(t, "ivy", strongPassword)
	secrets = append(secrets, a.id, b.id, a.token)
	// login_failed bad_credentials, then throttled
	for range 4 {
		s.post(t, "/api/login/", map[string]string{"username": "ivy", "password": "wrong-Password-9"})
	}
	l.ok("", append([]string{"unban", "--username", "ivy"}, via...)...)
	// session_ended, password_changed, logout, logout_all
	list := s.sessionList(t, a)
	var idB string
	for _, e := range list {
		if !e.Current {
			idB = e.ID
		}
	}
	if r := s.do(t, req{method: "DELETE", path: "/api/sessions/" + idB + "/", session: a, csrf: true}); r.StatusCode != 204 {
		t.Fatalf("DELETE: %d", r.StatusCode)
	}
	r := s.do(t, req{method: "POST", path: "/api/password/", session: a, csrf: true,
		body: jsonBody(map[string]string{"old_password": strongPassword, "new_password": "N3w-Secret-Words", "new_password2": "N3w-Secret-Words"})})
	if r.StatusCode != 200 {
		t.Fatalf("password change: %d %s", r.StatusCode, r.body)
	}
	a.id = r.cookie("sessionid").Value
	if r := s.do(t, req{method: "POST", path: "/api/logout/", session: a, csrf: true}); r.StatusCode != 200 {
		t.Fatalf("logout: %d", r.StatusCode)
	}
	c := s.login(t, "ivy", "N3w-Secret-Words")
	if r := s.do(t, req{method: "POST", path: "/api/logout/all/", session: c, csrf: true}); r.StatusCode != 200 {
		t.Fatalf("logout/all: %d", r.StatusCode)
	}
	// password_reset_requested, password_reset
	s.post(t, "/api/password/reset/", map[string]string{"email": "ivy@example.com"})
	m := resetLinkRE.FindStringSubmatch(mail.WaitFor(t, "ivy@example.com", 10*time.Second, func(x testsmtp.Message) bool { return strings.Contains(x.Body, "reset-confirm") }).Body)
	secrets = append(secrets, m[3])
	wantBody(t, s.post(t, "/api/password/reset/confirm/", map[string]string{"uid": m[2], "token": m[3],
		"new_password1": strongPassword, "new_password2": strongPassword}), 200, resetDone)
	// user_created, user_changed (deactivate), login_failed inactive, user_deleted
	l.ok("Op3rator-Secret-Words\n", append([]string{"create-user", "--username", "opal", "--email", "opal@example.com", "--password-stdin"}, via...)...)
	l.ok("", append([]string{"verify-email", "--username", "opal"}, via...)...)
	l.ok("", append([]string{"deactivate", "--username", "opal"}, via...)...)
	s.post(t, "/api/login/", map[string]string{"username": "opal", "password": "Op3rator-Secret-Words"})
	l.ok("", append([]string{"delete-user", "--username", "opal"}, via...)...)

	// The log file, read back (Caddy writes each line at once).
	want := map[string]func(e map[string]any) bool{
		"register":                     func(e map[string]any) bool { return e["username"] == "ivy" && e["client_ip"] == "127.0.0.1" },
		"login":                        func(e map[string]any) bool { return e["user_agent"] == "Audit UA" && e["session_id"] != nil },
		"login_failed/unverified":      func(e map[string]any) bool { return e["user_id"] != nil },
		"login_failed/bad_credentials": func(e map[string]any) bool { return e["username"] == "ivy" },
		"login_failed/throttled":       func(e map[string]any) bool { return e["username"] == "ivy" },
		"login_failed/inactive":        func(e map[string]any) bool { return e["username"] == "opal" },
		"logout":                       func(e map[string]any) bool { return e["session_id"] != nil },
		"logout_all":                   func(e map[string]any) bool { return e["user_id"] != nil },
		"password_changed":             func(e map[string]any) bool { return e["session_id"] != nil },
		"password_reset_requested":     func(e map[string]any) bool { return e["username"] == "ivy" },
		"password_reset":               func(e map[string]any) bool { return e["username"] == "ivy" },
		"email_verified":               func(e map[string]any) bool { return e["username"] == "ivy" },
		"session_ended":                func(e map[string]any) bool { return e["session_id"] == idB },
		"user_created":                 func(e map[string]any) bool { return e["username"] == "opal" && e["actor"] == "admin_api" },
		"user_changed": func(e map[string]any) bool {
			return e["username"] == "opal" && e["actor"] == "admin_api" && e["change"] == "deactivate"
		},
		"user_deleted": func(e map[string]any) bool { return e["username"] == "opal" && e["actor"] == "admin_api" },
	}
	waitAudit(t, logPath, want, secrets)
	l.assertNoSecrets(secrets...)
}

// startAuditedSite starts a site like startCustomSite's whose audit
// logger writes to a file (JSON lines), with the admin API on loopback
// for the CLI, and more site blocks if given. It returns the site, the
// log's path, the Caddyfile's path (for the CLI's --config) and its text
// (to load it again).
func startAuditedSite(t *testing.T, c siteConfig, moreSites string) (s *site, logPath, caddyfile, cfg string) {
	t.Helper()
	dir := t.TempDir()
	logPath = filepath.Join(dir, "audit.log")
	s = &site{t: t, dbPath: filepath.Join(dir, "users.db"), upstream: echoUpstream(t), port: freePort(t), client: newTestClient()}
	if c.usersDB != "" {
		s.dbPath = c.usersDB
	}
	s.base = fmt.Sprintf("http://127.0.0.1:%d", s.port)
	lines := []string{"users_db " + s.dbPath, "hash_concurrency 4"}
	if c.redisURL != "" {
		lines = append(lines, "redis "+c.redisURL)
	}
	for _, l := range strings.Split(c.extra, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	cfg = fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	storage file_system %s
	log audit {
		output file %s
		format json
		include http.handlers.session_auth.audit
	}
}
http://127.0.0.1:%d {
	session_auth {
		%s
	}
	reverse_proxy %s
}
%s`, freePort(t), filepath.Join(os.Getenv("XDG_DATA_HOME"), "caddy"), logPath, s.port, strings.Join(lines, "\n\t\t"),
		strings.TrimPrefix(s.upstream.URL, "http://"), moreSites)
	caddyfile = filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.load(cfg)
	t.Cleanup(func() {
		_ = caddy.Load([]byte(`{"admin":{"disabled":true}}`), true)
		_ = caddy.Stop()
	})
	return s, logPath, caddyfile, cfg
}
