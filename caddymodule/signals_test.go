package caddymodule_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// logEntries reads a JSON log file.
func logEntries(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func entriesWith(entries []map[string]any, msg string) []map[string]any {
	var out []map[string]any
	for _, e := range entries {
		if e["msg"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// What an operator reads: a start-up line per handler, login failures with
// a reason and whole-second durations, counters labelled by site and
// present at zero from the start, the wait for a hashing slot.
func TestOperatorSignals(t *testing.T) {
	s := startSite(t, "", "")
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	mport := freePort(t)
	deadRedis := fmt.Sprintf("redis://:Sup3rSecretRedis@127.0.0.1:%d/0", freePort(t))
	otherPort := freePort(t)
	// Servers named for this test: the counters (one set per process) of
	// these sites are new, so "0 from the start" is this test's zero.
	s.load(fmt.Sprintf(`{
	admin off
	persist_config off
	servers :%d {
		name signals-main
	}
	servers :%d {
		name signals-other
	}
	log {
		output file %s
		format json
	}
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
		login_throttle 2 100 1m 90s
		login_lockout off
		register_throttle 50 10m
	}
	reverse_proxy %s
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
		redis %s
		login_throttle off
		api_prefix /auth
	}
	respond "other" 200
}
http://127.0.0.1:%d {
	metrics
}
`, s.port, otherPort, logPath, s.port, s.dbPath, strings.TrimPrefix(s.upstream.URL, "http://"),
		otherPort, filepath.Join(t.TempDir(), "other.db"), deadRedis, mport))
	m := &site{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", mport), client: s.client}
	scrape := func() string { return string(m.do(t, req{method: "GET", path: "/"}).body) }

	// One start-up line per handler, passwords hidden.
	entries := logEntries(t, logPath)
	started := entriesWith(entries, "session_auth started")
	if len(started) != 2 {
		t.Fatalf("%d start-up lines, want 2", len(started))
	}
	byPrefix := map[string]map[string]any{}
	for _, e := range started {
		byPrefix[e["api_prefix"].(string)] = e
	}
	main, other := byPrefix["/api"], byPrefix["/auth"]
	if main == nil || other == nil || main["site"] != "signals-main" || other["site"] != "signals-other" {
		t.Fatalf("start-up lines: %v", started)
	}
	site, otherSite := main["site"].(string), other["site"].(string)

	// Counters exist at zero before anything happened, for each site.
	body := scrape()
	for _, want := range []string{
		`caddy_session_auth_login_attempts_total{result="throttled",site="` + site + `"} 0`,
		`caddy_session_auth_login_attempts_total{result="error",site="` + otherSite + `"} 0`,
		`caddy_session_auth_registrations_total{result="closed",site="` + site + `"} 0`,
		`caddy_session_auth_throttled_requests_total{kind="register_ip",site="` + otherSite + `"} 0`,
		`caddy_session_auth_throttled_requests_total{kind="login_lockout",site="` + site + `"} 0`,
		`caddy_session_auth_login_lockouts_total{site="` + otherSite + `"} 0`,
		`caddy_session_auth_gate_decisions_total{result="forbidden",site="` + site + `"} 0`,
		`caddy_session_auth_store_errors_total{site="` + site + `",while="reading session"} 0`,
		`caddy_session_auth_password_hash_wait_seconds_bucket{le="0.01"} `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for k, want := range map[string]any{"users_db": s.dbPath, "sessions": "users_db", "api_prefix": "/api",
		"login_throttle": "2 per username, 100 per IP in 60s, ban 90s", "login_lockout": "off",
		"register_throttle": "50 per IP in 600s", "throttle_store": "memory", "registration": "open"} {
		if main[k] != want {
			t.Errorf("start-up line %s = %v, want %v", k, main[k], want)
		}
	}
	if other["sessions"] != strings.Replace(deadRedis, "Sup3rSecretRedis", "xxxxx", 1) || other["login_throttle"] != "off" ||
		other["login_lockout"] != "50 per username in 86400s, until a login from a known IP or an unban" ||
		other["throttle_store"] != "redis" {
		t.Errorf("second start-up line: %v", other)
	}

	// Login failures and their reasons.
	const pass = "Signals-Pass-123"
	s.register(t, "ops", "ops@example.com", pass)
	s.register(t, "sleepy", "sleepy@example.com", pass)
	if _, err := caddymodule.UsersOf(s.dbPath).Update(context.Background(), 2, func(u *users.User) error { u.IsActive = false; return nil }); err != nil {
		t.Fatal(err)
	}
	waitBefore := metricSum(scrape(), "caddy_session_auth_password_hash_wait_seconds_count")
	s.loginStatus(t, "sleepy", pass)             // inactive
	s.loginStatus(t, "ops", "wrong-"+pass)       // bad_credentials
	s.loginStatus(t, "nobody", pass)             // bad_credentials
	s.loginStatus(t, "ops", "wrong-again-"+pass) // bad_credentials, bans ops
	st := s.loginStatus(t, "ops", pass)          // throttled
	if st != 429 {
		t.Fatalf("fourth failure for ops: %d, want 429", st)
	}
	body = scrape()
	if n := metricSum(body, "caddy_session_auth_password_hash_wait_seconds_count") - waitBefore; n != 4 {
		t.Errorf("hash waits observed: %v, want 4 (the throttled login checks no password)", n)
	}
	if !strings.Contains(body, `caddy_session_auth_login_attempts_total{result="throttled",site="`+site+`"} 1`) {
		t.Error("the throttled login is not counted on its site")
	}

	var reasons []string
	for _, e := range entriesWith(logEntries(t, logPath), "login failed") {
		reasons = append(reasons, fmt.Sprintf("%v:%v", e["username"], e["reason"]))
		if e["reason"] == "throttled" {
			if v, ok := e["retry_after_s"].(float64); !ok || v != float64(int64(v)) || v < 1 || v > 90 {
				t.Errorf("retry_after_s = %v", e["retry_after_s"])
			}
			if _, ok := e["retry_after"]; ok {
				t.Error("a duration without its unit in the name")
			}
		}
	}
	if got := strings.Join(reasons, " "); got != "sleepy:inactive ops:bad_credentials nobody:bad_credentials ops:bad_credentials ops:throttled" {
		t.Errorf("login failed reasons: %s", got)
	}
	banned := entriesWith(logEntries(t, logPath), "too many failed logins: username banned")
	if len(banned) != 1 || banned[0]["ban_s"] != float64(90) {
		t.Errorf("ban line: %v", banned)
	}
	logs, _ := os.ReadFile(logPath)
	if strings.Contains(string(logs), "Sup3rSecretRedis") || strings.Contains(string(logs), pass) {
		t.Error("a password reached the log")
	}
}

// metricSum adds up the values of the lines that begin with name.
func metricSum(body, name string) float64 {
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			sum += v
		}
	}
	return sum
}
