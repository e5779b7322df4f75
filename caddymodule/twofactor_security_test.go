package caddymodule_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/mfa"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testwebauthn"
)

// The second review of issue 16 (a white-box reading): these held the
// holes it found open before their fixes.

// A session opened with the password alone before the user's first
// factor does not outlive it: enrolling ends every other session (also
// under two_factor optional, where no session is ever limited).
func TestFirstFactorEndsOtherSessions(t *testing.T) {
	for _, policy := range []string{"two_factor required group:admins\n", ""} {
		p := startPasskeySite(t, siteConfig{extra: throttlesOff + policy})
		p.newMember(t, "ada", false, false, "admins")
		login := func() *session {
			return sessionOf(t, p.do(t, req{method: "POST", path: "/api/login/", body: jsonBody(map[string]string{"username": "ada", "password": strongPassword})}, ""))
		}
		attacker, owner := login(), login()
		oldID := owner.id
		p.site.enrolTOTP(t, owner)
		if owner.id == oldID {
			t.Fatalf("%q: enrolling kept the session's token", policy)
		}
		for _, q := range []req{{method: "GET", path: "/app"}, {method: "GET", path: "/api/user/"},
			{method: "POST", path: "/api/2fa/passkeys/register/begin/", body: passwordAgainBody, csrf: true},
			{method: "POST", path: "/api/2fa/recovery-codes/", body: passwordAgainBody, csrf: true}} {
			q.session = attacker
			if r := p.do(t, q, ""); r.StatusCode != 403 || !strings.Contains(string(r.body), "credentials were not provided") {
				t.Errorf("%q: the older session, %s %s: %d %s", policy, q.method, q.path, r.StatusCode, r.body)
			}
		}
		assertThrough(t, "the enrolling session goes on", p.do(t, req{method: "GET", path: "/app", session: owner}, ""))
	}
}

// An enrolment-only session whose user has a factor by now (added without
// ending it: here straight through the store, as a session older than
// this rule would be) may not add, replace or remove factors, nor mint
// recovery codes: it must sign in again with the factor.
func TestLimitedSessionCannotTakeOverFactors(t *testing.T) {
	p := startPasskeySite(t, siteConfig{extra: throttlesOff + "two_factor required\n"})
	p.newUser(t, "ada")
	stale := sessionOf(t, p.do(t, req{method: "POST", path: "/api/login/", body: jsonBody(map[string]string{"username": "ada", "password": strongPassword})}, ""))
	// The session begins a passkey registration while the user has none.
	a := testwebauthn.New(p.origin)
	opts, state := p.beginRegistration(t, stale)
	cred, _, err := a.Create(opts)
	if err != nil {
		t.Fatal(err)
	}
	// The owner's factor, written behind the session's back.
	store := caddymodule.UsersOf(p.dbPath)
	var keys *mfa.Keys
	keys, err = mfa.LoadKeys(context.Background(), store.(users.Secrets))
	if err != nil {
		t.Fatal(err)
	}
	svc := &mfa.Service{Store: store.(users.Factors), Keys: keys}
	id := int64(stale.userID)
	secret, _, err := svc.BeginTOTP(context.Background(), id, "x", "ada")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.ConfirmTOTP(context.Background(), id, totpCode(t, secret, time.Now()), false); err != nil {
		t.Fatal(err)
	}
	const signInAgain = `{"detail":"Sign in again with your second factor."}`
	const enrolOnly = `{"detail":"Two-factor enrolment required."}`
	for _, c := range []struct {
		q    req
		want string
	}{
		{req{method: "POST", path: "/api/2fa/totp/setup/", body: passwordAgainBody}, signInAgain},
		{req{method: "POST", path: "/api/2fa/passkeys/register/begin/", body: passwordAgainBody}, signInAgain},
		{req{method: "POST", path: "/api/2fa/recovery-codes/", body: passwordAgainBody}, enrolOnly},
		{req{method: "POST", path: "/api/2fa/totp/disable/", body: `{"password":"` + strongPassword + `","code":"123456"}`}, enrolOnly},
		{req{method: "DELETE", path: "/api/2fa/passkeys/AAAA/", body: passwordAgainBody}, enrolOnly},
		{req{method: "GET", path: "/app"}, enrolOnly},
	} {
		c.q.session, c.q.csrf = stale, true
		if r := p.do(t, c.q, ""); r.StatusCode != 403 || string(r.body) != c.want {
			t.Errorf("%s %s in a stale enrolment-only session: %d %s, want 403 %s", c.q.method, c.q.path, r.StatusCode, r.body, c.want)
		}
	}
	// Nor can the ceremony begun before the owner's factor finish.
	if r := p.finishRegistration(t, stale, state, string(cred)); r.StatusCode != 403 || string(r.body) != signInAgain {
		t.Errorf("finishing a registration begun before the owner's factor: %d %s", r.StatusCode, r.body)
	}
	if d, _ := svc.Get(context.Background(), id); len(d.Passkeys) != 0 {
		t.Errorf("a passkey was added: %d", len(d.Passkeys))
	}
}

