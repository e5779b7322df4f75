package caddymodule_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// fromIP is a request as a trusted proxy forwards it for client ip.
func fromIP(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip} }

const trustLocalProxy = "servers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}"

// assertLockedOut checks the answer to a login refused by a lockout with
// no known end: DRF's 429 without a wait.
func assertLockedOut(t *testing.T, what string, r *response) {
	t.Helper()
	if r.StatusCode != 429 || string(r.body) != `{"detail":"Request was throttled."}` {
		t.Fatalf("%s: %d %s, want 429 locked out", what, r.StatusCode, r.body)
	}
	if ra := r.Header.Get("Retry-After"); ra != "" || len(r.Header["Set-Cookie"]) != 0 {
		t.Errorf("%s: Retry-After %q, Set-Cookie %v", what, ra, r.Header["Set-Cookie"])
	}
}

// With the lockout's defaults, an attacker who guesses slowly from
// rotating IPs (4 guesses per username every 2 minutes stay under the
// default login_throttle; here a loose one stands in for the waiting) is
// locked out after 50 failures in 24 h, and the account's owner still gets
// in from an IP that logged in before.
func TestLoginLockoutDefaults(t *testing.T) {
	s := startCustomSite(t, siteConfig{global: trustLocalProxy, extra: "login_throttle 1000 1000 2m 5m"})
	wantStatus(t, "register", s.register(t, "target", "t@example.com", strongPassword), 201)
	wantStatus(t, "owner at home", s.loginAs(t, "target", strongPassword, fromIP("192.0.2.1")), 200)
	for i := range 50 {
		r := s.loginAs(t, "target", "Guess-Number-"+strconv.Itoa(i), fromIP(fmt.Sprintf("198.51.100.%d", i+1)))
		wantStatus(t, fmt.Sprintf("guess %d", i+1), r, 400)
	}
	hashes := caddymodule.CountHashes()
	assertLockedOut(t, "right password from a new IP", s.loginAs(t, "target", strongPassword, fromIP("203.0.113.5")))
	if n := hashes(); n != 0 {
		t.Errorf("%d passwords checked for a locked-out username", n)
	}
	wantStatus(t, "owner at home", s.loginAs(t, "target", strongPassword, fromIP("192.0.2.1")), 200)
	wantStatus(t, "owner from the new IP after the lockout is lifted", s.loginAs(t, "target", strongPassword, fromIP("203.0.113.5")), 200)
}

// adminMetric reads a metric from the admin API's /metrics.
func (a *adminSite) adminMetric(t *testing.T, name string) float64 {
	t.Helper()
	m := &site{t: t, base: a.admin, client: a.client}
	r := m.do(t, req{method: "GET", path: "/metrics"})
	match := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` ([0-9.e+]+)$`).FindSubmatch(r.body)
	if match == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(match[1]), 64)
	return v
}

// The lockout, in memory and in Redis: a metric and a log line when it
// trips; strangers refused before any password check; a login from a known
// IP lifts it and clears the count; an operator's unban (CLI through the
// admin API) lifts it too.
func TestLoginLockout(t *testing.T) {
	storeKinds(t, func(t *testing.T, redisURL string) {
		logPath := filepath.Join(t.TempDir(), "caddy.log")
		block := "login_throttle 100 100 1m 1m\nlogin_lockout 4 1h\nregister_throttle off"
		if redisURL != "" {
			block += "\nredis " + redisURL
		}
		s := startAdminCaddy(t, "\t"+trustLocalProxy+"\n\tlog {\n\t\toutput file "+logPath+"\n\t\tformat json\n\t}\n", block)[0]
		wantStatus(t, "register", s.register(t, "victim", "v@example.com", strongPassword), 201)
		wantStatus(t, "owner at home", s.loginAs(t, "victim", strongPassword, fromIP("192.0.2.1")), 200)
		const tripped = `caddy_session_auth_login_lockouts_total{site="srv0"}`
		const refused = `caddy_session_auth_throttled_requests_total{kind="login_lockout",site="srv0"}`
		trippedBefore, refusedBefore := s.adminMetric(t, tripped), s.adminMetric(t, refused)

		guess := func(n int) {
			t.Helper()
			for i := range n {
				wantStatus(t, "guess", s.loginAs(t, "victim", "wrong-guess", fromIP(fmt.Sprintf("198.51.100.%d", i+1))), 400)
			}
		}
		guess(4)
		hashes := caddymodule.CountHashes()
		assertLockedOut(t, "stranger with the right password", s.loginAs(t, "VICTIM", strongPassword, fromIP("203.0.113.9")))
		assertLockedOut(t, "stranger guessing", s.loginAs(t, "victim", "wrong-guess", fromIP("203.0.113.10")))
		if n := hashes(); n != 0 {
			t.Errorf("%d passwords checked while locked out", n)
		}
		if got := s.adminMetric(t, tripped) - trippedBefore; got != 1 {
			t.Errorf("%s grew by %v, want 1", tripped, got)
		}
		if got := s.adminMetric(t, refused) - refusedBefore; got != 2 {
			t.Errorf("%s grew by %v, want 2", refused, got)
		}
		logs, _ := os.ReadFile(logPath)
		if !regexp.MustCompile(`"msg":"too many failed logins: username locked out","username":"victim","client_ip":"198\.51\.100\.4","failures":4`).Match(logs) {
			t.Errorf("no log line for the lockout:\n%s", logs)
		}

		// The owner, from home, gets in: the lockout is lifted and the
		// count cleared (3 more failures lock nothing).
		wantStatus(t, "owner at home while locked", s.loginAs(t, "victim", strongPassword, fromIP("192.0.2.1")), 200)
		wantStatus(t, "owner from the new IP", s.loginAs(t, "victim", strongPassword, fromIP("203.0.113.9")), 200)
		guess(3)
		wantStatus(t, "after 3 failures", s.loginAs(t, "victim", strongPassword, fromIP("203.0.113.77")), 200)

		// Locked again; the operator unbans through the running Caddy.
		guess(4)
		assertLockedOut(t, "locked again", s.loginAs(t, "victim", strongPassword, fromIP("203.0.113.200")))
		l := &cliLog{t: t}
		address := strings.TrimPrefix(s.admin, "http://")
		l.fails([]string{"use --config instead of --db"}, "", "unban", "--db", s.dbPath, "--username", "victim")
		l.fails([]string{`no user named "nobody"`}, "", "unban", "--address", address, "--username", "nobody")
		if r := l.ok("", "unban", "--address", address, "--username", "Victim"); r.stdout != `unbanned "victim" (id 1); failed logins forgotten`+"\n" {
			t.Errorf("unban: %q", r.stdout)
		}
		if r := l.ok("", "unban", "--address", address, "--username", "victim"); r.stdout != `"victim" (id 1) was not banned; failed logins forgotten`+"\n" {
			t.Errorf("second unban: %q", r.stdout)
		}
		wantStatus(t, "stranger after the unban", s.loginAs(t, "victim", strongPassword, fromIP("203.0.113.200")), 200)
		// The admin API answers the same request as JSON.
		r := s.adminPost(t, "/session-auth/unban", `{"username":"victim"}`)
		if r.StatusCode != 200 || !strings.Contains(string(r.body), `"changed":false`) {
			t.Errorf("admin API unban: %d %s", r.StatusCode, r.body)
		}
	})
}

