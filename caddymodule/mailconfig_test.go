package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// The mail settings: adapted from the Caddyfile as named, and refused
// alike from a Caddyfile and from JSON.
func TestMailConfig(t *testing.T) {
	cfg, err := adapt(`:8000 {
	session_auth {
		smtp smtp://user:pw@mail.example.com:587
		email_from "Example <noreply@example.com>"
		smtp_tls_ca /etc/ssl/mail-ca.pem
		smtp_timeout 5s
		password_reset_url https://app.example.com/reset/{uid}/{token}
		password_reset_timeout 30m
		email_verify_url https://app.example.com/verify/{key}
		email_verification mandatory
		identity_headers A B C D E
	}
}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"smtp":"smtp://user:pw@mail.example.com:587"`, `"email_from":"Example \u003cnoreply@example.com\u003e"`,
		`"smtp_tls_ca":"/etc/ssl/mail-ca.pem"`, `"smtp_timeout":5000000000`, `"password_reset_url":"https://app.example.com/reset/{uid}/{token}"`,
		`"password_reset_timeout":1800000000000`, `"email_verify_url":"https://app.example.com/verify/{key}"`,
		`"email_verification":"mandatory"`, `"email_verified":"E"`} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("adapted config lacks %s:\n%s", want, cfg)
		}
	}
	if _, err := adapt(":8000 {\n\tsession_auth {\n\t\tsmtp_timeout soon\n\t}\n}"); err == nil || !strings.Contains(err.Error(), "invalid duration") {
		t.Errorf("smtp_timeout soon: %v", err)
	}

	dir := t.TempDir()
	ca := filepath.Join(dir, "not-a-ca.pem")
	os.WriteFile(ca, []byte("hello"), 0o600)
	cases := []struct {
		fields map[string]string
		want   string
	}{
		{map[string]string{"smtp": "http://mail.example.com"}, "want smtp:// or smtps://"},
		{map[string]string{"smtp": "smtp://"}, "names no host"},
		{map[string]string{"smtp": "smtp://mail.example.com:99999", "email_from": "a@example.com"}, "invalid port"},
		{map[string]string{"smtp": "smtp://mail.example.com"}, "smtp needs email_from"},
		{map[string]string{"smtp": "smtp://mail.example.com", "email_from": "not an address"}, "email_from"},
		{map[string]string{"smtp": "smtp://mail.example.com", "email_from": "a@example.com", "smtp_tls_ca": ca}, "no PEM certificate"},
		{map[string]string{"smtp": "smtp://mail.example.com", "email_from": "a@example.com", "password_reset_url": "https://app.example.com/reset/{uid}"}, "must contain {token}"},
		{map[string]string{"smtp": "smtp://mail.example.com", "email_from": "a@example.com", "password_reset_url": "/reset/{uid}/{token}"}, "absolute http(s) URL"},
		{map[string]string{"smtp": "smtp://mail.example.com", "email_from": "a@example.com", "email_verify_url": "https://app.example.com/verify"}, "must contain {key}"},
		{map[string]string{"smtp": "smtp://mail.example.com", "email_from": "a@example.com", "email_verification": "sometimes"}, "want off, optional or mandatory"},
		{map[string]string{"email_verification": "mandatory"}, "needs smtp"},
	}
	for _, c := range cases {
		// JSON
		fields, _ := json.Marshal(c.fields)
		js := fmt.Sprintf(`{"admin":{"disabled":true},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:%d"],"routes":[{"handle":[{"handler":"session_auth","users_db":%q,%s}]}]}}}}}`,
			freePort(t), filepath.Join(dir, "u.db"), strings.Trim(string(fields), "{}"))
		if err := caddy.Load([]byte(js), true); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("JSON %v: %v, want %q", c.fields, err, c.want)
			caddy.Stop()
		}
		// Caddyfile
		var lines []string
		for k, v := range c.fields {
			lines = append(lines, fmt.Sprintf("\t\t%s %q", k, v))
		}
		src := fmt.Sprintf("{\n\tadmin off\n}\nhttp://127.0.0.1:%d {\n\tsession_auth {\n\t\tusers_db %s\n%s\n\t}\n}", freePort(t), filepath.Join(dir, "u.db"), strings.Join(lines, "\n"))
		cfg, err := adapt(src)
		if err == nil {
			err = caddy.Load(cfg, true)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Caddyfile %v: %v, want %q", c.fields, err, c.want)
			caddy.Stop()
		}
	}
	// With smtp unset (an empty environment variable), nothing mail-related exists.
	s := startSite(t, "", "smtp\n")
	// The mail endpoints are no endpoints then: the gate answers for them
	// as for any path of an anonymous caller.
	for _, path := range []string{"/api/password/reset/", "/api/password/reset/confirm/", "/api/registration/resend-email/", "/api/registration/verify-email/"} {
		if r := s.post(t, path, map[string]string{"email": "a@example.com"}); r.StatusCode != 403 || string(r.body) != `{"detail":"Authentication credentials were not provided."}` {
			t.Errorf("%s without smtp: %d %s, want the gate's 403", path, r.StatusCode, r.body)
		}
	}
}
