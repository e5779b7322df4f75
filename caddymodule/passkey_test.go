package caddymodule_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testwebauthn"
)

// Issue 16, passkeys through the API: a software authenticator
// (internal/testwebauthn) plays the browser. The site answers any host;
// every request says Host: localhost:<port>, so the RP ID is "localhost"
// and the origin http://localhost:<port>.

const (
	bodyPasskeyFailedT     = `{"detail":"Passkey verification failed."}`
	bodyPasskeyNoCeremonyT = `{"detail":"No passkey request is waiting: start again."}`
)

// pkSite is a site reached as localhost, with a passkey client.
type pkSite struct {
	*site
	host   string
	origin string
}

func startPasskeySite(t *testing.T, c siteConfig) *pkSite {
	t.Helper()
	c.anyHost = true
	if c.extra == "" {
		c.extra = throttlesOff
	}
	s := startCustomSite(t, c)
	host := fmt.Sprintf("localhost:%d", s.port)
	return &pkSite{site: s, host: host, origin: "http://" + host}
}

// do sends q as to localhost, with the state cookie if given.
func (p *pkSite) do(t testing.TB, q req, state string) *response {
	t.Helper()
	h := map[string]string{"Host": p.host}
	for k, v := range q.headers {
		h[k] = v
	}
	if state != "" {
		h["Cookie"] = "sessionid_mfa=" + state
	}
	q.headers = h
	return p.site.do(t, q)
}

// stateOf is the state cookie a begin set.
func stateOf(t testing.TB, r *response) string {
	t.Helper()
	return strings.TrimPrefix(stateCookie(t, r)["Cookie"], "sessionid_mfa=")
}

// pendingState is the value of the pending-login cookie passwordStep gave.
func pendingState(h map[string]string) string {
	return strings.TrimPrefix(h["Cookie"], "sessionid_mfa=")
}

// withName adds "name" to a PublicKeyCredential's JSON.
func withName(t testing.TB, cred []byte, name string) string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(cred, &v); err != nil {
		t.Fatal(err)
	}
	v["name"] = name
	b, _ := json.Marshal(v)
	return string(b)
}

// beginRegistration starts a passkey registration in sess and returns the
// creation options and the ceremony's state cookie.
func (p *pkSite) beginRegistration(t testing.TB, sess *session) ([]byte, string) {
	t.Helper()
	r := p.do(t, req{method: "POST", path: "/api/2fa/passkeys/register/begin/", body: jsonBody(map[string]string{"password": strongPassword}), session: sess, csrf: true}, "")
	if r.StatusCode != 200 {
		t.Fatalf("register begin: %d %s", r.StatusCode, r.body)
	}
	return r.body, stateOf(t, r)
}

// finishRegistration posts the authenticator's answer.
func (p *pkSite) finishRegistration(t testing.TB, sess *session, state, body string) *response {
	t.Helper()
	r := p.do(t, req{method: "POST", path: "/api/2fa/passkeys/register/finish/", body: body, session: sess, csrf: true}, state)
	followRenewal(t, sess, r)
	return r
}

// addPasskey registers a passkey of a in sess and returns its id.
func (p *pkSite) addPasskey(t testing.TB, sess *session, a *testwebauthn.Authenticator, name string) string {
	t.Helper()
	opts, state := p.beginRegistration(t, sess)
	cred, _, err := a.Create(opts)
	if err != nil {
		t.Fatalf("authenticator: %v", err)
	}
	r := p.finishRegistration(t, sess, state, withName(t, cred, name))
	if r.StatusCode != 201 {
		t.Fatalf("register finish: %d %s", r.StatusCode, r.body)
	}
	v := r.json(t)
	id, _ := v["id"].(string)
	if id == "" || (name != "" && v["name"] != name) || v["created"] == nil || len(v) != 3 {
		t.Fatalf("register finish answered %s", r.body)
	}
	return id
}

