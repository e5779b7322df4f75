package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// Issue 16: a second factor. These tests drive the JSON API through a
// real Caddy on both users backends; the browser tests drive the pages.

// bothBackends runs fn with users in a bbolt file (sessions there too)
// and in PostgreSQL (sessions in Redis).
func bothBackends(t *testing.T, fn func(t *testing.T, c siteConfig)) {
	t.Run("bolt", func(t *testing.T) { fn(t, siteConfig{}) })
	t.Run("postgres", func(t *testing.T) {
		fn(t, siteConfig{usersDB: testpg.New(t).URL, redisURL: testredis.Start(t).URL()})
	})
}

// totpCode is the code of secret for the 30 s step that holds at.
func totpCode(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wrongCode is a 6-digit code that secret's steps around now do not give.
func wrongCode(t *testing.T, secret string) string {
	t.Helper()
	for _, c := range []string{"000000", "999999", "123123"} {
		ok := true
		for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second, 60 * time.Second} {
			if totpCode(t, secret, time.Now().Add(d)) == c {
				ok = false
			}
		}
		if ok {
			return c
		}
	}
	t.Fatal("no wrong code")
	return ""
}

// stateCookie is the pending login's cookie header.
func stateCookie(t testing.TB, r *response) map[string]string {
	t.Helper()
	c := r.cookie("sessionid_mfa")
	if c == nil || c.Value == "" || !c.HttpOnly || c.MaxAge <= 0 || c.MaxAge > 300 {
		t.Fatalf("no pending-login cookie (HttpOnly, at most 5 minutes): %v", r.Header["Set-Cookie"])
	}
	return map[string]string{"Cookie": "sessionid_mfa=" + c.Value}
}

// enrolTOTP sets up and confirms TOTP for the session's user and returns
// the secret and the recovery codes.
func (s *site) enrolTOTP(t testing.TB, sess *session) (string, []string) {
	t.Helper()
	r := s.do(t, req{method: "POST", path: "/api/2fa/totp/setup/", body: jsonBody(map[string]string{"password": strongPassword}), session: sess, csrf: true})
	if r.StatusCode != 200 {
		t.Fatalf("setup: %d %s", r.StatusCode, r.body)
	}
	v := r.json(t)
	secret, _ := v["secret"].(string)
	if url, _ := v["otpauth_url"].(string); !strings.HasPrefix(url, "otpauth://totp/") || !strings.Contains(url, "secret="+secret) {
		t.Fatalf("otpauth_url %q", url)
	}
	if svg, _ := v["qr_svg"].(string); !strings.HasPrefix(svg, "<svg ") || !strings.Contains(svg, "<path") {
		t.Fatalf("qr_svg %.80q", svg)
	}
	r = s.do(t, req{method: "POST", path: "/api/2fa/totp/confirm/", body: jsonBody(map[string]string{"code": totpCode(t, secret, time.Now())}), session: sess, csrf: true})
	if r.StatusCode != 200 {
		t.Fatalf("confirm: %d %s", r.StatusCode, r.body)
	}
	followRenewal(t, sess, r)
	var out struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	json.Unmarshal(r.body, &out)
	if len(out.RecoveryCodes) != 10 {
		t.Fatalf("recovery codes: %s", r.body)
	}
	return secret, out.RecoveryCodes
}

// followRenewal takes the new session token a first factor's enrolment
// gives (every other session of the user ended).
func followRenewal(t testing.TB, sess *session, r *response) {
	t.Helper()
	if c := r.cookie("sessionid"); c != nil && c.MaxAge > 0 {
		sess.id = c.Value
	}
}

// passwordStep logs in with the password of a user with a second factor
// and returns the pending-login cookie.
func (s *site) passwordStep(t testing.TB, username string, wantMethods ...string) map[string]string {
	t.Helper()
	r := s.do(t, req{method: "POST", path: "/api/login/", body: jsonBody(map[string]string{"username": username, "password": strongPassword})})
	if r.StatusCode != 200 {
		t.Fatalf("password step: %d %s", r.StatusCode, r.body)
	}
	methods, _ := json.Marshal(wantMethods)
	want := `{"detail":"Second factor required.","mfa_required":true,"methods":` + string(methods) + `}`
	if got := string(r.body); got != want {
		t.Fatalf("password step answered %s, want %s", got, want)
	}
	if r.cookie("sessionid") != nil {
		t.Fatalf("a session before the second factor: %v", r.Header["Set-Cookie"])
	}
	return stateCookie(t, r)
}

