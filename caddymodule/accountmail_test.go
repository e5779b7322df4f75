package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testsmtp"
)

func mailLines(srv *testsmtp.Server, extra string) string {
	return "smtp " + srv.URL() + "\nemail_from \"Sidecar <noreply@example.com>\"\n" + extra
}

func jsonBody(v map[string]string) string {
	b, _ := json.Marshal(v)
	return string(b)
}

var (
	resetLinkRE  = regexp.MustCompile(`(http://[^\s#]+)#reset-confirm/([A-Za-z0-9_-]+)/([0-9a-z]+-[0-9a-f]{32})`)
	verifyLinkRE = regexp.MustCompile(`(http://[^\s#]+)#verify/([A-Za-z0-9_-]+-[0-9a-z]+-[0-9a-f]{32})`)
)

func (s *site) post(t testing.TB, path string, body map[string]string) *response {
	t.Helper()
	return s.do(t, req{method: "POST", path: path, body: jsonBody(body)})
}

func wantBody(t testing.TB, r *response, status int, body string) {
	t.Helper()
	if r.StatusCode != status || strings.TrimSpace(string(r.body)) != body {
		t.Fatalf("got %d %s, want %d %s", r.StatusCode, r.body, status, body)
	}
}

// backendsAndStores runs fn on the session stores and users backends the
// issue names: sessions in bbolt and in Redis over a bbolt users_db, and
// users in PostgreSQL (with Redis sessions, as a shared users database
// needs).
func backendsAndStores(t *testing.T, fn func(t *testing.T, c siteConfig)) {
	t.Run("bolt", func(t *testing.T) { fn(t, siteConfig{}) })
	t.Run("redis", func(t *testing.T) { fn(t, siteConfig{redisURL: testredis.Start(t).URL()}) })
	t.Run("postgres", func(t *testing.T) {
		fn(t, siteConfig{usersDB: testpg.New(t).URL, redisURL: testredis.Start(t).URL()})
	})
}

// startWith starts a site from c with the throttles off and extra lines.
func startWith(t *testing.T, c siteConfig, extra string) *site {
	t.Helper()
	c.extra = throttlesOff + extra
	return startCustomSite(t, c)
}

const (
	resetSent = `{"detail":"Password reset e-mail has been sent."}`
	resetDone = `{"detail":"Password has been reset with the new password."}`
)

