package caddymodule_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/idtoken"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// pyjwtPython returns Debian's python3 if it has PyJWT with EdDSA (python3-jwt
// and python3-cryptography); else the test skips loudly, or fails under
// SESSION_AUTH_REQUIRE_PYJWT=1 (.ci/run).
func pyjwtPython(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(debianPython, "-c",
		"import jwt; from jwt.algorithms import OKPAlgorithm; from jwt import PyJWKClient; print(jwt.__version__)").CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("no PyJWT with EdDSA for %s (apt-get install python3-jwt python3-cryptography): %v: %s", debianPython, err, out)
		if os.Getenv("SESSION_AUTH_REQUIRE_PYJWT") == "1" {
			t.Fatal(msg + " and SESSION_AUTH_REQUIRE_PYJWT=1")
		}
		t.Skip("SKIPPING PyJWT test: " + msg)
	}
	t.Logf("PyJWT %s", strings.TrimSpace(string(out)))
	return debianPython
}

// startJWTUpstream runs testdata/jwt_upstream.py: an app that trusts
// nothing but a token PyJWT verifies against jwksURL. It returns host:port.
func startJWTUpstream(t *testing.T, python, jwksURL, issuer, audience, header string) string {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(python, "testdata/jwt_upstream.py", "serve", fmt.Sprint(port), jwksURL, issuer, audience, header)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("jwt_upstream.py stderr:\n%s", stderr)
		}
	})
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("said %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("jwt_upstream.py: %v\n%s", err, stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("jwt_upstream.py did not start\n%s", stderr)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// verified is what jwt_upstream.py answers for a token it accepted.
type verified struct {
	Claims map[string]any `json:"claims"`
	Kid    string         `json:"kid"`
	Token  string         `json:"token"`
	Error  string         `json:"error"`
}

func (r *response) verified(t *testing.T) verified {
	t.Helper()
	var v verified
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("not jwt_upstream.py's answer (%d): %q", r.StatusCode, r.body)
	}
	if r.StatusCode != 200 {
		t.Fatalf("PyJWT refused the token (%d): %s", r.StatusCode, v.Error)
	}
	return v
}

// pyVerify runs PyJWT on token outside the upstream; it returns the claims
// or PyJWT's refusal.
func pyVerify(t *testing.T, python, jwksURL, issuer, audience, token string) (map[string]any, string) {
	t.Helper()
	out, err := exec.Command(python, "testdata/jwt_upstream.py", "verify", jwksURL, issuer, audience, token).CombinedOutput()
	if err != nil {
		return nil, strings.TrimSpace(string(out))
	}
	var v verified
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("jwt_upstream.py verify: %q", out)
	}
	return v.Claims, ""
}

type jwks struct {
	Keys []map[string]string `json:"keys"`
}

func (s *site) jwks(t *testing.T) jwks {
	t.Helper()
	r := s.do(t, req{method: "GET", path: "/api/jwks/"})
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("JWKS: %d %q %s", r.StatusCode, r.Header.Get("Content-Type"), r.body)
	}
	var set jwks
	if err := json.Unmarshal(r.body, &set); err != nil {
		t.Fatalf("JWKS: %v: %s", err, r.body)
	}
	return set
}

func (k jwks) kids() []string {
	var out []string
	for _, key := range k.Keys {
		out = append(out, key["kid"])
	}
	return out
}

// TestIdentityTokenPyJWT: the token an upstream receives verifies with
// PyJWT against the JWKS the sidecar publishes, says who the user is, is
// reused until near its expiry and re-signed when the user changes; a
// rotation keeps old tokens verifiable.
func TestIdentityTokenPyJWT(t *testing.T) {
	for _, backend := range []string{"bolt", "postgres"} {
		t.Run(backend, func(t *testing.T) { testIdentityTokenPyJWT(t, backend == "postgres") })
	}
}