// codeStep posts a code to login/2fa/ under the pending cookie.
func (s *site) codeStep(t testing.TB, pending map[string]string, code string) *response {
	t.Helper()
	return s.do(t, req{method: "POST", path: "/api/login/2fa/", body: jsonBody(map[string]string{"code": code}), headers: pending})
}

// sessionOf reads a completed login's session.
func sessionOf(t testing.TB, r *response) *session {
	t.Helper()
	if r.StatusCode != 200 {
		t.Fatalf("login: %d %s", r.StatusCode, r.body)
	}
	v := r.json(t)
	sid, ct := r.cookie("sessionid"), r.cookie("csrftoken")
	if v["message"] != "Login successful" || sid == nil || ct == nil {
		t.Fatalf("not a login: %s %v", r.body, r.Header["Set-Cookie"])
	}
	return &session{id: sid.Value, csrfCookie: ct.Value, token: v["csrf_token"].(string), userID: v["user"].(map[string]any)["id"].(float64)}
}

func TestTOTPEnrolAndLogin(t *testing.T) {
	bothBackends(t, func(t *testing.T, c siteConfig) {
		c.extra = throttlesOff
		s := startCustomSite(t, c)
		sess := s.newUser(t, "alice")
		r := s.do(t, req{method: "GET", path: "/api/2fa/", session: sess})
		if got := string(r.body); r.StatusCode != 200 || got != `{"totp":false,"passkeys":0,"recovery_codes":0,"methods":[],"required":false,"enrolment_required":false}` {
			t.Fatalf("2fa status before: %d %s", r.StatusCode, got)
		}
		// Setup asks for the password again, and the CSRF token.
		r = s.do(t, req{method: "POST", path: "/api/2fa/totp/setup/", body: `{"password":"wrong"}`, session: sess, csrf: true})
		if r.StatusCode != 400 || !strings.Contains(string(r.body), `"password"`) {
			t.Fatalf("setup with a wrong password: %d %s", r.StatusCode, r.body)
		}
		r = s.do(t, req{method: "POST", path: "/api/2fa/totp/setup/", body: jsonBody(map[string]string{"password": strongPassword}), session: sess})
		if r.StatusCode != 403 || !strings.Contains(string(r.body), "CSRF") {
			t.Fatalf("setup without the CSRF token: %d %s", r.StatusCode, r.body)
		}
		r = s.do(t, req{method: "POST", path: "/api/2fa/totp/confirm/", body: `{"code":"123456"}`, session: sess, csrf: true})
		if r.StatusCode != 400 || string(r.body) != `{"detail":"Start TOTP setup first."}` {
			t.Fatalf("confirm before setup: %d %s", r.StatusCode, r.body)
		}
		// Until confirmed, the secret is no factor: login is as before.
		r = s.do(t, req{method: "POST", path: "/api/2fa/totp/setup/", body: jsonBody(map[string]string{"password": strongPassword}), session: sess, csrf: true})
		if r.StatusCode != 200 {
			t.Fatalf("setup: %d %s", r.StatusCode, r.body)
		}
		s.login(t, "alice", strongPassword)

		secret, codes := s.enrolTOTP(t, sess)
		r = s.do(t, req{method: "GET", path: "/api/2fa/", session: sess})
		if got := string(r.body); got != `{"totp":true,"passkeys":0,"recovery_codes":10,"methods":["totp","recovery_code"],"required":false,"enrolment_required":false}` {
			t.Fatalf("2fa status after: %s", got)
		}

		// The password alone gives no session and no identity.
		pending := s.passwordStep(t, "alice", "totp", "recovery_code")
		if r := s.do(t, req{method: "GET", path: "/app", headers: pending}); r.StatusCode != 403 {
			t.Fatalf("gated request with only the pending cookie: %d %s", r.StatusCode, r.body)
		}
		if r := s.codeStep(t, pending, wrongCode(t, secret)); r.StatusCode != 400 || string(r.body) != `{"code":["Invalid code."]}` {
			t.Fatalf("wrong code: %d %s", r.StatusCode, r.body)
		}
		if r := s.codeStep(t, pending, ""); r.StatusCode != 400 || !strings.Contains(string(r.body), `"code"`) {
			t.Fatalf("blank code: %d %s", r.StatusCode, r.body)
		}
		// The code that confirmed enrolment is spent; the next step's works once.
		next := totpCode(t, secret, time.Now().Add(30*time.Second))
		if cur := totpCode(t, secret, time.Now()); cur != next {
			if r := s.codeStep(t, pending, cur); r.StatusCode != 400 {
				t.Fatalf("the enrolment's code accepted again: %d %s", r.StatusCode, r.body)
			}
		}
		r = s.codeStep(t, pending, next)
		full := sessionOf(t, r)
		if c := r.cookie("sessionid_mfa"); c == nil || c.MaxAge >= 0 {
			t.Errorf("the pending cookie was not expired: %v", r.Header["Set-Cookie"])
		}
		e := assertThrough(t, "gated after the code", s.do(t, req{method: "GET", path: "/app", session: full}))
		if got := e.Headers["X-Auth-Username"]; len(got) != 1 || got[0] != "alice" {
			t.Fatalf("identity %v", got)
		}
		if r := s.codeStep(t, pending, next); r.StatusCode != 400 {
			t.Fatalf("the same code twice: %d %s", r.StatusCode, r.body)
		}

		// A recovery code works once, any case, with or without its dash.
		pending = s.passwordStep(t, "alice", "totp", "recovery_code")
		sessionOf(t, s.codeStep(t, pending, strings.ToUpper(strings.ReplaceAll(codes[0], "-", ""))))
		pending = s.passwordStep(t, "alice", "totp", "recovery_code")
		if r := s.codeStep(t, pending, codes[0]); r.StatusCode != 400 {
			t.Fatalf("a recovery code twice: %d %s", r.StatusCode, r.body)
		}
		// Without the pending cookie, or with a forged one, nothing.
		for _, h := range []map[string]string{nil, {"Cookie": "sessionid_mfa=" + strings.Repeat("A", 80)}} {
			r := s.codeStep(t, h, codes[1])
			if r.StatusCode != 400 || !strings.Contains(string(r.body), "No sign-in is waiting") {
				t.Fatalf("code without a pending login: %d %s", r.StatusCode, r.body)
			}
		}
		// Signing out everywhere ends the pending login.
		pending = s.passwordStep(t, "alice", "totp", "recovery_code")
		full = sessionOf(t, s.codeStep(t, s.passwordStep(t, "alice", "totp", "recovery_code"), codes[2]))
		if r := s.do(t, req{method: "POST", path: "/api/logout/all/", session: full, csrf: true}); r.StatusCode != 200 {
			t.Fatalf("logout all: %d %s", r.StatusCode, r.body)
		}
		if r := s.codeStep(t, pending, codes[3]); r.StatusCode != 400 || !strings.Contains(string(r.body), "No sign-in is waiting") {
			t.Fatalf("code after logout-all: %d %s", r.StatusCode, r.body)
		}
		// So does a password change (then changed back).
		pending = s.passwordStep(t, "alice", "totp", "recovery_code")
		full = sessionOf(t, s.codeStep(t, s.passwordStep(t, "alice", "totp", "recovery_code"), codes[6]))
		changePassword := func(from, to string) {
			t.Helper()
			r := s.do(t, req{method: "POST", path: "/api/password/", session: full, csrf: true,
				body: jsonBody(map[string]string{"old_password": from, "new_password": to, "new_password2": to})})
			if r.StatusCode != 200 || r.cookie("sessionid") == nil {
				t.Fatalf("password change: %d %s", r.StatusCode, r.body)
			}
			full.id = r.cookie("sessionid").Value
		}
		changePassword(strongPassword, "N3w-Secret-Words")
		if r := s.codeStep(t, pending, codes[7]); r.StatusCode != 400 || !strings.Contains(string(r.body), "No sign-in is waiting") {
			t.Fatalf("code after a password change: %d %s", r.StatusCode, r.body)
		}
		changePassword("N3w-Secret-Words", strongPassword)

		// Disable: password and a code; then login is one step again.
		full = sessionOf(t, s.codeStep(t, s.passwordStep(t, "alice", "totp", "recovery_code"), codes[4]))
		r = s.do(t, req{method: "POST", path: "/api/2fa/totp/disable/", body: jsonBody(map[string]string{"password": strongPassword, "code": "nope"}), session: full, csrf: true})
		if r.StatusCode != 400 || string(r.body) != `{"code":["Invalid code."]}` {
			t.Fatalf("disable with a wrong code: %d %s", r.StatusCode, r.body)
		}
		r = s.do(t, req{method: "POST", path: "/api/2fa/totp/disable/", body: jsonBody(map[string]string{"password": strongPassword, "code": codes[5]}), session: full, csrf: true})
		if r.StatusCode != 200 {
			t.Fatalf("disable: %d %s", r.StatusCode, r.body)
		}
		s.login(t, "alice", strongPassword)
	})
}