// beginLogin starts a passkey login (under the pending login's state, or
// none for a discoverable sign-in): the request options and the state.
func (p *pkSite) beginLogin(t testing.TB, pending string) ([]byte, string) {
	t.Helper()
	r := p.do(t, req{method: "POST", path: "/api/login/passkey/begin/", body: `{}`}, pending)
	if r.StatusCode != 200 {
		t.Fatalf("login begin: %d %s", r.StatusCode, r.body)
	}
	return r.body, stateOf(t, r)
}

func (p *pkSite) finishLogin(t testing.TB, state string, assertion []byte) *response {
	t.Helper()
	return p.do(t, req{method: "POST", path: "/api/login/passkey/finish/", body: string(assertion)}, state)
}

// passkeyLogin signs in with a's passkey: after the password if pending
// is set, else without one.
func (p *pkSite) passkeyLogin(t testing.TB, a *testwebauthn.Authenticator, pending string, opts ...testwebauthn.Option) *response {
	t.Helper()
	options, state := p.beginLogin(t, pending)
	assertion, err := a.Get(options, opts...)
	if err != nil {
		t.Fatalf("authenticator: %v", err)
	}
	return p.finishLogin(t, state, assertion)
}

func assertPasskeyRefused(t testing.TB, what string, r *response) {
	t.Helper()
	if r.StatusCode != 400 || string(r.body) != bodyPasskeyFailedT || r.cookie("sessionid") != nil {
		t.Errorf("%s: %d %s %v, want 400 %s", what, r.StatusCode, r.body, r.Header["Set-Cookie"], bodyPasskeyFailedT)
	}
}

func userHandle(id float64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(id)) }

