package caddymodule_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestTwoFactorAuditAndMetrics: the second factor's events reach the
// audit logger (with the method, never a code or secret), and
// caddy_session_auth_second_factor_total counts results by method.
func TestTwoFactorAuditAndMetrics(t *testing.T) {
	mport := freePort(t)
	s, logPath, _, _ := startAuditedSite(t, siteConfig{extra: throttlesOff}, fmt.Sprintf("http://127.0.0.1:%d {\n\tmetrics\n}\n", mport))
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d", mport)
	const (
		totpOK     = `caddy_session_auth_second_factor_total{method="totp",result="success",site="SITE"}`
		totpFailed = `caddy_session_auth_second_factor_total{method="totp",result="failed",site="SITE"}`
		recoveryOK = `caddy_session_auth_second_factor_total{method="recovery_code",result="success",site="SITE"}`
		mfaLogins  = `caddy_session_auth_login_attempts_total{result="mfa_required",site="SITE"}`
	)
	before := map[string]float64{}
	for _, m := range []string{totpOK, totpFailed, recoveryOK, mfaLogins} {
		before[m] = metricValue(t, s, metricsURL, m)
	}

	sess := s.newUser(t, "audrey")
	secret, codes := s.enrolTOTP(t, sess)
	pending := s.passwordStep(t, "audrey", "totp", "recovery_code")
	if r := s.codeStep(t, pending, "zzzzz-zzzzz"); r.StatusCode != 400 {
		t.Fatalf("wrong recovery code: %d", r.StatusCode)
	}
	if r := s.codeStep(t, pending, wrongCode(t, secret)); r.StatusCode != 400 {
		t.Fatalf("wrong code: %d", r.StatusCode)
	}
	sessionOf(t, s.codeStep(t, pending, totpCode(t, secret, time.Now().Add(30*time.Second))))
	full := sessionOf(t, s.codeStep(t, s.passwordStep(t, "audrey", "totp", "recovery_code"), codes[0]))
	r := s.do(t, req{method: "POST", path: "/api/2fa/totp/disable/", body: jsonBody(map[string]string{"password": strongPassword, "code": codes[1]}),
		session: full, csrf: true})
	if r.StatusCode != 200 {
		t.Fatalf("disable: %d %s", r.StatusCode, r.body)
	}

	for m, delta := range map[string]float64{totpOK: 1, totpFailed: 1, recoveryOK: 1, mfaLogins: 2} {
		if got := metricValue(t, s, metricsURL, m); got != before[m]+delta {
			t.Errorf("%s = %v, want %v", m, got, before[m]+delta)
		}
	}

	want := map[string]func(e map[string]any) bool{
		"mfa_enabled":        func(e map[string]any) bool { return e["method"] == "totp" && e["username"] == "audrey" },
		"mfa_failed":         func(e map[string]any) bool { return e["method"] == "totp" && e["client_ip"] == "127.0.0.1" },
		"recovery_code_used": func(e map[string]any) bool { return e["username"] == "audrey" },
		"mfa_disabled":       func(e map[string]any) bool { return e["method"] == "totp" },
		"login":              func(e map[string]any) bool { return e["method"] == "recovery_code" && e["session_id"] != nil },
	}
	secrets := append([]string{secret, strongPassword}, codes...)
	waitAudit(t, logPath, want, secrets)
}

// waitAudit waits until the audit log file holds a line for each event
// that passes its check, and fails if it holds any of secrets.
func waitAudit(t *testing.T, logPath string, want map[string]func(map[string]any) bool, secrets []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		raw, _ := os.ReadFile(logPath)
		for _, sec := range secrets {
			if sec != "" && strings.Contains(strings.ReplaceAll(string(raw), "-", ""), strings.ReplaceAll(sec, "-", "")) {
				t.Fatalf("the audit log holds a secret (%.3s…)", sec)
			}
		}
		seen := map[string]bool{}
		sc := bufio.NewScanner(strings.NewReader(string(raw)))
		for sc.Scan() {
			var e map[string]any
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("not a JSON line: %q", sc.Text())
			}
			if e["logger"] != "http.handlers.session_auth.audit" {
				t.Fatalf("line from logger %v", e["logger"])
			}
			// An event is wanted by its name, or by name/reason.
			name, _ := e["event"].(string)
			names := []string{name}
			if reason, ok := e["reason"].(string); ok {
				names = append(names, name+"/"+reason)
			}
			for _, n := range names {
				if check, ok := want[n]; ok && check(e) {
					seen[n] = true
				}
			}
		}
		var missing []string
		for name := range want {
			if !seen[name] {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events missing from the audit log: %v\n%s", missing, raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