// TestSecondFactorThrottle: wrong codes count toward the username's login
// throttle, and a right password in between does not clear them.
func TestSecondFactorThrottle(t *testing.T) {
	s := startCustomSite(t, siteConfig{extra: "login_throttle 3 100 1m 1m\nregister_throttle off\n"})
	sess := s.newUser(t, "bob")
	s.enrolTOTP(t, sess)
	for i := range 3 {
		pending := s.passwordStep(t, "bob", "totp", "recovery_code")
		if r := s.codeStep(t, pending, "zzzzz-zzzzz"); r.StatusCode != 400 {
			t.Fatalf("wrong code %d: %d %s", i, r.StatusCode, r.body)
		}
	}
	r := s.do(t, req{method: "POST", path: "/api/login/", body: jsonBody(map[string]string{"username": "bob", "password": strongPassword})})
	if r.StatusCode != 429 {
		t.Fatalf("after three wrong codes the password step answered %d %s, want 429", r.StatusCode, r.body)
	}
}

// TestTwoFactorRequired: under `two_factor required <who>`, a named user
// without a factor gets a session that may only enrol one.
func TestTwoFactorRequired(t *testing.T) {
	bothBackends(t, func(t *testing.T, c siteConfig) {
		c.extra = throttlesOff + "two_factor required group:admins staff\n"
		s := startCustomSite(t, c)
		admin := s.newMember(t, "ada", false, false, "admins")
		plain := s.newMember(t, "pat", false, false)
		// The plain user is not named: everything as before.
		assertThrough(t, "plain user", s.do(t, req{method: "GET", path: "/app", session: plain.session}))

		r := s.do(t, req{method: "POST", path: "/api/login/", body: jsonBody(map[string]string{"username": "ada", "password": strongPassword})})
		limited := sessionOf(t, r)
		if v := r.json(t); v["mfa_enrolment_required"] != true {
			t.Fatalf("login body %s lacks mfa_enrolment_required", r.body)
		}
		const refused = `{"detail":"Two-factor enrolment required."}`
		for _, q := range []req{{method: "GET", path: "/app"}, {method: "GET", path: "/api/sessions/"}, {method: "GET", path: "/api/auth/"},
			{method: "POST", path: "/api/password/", body: `{}`, csrf: true}} {
			q.session = limited
			if r := s.do(t, q); r.StatusCode != 403 || string(r.body) != refused {
				t.Errorf("%s %s in an enrolment-only session: %d %s", q.method, q.path, r.StatusCode, r.body)
			}
		}
		// The session that was open before the policy is held too.
		assertNoEnrol := func(what string, r *response) {
			t.Helper()
			if r.StatusCode != 403 || string(r.body) != refused {
				t.Errorf("%s: %d %s", what, r.StatusCode, r.body)
			}
		}
		assertNoEnrol("older session", s.do(t, req{method: "GET", path: "/app", session: admin.session}))
		if r := s.do(t, req{method: "GET", path: "/api/user/", session: limited}); r.StatusCode != 200 {
			t.Fatalf("user/ in an enrolment-only session: %d %s", r.StatusCode, r.body)
		}
		r = s.do(t, req{method: "GET", path: "/api/2fa/", session: limited})
		if v := r.json(t); v["required"] != true || v["enrolment_required"] != true {
			t.Fatalf("2fa status: %s", r.body)
		}
		// Enrolling lifts the limit on this session.
		_, codes := s.enrolTOTP(t, limited)
		assertThrough(t, "after enrolment", s.do(t, req{method: "GET", path: "/app", session: limited}))
		// A required user cannot remove their last factor.
		r = s.do(t, req{method: "POST", path: "/api/2fa/totp/disable/", body: jsonBody(map[string]string{"password": strongPassword, "code": codes[0]}), session: limited, csrf: true})
		if r.StatusCode != 400 || string(r.body) != `{"detail":"Your account must keep a second factor."}` {
			t.Fatalf("disabling the last factor: %d %s", r.StatusCode, r.body)
		}
		// The next login needs the code and gives a full session.
		full := sessionOf(t, s.codeStep(t, s.passwordStep(t, "ada", "totp", "recovery_code"), codes[1]))
		assertThrough(t, "after a second-factor login", s.do(t, req{method: "GET", path: "/app", session: full}))
		// A password change keeps the session that goes on a full one.
		r = s.do(t, req{method: "POST", path: "/api/password/", session: full, csrf: true,
			body: jsonBody(map[string]string{"old_password": strongPassword, "new_password": "N3w-Secret-Words", "new_password2": "N3w-Secret-Words"})})
		if r.StatusCode != 200 {
			t.Fatalf("password change: %d %s", r.StatusCode, r.body)
		}
		full.id = r.cookie("sessionid").Value
		assertThrough(t, "after a password change", s.do(t, req{method: "GET", path: "/app", session: full}))
	})
}