// testIdentityTokenPyJWT runs on either users backend: the signing keys
// live with the users (users.Secrets), in the bbolt file or PostgreSQL.
func testIdentityTokenPyJWT(t *testing.T, postgres bool) {
	python := pyjwtPython(t)
	var jwksURL, issuer string
	s, caddyfile := startPermsSite(t, permsConfig{
		admin: true, postgres: postgres,
		extra: "identity_token\nidentity_token_audience my-app\n" + issueRules,
		upstreamFor: func(s *site) string {
			jwksURL, issuer = s.base+"/api/jwks/", s.base
			return startJWTUpstream(t, python, jwksURL, issuer, "my-app", "X-Auth-Token")
		},
	})
	ctx := context.Background()

	// The JWKS, to anyone: one Ed25519 key, public only.
	set := s.jwks(t)
	if len(set.Keys) != 1 || set.Keys[0]["kty"] != "OKP" || set.Keys[0]["crv"] != "Ed25519" || set.Keys[0]["alg"] != "EdDSA" ||
		set.Keys[0]["use"] != "sig" || set.Keys[0]["kid"] == "" || set.Keys[0]["d"] != "" {
		t.Fatalf("JWKS %+v", set)
	}
	firstKid := set.Keys[0]["kid"]
	if r := s.do(t, req{method: "POST", path: "/api/jwks/"}); r.StatusCode != 405 {
		t.Errorf("POST to the JWKS: %d", r.StatusCode)
	}
	if r := s.do(t, req{method: "HEAD", path: "/api/jwks/"}); r.StatusCode != 200 || len(r.body) != 0 {
		t.Errorf("HEAD of the JWKS: %d %q", r.StatusCode, r.body)
	}

	alice := s.newMember(t, "alice", true, false, "editors", "Content Editors")
	forged := map[string]string{"X-Auth-Token": "forged", "x_auth_token": "forged", "X.Auth.Token": "forged"}
	r := s.do(t, req{method: "GET", path: "/dashboard", session: alice.session, headers: forged})
	v := r.verified(t)
	iat, _ := v.Claims["iat"].(float64)
	want := map[string]any{"iss": issuer, "sub": fmt.Sprint(alice.id), "aud": "my-app", "username": "alice",
		"email": "alice@example.com", "email_verified": false, "groups": []any{"Content Editors", "editors"}, "is_staff": true, "is_superuser": false,
		"iat": iat, "exp": iat + 60}
	if got, w := mustJSON(v.Claims), mustJSON(want); got != w {
		t.Errorf("claims as PyJWT read them:\n got  %s\n want %s", got, w)
	}
	if now := float64(time.Now().Unix()); iat < now-5 || iat > now+1 {
		t.Errorf("iat %v, now %v", iat, now)
	}
	if v.Kid != firstKid {
		t.Errorf("kid %q, the JWKS has %q", v.Kid, firstKid)
	}
	// The same token again: no signature per request.
	if again := s.do(t, req{method: "GET", path: "/other", session: alice.session}).verified(t); again.Token != v.Token {
		t.Error("the token was not reused")
	}
	// The user changes: the next request carries a new token saying so.
	acc := &accounts.Service{Store: caddymodule.UsersOf(s.dbPath)}
	if _, _, err := acc.RemoveFromGroup(ctx, alice.id, "editors"); err != nil {
		t.Fatal(err)
	}
	v2 := s.do(t, req{method: "GET", path: "/dashboard", session: alice.session}).verified(t)
	if v2.Token == v.Token || mustJSON(v2.Claims["groups"]) != `["Content Editors"]` {
		t.Errorf("after leaving a group: groups %v (token changed: %v)", v2.Claims["groups"], v2.Token != v.Token)
	}

	// PyJWT refuses what it must: a changed payload, another audience,
	// another key.
	parts := strings.Split(v2.Token, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"is_superuser":false`, `"is_superuser":true`, 1)))
	if _, refusal := pyVerify(t, python, jwksURL, issuer, "my-app", strings.Join(parts, ".")); !strings.Contains(refusal, "Signature") {
		t.Errorf("a changed payload: PyJWT said %q", refusal)
	}
	if _, refusal := pyVerify(t, python, jwksURL, issuer, "other-app", v2.Token); !strings.Contains(refusal, "Audience") {
		t.Errorf("another audience: PyJWT said %q", refusal)
	}
	if _, refusal := pyVerify(t, python, jwksURL, "https://evil.example", "my-app", v2.Token); !strings.Contains(refusal, "Issuer") {
		t.Errorf("another issuer: PyJWT said %q", refusal)
	}

	// Rotation through the running Caddy: the next token is signed with the
	// new key at once, PyJWT fetches the JWKS again for its kid, and the old
	// token still verifies (its key stays published).
	l := &cliLog{t: t}
	out := l.ok("", "rotate-key", "--config", caddyfile).stdout
	set = s.jwks(t)
	if len(set.Keys) != 2 || set.Keys[1]["kid"] != firstKid || !strings.Contains(out, set.Keys[0]["kid"]) {
		t.Fatalf("after rotate-key (%q): JWKS kids %q, want the new one then %s", out, set.kids(), firstKid)
	}
	v3 := s.do(t, req{method: "GET", path: "/dashboard", session: alice.session}).verified(t)
	if v3.Kid != set.Keys[0]["kid"] {
		t.Errorf("after rotation the token's kid is %q, want the new %q", v3.Kid, set.Keys[0]["kid"])
	}
	if claims, refusal := pyVerify(t, python, jwksURL, issuer, "my-app", v2.Token); claims == nil {
		t.Errorf("a token of the old key, after rotation: PyJWT said %q", refusal)
	}

	// Forward-auth answers carry the token; rules apply as on the gate.
	fa := s.do(t, req{method: "GET", path: "/api/auth/", session: alice.session,
		headers: map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/admin/x"}})
	tok := fa.Header.Get("X-Auth-Token")
	if fa.StatusCode != 200 || tok == "" {
		t.Fatalf("forward-auth: %d %s, token %q", fa.StatusCode, fa.body, tok)
	}
	if claims, refusal := pyVerify(t, python, jwksURL, issuer, "my-app", tok); claims == nil || claims["username"] != "alice" {
		t.Errorf("forward-auth's token: %v %q", claims, refusal)
	}
	bob := s.newMember(t, "bob", false, false)
	assertNoPermission(t, "bob /admin/", s.do(t, req{method: "GET", path: "/admin/x", session: bob.session}))
	if fa := s.do(t, req{method: "GET", path: "/api/auth/", session: bob.session,
		headers: map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/admin/x"}}); fa.StatusCode != 403 || fa.Header.Get("X-Auth-Token") != "" {
		t.Errorf("forward-auth refusal: %d, token %q", fa.StatusCode, fa.Header.Get("X-Auth-Token"))
	}
	// An anonymous request never gets one.
	if r := s.do(t, req{method: "GET", path: "/dashboard"}); r.StatusCode != 403 {
		t.Errorf("anonymous: %d", r.StatusCode)
	}
}

// Instances that share the users database sign with one key, generated
// once, and pick up a rotation made elsewhere (the CLI on the database, or
// another instance) within keyReloadInterval (5 s); their JWKS within a
// second.
func TestIdentityTokenKeySharedAndReloaded(t *testing.T) {
	a := startCustomSite(t, siteConfig{extra: throttlesOff})
	b := &site{t: t, dbPath: a.dbPath, upstream: a.upstream, port: freePort(t), client: a.client}
	b.base = fmt.Sprintf("http://127.0.0.1:%d", b.port)
	up := strings.TrimPrefix(a.upstream.URL, "http://")
	a.load(fmt.Sprintf(`{
	admin off
	persist_config off
	storage file_system %s
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
		identity_token
	}
	reverse_proxy %s
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
		identity_token X-Identity
		identity_token_issuer https://auth.example.com
	}
	reverse_proxy %s
}
`, filepath.Join(os.Getenv("XDG_DATA_HOME"), "caddy"), a.port, a.dbPath, up, b.port, b.dbPath, up))
	first := a.jwks(t).kids()
	if len(first) != 1 || !slices.Equal(b.jwks(t).kids(), first) {
		t.Fatalf("two handlers on one users_db publish %q and %q", first, b.jwks(t).kids())
	}
	sessA := a.newUser(t, "carol")
	sessB := b.login(t, "carol", "Corr3ct-Horse-Battery")
	kidOf := func(tok string) string {
		t.Helper()
		h, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
		if err != nil {
			t.Fatalf("token %q: %v", tok, err)
		}
		var head map[string]string
		json.Unmarshal(h, &head)
		return head["kid"]
	}
	tokenAt := func(s *site, sess *session, header string) string {
		t.Helper()
		// Whatever a client sends under the token's name never reaches the
		// upstream.
		r := s.do(t, req{method: "GET", path: "/x", session: sess, headers: map[string]string{
			header: "forged", strings.ToLower(header): "forged2", "Connection": header}})
		if r.StatusCode != 200 {
			t.Fatalf("%d %s", r.StatusCode, r.body)
		}
		h := r.echo(t).Headers
		if got := h[header]; len(got) != 1 || !strings.HasPrefix(got[0], "ey") {
			t.Fatalf("%s at the upstream: %q", header, got)
		}
		return h[header][0]
	}
	if kidOf(tokenAt(a, sessA, "X-Auth-Token")) != first[0] || kidOf(tokenAt(b, sessB, "X-Identity")) != first[0] {
		t.Fatal("tokens not signed with the shared key")
	}
	// Rotate behind the handlers' backs, as the CLI does on the database
	// or another instance does on a shared one.
	sec := caddymodule.UsersOf(a.dbPath).(users.Secrets)
	ks, err := idtoken.Rotate(context.Background(), sec, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	newKid := ks.Signing().ID
	start := time.Now()
	time.Sleep(1100 * time.Millisecond)
	if kids := a.jwks(t).kids(); !slices.Equal(kids, []string{newKid, first[0]}) {
		t.Errorf("JWKS 1.1 s after a rotation: %q, want %q", kids, []string{newKid, first[0]})
	}
	for _, c := range []struct {
		s      *site
		sess   *session
		header string
	}{{a, sessA, "X-Auth-Token"}, {b, sessB, "X-Identity"}} {
		for kidOf(tokenAt(c.s, c.sess, c.header)) != newKid {
			if time.Since(start) > 20*time.Second { // 5 s promised; generous on a busy machine
				t.Fatalf("%s still signs with the old key %v after the rotation", c.s.base, time.Since(start))
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("%s signs with the rotated key %v after it was rotated", c.s.base, time.Since(start).Round(time.Millisecond))
	}
}

// identity_token_key: keys from PEM files, the first signing and the
// others published; an Authorization header gets "Bearer ".
func TestIdentityTokenKeyFiles(t *testing.T) {
	python := pyjwtPython(t)
	dir := t.TempDir()
	writeKey := func(name string) (string, ed25519.PublicKey) {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(priv)
		p := filepath.Join(dir, name)
		os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
		return p, pub
	}
	cur, curPub := writeKey("current.pem")
	old, oldPub := writeKey("old.pem")
	s, _ := startPermsSite(t, permsConfig{extra: fmt.Sprintf("identity_token Authorization\nidentity_token_issuer https://auth.example.com\nidentity_token_key %s %s", cur, old)})
	set := s.jwks(t)
	if len(set.Keys) != 2 || set.Keys[0]["x"] != base64.RawURLEncoding.EncodeToString(curPub) ||
		set.Keys[1]["x"] != base64.RawURLEncoding.EncodeToString(oldPub) {
		t.Fatalf("JWKS from key files: %+v", set)
	}
	sess := s.newUser(t, "dora")
	r := s.do(t, req{method: "GET", path: "/x", session: sess, headers: map[string]string{"Authorization": "Bearer forged"}})
	got := r.echo(t).Headers["Authorization"]
	if len(got) != 1 || !strings.HasPrefix(got[0], "Bearer ey") {
		t.Fatalf("Authorization at the upstream: %q", got)
	}
	claims, refusal := pyVerify(t, python, s.base+"/api/jwks/", "https://auth.example.com", "", strings.TrimPrefix(got[0], "Bearer "))
	if claims == nil || claims["username"] != "dora" || claims["aud"] != nil {
		t.Errorf("PyJWT: %v %q", claims, refusal)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