func TestPasskeyRegisterAndLogin(t *testing.T) {
	bothBackends(t, func(t *testing.T, c siteConfig) {
		p := startPasskeySite(t, c)
		sess := p.newUser(t, "alice")
		a := testwebauthn.New(p.origin)

		// Begin asks for the password again (and the CSRF token).
		r := p.do(t, req{method: "POST", path: "/api/2fa/passkeys/register/begin/", body: `{"password":"wrong"}`, session: sess, csrf: true}, "")
		if r.StatusCode != 400 || !strings.Contains(string(r.body), `"password"`) || r.cookie("sessionid_mfa") != nil {
			t.Fatalf("begin with a wrong password: %d %s", r.StatusCode, r.body)
		}
		r = p.do(t, req{method: "POST", path: "/api/2fa/passkeys/register/begin/", body: jsonBody(map[string]string{"password": strongPassword}), session: sess}, "")
		if r.StatusCode != 403 || !strings.Contains(string(r.body), "CSRF") {
			t.Fatalf("begin without the CSRF token: %d %s", r.StatusCode, r.body)
		}
		// At an IP address there is no relying party.
		r = p.site.do(t, req{method: "POST", path: "/api/2fa/passkeys/register/begin/", body: jsonBody(map[string]string{"password": strongPassword}), session: sess, csrf: true})
		if r.StatusCode != 400 || string(r.body) != `{"detail":"Passkeys are not available at this address."}` {
			t.Fatalf("begin at 127.0.0.1: %d %s", r.StatusCode, r.body)
		}

		opts, state := p.beginRegistration(t, sess)
		var creation struct {
			PublicKey struct {
				RP   struct{ ID string }
				User struct{ ID string }
			}
		}
		if err := json.Unmarshal(opts, &creation); err != nil || creation.PublicKey.RP.ID != "localhost" ||
			creation.PublicKey.User.ID != base64.RawURLEncoding.EncodeToString(userHandle(sess.userID)) {
			t.Fatalf("creation options %s (%v)", opts, err)
		}
		cred, made, err := a.Create(opts)
		if err != nil {
			t.Fatal(err)
		}
		// A finish without the ceremony's state.
		if r := p.finishRegistration(t, sess, "", withName(t, cred, "x")); r.StatusCode != 400 || string(r.body) != bodyPasskeyNoCeremonyT {
			t.Fatalf("finish without begin: %d %s", r.StatusCode, r.body)
		}
		// A response made at another origin (by another authenticator:
		// this one would replace its credential for the user).
		other, _, err := testwebauthn.New(p.origin).Create(opts, testwebauthn.WithOrigin("http://evil.localhost:1"))
		if err != nil {
			t.Fatal(err)
		}
		if r := p.finishRegistration(t, sess, state, string(other)); r.StatusCode != 400 || string(r.body) != bodyPasskeyFailedT {
			t.Fatalf("registration from another origin: %d %s", r.StatusCode, r.body)
		}
		r = p.finishRegistration(t, sess, state, withName(t, cred, "  Laptop  "))
		if r.StatusCode != 201 {
			t.Fatalf("finish: %d %s", r.StatusCode, r.body)
		}
		v := r.json(t)
		id := base64.RawURLEncoding.EncodeToString(made.ID)
		if v["id"] != id || v["name"] != "Laptop" || len(v) != 3 {
			t.Fatalf("finish answered %s, want id %s name Laptop", r.body, id)
		}
		if c := r.cookie("sessionid_mfa"); c == nil || c.MaxAge >= 0 {
			t.Errorf("the ceremony's cookie was not expired: %v", r.Header["Set-Cookie"])
		}
		// The same response again registers nothing twice.
		if r := p.finishRegistration(t, sess, state, withName(t, cred, "again")); r.StatusCode != 400 {
			t.Fatalf("the same registration twice: %d %s", r.StatusCode, r.body)
		}

		r = p.do(t, req{method: "GET", path: "/api/2fa/passkeys/", session: sess}, "")
		var list []map[string]any
		if err := json.Unmarshal(r.body, &list); err != nil || r.StatusCode != 200 || len(list) != 1 || list[0]["id"] != id ||
			list[0]["name"] != "Laptop" || list[0]["created"] != v["created"] || list[0]["last_used"] != nil {
			t.Fatalf("passkeys: %d %s", r.StatusCode, r.body)
		}
		r = p.do(t, req{method: "GET", path: "/api/2fa/", session: sess}, "")
		if got := string(r.body); got != `{"totp":false,"passkeys":1,"recovery_codes":0,"methods":["passkey"],"required":false,"enrolment_required":false}` {
			t.Fatalf("2fa status: %d %s", r.StatusCode, got)
		}

		// Password, then the passkey.
		pending := pendingState(p.passwordStep(t, "alice", "passkey"))
		// The pending login alone is no passkey ceremony.
		assertion, err := a.Get([]byte(`{"publicKey":{"challenge":"AAAAAAAAAAAAAAAAAAAAAA","rpId":"localhost"}}`))
		if err != nil {
			t.Fatal(err)
		}
		if r := p.finishLogin(t, pending, assertion); r.StatusCode != 400 || string(r.body) != bodyPasskeyNoCeremonyT {
			t.Fatalf("finish under the pending login without begin: %d %s", r.StatusCode, r.body)
		}
		if r := p.finishLogin(t, "", assertion); r.StatusCode != 400 || string(r.body) != bodyPasskeyNoCeremonyT {
			t.Fatalf("finish without any ceremony: %d %s", r.StatusCode, r.body)
		}
		options, state := p.beginLogin(t, pending)
		var ro struct {
			PublicKey struct {
				RPID             string `json:"rpId"`
				AllowCredentials []struct{ ID string }
			}
		}
		if err := json.Unmarshal(options, &ro); err != nil || ro.PublicKey.RPID != "localhost" ||
			len(ro.PublicKey.AllowCredentials) != 1 || ro.PublicKey.AllowCredentials[0].ID != id {
			t.Fatalf("request options after the password: %s", options)
		}
		assertion, err = a.Get(options)
		if err != nil {
			t.Fatal(err)
		}
		r = p.finishLogin(t, state, assertion)
		full := sessionOf(t, r)
		if full.userID != sess.userID {
			t.Fatalf("logged in as %v, want %v", full.userID, sess.userID)
		}
		if c := r.cookie("sessionid_mfa"); c == nil || c.MaxAge >= 0 {
			t.Errorf("the ceremony's cookie was not expired: %v", r.Header["Set-Cookie"])
		}
		e := assertThrough(t, "gated after the passkey", p.site.do(t, req{method: "GET", path: "/app", session: full}))
		if got := e.Headers["X-Auth-Username"]; len(got) != 1 || got[0] != "alice" {
			t.Fatalf("identity %v", got)
		}
		// The same assertion again, with its ceremony's cookie.
		assertPasskeyRefused(t, "the same assertion twice", p.finishLogin(t, state, assertion))
		r = p.do(t, req{method: "GET", path: "/api/2fa/passkeys/", session: full}, "")
		if err := json.Unmarshal(r.body, &list); err != nil || len(list) != 1 || list[0]["last_used"] == nil {
			t.Fatalf("passkeys after a login: %s", r.body)
		}

		// Without a password: a discoverable sign-in.
		options, state = p.beginLogin(t, "")
		ro.PublicKey.AllowCredentials = nil
		if err := json.Unmarshal(options, &ro); err != nil || len(ro.PublicKey.AllowCredentials) != 0 ||
			!strings.Contains(string(options), `"userVerification":"required"`) {
			t.Fatalf("discoverable request options: %s", options)
		}
		assertion, err = a.Get(options)
		if err != nil {
			t.Fatal(err)
		}
		r = p.finishLogin(t, state, assertion)
		if s := sessionOf(t, r); s.userID != sess.userID {
			t.Fatalf("discoverable sign-in as %v, want %v", s.userID, sess.userID)
		}
		assertPasskeyRefused(t, "a discoverable assertion twice", p.finishLogin(t, state, assertion))
		// A fresh assertion whose counter is the last accepted one (a
		// cloned authenticator; failed attempts below move it on).
		assertPasskeyRefused(t, "counter not moved on", p.passkeyLogin(t, a, "", testwebauthn.WithoutCounterIncrement()))

		// Refused: another origin, no user verification where it is
		// required, a cross-origin iframe, another user's handle.
		assertPasskeyRefused(t, "another origin", p.passkeyLogin(t, a, "", testwebauthn.WithOrigin("http://evil.localhost:"+fmt.Sprint(p.port))))
		assertPasskeyRefused(t, "another port", p.passkeyLogin(t, a, pendingState(p.passwordStep(t, "alice", "passkey")),
			testwebauthn.WithOrigin("http://localhost:1")))
		assertPasskeyRefused(t, "no user verification", p.passkeyLogin(t, a, "", testwebauthn.WithoutUserVerification()))
		assertPasskeyRefused(t, "cross-origin iframe", p.passkeyLogin(t, a, "", testwebauthn.WithCrossOrigin()))
		bob := p.newUser(t, "bob")
		assertPasskeyRefused(t, "another user's handle", p.passkeyLogin(t, a, "", testwebauthn.WithUserHandle(userHandle(bob.userID))))
		// Bob's pending login is not finished by alice's passkey.
		bobKey := testwebauthn.New(p.origin)
		p.addPasskey(t, bob, bobKey, "")
		assertPasskeyRefused(t, "alice's passkey for bob's login", p.passkeyLogin(t, a, pendingState(p.passwordStep(t, "bob", "passkey")),
			testwebauthn.WithCredential(made.ID)))
		// The refusals did not spoil the passkey.
		sessionOf(t, p.passkeyLogin(t, a, ""))

		// A deactivated user cannot sign in with the passkey.
		store := caddymodule.UsersOf(p.dbPath)
		setActive := func(active bool) {
			t.Helper()
			if _, err := store.Update(context.Background(), int64(sess.userID), func(u *users.User) error {
				u.IsActive = active
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		options, state = p.beginLogin(t, pendingState(p.passwordStep(t, "alice", "passkey")))
		setActive(false)
		if assertion, err = a.Get(options); err != nil {
			t.Fatal(err)
		}
		r = p.finishLogin(t, state, assertion)
		if r.StatusCode != 400 || !strings.Contains(string(r.body), "No sign-in is waiting") || r.cookie("sessionid") != nil {
			t.Fatalf("a pending login finished after deactivation: %d %s", r.StatusCode, r.body)
		}
		r = p.passkeyLogin(t, a, "")
		if r.StatusCode != 400 || string(r.body) != `{"non_field_errors":["Unable to log in with provided credentials."]}` || r.cookie("sessionid") != nil {
			t.Fatalf("deactivated user's passkey sign-in: %d %s", r.StatusCode, r.body)
		}
		setActive(true)

		// Remove: 204, then 404; login is one step again.
		full = sessionOf(t, p.passkeyLogin(t, a, ""))
		del := func(pid string) *response {
			return p.do(t, req{method: "DELETE", path: "/api/2fa/passkeys/" + pid + "/", body: passwordAgainBody, session: full, csrf: true}, "")
		}
		if r := del("bm90LWEta2V5"); r.StatusCode != 404 {
			t.Fatalf("delete an unknown id: %d %s", r.StatusCode, r.body)
		}
		if r := p.do(t, req{method: "DELETE", path: "/api/2fa/passkeys/" + id + "/", body: passwordAgainBody, session: full}, ""); r.StatusCode != 403 {
			t.Fatalf("delete without the CSRF token: %d %s", r.StatusCode, r.body)
		}
		if r := del(id); r.StatusCode != 204 || len(r.body) != 0 {
			t.Fatalf("delete: %d %s", r.StatusCode, r.body)
		}
		if r := del(id); r.StatusCode != 404 {
			t.Fatalf("delete twice: %d %s", r.StatusCode, r.body)
		}
		r = p.do(t, req{method: "GET", path: "/api/2fa/", session: full}, "")
		if got := string(r.body); got != `{"totp":false,"passkeys":0,"recovery_codes":0,"methods":[],"required":false,"enrolment_required":false}` {
			t.Fatalf("2fa status after delete: %s", got)
		}
		p.login(t, "alice", strongPassword)
		assertPasskeyRefused(t, "a removed passkey", p.passkeyLogin(t, a, ""))
	})
}

// TestPasskeyRequiredEnrolment: under `two_factor required`, a passkey
// registered in the enrolment-only session lifts its limit.
func TestPasskeyRequiredEnrolment(t *testing.T) {
	bothBackends(t, func(t *testing.T, c siteConfig) {
		c.extra = throttlesOff + "two_factor required group:admins\n"
		p := startPasskeySite(t, c)
		p.newMember(t, "ada", false, false, "admins")
		r := p.do(t, req{method: "POST", path: "/api/login/", body: jsonBody(map[string]string{"username": "ada", "password": strongPassword})}, "")
		limited := sessionOf(t, r)
		if v := r.json(t); v["mfa_enrolment_required"] != true {
			t.Fatalf("login body %s lacks mfa_enrolment_required", r.body)
		}
		if r := p.do(t, req{method: "GET", path: "/app", session: limited}, ""); r.StatusCode != 403 || string(r.body) != `{"detail":"Two-factor enrolment required."}` {
			t.Fatalf("enrolment-only session: %d %s", r.StatusCode, r.body)
		}
		a := testwebauthn.New(p.origin)
		id := p.addPasskey(t, limited, a, "Phone")
		e := assertThrough(t, "after registering a passkey", p.do(t, req{method: "GET", path: "/app", session: limited}, ""))
		if got := e.Headers["X-Auth-Username"]; len(got) != 1 || got[0] != "ada" {
			t.Fatalf("identity %v", got)
		}
		r = p.do(t, req{method: "GET", path: "/api/2fa/", session: limited}, "")
		if v := r.json(t); v["required"] != true || v["enrolment_required"] != false || v["passkeys"] != 1.0 {
			t.Fatalf("2fa status: %s", r.body)
		}
		// The last factor stays.
		r = p.do(t, req{method: "DELETE", path: "/api/2fa/passkeys/" + id + "/", body: passwordAgainBody, session: limited, csrf: true}, "")
		if r.StatusCode != 400 || string(r.body) != `{"detail":"Your account must keep a second factor."}` {
			t.Fatalf("removing the last passkey: %d %s", r.StatusCode, r.body)
		}
		// The next login takes the password and the passkey.
		full := sessionOf(t, p.passkeyLogin(t, a, pendingState(p.passwordStep(t, "ada", "passkey"))))
		assertThrough(t, "after a passkey login", p.do(t, req{method: "GET", path: "/app", session: full}, ""))
	})
}

// TestPasskeyCeremonyOtherUser: a registration begun by one user is not
// finished in another user's session.
func TestPasskeyCeremonyOtherUser(t *testing.T) {
	bothBackends(t, func(t *testing.T, c siteConfig) {
		p := startPasskeySite(t, c)
		alice, bob := p.newUser(t, "alice"), p.newUser(t, "bob")
		a := testwebauthn.New(p.origin)
		opts, state := p.beginRegistration(t, alice)
		cred, _, err := a.Create(opts)
		if err != nil {
			t.Fatal(err)
		}
		r := p.finishRegistration(t, bob, state, string(cred))
		if r.StatusCode != 400 || string(r.body) != bodyPasskeyNoCeremonyT {
			t.Fatalf("alice's ceremony in bob's session: %d %s", r.StatusCode, r.body)
		}
		// Bob's own ceremony with alice's answer: the challenge differs.
		_, bobState := p.beginRegistration(t, bob)
		r = p.finishRegistration(t, bob, bobState, string(cred))
		if r.StatusCode != 400 || string(r.body) != bodyPasskeyFailedT {
			t.Fatalf("alice's answer in bob's ceremony: %d %s", r.StatusCode, r.body)
		}
		for _, s := range []*session{alice, bob} {
			r := p.do(t, req{method: "GET", path: "/api/2fa/passkeys/", session: s}, "")
			if string(r.body) != "[]" {
				t.Fatalf("passkeys of user %v: %s", s.userID, r.body)
			}
		}
		// Alice still finishes her own.
		r = p.finishRegistration(t, alice, state, string(cred))
		if r.StatusCode != 201 {
			t.Fatalf("alice's own finish: %d %s", r.StatusCode, r.body)
		}
		pid, _ := r.json(t)["id"].(string)
		// Nor can bob remove alice's passkey.
		if r := p.do(t, req{method: "DELETE", path: "/api/2fa/passkeys/" + pid + "/", body: passwordAgainBody, session: bob, csrf: true}, ""); r.StatusCode != 404 {
			t.Fatalf("bob deleting alice's passkey: %d %s", r.StatusCode, r.body)
		}
		// The login ceremony's state is no registration one, nor the reverse.
		_, loginState := p.beginLogin(t, "")
		if r := p.finishRegistration(t, alice, loginState, string(cred)); r.StatusCode != 400 || string(r.body) != bodyPasskeyNoCeremonyT {
			t.Fatalf("a login ceremony's state for a registration: %d %s", r.StatusCode, r.body)
		}
	})
}

// TestPasskeySyncedReplay: a synced passkey (backup eligible, no signature
// counter, as the big platforms' are) signs in, and its assertion is not
// accepted a second time although the counter cannot tell. The user has
// TOTP too: either completes the password step.
func TestPasskeySyncedReplay(t *testing.T) {
	bothBackends(t, func(t *testing.T, c siteConfig) {
		p := startPasskeySite(t, c)
		sess := p.newUser(t, "alice")
		_, codes := p.enrolTOTP(t, sess)
		// Only TOTP yet: the passkey step has nothing to offer.
		r := p.do(t, req{method: "POST", path: "/api/login/passkey/begin/", body: `{}`}, pendingState(p.passwordStep(t, "alice", "totp", "recovery_code")))
		if r.StatusCode != 400 || string(r.body) != `{"detail":"You have no passkey for this site: use a code."}` {
			t.Fatalf("passkey step without a passkey: %d %s", r.StatusCode, r.body)
		}
		a := testwebauthn.New(p.origin)
		a.BackupEligible, a.NoCounter = true, true
		id := p.addPasskey(t, sess, a, "Synced")
		r = p.do(t, req{method: "GET", path: "/api/2fa/", session: sess}, "")
		if got := string(r.body); got != `{"totp":true,"passkeys":1,"recovery_codes":10,"methods":["totp","recovery_code","passkey"],"required":false,"enrolment_required":false}` {
			t.Fatalf("2fa status: %s", got)
		}
		for _, pending := range []string{"", pendingState(p.passwordStep(t, "alice", "totp", "recovery_code", "passkey"))} {
			options, state := p.beginLogin(t, pending)
			assertion, err := a.Get(options)
			if err != nil {
				t.Fatal(err)
			}
			sessionOf(t, p.finishLogin(t, state, assertion))
			assertPasskeyRefused(t, "a counterless assertion twice", p.finishLogin(t, state, assertion))
		}
		full := sessionOf(t, p.passkeyLogin(t, a, ""))
		// Removing the passkey leaves TOTP and its recovery codes.
		if r := p.do(t, req{method: "DELETE", path: "/api/2fa/passkeys/" + id + "/", body: passwordAgainBody, session: full, csrf: true}, ""); r.StatusCode != 204 {
			t.Fatalf("delete: %d %s", r.StatusCode, r.body)
		}
		sessionOf(t, p.codeStep(t, p.passwordStep(t, "alice", "totp", "recovery_code"), codes[0]))
	})
}

// TestPasskeyPendingExpiry: beginning the passkey step does not extend the
// pending login's life.
func TestPasskeyPendingExpiry(t *testing.T) {
	p := startPasskeySite(t, siteConfig{})
	sess := p.newUser(t, "alice")
	p.addPasskey(t, sess, testwebauthn.New(p.origin), "")
	r := p.do(t, req{method: "POST", path: "/api/login/", body: jsonBody(map[string]string{"username": "alice", "password": strongPassword})}, "")
	first := r.cookie("sessionid_mfa")
	if r.StatusCode != 200 || first == nil {
		t.Fatalf("password step: %d %s", r.StatusCode, r.body)
	}
	time.Sleep(1100 * time.Millisecond)
	r = p.do(t, req{method: "POST", path: "/api/login/passkey/begin/", body: `{}`}, first.Value)
	again := r.cookie("sessionid_mfa")
	if r.StatusCode != 200 || again == nil || again.MaxAge <= 0 || again.MaxAge >= first.MaxAge {
		t.Fatalf("begin under the pending login: %d, cookie Max-Age %v after %d", r.StatusCode, again, first.MaxAge)
	}
}

// TestPasskeyConfiguredRP: with passkey_rp_id and passkey_origins, a
// passkey made at one listed origin signs in at another; an origin not
// listed has no passkeys.
func TestPasskeyConfiguredRP(t *testing.T) {
	p := startPasskeySite(t, siteConfig{})
	p.loadCustom(siteConfig{anyHost: true, extra: throttlesOff + fmt.Sprintf("passkey_rp_id localhost\npasskey_origins http://app.localhost:%d http://localhost:%d\n", p.port, p.port)})
	sess := p.newUser(t, "alice")
	app := &pkSite{site: p.site, host: fmt.Sprintf("app.localhost:%d", p.port), origin: fmt.Sprintf("http://app.localhost:%d", p.port)}
	a := testwebauthn.New(app.origin)
	app.addPasskey(t, sess, a, "")
	a.Origin = p.origin
	full := sessionOf(t, p.passkeyLogin(t, a, ""))
	if full.userID != sess.userID {
		t.Fatalf("signed in as %v", full.userID)
	}
	other := &pkSite{site: p.site, host: fmt.Sprintf("other.localhost:%d", p.port)}
	r := other.do(t, req{method: "POST", path: "/api/login/passkey/begin/", body: `{}`}, "")
	if r.StatusCode != 400 || string(r.body) != `{"detail":"Passkeys are not available at this address."}` {
		t.Fatalf("begin at an origin not listed: %d %s", r.StatusCode, r.body)
	}
	// A ceremony is bound to the origin it began at: an assertion made
	// for the app origin is refused at the other one.
	options, state := p.beginLogin(t, "")
	assertion, err := a.Get(options, testwebauthn.WithOrigin(app.origin))
	if err != nil {
		t.Fatal(err)
	}
	assertPasskeyRefused(t, "an assertion for the other listed origin", p.finishLogin(t, state, assertion))
}

// TestPasskeyRegistrationReplay: one begun registration adds one passkey;
// its answer posted again, also after that passkey was removed, is
// refused.
func TestPasskeyRegistrationReplay(t *testing.T) {
	bothBackends(t, func(t *testing.T, c siteConfig) {
		p := startPasskeySite(t, c)
		sess := p.newUser(t, "rita")
		// A first passkey (its registration ends the user's other sessions
		// and renews this one's token: a replay of it meets a stale epoch).
		p.addPasskey(t, sess, testwebauthn.New(p.origin), "Phone")
		a := testwebauthn.New(p.origin)
		opts, state := p.beginRegistration(t, sess)
		cred, _, err := a.Create(opts)
		if err != nil {
			t.Fatal(err)
		}
		body := withName(t, cred, "Laptop")
		r := p.finishRegistration(t, sess, state, body)
		if r.StatusCode != 201 {
			t.Fatalf("register finish: %d %s", r.StatusCode, r.body)
		}
		id, _ := r.json(t)["id"].(string)
		if r := p.do(t, req{method: "DELETE", path: "/api/2fa/passkeys/" + id + "/", body: passwordAgainBody, session: sess, csrf: true}, ""); r.StatusCode != 204 {
			t.Fatalf("delete: %d %s", r.StatusCode, r.body)
		}
		assertPasskeyRefused(t, "the same registration again", p.finishRegistration(t, sess, state, body))
		r = p.do(t, req{method: "GET", path: "/api/2fa/passkeys/", session: sess}, "")
		if !strings.Contains(string(r.body), "Phone") || strings.Contains(string(r.body), "Laptop") {
			t.Fatalf("passkeys after the replay: %s", r.body)
		}
	})
}

// TestPasskeyDiscoverableOverPending: {"discoverable": true} asks for the
// sign-in without a password even under another user's unfinished
// password step (the sign-in page's "Sign in with a passkey" button).
func TestPasskeyDiscoverableOverPending(t *testing.T) {
	p := startPasskeySite(t, siteConfig{extra: throttlesOff, anyHost: true})
	alice := p.newUser(t, "alice")
	a := testwebauthn.New(p.origin)
	p.addPasskey(t, alice, a, "")
	bob := p.newUser(t, "bob")
	p.enrolTOTP(t, bob)
	pending := pendingState(p.passwordStep(t, "bob", "totp", "recovery_code"))
	r := p.do(t, req{method: "POST", path: "/api/login/passkey/begin/", body: `{}`}, pending)
	if r.StatusCode != 400 || !strings.Contains(string(r.body), "no passkey") {
		t.Fatalf("the pending user's passkey step: %d %s", r.StatusCode, r.body)
	}
	r = p.do(t, req{method: "POST", path: "/api/login/passkey/begin/", body: `{"discoverable": true}`}, pending)
	if r.StatusCode != 200 {
		t.Fatalf("discoverable begin under a pending login: %d %s", r.StatusCode, r.body)
	}
	assertion, err := a.Get(r.body)
	if err != nil {
		t.Fatal(err)
	}
	r = p.finishLogin(t, stateOf(t, r), assertion)
	if v := sessionOf(t, r).userID; v != alice.userID {
		t.Fatalf("signed in as user %v, want alice (%v)", v, alice.userID)
	}
	if r := p.do(t, req{method: "POST", path: "/api/login/passkey/begin/", body: `{"discoverable": "yes"}`}, ""); r.StatusCode != 400 {
		t.Fatalf("discoverable not a boolean: %d %s", r.StatusCode, r.body)
	}
}

// passwordAgainBody is the body of calls that ask for the password again.
var passwordAgainBody = `{"password":"` + strongPassword + `"}`
