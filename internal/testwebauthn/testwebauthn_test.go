package testwebauthn_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testwebauthn"
)

type user struct {
	id    []byte
	creds []webauthn.Credential
}

func (u *user) WebAuthnID() []byte                         { return u.id }
func (u *user) WebAuthnName() string                       { return "alice" }
func (u *user) WebAuthnDisplayName() string                { return "Alice" }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPasskeyAuthenticatorRoundTrip: what the authenticator makes, an
// independent relying-party library accepts; its tampered answers it
// refuses.
func TestPasskeyAuthenticatorRoundTrip(t *testing.T) {
	const origin = "http://localhost:8080"
	rp, err := webauthn.New(&webauthn.Config{RPID: "localhost", RPDisplayName: "Test", RPOrigins: []string{origin}})
	if err != nil {
		t.Fatal(err)
	}
	u := &user{id: []byte{0, 0, 0, 0, 0, 0, 0, 7}}
	a := testwebauthn.New(origin)

	creation, sd, err := rp.BeginRegistration(u, webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithExtensions(webauthn.WithExtensionCredProps()))
	if err != nil {
		t.Fatal(err)
	}
	body, made, err := a.Create(mustJSON(t, creation))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(body)
	if err != nil {
		t.Fatalf("registration response does not parse: %v\n%s", err, body)
	}
	cred, err := rp.CreateCredential(u, *sd, parsed)
	if err != nil {
		t.Fatalf("registration refused: %v", err)
	}
	if string(cred.ID) != string(made.ID) || !made.Discoverable || !cred.Flags.UserVerified {
		t.Fatalf("credential %x (uv %v), made %x (discoverable %v)", cred.ID, cred.Flags.UserVerified, made.ID, made.Discoverable)
	}
	u.creds = []webauthn.Credential{*cred}
	// The exclude list is honoured.
	creation, _, _ = rp.BeginRegistration(u, webauthn.WithExclusions(webauthn.Credentials(u.creds).CredentialDescriptors()))
	if _, _, err := a.Create(mustJSON(t, creation)); !errors.Is(err, testwebauthn.ErrInvalidState) {
		t.Fatalf("create with the credential excluded: %v", err)
	}

	login := func(discoverable bool, opts ...testwebauthn.Option) (*webauthn.Credential, error) {
		t.Helper()
		var assertion *protocol.CredentialAssertion
		var sd *webauthn.SessionData
		if discoverable {
			assertion, sd, err = rp.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
		} else {
			assertion, sd, err = rp.BeginLogin(u)
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := a.Get(mustJSON(t, assertion), opts...)
		if err != nil {
			return nil, err
		}
		parsed, err := protocol.ParseCredentialRequestResponseBytes(body)
		if err != nil {
			return nil, err
		}
		if discoverable {
			return rp.ValidateDiscoverableLogin(func(_, handle []byte) (webauthn.User, error) {
				if string(handle) != string(u.id) {
					return nil, errors.New("unknown user handle")
				}
				return u, nil
			}, *sd, parsed)
		}
		return rp.ValidateLogin(u, *sd, parsed)
	}
	got, err := login(false)
	if err != nil || got.Authenticator.SignCount != 1 || got.Authenticator.CloneWarning {
		t.Fatalf("login: %v %+v", err, got)
	}
	u.creds[0].Authenticator.SignCount = 1
	if got, err = login(true); err != nil || got.Authenticator.SignCount != 2 {
		t.Fatalf("discoverable login: %v %+v", err, got)
	}
	u.creds[0].Authenticator.SignCount = 2
	if got, err = login(false, testwebauthn.WithoutCounterIncrement()); err != nil || !got.Authenticator.CloneWarning {
		t.Fatalf("a counter that did not move on: %v %+v", err, got)
	}
	if _, err = login(false, testwebauthn.WithOrigin("http://evil.localhost:8080")); err == nil {
		t.Fatal("an assertion from another origin was accepted")
	}
	if _, err = login(true, testwebauthn.WithoutUserVerification()); err == nil {
		t.Fatal("a discoverable login without user verification was accepted")
	}
	if _, err = login(true, testwebauthn.WithUserHandle([]byte{9})); err == nil {
		t.Fatal("an assertion with another user handle was accepted")
	}
	// Browsers refuse an RP ID the origin is not within.
	if _, err = login(false, testwebauthn.WithOrigin("http://example.com")); !errors.Is(err, testwebauthn.ErrNotAllowed) {
		t.Fatalf("RP ID outside the origin: %v", err)
	}
}
