package caddymodule_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// opsSite runs the sidecar with a metrics site and a JSON log file.
func opsSite(t *testing.T, redisURL string) (s *site, metricsURL, logPath string) {
	s = startSite(t, redisURL, "")
	logPath = filepath.Join(t.TempDir(), "caddy.log")
	mport := freePort(t)
	redisLine := ""
	if redisURL != "" {
		redisLine = "redis " + redisURL
	}
	s.load(fmt.Sprintf(`{
	admin off
	persist_config off
	log {
		output file %s
		format json
		level DEBUG
	}
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
		%s
		login_redirect
	}
	reverse_proxy %s
}
http://127.0.0.1:%d {
	metrics
}
`, logPath, s.port, s.dbPath, redisLine, strings.TrimPrefix(s.upstream.URL, "http://"), mport))
	return s, fmt.Sprintf("http://127.0.0.1:%d", mport), logPath
}

func metricValue(t *testing.T, s *site, metricsURL, name string) float64 {
	t.Helper()
	m := &site{t: t, base: metricsURL, client: s.client}
	r := m.do(t, req{method: "GET", path: "/"})
	// SITE stands for any site's name (the server's: srv0, srv1…); their
	// values are added up.
	pattern := strings.ReplaceAll(regexp.QuoteMeta(name), "SITE", `srv[0-9]+`)
	re := regexp.MustCompile(`(?m)^` + pattern + ` ([0-9.e+]+)$`)
	var sum float64
	for _, match := range re.FindAllSubmatch(r.body, -1) {
		v, _ := strconv.ParseFloat(string(match[1]), 64)
		sum += v
	}
	return sum
}

func TestMetricsAndLogs(t *testing.T) {
	s, metricsURL, logPath := opsSite(t, "")
	before := map[string]float64{}
	names := []string{
		`caddy_session_auth_login_attempts_total{result="success",site="SITE"}`,
		`caddy_session_auth_login_attempts_total{result="bad_credentials",site="SITE"}`,
		`caddy_session_auth_login_attempts_total{result="invalid",site="SITE"}`,
		`caddy_session_auth_registrations_total{result="created",site="SITE"}`,
		`caddy_session_auth_registrations_total{result="invalid",site="SITE"}`,
		`caddy_session_auth_gate_decisions_total{result="allowed",site="SITE"}`,
		`caddy_session_auth_gate_decisions_total{result="denied",site="SITE"}`,
		`caddy_session_auth_gate_decisions_total{result="redirected",site="SITE"}`,
		`caddy_session_auth_gate_decisions_total{result="csrf_failed",site="SITE"}`,
		`caddy_session_auth_password_hash_duration_seconds_count`,
	}
	for _, n := range names {
		before[n] = metricValue(t, s, metricsURL, n)
	}

	const password = "Very-Secret-Pass-9"
	s.register(t, "observed", "o@example.com", password)
	s.register(t, "", "o@example.com", password)
	sess := s.login(t, "observed", password)
	s.do(t, req{method: "POST", path: "/api/login/", body: `{"username":"observed","password":"wrong-` + password + `"}`})
	s.do(t, req{method: "POST", path: "/api/login/", body: `{}`})
	s.do(t, req{method: "GET", path: "/app", session: sess})
	s.do(t, req{method: "GET", path: "/app"})
	s.do(t, req{method: "GET", path: "/app", headers: map[string]string{"Accept": "text/html"}})
	s.do(t, req{method: "POST", path: "/app", session: sess})
	s.do(t, req{method: "POST", path: "/api/logout/", session: sess, csrf: true})

	for _, n := range names {
		want := 1.0
		if strings.Contains(n, "hash_duration") {
			want = 3 // register, login, failed login
		}
		if got := metricValue(t, s, metricsURL, n) - before[n]; got != want {
			t.Errorf("%s grew by %v, want %v", n, got, want)
		}
	}

	logs, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, event := range []string{`"msg":"user registered"`, `"msg":"login"`, `"msg":"login failed"`, `"msg":"logout"`} {
		if !strings.Contains(string(logs), event) {
			t.Errorf("log lacks %s", event)
		}
	}
	if !strings.Contains(string(logs), `"client_ip":"127.0.0.1"`) || !strings.Contains(string(logs), `"user_id":1`) {
		t.Error("log entries lack user_id or client_ip")
	}
	// Secrets never reach the log.
	secrets := map[string]string{"password": password, "session token": sess.id, "csrf token": sess.token,
		"csrf cookie": sess.csrfCookie, "argon2 hash": "$argon2id$"}
	for what, secret := range secrets {
		if strings.Contains(string(logs), secret) {
			t.Errorf("the log contains the %s", what)
		}
	}
}