// The whole reset flow through a real Caddy and a real SMTP server, on
// both session stores: the same answer for known and unknown addresses,
// one mail (to the active user only) with a working link, dj-rest-auth's
// errors, sessions ended, the token single-use.
func TestPasswordReset(t *testing.T) {
	backendsAndStores(t, func(t *testing.T, c siteConfig) {
		mail := testsmtp.Start(t, testsmtp.Plain)
		s := startWith(t, c, mailLines(mail, ""))
		s1 := s.newUser(t, "ann")
		s2 := s.login(t, "ann", strongPassword)
		s.newUser(t, "idle")
		st := caddymodule.UsersOf(s.dbPath)
		idle, _ := st.ByUsername(context.Background(), "idle")
		if _, err := st.Update(context.Background(), idle.ID, func(u *users.User) error { u.IsActive = false; return nil }); err != nil {
			t.Fatal(err)
		}

		wantBody(t, s.post(t, "/api/password/reset/", map[string]string{"email": "nobody@example.com"}), 200, resetSent)
		wantBody(t, s.post(t, "/api/password/reset/", map[string]string{"email": "idle@example.com"}), 200, resetSent)
		wantBody(t, s.post(t, "/api/password/reset/", map[string]string{"email": "ANN@example.com"}), 200, resetSent)
		msg := mail.WaitFor(t, "ann@example.com", 10*time.Second, nil)
		// Mails go out in order: the unknown and inactive ones were handled.
		if n := len(mail.Messages(t)); n != 1 {
			t.Fatalf("%d mails delivered, want only ann's", n)
		}
		if !strings.Contains(msg.Subject, "Password reset") || !strings.Contains(msg.Body, "ann") {
			t.Errorf("mail %q: %q", msg.Subject, msg.Body)
		}
		m := resetLinkRE.FindStringSubmatch(msg.Body)
		if m == nil {
			t.Fatalf("no reset link in %q", msg.Body)
		}
		if m[1] != s.base+"/api/signin/" {
			t.Errorf("link goes to %s, want the built-in page %s/api/signin/", m[1], s.base)
		}
		uid, token := m[2], m[3]

		// Field errors, then the bad uid, the bad token, the password form.
		r := s.post(t, "/api/password/reset/confirm/", map[string]string{"uid": uid})
		if r.StatusCode != 400 || !strings.Contains(string(r.body), `"token":["This field is required."]`) {
			t.Fatalf("missing fields: %d %s", r.StatusCode, r.body)
		}
		confirm := func(uid, token, p1, p2 string) *response {
			return s.post(t, "/api/password/reset/confirm/", map[string]string{"uid": uid, "token": token, "new_password1": p1, "new_password2": p2})
		}
		wantBody(t, confirm("MTIzNDU2", token, "N3w-Secret-Words", "N3w-Secret-Words"), 400, `{"uid":["Invalid value"]}`)
		wantBody(t, confirm("!!", token, "N3w-Secret-Words", "N3w-Secret-Words"), 400, `{"uid":["Invalid value"]}`)
		tampered := token[:len(token)-1] + "0"
		if strings.HasSuffix(token, "0") {
			tampered = token[:len(token)-1] + "1"
		}
		wantBody(t, confirm(uid, tampered, "N3w-Secret-Words", "N3w-Secret-Words"), 400, `{"token":["Invalid value"]}`)
		r = confirm(uid, token, "N3w-Secret-Words", "other-Secret-Words")
		if r.StatusCode != 400 || !strings.Contains(string(r.body), "new_password2") {
			t.Fatalf("passwords differ: %d %s", r.StatusCode, r.body)
		}
		r = confirm(uid, token, "ann", "ann")
		if r.StatusCode != 400 || !strings.Contains(string(r.body), "too short") {
			t.Fatalf("weak password: %d %s", r.StatusCode, r.body)
		}
		// Sessions still live until the reset happens.
		if r := s.do(t, req{method: "GET", path: "/api/user/", session: s1}); r.StatusCode != 200 {
			t.Fatalf("session ended before the reset: %d", r.StatusCode)
		}
		wantBody(t, confirm(uid, token, "N3w-Secret-Words", "N3w-Secret-Words"), 200, resetDone)
		for _, sess := range []*session{s1, s2} {
			if r := s.do(t, req{method: "GET", path: "/api/user/", session: sess}); r.StatusCode != 403 {
				t.Fatalf("a session outlived the reset: %d %s", r.StatusCode, r.body)
			}
		}
		wantBody(t, confirm(uid, token, "An0ther-Secret-Words", "An0ther-Secret-Words"), 400, `{"token":["Invalid value"]}`)
		if r := s.post(t, "/api/login/", map[string]string{"username": "ann", "password": strongPassword}); r.StatusCode != 400 {
			t.Fatalf("old password still works: %d", r.StatusCode)
		}
		s.login(t, "ann", "N3w-Secret-Words")
		if u, _ := st.ByUsername(context.Background(), "ann"); !u.EmailVerified {
			t.Error("a reset through the mailed link did not mark the address verified")
		}

		// A login after the request kills its token (last_login changed).
		wantBody(t, s.post(t, "/api/password/reset/", map[string]string{"email": "ann@example.com"}), 200, resetSent)
		msg = mail.WaitFor(t, "ann@example.com", 10*time.Second, func(m testsmtp.Message) bool { return m.File != msg.File })
		m = resetLinkRE.FindStringSubmatch(msg.Body)
		s.login(t, "ann", "N3w-Secret-Words")
		wantBody(t, confirm(m[2], m[3], "An0ther-Secret-Words", "An0ther-Secret-Words"), 400, `{"token":["Invalid value"]}`)

		// Malformed requests.
		r = s.post(t, "/api/password/reset/", map[string]string{"email": "not an address"})
		wantBody(t, r, 400, `{"email":["Enter a valid email address."]}`)
		r = s.post(t, "/api/password/reset/", map[string]string{})
		wantBody(t, r, 400, `{"email":["This field is required."]}`)
	})
}

