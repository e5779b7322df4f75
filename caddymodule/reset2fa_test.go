package caddymodule_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// TestCLIReset2FA: list-users shows each user's second factors, and
// reset-2fa removes them and ends the user's sessions, through the
// running Caddy's admin API (audited as mfa_disabled) and with --db, on
// both users backends.
func TestCLIReset2FA(t *testing.T) {
	t.Run("bolt", func(t *testing.T) { testCLIReset2FA(t, "", "") })
	t.Run("postgres", func(t *testing.T) { testCLIReset2FA(t, testpg.New(t).URL, testredis.Start(t).URL()) })
}

func testCLIReset2FA(t *testing.T, usersDB, redisURL string) {
	s, logPath, caddyfile, cfg := startAuditedSite(t, siteConfig{usersDB: usersDB, redisURL: redisURL, extra: throttlesOff}, "")
	stop := func() {
		_ = caddy.Load([]byte(`{"admin":{"disabled":true}}`), true)
		_ = caddy.Stop()
	}
	l := &cliLog{t: t}
	via := []string{"--config", caddyfile}
	with := func(args ...string) []string { return append(args, via...) }

	// alice enrols TOTP; bob has no factor.
	enrolled := s.newUser(t, "alice")
	secret, codes := s.enrolTOTP(t, enrolled)
	s.newUser(t, "bob")
	full := sessionOf(t, s.codeStep(t, s.passwordStep(t, "alice", "totp", "recovery_code"), codes[0]))
	if r := s.do(t, req{method: "GET", path: "/app", session: full}); r.StatusCode != 200 {
		t.Fatalf("alice's session before the reset: %d %s", r.StatusCode, r.body)
	}

	wantFactors := func(list []map[string]any, name, want string) {
		t.Helper()
		u := byUsername(list, name)
		got, err := json.Marshal(u["second_factors"])
		if u == nil || err != nil || string(got) != want {
			t.Errorf("list-users: %s's second_factors = %s, want %s", name, got, want)
		}
	}
	// tableFactors is the 2FA column of name's row.
	tableFactors := func(table, name string) string {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(table), "\n")
		head := strings.Index(lines[0], "2FA")
		if head < 0 || !strings.HasSuffix(lines[0], "2FA") {
			t.Fatalf("no 2FA column last in the table:\n%s", table)
		}
		for _, line := range lines[1:] {
			if f := strings.Fields(line); len(f) > 1 && f[1] == name && len(line) >= head {
				return strings.TrimSpace(line[head:])
			}
		}
		t.Fatalf("%s not in the table:\n%s", name, table)
		return ""
	}

	list := l.listJSON(via...)
	wantFactors(list, "alice", `["totp"]`)
	wantFactors(list, "bob", `[]`)
	table := l.ok("", with("list-users")...).stdout
	if got := tableFactors(table, "alice"); got != "totp" {
		t.Errorf("alice's 2FA column %q\n%s", got, table)
	}
	if got := tableFactors(table, "bob"); got != "-" {
		t.Errorf("bob's 2FA column %q\n%s", got, table)
	}

	// reset-2fa through the admin API: the factor goes, the live sessions
	// are refused at once, the next login is the password alone.
	aliceID := int64(full.userID)
	r := l.ok("", with("reset-2fa", "--username", "ALICE")...)
	if want := fmt.Sprintf("removed the second factors of \"alice\" (id %d): totp; their sessions have ended\n", aliceID); r.stdout != want {
		t.Errorf("reset-2fa: %q, want %q", r.stdout, want)
	}
	for _, sess := range []*session{full, enrolled} {
		if r := s.do(t, req{method: "GET", path: "/app", session: sess}); r.StatusCode != 403 {
			t.Errorf("alice's session after reset-2fa at the gate: %d, want 403", r.StatusCode)
		}
		if st := s.whoami(t, sess); st != 403 {
			t.Errorf("alice's session after reset-2fa on the API: %d, want 403", st)
		}
	}
	after := s.login(t, "alice", strongPassword) // one step: it fails on an mfa_required answer
	if r := s.do(t, req{method: "GET", path: "/app", session: after}); r.StatusCode != 200 {
		t.Errorf("password-only login after reset-2fa: %d", r.StatusCode)
	}
	// Nothing of the factors is left: no secret, no recovery codes.
	if r := s.do(t, req{method: "GET", path: "/api/2fa/", session: after}); r.StatusCode != 200 || string(r.body) != `{"totp":false,"passkeys":0,"recovery_codes":0,"methods":[],"required":false,"enrolment_required":false}` {
		t.Errorf("2fa status after reset-2fa: %d %s", r.StatusCode, r.body)
	}
	wantFactors(l.listJSON(via...), "alice", `[]`)
	r = l.ok("", with("reset-2fa", "alice")...)
	if want := fmt.Sprintf("\"alice\" (id %d) had no second factor; their sessions have ended\n", aliceID); r.stdout != want {
		t.Errorf("reset-2fa again: %q, want %q", r.stdout, want)
	}
	if st := s.whoami(t, after); st != 403 {
		t.Errorf("session after a reset-2fa that found nothing: %d, want 403", st)
	}
	l.fails([]string{`no user named "nobody"`}, "", with("reset-2fa", "--username", "nobody")...)
	l.fails([]string{"may not be blank"}, "", with("reset-2fa")...)

	// The audit log: mfa_disabled, reason reset, by the admin API.
	var events []map[string]any
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) == nil && (e["event"] == "mfa_disabled" || e["change"] == "reset-2fa") {
			events = append(events, e)
		}
	}
	f.Close()
	if len(events) != 2 {
		t.Fatalf("audit: %d reset-2fa events, want 2: %v", len(events), events)
	}
	if e := events[0]; e["event"] != "mfa_disabled" || e["reason"] != "reset" || e["actor"] != "admin_api" ||
		e["username"] != "alice" || e["user_id"] != float64(aliceID) || fmt.Sprint(e["removed"]) != "[totp]" {
		t.Errorf("audit of the reset: %v", e)
	}
	if e := events[1]; e["event"] != "user_changed" || e["actor"] != "admin_api" || e["username"] != "alice" {
		t.Errorf("audit of the reset that found nothing: %v", e)
	}

	// With --db (Caddy stopped): bob enrols, then is listed and reset
	// offline; his session is refused once Caddy runs again.
	bobSess := s.login(t, "bob", strongPassword)
	s.enrolTOTP(t, bobSess)
	stop()
	db := []string{"--db", s.dbPath}
	list = l.listJSON(db...)
	wantFactors(list, "bob", `["totp"]`)
	wantFactors(list, "alice", `[]`)
	if got := tableFactors(l.ok("", append([]string{"list-users"}, db...)...).stdout, "bob"); got != "totp" {
		t.Errorf("bob's 2FA column with --db: %q", got)
	}
	r = l.ok("", append([]string{"reset-2fa", "--username", "bob"}, db...)...)
	if !strings.HasPrefix(r.stdout, `removed the second factors of "bob" (id `) || !strings.HasSuffix(r.stdout, "): totp; their sessions have ended\n") {
		t.Errorf("reset-2fa --db: %q", r.stdout)
	}
	wantFactors(l.listJSON(db...), "bob", `[]`)
	l.fails([]string{`no user named "nobody"`}, "", append([]string{"reset-2fa", "--username", "nobody"}, db...)...)

	s.load(cfg)
	s.client.CloseIdleConnections()
	if st := s.whoami(t, bobSess); st != 403 {
		t.Errorf("bob's session after reset-2fa --db: %d, want 403", st)
	}
	s.login(t, "bob", strongPassword)
	l.assertNoSecrets(strongPassword, secret, codes[1])
}