func TestHealth(t *testing.T) {
	t.Run("bolt", func(t *testing.T) {
		s := startSite(t, "", "")
		r := s.do(t, req{method: "GET", path: "/api/health/"})
		if r.StatusCode != 200 || string(r.body) != `{"status":"ok","users_db":"ok","sessions":"users_db"}` {
			t.Errorf("%d %s", r.StatusCode, r.body)
		}
	})
	t.Run("redis", func(t *testing.T) {
		redisURL := testredis.Start(t).URL()
		s := startSite(t, redisURL, "health_path /healthz")
		r := s.do(t, req{method: "GET", path: "/healthz"})
		// The session cache is "connecting" until its invalidation
		// connection is subscribed, a moment after start.
		if r.StatusCode != 200 || (string(r.body) != `{"status":"ok","users_db":"ok","sessions":"redis","redis":"ok","session_cache":"active"}` &&
			string(r.body) != `{"status":"ok","users_db":"ok","sessions":"redis","redis":"ok","session_cache":"connecting"}`) {
			t.Errorf("%d %s", r.StatusCode, r.body)
		}
		// Redis on a port where nothing listens: 503.
		s.reloadWith(fmt.Sprintf("redis://127.0.0.1:%d/0", freePort(t)), "health_path /healthz")
		r = s.do(t, req{method: "GET", path: "/healthz"})
		if r.StatusCode != 503 || !strings.Contains(string(r.body), `"redis":"unreachable"`) {
			t.Errorf("redis down: %d %s", r.StatusCode, r.body)
		}
	})
}

// Under two_factor required, a browser whose session still has to enrol a
// second factor is sent to sign in: a redirect in the gate's counters, as
// the redirect of a browser without a session is, not a refusal; an API
// client's 403 is one.
func TestEnrolmentGateCounted(t *testing.T) {
	s := startSite(t, "", "")
	mport := freePort(t)
	s.load(fmt.Sprintf(`{
	admin off
	persist_config off
	servers :%d {
		name enrolment-gate
	}
}

http://127.0.0.1:%d {
	session_auth {
		users_db %s
		login_redirect
		two_factor required group:admins
	}
	reverse_proxy %s
}

http://127.0.0.1:%d {
	metrics
}
`, s.port, s.port, s.dbPath, strings.TrimPrefix(s.upstream.URL, "http://"), mport))
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d", mport)
	const (
		redirected = `caddy_session_auth_gate_decisions_total{result="redirected",site="enrolment-gate"}`
		forbidden  = `caddy_session_auth_gate_decisions_total{result="forbidden",site="enrolment-gate"}`
	)
	ada := s.newMember(t, "ada", false, false, "admins")
	r0, f0 := metricValue(t, s, metricsURL, redirected), metricValue(t, s, metricsURL, forbidden)
	r := s.do(t, req{method: "GET", path: "/app/page", session: ada.session, headers: map[string]string{"Accept": "text/html"}})
	if r.StatusCode != 302 || !strings.Contains(r.Header.Get("Location"), "next=") {
		t.Fatalf("browser with an enrolment-only session: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r1, f1 := metricValue(t, s, metricsURL, redirected), metricValue(t, s, metricsURL, forbidden); r1 != r0+1 || f1 != f0 {
		t.Errorf("after the redirect: redirected %v→%v, forbidden %v→%v; want +1, +0", r0, r1, f0, f1)
	}
	r = s.do(t, req{method: "GET", path: "/app/page", session: ada.session})
	if r.StatusCode != 403 {
		t.Fatalf("API client with an enrolment-only session: %d %s", r.StatusCode, r.body)
	}
	if f2 := metricValue(t, s, metricsURL, forbidden); f2 != f0+1 {
		t.Errorf("after the 403: forbidden %v→%v, want +1", f0, f2)
	}
}