// TestTwoFactorConfig: the settings' errors, the same from the Caddyfile
// and JSON.
func TestTwoFactorConfig(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"two_factor sometimes", `two_factor: want optional or required, got "sometimes"`},
		{"two_factor optional staff", "given only with required"},
		{"two_factor required admins", `"admins": who may pass is staff, superuser or group:<name>`},
		{"passkey_rp_id 127.0.0.1", "passkey_rp_id: \"127.0.0.1\" is not a domain name"},
		{"passkey_origins https://example.com", "passkey_origins needs passkey_rp_id"},
		{"passkey_rp_id example.com\npasskey_origins https://evil.test", "is not on passkey_rp_id example.com"},
	} {
		err := adaptAndValidate(t, tc.line)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.line, err, tc.want)
		}
	}
	if err := adaptAndValidate(t, "two_factor required superuser group:ops\npasskey_rp_id example.com\npasskey_origins https://example.com https://app.example.com:8443\ntotp_issuer Example"); err != nil {
		t.Fatalf("a good config: %v", err)
	}
}

// adaptAndValidate adapts a Caddyfile with the session_auth lines and,
// if that works, loads it (Provision and Validate run); the first error.
func adaptAndValidate(t *testing.T, lines string) error {
	t.Helper()
	src := fmt.Sprintf("{\n\tadmin off\n\tpersist_config off\n}\nhttp://127.0.0.1:%d {\n\tsession_auth {\n\t\tusers_db %s\n\t\t%s\n\t}\n\trespond ok\n}\n",
		freePort(t), filepath.Join(t.TempDir(), "u.db"), strings.ReplaceAll(lines, "\n", "\n\t\t"))
	cfg, err := adapt(src)
	if err != nil {
		return err
	}
	if err := caddy.Load(cfg, true); err != nil {
		return err
	}
	return caddy.Stop()
}

