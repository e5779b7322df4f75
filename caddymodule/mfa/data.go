package mfa

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
)

// Data is a user's second factors as stored (JSON in users.Factors).
type Data struct {
	// TOTP is the active authenticator-app secret, if any.
	TOTP *TOTP `json:"totp,omitempty"`
	// PendingTOTP is a secret handed out by setup and not yet confirmed
	// with a code; it is not a factor.
	PendingTOTP *TOTP `json:"pending_totp,omitempty"`
	// Recovery holds the SHA-256 digests (hex) of the unused recovery
	// codes.
	Recovery []string `json:"recovery,omitempty"`
	// Passkeys are the user's WebAuthn credentials.
	Passkeys []Passkey `json:"passkeys,omitempty"`
	// Spent are the challenges of the passkey sign-ins accepted while
	// their ceremony could still be finished (see FinishLogin).
	Spent []SpentChallenge `json:"spent_challenges,omitempty"`
}

// TOTP is one TOTP secret.
type TOTP struct {
	Secret   []byte    `json:"secret"`              // sealed under the TOTP key, bound to the user id
	LastStep int64     `json:"last_step,omitempty"` // the last time step accepted: it and earlier ones are refused
	Created  time.Time `json:"created"`
}

// Passkey is one WebAuthn credential with what the user sees of it.
type Passkey struct {
	Name       string              `json:"name"`
	Created    time.Time           `json:"created"`
	LastUsed   time.Time           `json:"last_used,omitzero"`
	RPID       string              `json:"rp_id"`
	Credential webauthn.Credential `json:"credential"`
}

// ID is the passkey's id as the API shows it: the credential id in
// unpadded base64url (as WebAuthn's PublicKeyCredential.id).
func (p *Passkey) ID() string { return base64.RawURLEncoding.EncodeToString(p.Credential.ID) }

// Methods, as the API names them.
const (
	MethodTOTP         = "totp"
	MethodRecoveryCode = "recovery_code"
	MethodPasskey      = "passkey"
)

// HasFactor reports whether the user has a second factor (TOTP or a
// passkey; recovery codes alone are not one).
func (d *Data) HasFactor() bool { return d != nil && (d.TOTP != nil || len(d.Passkeys) > 0) }

// Methods lists the ways the user can pass the second step of a login.
func (d *Data) Methods() []string {
	var m []string
	if d == nil {
		return m
	}
	if d.TOTP != nil {
		m = append(m, MethodTOTP)
	}
	if len(d.Recovery) > 0 && d.HasFactor() {
		m = append(m, MethodRecoveryCode)
	}
	if len(d.Passkeys) > 0 {
		m = append(m, MethodPasskey)
	}
	return m
}

// Summary is the short form of what a user has (list-users, reset-2fa).
func (d *Data) Summary() []string {
	var out []string
	if d == nil {
		return out
	}
	if d.TOTP != nil {
		out = append(out, MethodTOTP)
	}
	if n := len(d.Passkeys); n == 1 {
		out = append(out, "1 passkey")
	} else if n > 1 {
		out = append(out, fmt.Sprintf("%d passkeys", n))
	}
	return out
}

// passkey returns the index of the passkey with credential id cid, or -1.
func (d *Data) passkey(id string) int {
	for i := range d.Passkeys {
		if d.Passkeys[i].ID() == id {
			return i
		}
	}
	return -1
}

// Decode reads a stored value (nil: no factors).
func Decode(b []byte) (*Data, error) {
	d := new(Data)
	if len(b) == 0 {
		return d, nil
	}
	if err := json.Unmarshal(b, d); err != nil {
		return nil, fmt.Errorf("mfa: stored second-factor data does not decode: %w", err)
	}
	return d, nil
}

// encode writes d for the store; an empty Data is deleted (nil).
func (d *Data) encode() ([]byte, error) {
	if d.TOTP == nil && d.PendingTOTP == nil && len(d.Recovery) == 0 && len(d.Passkeys) == 0 && len(d.Spent) == 0 {
		return nil, nil
	}
	return json.Marshal(d)
}
