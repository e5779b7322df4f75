package mfa

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// ErrPasskeyFailed is a passkey response that does not verify (wrong
// challenge, origin, signature, unknown credential...).
var ErrPasskeyFailed = errors.New("mfa: passkey verification failed")

// RP is the relying party of one ceremony: the RP ID (a domain), its
// display name, and the one origin the ceremony is bound to.
type RP struct {
	ID, Name, Origin string
}

// passkeyConfigs caches a webauthn.WebAuthn per RP (a handful: one per
// host the sidecar answers for).
type passkeyConfigs struct {
	mu sync.Mutex
	m  map[RP]*webauthn.WebAuthn
}

const maxCachedRPs = 64

func (c *passkeyConfigs) get(rp RP) (*webauthn.WebAuthn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w, ok := c.m[rp]; ok {
		return w, nil
	}
	w, err := webauthn.New(&webauthn.Config{
		RPID:          rp.ID,
		RPDisplayName: rp.Name,
		RPOrigins:     []string{rp.Origin},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTimeout, TimeoutUVD: ceremonyTimeout},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTimeout, TimeoutUVD: ceremonyTimeout},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPasskeysUnavailable, err)
	}
	if c.m == nil {
		c.m = make(map[RP]*webauthn.WebAuthn)
	}
	if len(c.m) < maxCachedRPs {
		c.m[rp] = w
	}
	return w, nil
}

// ErrPasskeysUnavailable: the request's address cannot be a WebAuthn
// relying party (an IP address, say).
var ErrPasskeysUnavailable = errors.New("mfa: passkeys are not available at this address")

// UserHandle is the WebAuthn user handle of user id: its 8-byte big-endian
// id (stable, not personal data).
func UserHandle(id int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(id)) }

func userFromHandle(h []byte) (int64, bool) {
	if len(h) != 8 {
		return 0, false
	}
	id := int64(binary.BigEndian.Uint64(h))
	return id, id > 0
}

// waUser adapts a user to webauthn.User.
type waUser struct {
	id    int64
	name  string
	creds []webauthn.Credential
}

func (u *waUser) WebAuthnID() []byte                         { return UserHandle(u.id) }
func (u *waUser) WebAuthnName() string                       { return u.name }
func (u *waUser) WebAuthnDisplayName() string                { return u.name }
func (u *waUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func credentialsFor(d *Data, rpID string) []webauthn.Credential {
	var out []webauthn.Credential
	for _, p := range d.Passkeys {
		if p.RPID == rpID {
			out = append(out, p.Credential)
		}
	}
	return out
}

// BeginRegistration starts adding a passkey for the user: the creation
// options for navigator.credentials.create and the state to keep.
func (s *Service) BeginRegistration(ctx context.Context, rp RP, id int64, name string) (*protocol.CredentialCreation, *webauthn.SessionData, error) {
	w, err := s.passkeys.get(rp)
	if err != nil {
		return nil, nil, err
	}
	d, err := s.Get(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	u := &waUser{id: id, name: name, creds: credentialsFor(d, rp.ID)}
	return w.BeginRegistration(u,
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification:   protocol.VerificationPreferred,
		}),
		webauthn.WithExclusions(webauthn.Credentials(u.creds).CredentialDescriptors()),
		webauthn.WithExtensions(webauthn.WithExtensionCredProps()),
		webauthn.WithRegistrationOrigin(rp.Origin))
}

// MaxPasskeys is how many passkeys a user may have.
const MaxPasskeys = 20