// TestDjangoUsersSecondFactor: with django_users, a user's factors are
// kept in the sidecar's own side table (Django's tables untouched), the
// two-step login works, and a user Django deletes takes them along.
func TestDjangoUsersSecondFactor(t *testing.T) {
	pg := testpg.New(t)
	dj := newDjangoShared(t, pg)
	s := startCustomSite(t, siteConfig{usersDB: pg.URL, redisURL: testredis.Start(t).URL(),
		extra: "django_users\npbkdf2_iterations 30000\n" + throttlesOff})
	sess := s.newUser(t, "dora")
	secret, codes := s.enrolTOTP(t, sess)
	conn := pg.Conn(t)
	ctx := context.Background()
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM session_auth_django_factors f JOIN auth_user u ON u.id = f.user_id WHERE u.username = 'dora'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("factors in the side table: %d %v", n, err)
	}
	full := sessionOf(t, s.codeStep(t, s.passwordStep(t, "dora", "totp", "recovery_code"), totpCode(t, secret, time.Now().Add(30*time.Second))))
	assertThrough(t, "Django user after the second factor", s.do(t, req{method: "GET", path: "/app", session: full}))
	sessionOf(t, s.codeStep(t, s.passwordStep(t, "dora", "totp", "recovery_code"), codes[0]))
	dj.shell(`User.objects.get(username="dora").delete()`)
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM session_auth_django_factors`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("factors left after Django deleted the user: %d %v", n, err)
	}
}