// password_reset_url and email_verify_url fill in the operator's links;
// password_reset_timeout ends a token's life.
func TestResetLinkTemplateAndTimeout(t *testing.T) {
	mail := testsmtp.Start(t, testsmtp.Plain)
	s := startSite(t, "", mailLines(mail, "password_reset_url https://app.example.com/reset/{uid}/{token}\npassword_reset_timeout 2s\n"))
	s.newUser(t, "cy")
	wantBody(t, s.post(t, "/api/password/reset/", map[string]string{"email": "cy@example.com"}), 200, resetSent)
	msg := mail.WaitFor(t, "cy@example.com", 10*time.Second, nil)
	m := regexp.MustCompile(`https://app\.example\.com/reset/([A-Za-z0-9_-]+)/([0-9a-z]+-[0-9a-f]{32})\r?\n`).FindStringSubmatch(msg.Body)
	if m == nil {
		t.Fatalf("no configured link in %q", msg.Body)
	}
	time.Sleep(3500 * time.Millisecond)
	r := s.post(t, "/api/password/reset/confirm/", map[string]string{"uid": m[1], "token": m[2], "new_password1": "N3w-Secret-Words", "new_password2": "N3w-Secret-Words"})
	wantBody(t, r, 400, `{"token":["Invalid value"]}`)
}

// E-mail verification, mandatory: the mail on registration, login refused
// until the key is posted, the header telling the upstream, resend.
func TestEmailVerification(t *testing.T) {
	backendsAndStores(t, func(t *testing.T, c siteConfig) {
		mail := testsmtp.Start(t, testsmtp.Plain)
		s := startWith(t, c, mailLines(mail, "email_verification mandatory\n"))
		if r := s.register(t, "bob", "bob@example.com", strongPassword); r.StatusCode != 201 {
			t.Fatalf("register: %d %s", r.StatusCode, r.body)
		}
		msg := mail.WaitFor(t, "bob@example.com", 10*time.Second, nil)
		m := verifyLinkRE.FindStringSubmatch(msg.Body)
		if m == nil {
			t.Fatalf("no verification link in %q", msg.Body)
		}
		r := s.post(t, "/api/login/", map[string]string{"username": "bob", "password": strongPassword})
		wantBody(t, r, 400, `{"non_field_errors":["E-mail is not verified."]}`)
		if r.cookie("sessionid") != nil {
			t.Fatal("an unverified login got a session cookie")
		}
		// A wrong password says nothing of verification.
		r = s.post(t, "/api/login/", map[string]string{"username": "bob", "password": "wrong-Password-1"})
		wantBody(t, r, 400, `{"non_field_errors":["Unable to log in with provided credentials."]}`)

		wantBody(t, s.post(t, "/api/registration/resend-email/", map[string]string{"email": "bob@example.com"}), 200, `{"detail":"ok"}`)
		wantBody(t, s.post(t, "/api/registration/resend-email/", map[string]string{"email": "nobody@example.com"}), 200, `{"detail":"ok"}`)
		second := mail.WaitFor(t, "bob@example.com", 10*time.Second, func(x testsmtp.Message) bool { return x.File != msg.File })
		if verifyLinkRE.FindStringSubmatch(second.Body) == nil {
			t.Fatalf("resent mail has no link: %q", second.Body)
		}

		key := m[2]
		wantBody(t, s.post(t, "/api/registration/verify-email/", map[string]string{"key": key[:len(key)-1] + "x"}), 404, `{"detail":"Not found."}`)
		wantBody(t, s.post(t, "/api/registration/verify-email/", map[string]string{"key": "garbage"}), 404, `{"detail":"Not found."}`)
		wantBody(t, s.post(t, "/api/registration/verify-email/", map[string]string{"key": key}), 200, `{"detail":"ok"}`)
		wantBody(t, s.post(t, "/api/registration/verify-email/", map[string]string{"key": key}), 200, `{"detail":"ok"}`)
		sess := s.login(t, "bob", strongPassword)
		e := s.do(t, req{method: "GET", path: "/app", session: sess, headers: map[string]string{"X-Auth-Email-Verified": "false"}}).echo(t)
		if got := e.Headers["X-Auth-Email-Verified"]; len(got) != 1 || got[0] != "true" {
			t.Fatalf("upstream got X-Auth-Email-Verified %q, want [true]", got)
		}
		// Resend to a verified address sends nothing more.
		before := mail.Count(t, "bob@example.com")
		s.post(t, "/api/registration/resend-email/", map[string]string{"email": "bob@example.com"})
		s.register(t, "sync", "sync@example.com", strongPassword)
		mail.WaitFor(t, "sync@example.com", 10*time.Second, nil)
		if n := mail.Count(t, "bob@example.com"); n != before {
			t.Fatalf("a verified address got another verification mail (%d, was %d)", n, before)
		}
	})
}

