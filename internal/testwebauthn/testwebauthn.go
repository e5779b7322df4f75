// Package testwebauthn is a software WebAuthn client with a platform
// authenticator behind it, for tests: it takes the creation and request
// options a relying party sends (the JSON of PublicKeyCredentialCreation
// and -RequestOptions, {"publicKey": {...}} with base64url byte strings),
// and answers with the PublicKeyCredential JSON a browser would post back:
// "none" attestation, ES256 (ECDSA P-256) credentials, a signature counter
// that moves on with each use.
//
// It knows nothing of any relying-party library: it builds the bytes the
// WebAuthn specification describes. Options tamper with a ceremony for
// negative tests (another origin, a counter that does not move on, no
// user verification, another user handle).
package testwebauthn

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// Authenticator flags (WebAuthn §6.1).
const (
	flagUP = 0x01 // user present
	flagUV = 0x04 // user verified
	flagBE = 0x08 // backup eligible
	flagBS = 0x10 // backed up
	flagAT = 0x40 // attested credential data included
)

// algES256 is COSE's ECDSA with SHA-256.
const algES256 = -7

// Credential is one credential the authenticator holds.
type Credential struct {
	ID           []byte
	RPID         string
	UserHandle   []byte
	UserName     string
	Discoverable bool
	SignCount    uint32
	Key          *ecdsa.PrivateKey
}

// Authenticator is a client (at Origin) with a platform authenticator. It
// is safe for concurrent use.
type Authenticator struct {
	// Origin is the client's origin, e.g. "http://localhost:8080": what
	// clientDataJSON says, and what the RP ID must be a suffix of.
	Origin string
	// BackupEligible sets the BE and BS flags (a synced passkey).
	BackupEligible bool
	// NoCounter makes the authenticator keep no signature counter (it
	// always signs 0, as synced passkeys do).
	NoCounter bool
	// CredentialIDLength is the length of the credential ids it makes
	// (default 32; WebAuthn allows up to 1023, real authenticators use
	// 16 to a few hundred).
	CredentialIDLength int

	mu    sync.Mutex
	creds []*Credential
}

// New returns an authenticator for a client at origin.
func New(origin string) *Authenticator { return &Authenticator{Origin: origin} }

// Credentials returns copies of the credentials held.
func (a *Authenticator) Credentials() []Credential {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Credential, 0, len(a.creds))
	for _, c := range a.creds {
		out = append(out, *c)
	}
	return out
}

// Option changes one ceremony.
type Option func(*ceremony)

type ceremony struct {
	origin       string
	keepCounter  bool
	noUV         bool
	credentialID []byte
	userHandle   []byte
	crossOrigin  bool
}

// WithOrigin makes the client report origin instead of the
// authenticator's (a page at another origin calling WebAuthn; the RP ID
// must still be a registrable suffix of its host, as browsers check).
func WithOrigin(origin string) Option { return func(c *ceremony) { c.origin = origin } }

// WithoutCounterIncrement signs with the credential's counter as it is,
// not moved on (a cloned authenticator).
func WithoutCounterIncrement() Option { return func(c *ceremony) { c.keepCounter = true } }

// WithoutUserVerification clears the UV flag (the user was present but
// not verified).
func WithoutUserVerification() Option { return func(c *ceremony) { c.noUV = true } }

// WithCredential makes an assertion use the credential with this id,
// whatever the allow list says.
func WithCredential(id []byte) Option { return func(c *ceremony) { c.credentialID = id } }

// WithUserHandle makes an assertion report this user handle instead of
// the credential's.
func WithUserHandle(h []byte) Option { return func(c *ceremony) { c.userHandle = h } }

// WithCrossOrigin marks the client data crossOrigin (an iframe).
func WithCrossOrigin() Option { return func(c *ceremony) { c.crossOrigin = true } }

func (a *Authenticator) ceremony(opts []Option) *ceremony {
	c := &ceremony{origin: a.Origin}
	for _, o := range opts {
		o(c)
	}
	return c
}

var b64 = base64.RawURLEncoding

// b64bytes decodes base64url with or without padding.
type b64bytes []byte

func (b *b64bytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	v, err := b64.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return fmt.Errorf("testwebauthn: %q is not base64url: %w", s, err)
	}
	*b = v
	return nil
}

type descriptor struct {
	Type string   `json:"type"`
	ID   b64bytes `json:"id"`
}