// FinishRegistration verifies the authenticator's response (body: the
// PublicKeyCredential as JSON) and stores the new passkey under
// keyName (a default one if empty).
func (s *Service) FinishRegistration(ctx context.Context, rp RP, id int64, name string, sd webauthn.SessionData, body []byte, keyName string, onlyFirst bool) (pk *Passkey, first bool, err error) {
	if !sameCeremonyRP(sd, rp) {
		return nil, false, fmt.Errorf("%w: begun for another relying party or origin", ErrPasskeyFailed)
	}
	w, err := s.passkeys.get(rp)
	if err != nil {
		return nil, false, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(body)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrPasskeyFailed, err)
	}
	d, err := s.Get(ctx, id)
	if err != nil {
		return nil, false, err
	}
	cred, err := w.CreateCredential(&waUser{id: id, name: name, creds: credentialsFor(d, rp.ID)}, sd, parsed)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrPasskeyFailed, err)
	}
	added := Passkey{Name: strings.TrimSpace(keyName), Created: s.now().UTC().Truncate(time.Second), RPID: rp.ID, Credential: *cred}
	_, err = s.update(ctx, id, func(d *Data) error {
		if first = !d.HasFactor(); onlyFirst && !first {
			return ErrHasFactor
		}
		// One begun registration adds one passkey: its response posted
		// again (say after the passkey was removed) is refused.
		if !d.spend(sd) {
			return fmt.Errorf("%w: this registration was finished already", ErrPasskeyFailed)
		}
		if d.passkey(added.ID()) >= 0 {
			return fmt.Errorf("%w: this passkey is already registered", ErrPasskeyFailed)
		}
		if len(d.Passkeys) >= MaxPasskeys {
			return ErrTooManyPasskeys
		}
		if added.Name == "" {
			added.Name = fmt.Sprintf("Passkey %d", len(d.Passkeys)+1)
		}
		d.Passkeys = append(d.Passkeys, added)
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return &added, first, nil
}

// sameCeremonyRP reports whether the ceremony begun with sd was for rp
// (the finishing request's relying party and origin).
func sameCeremonyRP(sd webauthn.SessionData, rp RP) bool {
	return (sd.RelyingPartyID == "" || sd.RelyingPartyID == rp.ID) && (sd.Origin == "" || sd.Origin == rp.Origin)
}

// ceremonyTimeout is how long a begun WebAuthn ceremony can be finished.
const ceremonyTimeout = 5 * time.Minute

// SpentChallenge is the challenge (its SHA-256) of an accepted passkey
// sign-in, kept until its ceremony expires.
type SpentChallenge struct {
	Hash    []byte    `json:"h"`
	Expires time.Time `json:"x"`
}

// maxSpent bounds the spent challenges kept per user (sign-ins and
// registrations within one ceremony timeout).
const maxSpent = 64

// spend records the ceremony's challenge as used (until the ceremony
// expires) and reports false if it was used already. The caller stores d
// in the transaction that accepts the ceremony.
func (d *Data) spend(sd webauthn.SessionData) bool {
	wall := time.Now() // the library's clock, which set sd.Expires
	hash := sha256.Sum256([]byte(sd.Challenge))
	d.Spent = slices.DeleteFunc(d.Spent, func(c SpentChallenge) bool { return !wall.Before(c.Expires) })
	if slices.ContainsFunc(d.Spent, func(c SpentChallenge) bool { return bytes.Equal(c.Hash, hash[:]) }) {
		return false
	}
	expires := sd.Expires
	if expires.IsZero() {
		expires = wall.Add(ceremonyTimeout)
	}
	d.Spent = append(d.Spent, SpentChallenge{Hash: hash[:], Expires: expires})
	if len(d.Spent) > maxSpent {
		d.Spent = d.Spent[len(d.Spent)-maxSpent:]
	}
	return true
}

// ErrTooManyPasskeys: the user has MaxPasskeys already.
var ErrTooManyPasskeys = errors.New("mfa: too many passkeys")

// RemovePasskey removes the user's passkey with the given id. allow, if
// set, is asked with the factors as they would be (its error is
// returned). The recovery codes go too when no factor is left.
func (s *Service) RemovePasskey(ctx context.Context, id int64, pid string, allow func(after *Data) error) (*Passkey, error) {
	var removed Passkey
	_, err := s.update(ctx, id, func(d *Data) error {
		i := d.passkey(pid)
		if i < 0 {
			return ErrNoPasskey
		}
		removed = d.Passkeys[i]
		d.Passkeys = append(d.Passkeys[:i:i], d.Passkeys[i+1:]...)
		if !d.HasFactor() {
			d.Recovery = nil
		}
		if allow != nil {
			return allow(d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &removed, nil
}

// BeginLogin starts a passkey assertion: for user id (the second step
// after a password: only that user's passkeys are allowed) or, with id 0,
// for whoever holds a discoverable passkey (sign-in without a password,
// user verification required).
func (s *Service) BeginLogin(ctx context.Context, rp RP, id int64) (*protocol.CredentialAssertion, *webauthn.SessionData, error) {
	w, err := s.passkeys.get(rp)
	if err != nil {
		return nil, nil, err
	}
	if id == 0 {
		return w.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired), webauthn.WithLoginOrigin(rp.Origin))
	}
	d, err := s.Get(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	creds := credentialsFor(d, rp.ID)
	if len(creds) == 0 {
		return nil, nil, ErrNoPasskey
	}
	assertion, sd, err := w.BeginLogin(&waUser{id: id, creds: creds},
		webauthn.WithUserVerification(protocol.VerificationPreferred), webauthn.WithLoginOrigin(rp.Origin))
	if sd != nil {
		// The state travels in a cookie: twenty long credential ids would
		// not fit. FinishLogin takes the credential only among the user's
		// passkeys for this relying party, which is what the list held.
		sd.AllowedCredentialIDs = nil
	}
	return assertion, sd, err
}

// FinishLogin verifies an assertion (body: the PublicKeyCredential as
// JSON) against the ceremony begun with sd, records the credential's use
// (its signature counter must move on, atomically across instances) and
// returns the user's id and the passkey. A discoverable ceremony learns
// the user from the credential's user handle.
func (s *Service) FinishLogin(ctx context.Context, rp RP, sd webauthn.SessionData, body []byte) (int64, *Passkey, error) {
	if !sameCeremonyRP(sd, rp) {
		return 0, nil, fmt.Errorf("%w: begun for another relying party or origin", ErrPasskeyFailed)
	}
	w, err := s.passkeys.get(rp)
	if err != nil {
		return 0, nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(body)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %v", ErrPasskeyFailed, err)
	}
	var storeErr error
	load := func(id int64) (*waUser, error) {
		d, err := s.Get(ctx, id)
		if err != nil {
			storeErr = err
			return nil, err
		}
		return &waUser{id: id, creds: credentialsFor(d, rp.ID)}, nil
	}
	var (
		uid  int64
		cred *webauthn.Credential
	)
	if len(sd.UserID) == 0 {
		var user webauthn.User
		user, cred, err = w.ValidatePasskeyLogin(func(_, handle []byte) (webauthn.User, error) {
			id, ok := userFromHandle(handle)
			if !ok {
				return nil, errors.New("unknown user handle")
			}
			return load(id)
		}, sd, parsed)
		if err == nil {
			uid = user.(*waUser).id
		}
	} else {
		id, ok := userFromHandle(sd.UserID)
		if !ok {
			return 0, nil, ErrPasskeyFailed
		}
		var u *waUser
		if u, err = load(id); err == nil {
			cred, err = w.ValidateLogin(u, sd, parsed)
			uid = id
		}
	}
	if storeErr != nil && !isNotFound(storeErr) {
		return 0, nil, storeErr
	}
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %v", ErrPasskeyFailed, err)
	}
	if cred.Authenticator.CloneWarning {
		return 0, nil, ErrPasskeyReplay
	}
	var used Passkey
	now := s.now()
	_, err = s.update(ctx, uid, func(d *Data) error {
		// The ceremony's state is a cookie that stays valid until it
		// expires: an assertion from an authenticator that keeps no
		// counter (synced passkeys sign 0) would pass again. A challenge
		// is spent once, in the same transaction as the counter.
		if !d.spend(sd) {
			return ErrPasskeyReplay
		}
		for i := range d.Passkeys {
			p := &d.Passkeys[i]
			if p.RPID != rp.ID || !bytes.Equal(p.Credential.ID, cred.ID) {
				continue
			}
			// A counter that does not move on (when the authenticator
			// keeps one) is a replay or a clone; checked here, in the
			// store's transaction, so two instances cannot both accept
			// the same assertion.
			if n := cred.Authenticator.SignCount; (n != 0 || p.Credential.Authenticator.SignCount != 0) && n <= p.Credential.Authenticator.SignCount {
				return ErrPasskeyReplay
			}
			p.Credential.Authenticator.SignCount = cred.Authenticator.SignCount
			p.Credential.Flags = cred.Flags
			p.LastUsed = now.UTC().Truncate(time.Second)
			used = *p
			return nil
		}
		return ErrPasskeyFailed // removed meanwhile
	})
	if err != nil {
		return 0, nil, err
	}
	return uid, &used, nil
}