// Optional verification: unverified users log in, and the upstream is
// told they are unverified whatever the client claims.
func TestEmailVerificationOptional(t *testing.T) {
	mail := testsmtp.Start(t, testsmtp.Plain)
	s := startSite(t, "", mailLines(mail, "email_verification optional\n"))
	sess := s.newUser(t, "dee")
	mail.WaitFor(t, "dee@example.com", 10*time.Second, nil)
	for _, spoof := range []string{"X-Auth-Email-Verified", "X_Auth_Email_Verified", "x-auth-email-verified"} {
		e := s.do(t, req{method: "GET", path: "/app", session: sess, headers: map[string]string{spoof: "true"}}).echo(t)
		for k, v := range e.Headers {
			if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "X-Auth-Email-Verified") && (len(v) != 1 || v[0] != "false" || k != "X-Auth-Email-Verified") {
				t.Fatalf("spoofed %s reached the upstream as %s: %q", spoof, k, v)
			}
		}
		if got := e.Headers["X-Auth-Email-Verified"]; len(got) != 1 || got[0] != "false" {
			t.Fatalf("upstream got X-Auth-Email-Verified %q, want [false]", got)
		}
	}
}

// STARTTLS with smtp_tls_ca: mail goes out over TLS to a server whose
// certificate a private CA signed; with another CA, nothing is delivered
// and the API answers the same.
func TestResetOverStartTLS(t *testing.T) {
	mail := testsmtp.Start(t, testsmtp.StartTLS)
	s := startSite(t, "", mailLines(mail, "smtp_tls_ca "+mail.CAFile+"\n"))
	s.newUser(t, "eve")
	wantBody(t, s.post(t, "/api/password/reset/", map[string]string{"email": "eve@example.com"}), 200, resetSent)
	if msg := mail.WaitFor(t, "eve@example.com", 10*time.Second, nil); resetLinkRE.FindStringSubmatch(msg.Body) == nil {
		t.Fatalf("no link in %q", msg.Body)
	}
	s.reloadWith("", mailLines(mail, "smtp_tls_ca "+mail.OtherCAFile+"\n"))
	wantBody(t, s.post(t, "/api/password/reset/", map[string]string{"email": "eve@example.com"}), 200, resetSent)
	time.Sleep(2 * time.Second)
	if n := mail.Count(t, "eve@example.com"); n != 1 {
		t.Fatalf("%d mails to eve, want 1 (the untrusted server got none)", n)
	}
}