// Wrong codes at totp/disable/ count toward the username's login
// throttle, and a right password in a set-up call does not clear the
// count of wrong codes at the login's second step.
func TestSecondFactorCodesThrottledEverywhere(t *testing.T) {
	s := startCustomSite(t, siteConfig{extra: "login_throttle 3 100 1m 1m\nregister_throttle off\n"})
	sess := s.newUser(t, "bob")
	s.enrolTOTP(t, sess)
	got := []int{}
	for range 4 {
		r := s.do(t, req{method: "POST", path: "/api/2fa/totp/disable/", session: sess, csrf: true,
			body: jsonBody(map[string]string{"password": strongPassword, "code": "zzzzz-zzzzz"})})
		got = append(got, r.StatusCode)
	}
	if got[0] != 400 || got[3] != 429 {
		t.Fatalf("wrong codes at disable answered %v, want 400… then 429", got)
	}
	s2 := startCustomSite(t, siteConfig{extra: "login_throttle 3 100 1m 1m\nregister_throttle off\n"})
	sess = s2.newUser(t, "cy")
	s2.enrolTOTP(t, sess)
	for i := range 2 {
		if r := s2.codeStep(t, s2.passwordStep(t, "cy", "totp", "recovery_code"), "zzzzz-zzzzz"); r.StatusCode != 400 {
			t.Fatalf("wrong code %d: %d %s", i, r.StatusCode, r.body)
		}
	}
	if r := s2.do(t, req{method: "POST", path: "/api/2fa/recovery-codes/", session: sess, csrf: true, body: passwordAgainBody}); r.StatusCode != 200 {
		t.Fatalf("recovery-codes: %d %s", r.StatusCode, r.body)
	}
	if r := s2.codeStep(t, s2.passwordStep(t, "cy", "totp", "recovery_code"), "zzzzz-zzzzz"); r.StatusCode != 400 {
		t.Fatalf("third wrong code: %d %s", r.StatusCode, r.body)
	}
	r := s2.do(t, req{method: "POST", path: "/api/login/", body: jsonBody(map[string]string{"username": "cy", "password": strongPassword})})
	if r.StatusCode != 429 {
		t.Fatalf("after three wrong codes (a right password in between) the password step answered %d %s, want 429", r.StatusCode, r.body)
	}
}

// Twenty passkeys with long credential ids still fit the second step's
// state cookie (the allowed list is not carried in it).
func TestPasskeyStepStateStaysSmall(t *testing.T) {
	p := startPasskeySite(t, siteConfig{extra: throttlesOff})
	sess := p.newUser(t, "lena")
	var a *testwebauthn.Authenticator
	for i := range mfa.MaxPasskeys {
		a = testwebauthn.New(p.origin)
		a.CredentialIDLength = 255
		p.addPasskey(t, sess, a, "")
		_ = i
	}
	pending := pendingState(p.passwordStep(t, "lena", "passkey"))
	r := p.do(t, req{method: "POST", path: "/api/login/passkey/begin/", body: `{}`}, pending)
	if r.StatusCode != 200 {
		t.Fatalf("begin: %d %s", r.StatusCode, r.body)
	}
	state := stateOf(t, r)
	if len(state) > 1024 {
		t.Errorf("state cookie of %d bytes with %d passkeys", len(state), mfa.MaxPasskeys)
	}
	var opts struct {
		PublicKey struct {
			AllowCredentials []json.RawMessage `json:"allowCredentials"`
		} `json:"publicKey"`
	}
	json.Unmarshal(r.body, &opts)
	if len(opts.PublicKey.AllowCredentials) != mfa.MaxPasskeys {
		t.Errorf("the options allow %d credentials, want %d", len(opts.PublicKey.AllowCredentials), mfa.MaxPasskeys)
	}
	assertion, err := a.Get(r.body)
	if err != nil {
		t.Fatal(err)
	}
	sessionOf(t, p.finishLogin(t, state, assertion))
}