// With Redis, every instance counts toward one lockout and sees it: here
// another instance (a reload onto another users DB, whose memory would
// start afresh) refuses the locked username.
func TestLoginLockoutSharedThroughRedis(t *testing.T) {
	srv := testredis.Start(t)
	extra := "login_throttle 100 100 1m 1m\nlogin_lockout 3 1h\nthrottle_key_prefix " + srv.Prefix + "thr:"
	s := startCustomSite(t, siteConfig{redisURL: srv.URL(), global: trustLocalProxy, extra: extra})
	s.register(t, "victim", "v@example.com", strongPassword)
	wantStatus(t, "owner at home", s.loginAs(t, "victim", strongPassword, fromIP("192.0.2.1")), 200)
	for i := range 2 {
		s.loginAs(t, "victim", "wrong-guess", fromIP(fmt.Sprintf("198.51.100.%d", i+1)))
	}
	first := s.dbPath
	s.dbPath += ".other"
	s.loadCustom(siteConfig{redisURL: srv.URL(), global: trustLocalProxy, extra: extra})
	// The third failure, on the other instance, locks the username.
	wantStatus(t, "third failure elsewhere", s.loginAs(t, "victim", "wrong-guess", fromIP("198.51.100.3")), 400)
	assertLockedOut(t, "locked on the other instance", s.loginAs(t, "victim", strongPassword, fromIP("203.0.113.1")))
	s.dbPath = first
	s.loadCustom(siteConfig{redisURL: srv.URL(), global: trustLocalProxy, extra: extra})
	assertLockedOut(t, "locked on the first", s.loginAs(t, "victim", strongPassword, fromIP("203.0.113.1")))
	// The home IP is known in Redis: it gets in and lifts the lockout.
	wantStatus(t, "owner at home", s.loginAs(t, "victim", strongPassword, fromIP("192.0.2.1")), 200)
	wantStatus(t, "stranger after the owner", s.loginAs(t, "victim", strongPassword, fromIP("203.0.113.1")), 200)

	c, err := redis.DialURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	keys, err := redis.Strings(c.Do("KEYS", srv.Prefix+"thr:*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, "victim") {
			t.Errorf("key %q holds the username in clear", k)
		}
		if ttl, _ := redis.Int64(c.Do("PTTL", k)); ttl <= 0 {
			t.Errorf("key %q has no expiry", k)
		}
		if strings.Contains(k, "passes:") {
			members, _ := redis.Strings(c.Do("ZRANGE", k, 0, -1))
			for _, m := range members {
				if strings.Contains(m, "192.0.2.1") || strings.Contains(m, "203.0.113.1") {
					t.Errorf("known IPs kept in clear: %v", members)
				}
			}
		}
	}
}

func TestLoginLockoutCaddyfile(t *testing.T) {
	for body, want := range map[string]string{
		"login_lockout 30 12h":    `"login_lockout":{"failures":30,"window":43200000000000}`,
		"login_lockout 30 12h 1h": `"login_lockout":{"ban":3600000000000,"failures":30,"window":43200000000000}`,
		"login_lockout off":       `"login_lockout":{"off":true}`,
	} {
		cfg, err := adapt(":8000 {\n\tsession_auth {\n\t\t" + body + "\n\t}\n}")
		if err != nil || !strings.Contains(string(cfg), want) {
			t.Errorf("%s: %v, adapted config lacks %s:\n%s", body, err, want, cfg)
		}
	}
	for body, want := range map[string]string{
		"login_lockout 50":          "want `off` or <failures> <window> [<ban>]",
		"login_lockout 0 24h":       "failures: want a positive integer",
		"login_lockout 50 forever":  "window: invalid duration",
		"login_lockout 50 24h -1s":  "ban: invalid duration",
		"login_lockout 50 24h 1h x": "want `off` or <failures> <window> [<ban>]",
	} {
		_, err := adapt(":8000 {\n\tsession_auth {\n\t\t" + body + "\n\t}\n}")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "Caddyfile:3") {
			t.Errorf("%q: error %v, want %q naming Caddyfile:3", body, err, want)
		}
	}
}