// SMTP down (nothing listening) or hung (accepts, never answers): the API
// answers at once, as usual.
func TestResetWithSMTPDownOrSlow(t *testing.T) {
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	go func() {
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent
		}
	}()
	closed := freePort(t)
	for _, tc := range []struct{ name, url string }{
		{"down", "smtp://127.0.0.1:" + itoa(closed)},
		{"hung", "smtp://" + hung.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "sidecar.log")
			s := startCustomSite(t, siteConfig{
				global: "log sidecar {\n\t\toutput file " + logPath + "\n\t\tformat json\n\t\tinclude http.handlers.session_auth\n\t}",
				extra:  throttlesOff + "smtp " + tc.url + "\nemail_from noreply@example.com\nsmtp_timeout 2s\nemail_verification optional\n",
			})
			s.register(t, "fay", "fay@example.com", strongPassword)
			for range 3 {
				start := time.Now()
				wantBody(t, s.post(t, "/api/password/reset/", map[string]string{"email": "fay@example.com"}), 200, resetSent)
				if d := time.Since(start); d > 2*time.Second {
					t.Fatalf("the reset request waited %s for the SMTP server", d)
				}
			}
			s.login(t, "fay", strongPassword) // logins go on
			// The log says what was lost (the link never).
			deadline := time.Now().Add(30 * time.Second)
			for {
				b, _ := os.ReadFile(logPath)
				if n := strings.Count(string(b), `"msg":"account mail not sent"`); n >= 2 {
					if strings.Contains(string(b), "reset-confirm") {
						t.Fatal("the log holds a reset link")
					}
					if !strings.Contains(string(b), `"to":"fay@example.com"`) || !strings.Contains(string(b), `"kind":"password_reset"`) {
						t.Fatalf("log lines lack the recipient or kind:\n%s", b)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no \"account mail not sent\" lines in the log:\n%s", b)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// The "same timing whether or not the address exists": known and
// unknown addresses, interleaved, answer in the same time (medians within
// a generous 25 ms: the look-up, hashing and mail all happen off the
// request, so a difference would be structural, not noise).
func TestResetSameTiming(t *testing.T) {
	mail := testsmtp.Start(t, testsmtp.Plain)
	s := startSite(t, "", mailLines(mail, ""))
	const n = 8 // the per-IP limit is 20 requests per 10 minutes
	for i := range n {
		if r := s.register(t, "timed"+strconv.Itoa(i), "timed"+strconv.Itoa(i)+"@example.com", strongPassword); r.StatusCode != 201 {
			t.Fatalf("register: %d", r.StatusCode)
		}
	}
	var known, unknown []time.Duration
	for i := range n {
		for _, addr := range []string{"timed" + strconv.Itoa(i) + "@example.com", "nobody" + strconv.Itoa(i) + "@example.com"} {
			start := time.Now()
			wantBody(t, s.post(t, "/api/password/reset/", map[string]string{"email": addr}), 200, resetSent)
			d := time.Since(start)
			if strings.HasPrefix(addr, "timed") {
				known = append(known, d)
			} else {
				unknown = append(unknown, d)
			}
		}
	}
	mk, mu := median(known), median(unknown)
	t.Logf("median answer: known address %v, unknown %v", mk, mu)
	if diff := mk - mu; diff > 25*time.Millisecond || diff < -25*time.Millisecond {
		t.Fatalf("known and unknown addresses answer in different times: %v vs %v", mk, mu)
	}
	mail.WaitFor(t, "timed7@example.com", 20*time.Second, nil)
}

// caddy_session_auth_mails_total counts sent and failed mails.
func TestMailMetrics(t *testing.T) {
	mail := testsmtp.Start(t, testsmtp.Plain)
	s := startSite(t, "", "")
	mport := freePort(t)
	load := func(smtpURL string) {
		s.load(fmt.Sprintf(`{
	admin off
	persist_config off
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
		register_throttle off
		smtp %s
		email_from noreply@example.com
		smtp_timeout 2s
	}
	reverse_proxy %s
}
http://127.0.0.1:%d {
	metrics
}
`, s.port, s.dbPath, smtpURL, strings.TrimPrefix(s.upstream.URL, "http://"), mport))
		s.client.CloseIdleConnections()
	}
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d", mport)
	sent := `caddy_session_auth_mails_total{kind="password_reset",result="sent"}`
	failed := `caddy_session_auth_mails_total{kind="password_reset",result="failed"}`
	load(mail.URL())
	s.register(t, "met", "met@example.com", strongPassword)
	sent0, failed0 := metricValue(t, s, metricsURL, sent), metricValue(t, s, metricsURL, failed)
	s.post(t, "/api/password/reset/", map[string]string{"email": "met@example.com"})
	mail.WaitFor(t, "met@example.com", 10*time.Second, nil)
	waitMetric(t, s, metricsURL, sent, sent0+1)
	load("smtp://127.0.0.1:" + strconv.Itoa(freePort(t)))
	s.post(t, "/api/password/reset/", map[string]string{"email": "met@example.com"})
	waitMetric(t, s, metricsURL, failed, failed0+1)
}

func waitMetric(t *testing.T, s *site, metricsURL, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for metricValue(t, s, metricsURL, name) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", name, metricValue(t, s, metricsURL, name), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A client chooses the Host header: without password_reset_url and
// email_verify_url, a mail whose link would point at a Host the site cannot
// vouch for is not sent (the answer is the same), and the log says what to
// set; an origin the operator trusts is used.
func TestResetLinkHostNotChosenByClient(t *testing.T) {
	mail := testsmtp.Start(t, testsmtp.Plain)
	s := startWith(t, siteConfig{anyHost: true}, mailLines(mail, "email_verification optional\ncsrf_trusted_origins http://app.example.com"))
	s.newUser(t, "ann")
	// (Two of each: the address's third reset request of the hour is the
	// trusted one below; past three, nothing is sent anyway.)
	for _, host := range []string{"evil.example:80", "127.0.0.1.evil.example"} {
		r := s.do(t, req{method: "POST", path: "/api/password/reset/", body: jsonBody(map[string]string{"email": "ann@example.com"}),
			headers: map[string]string{"Host": host}})
		wantBody(t, r, 200, resetSent)
		r = s.do(t, req{method: "POST", path: "/api/registration/resend-email/", body: jsonBody(map[string]string{"email": "ann@example.com"}),
			headers: map[string]string{"Host": host}})
		if r.StatusCode != 200 {
			t.Fatalf("resend with Host %s: %d %s", host, r.StatusCode, r.body)
		}
	}
	// A trusted origin's host gets its mail, with links to it.
	wantBody(t, s.do(t, req{method: "POST", path: "/api/password/reset/", body: jsonBody(map[string]string{"email": "ann@example.com"}),
		headers: map[string]string{"Host": "app.example.com"}}), 200, resetSent)
	msg := mail.WaitFor(t, "ann@example.com", 10*time.Second, func(m testsmtp.Message) bool { return strings.Contains(m.Subject, "Password reset") })
	if m := resetLinkRE.FindStringSubmatch(msg.Body); m == nil || m[1] != "http://app.example.com/api/signin/" {
		t.Errorf("reset link for a trusted host: %q", msg.Body)
	}
	for _, m := range mail.Messages(t) {
		if strings.Contains(m.Body, "evil") {
			t.Errorf("a mail carries a link to a host the client chose: %q", m.Body)
		}
	}
	// The registration's own verification mail (loopback Host) went out;
	// the resend and reset requests under evil hosts sent nothing.
	if n := len(mail.Messages(t)); n != 2 {
		t.Errorf("%d mails, want 2 (the registration's verification and the trusted reset)", n)
	}
}