type creationOptions struct {
	PublicKey struct {
		RP struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"rp"`
		User struct {
			ID          b64bytes `json:"id"`
			Name        string   `json:"name"`
			DisplayName string   `json:"displayName"`
		} `json:"user"`
		Challenge        b64bytes `json:"challenge"`
		PubKeyCredParams []struct {
			Type string `json:"type"`
			Alg  int    `json:"alg"`
		} `json:"pubKeyCredParams"`
		ExcludeCredentials     []descriptor `json:"excludeCredentials"`
		AuthenticatorSelection struct {
			AuthenticatorAttachment string `json:"authenticatorAttachment"`
			ResidentKey             string `json:"residentKey"`
			RequireResidentKey      bool   `json:"requireResidentKey"`
			UserVerification        string `json:"userVerification"`
		} `json:"authenticatorSelection"`
		Extensions map[string]any `json:"extensions"`
	} `json:"publicKey"`
}

type requestOptions struct {
	PublicKey struct {
		Challenge        b64bytes     `json:"challenge"`
		RPID             string       `json:"rpId"`
		AllowCredentials []descriptor `json:"allowCredentials"`
		UserVerification string       `json:"userVerification"`
	} `json:"publicKey"`
}

// clientData is CollectedClientData, in the members' order browsers use.
type clientData struct {
	Type        string `json:"type"`
	Challenge   string `json:"challenge"`
	Origin      string `json:"origin"`
	CrossOrigin bool   `json:"crossOrigin"`
}

func (c *ceremony) clientDataJSON(typ string, challenge []byte) []byte {
	b, err := json.Marshal(clientData{Type: typ, Challenge: b64.EncodeToString(challenge), Origin: c.origin, CrossOrigin: c.crossOrigin})
	if err != nil {
		panic(err)
	}
	return b
}

// ErrNotAllowed is the client's NotAllowedError: no credential fits, or
// the options are not ones a browser would act on.
var ErrNotAllowed = errors.New("testwebauthn: NotAllowedError")

// ErrInvalidState is InvalidStateError: the authenticator holds a
// credential of the exclude list.
var ErrInvalidState = errors.New("testwebauthn: InvalidStateError (a credential of the exclude list is here)")

// rpIDFor checks the RP ID against the client's origin as browsers do
// (the origin's host, or a parent domain of it) and returns it, the
// origin's host if empty.
func (c *ceremony) rpIDFor(rpID string) (string, error) {
	u, err := url.Parse(c.origin)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("%w: origin %q", ErrNotAllowed, c.origin)
	}
	host := strings.ToLower(u.Hostname())
	if rpID == "" {
		return host, nil
	}
	if rpID != host && !strings.HasSuffix(host, "."+rpID) {
		return "", fmt.Errorf("%w: RP ID %q is not valid at origin %s (SecurityError)", ErrNotAllowed, rpID, c.origin)
	}
	return rpID, nil
}

func (c *ceremony) flags(uvAsked string, backup bool) byte {
	f := byte(flagUP)
	if uvAsked != "discouraged" && !c.noUV {
		f |= flagUV
	}
	if backup {
		f |= flagBE | flagBS
	}
	return f
}

// Create answers navigator.credentials.create(options): it makes an ES256
// credential and returns the PublicKeyCredential JSON (with
// clientExtensionResults and authenticatorAttachment, as browsers'
// toJSON gives it) and the credential.
func (a *Authenticator) Create(options []byte, opts ...Option) ([]byte, *Credential, error) {
	c := a.ceremony(opts)
	var o creationOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, nil, fmt.Errorf("testwebauthn: creation options: %w", err)
	}
	pk := &o.PublicKey
	if len(pk.Challenge) < 16 {
		return nil, nil, fmt.Errorf("%w: a challenge of %d bytes", ErrNotAllowed, len(pk.Challenge))
	}
	if n := len(pk.User.ID); n == 0 || n > 64 {
		return nil, nil, fmt.Errorf("%w: a user id of %d bytes", ErrNotAllowed, n)
	}
	if !slices.ContainsFunc(pk.PubKeyCredParams, func(p struct {
		Type string `json:"type"`
		Alg  int    `json:"alg"`
	}) bool {
		return p.Type == "public-key" && p.Alg == algES256
	}) && len(pk.PubKeyCredParams) > 0 {
		return nil, nil, fmt.Errorf("%w: ES256 is not among the algorithms offered", ErrNotAllowed)
	}
	rpID, err := c.rpIDFor(pk.RP.ID)
	if err != nil {
		return nil, nil, err
	}
	sel := pk.AuthenticatorSelection
	if sel.AuthenticatorAttachment == "cross-platform" {
		return nil, nil, fmt.Errorf("%w: a cross-platform authenticator was asked for", ErrNotAllowed)
	}
	discoverable := sel.ResidentKey == "required" || sel.ResidentKey == "preferred" || (sel.ResidentKey == "" && sel.RequireResidentKey)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	n := a.CredentialIDLength
	if n <= 0 {
		n = 32
	}
	id := make([]byte, n)
	if _, err := rand.Read(id); err != nil {
		return nil, nil, err
	}
	cred := &Credential{ID: id, RPID: rpID, UserHandle: bytes.Clone(pk.User.ID), UserName: pk.User.Name,
		Discoverable: discoverable, Key: key}

	a.mu.Lock()
	for _, ex := range pk.ExcludeCredentials {
		for _, have := range a.creds {
			if have.RPID == rpID && bytes.Equal(have.ID, ex.ID) {
				a.mu.Unlock()
				return nil, nil, ErrInvalidState
			}
		}
	}
	// A discoverable credential replaces the one this authenticator had
	// for the same RP and user (CTAP2 authenticatorMakeCredential).
	if discoverable {
		a.creds = slices.DeleteFunc(a.creds, func(h *Credential) bool {
			return h.Discoverable && h.RPID == rpID && bytes.Equal(h.UserHandle, cred.UserHandle)
		})
	}
	a.creds = append(a.creds, cred)
	backup := a.BackupEligible
	a.mu.Unlock()

	pub, err := key.PublicKey.ECDH()
	if err != nil {
		return nil, nil, err
	}
	point := pub.Bytes() // 0x04 | x | y
	coseKey, err := cborEnc.Marshal(map[int]any{
		1:  2,        // kty: EC2
		3:  algES256, // alg
		-1: 1,        // crv: P-256
		-2: point[1:33],
		-3: point[33:65],
	})
	if err != nil {
		return nil, nil, err
	}
	rpHash := sha256.Sum256([]byte(rpID))
	authData := append(rpHash[:], c.flags(sel.UserVerification, backup)|flagAT)
	authData = binary.BigEndian.AppendUint32(authData, cred.SignCount)
	authData = append(authData, make([]byte, 16)...) // AAGUID: none
	authData = binary.BigEndian.AppendUint16(authData, uint16(len(id)))
	authData = append(authData, id...)
	authData = append(authData, coseKey...)

	attObj, err := cborEnc.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": authData})
	if err != nil {
		return nil, nil, err
	}
	ext := map[string]any{}
	if _, ok := pk.Extensions["credProps"]; ok {
		ext["credProps"] = map[string]bool{"rk": discoverable}
	}
	out, err := json.Marshal(map[string]any{
		"id":    b64.EncodeToString(id),
		"rawId": b64.EncodeToString(id),
		"type":  "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(c.clientDataJSON("webauthn.create", pk.Challenge)),
			"attestationObject": b64.EncodeToString(attObj),
			"transports":        []string{"internal", "hybrid"},
		},
		"clientExtensionResults":  ext,
		"authenticatorAttachment": "platform",
	})
	if err != nil {
		return nil, nil, err
	}
	cp := *cred
	return out, &cp, nil
}

// Get answers navigator.credentials.get(options) with an assertion of a
// credential for the RP: one of the allow list, or, if the list is empty,
// a discoverable one (the most recent). The counter moves on first.
func (a *Authenticator) Get(options []byte, opts ...Option) ([]byte, error) {
	c := a.ceremony(opts)
	var o requestOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, fmt.Errorf("testwebauthn: request options: %w", err)
	}
	pk := &o.PublicKey
	if len(pk.Challenge) < 16 {
		return nil, fmt.Errorf("%w: a challenge of %d bytes", ErrNotAllowed, len(pk.Challenge))
	}
	rpID, err := c.rpIDFor(pk.RPID)
	if err != nil {
		return nil, err
	}

	a.mu.Lock()
	var cred *Credential
	for i := len(a.creds) - 1; i >= 0 && cred == nil; i-- {
		h := a.creds[i]
		switch {
		case c.credentialID != nil:
			if bytes.Equal(h.ID, c.credentialID) {
				cred = h
			}
		case h.RPID != rpID:
		case len(pk.AllowCredentials) == 0:
			if h.Discoverable {
				cred = h
			}
		default:
			if slices.ContainsFunc(pk.AllowCredentials, func(d descriptor) bool { return bytes.Equal(d.ID, h.ID) }) {
				cred = h
			}
		}
	}
	if cred == nil {
		a.mu.Unlock()
		return nil, fmt.Errorf("%w: no credential for %s here", ErrNotAllowed, rpID)
	}
	if !c.keepCounter && !a.NoCounter {
		cred.SignCount++
	}
	count := cred.SignCount
	if a.NoCounter {
		count = 0
	}
	backup := a.BackupEligible
	key, id, handle, discoverable := cred.Key, cred.ID, cred.UserHandle, cred.Discoverable
	a.mu.Unlock()

	rpHash := sha256.Sum256([]byte(rpID))
	authData := append(rpHash[:], c.flags(pk.UserVerification, backup))
	authData = binary.BigEndian.AppendUint32(authData, count)
	cdj := c.clientDataJSON("webauthn.get", pk.Challenge)
	cdHash := sha256.Sum256(cdj)
	digest := sha256.Sum256(append(bytes.Clone(authData), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return nil, err
	}
	if c.userHandle != nil {
		handle = c.userHandle
	}
	resp := map[string]any{
		"clientDataJSON":    b64.EncodeToString(cdj),
		"authenticatorData": b64.EncodeToString(authData),
		"signature":         b64.EncodeToString(sig),
	}
	if discoverable || c.userHandle != nil {
		resp["userHandle"] = b64.EncodeToString(handle)
	}
	return json.Marshal(map[string]any{
		"id":                      b64.EncodeToString(id),
		"rawId":                   b64.EncodeToString(id),
		"type":                    "public-key",
		"response":                resp,
		"clientExtensionResults":  map[string]any{},
		"authenticatorAttachment": "platform",
	})
}

// cborEnc encodes as CTAP2's canonical CBOR.
var cborEnc = func() cbor.EncMode {
	m, err := cbor.CTAP2EncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()
