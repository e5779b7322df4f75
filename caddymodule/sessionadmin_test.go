package caddymodule_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// list-sessions, end-sessions and verify-email through the running
// Caddy's admin API (--config), and with --db on the stopped file.
func TestCLISessionsAndVerify(t *testing.T) {
	a, _, caddyfile := startAdminSites(t)
	l := &cliLog{t: t}
	via := []string{"--config", caddyfile, "--users-db", a.dbPath}
	if r := a.register(t, "jo", "jo@example.com", strongPassword); r.StatusCode != 201 {
		t.Fatalf("register: %d", r.StatusCode)
	}
	s1 := a.loginUA(t, "jo", strongPassword, "UA one")
	s2 := a.loginUA(t, "jo", strongPassword, "UA two")

	r := l.ok("", append([]string{"list-sessions", "--username", "JO", "--json"}, via...)...)
	var list []sessionEntry
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 2 {
		t.Fatalf("list-sessions --json: %v %q", err, r.stdout)
	}
	for _, e := range list {
		if e.Current || (e.UserAgent != "UA one" && e.UserAgent != "UA two") || e.ClientIP != "127.0.0.1" {
			t.Errorf("entry %+v", e)
		}
	}
	r = l.ok("", append([]string{"list-sessions", "--username", "jo"}, via...)...)
	if !strings.Contains(r.stdout, "UA one") || !strings.Contains(r.stdout, list[0].ID) || !strings.Contains(r.stderr, "2 session(s)") {
		t.Errorf("table: %q %q", r.stdout, r.stderr)
	}
	l.fails([]string{"no user"}, "", append([]string{"list-sessions", "--username", "nobody"}, via...)...)

	r = l.ok("", append([]string{"end-sessions", "--username", "jo"}, via...)...)
	if !strings.Contains(r.stdout, "ended the sessions") {
		t.Errorf("end-sessions: %q", r.stdout)
	}
	if a.whoami(t, s1) != 403 || a.whoami(t, s2) != 403 {
		t.Fatal("a session outlived end-sessions")
	}
	r = l.ok("", append([]string{"list-sessions", "--username", "jo", "--json"}, via...)...)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("after end-sessions: %q", r.stdout)
	}

	// A password set by an operator ends the sessions through the epoch
	// alone: the list drops them as well.
	a.loginUA(t, "jo", strongPassword, "UA three")
	l.ok("An0ther-Secret-Words\n", append([]string{"set-password", "--username", "jo", "--password-stdin"}, via...)...)
	r = l.ok("", append([]string{"list-sessions", "--username", "jo", "--json"}, via...)...)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("after set-password: %q", r.stdout)
	}
	users := l.listJSON(via...)
	if byUsername(users, "jo")["email_verified"] != false {
		t.Fatalf("a registered user is verified: %v", byUsername(users, "jo"))
	}
	r = l.ok("", append([]string{"verify-email", "--username", "jo"}, via...)...)
	if !strings.Contains(r.stdout, "now verified") {
		t.Errorf("verify-email: %q", r.stdout)
	}
	if byUsername(l.listJSON(via...), "jo")["email_verified"] != true {
		t.Fatal("verify-email did not mark the address")
	}
	r = l.ok("", append([]string{"verify-email", "--username", "jo"}, via...)...)
	if !strings.Contains(r.stdout, "verified already") {
		t.Errorf("verify-email again: %q", r.stdout)
	}
	e := a.do(t, req{method: "GET", path: "/x", session: a.login(t, "jo", "An0ther-Secret-Words")}).echo(t)
	if got := e.Headers["X-Auth-Email-Verified"]; len(got) != 1 || got[0] != "true" {
		t.Fatalf("X-Auth-Email-Verified %q after verify-email", got)
	}
	l.assertNoSecrets(strongPassword, "An0ther-Secret-Words", s1.id, s2.id)
}

// With --db (Caddy stopped), sessions kept in the users_db file are listed
// and ended too.
func TestCLISessionsWithDB(t *testing.T) {
	s := startSite(t, "", "")
	if r := s.register(t, "kit", "kit@example.com", strongPassword); r.StatusCode != 201 {
		t.Fatalf("register: %d", r.StatusCode)
	}
	s.loginUA(t, "kit", strongPassword, "UA db")
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	l := &cliLog{t: t}
	db := []string{"--db", s.dbPath}
	r := l.ok("", append([]string{"list-sessions", "--username", "kit", "--json"}, db...)...)
	var list []sessionEntry
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0].UserAgent != "UA db" {
		t.Fatalf("list-sessions --db: %v %q", err, r.stdout)
	}
	l.ok("", append([]string{"end-sessions", "--username", "kit"}, db...)...)
	r = l.ok("", append([]string{"list-sessions", "--username", "kit", "--json"}, db...)...)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("after end-sessions --db: %q", r.stdout)
	}
}
