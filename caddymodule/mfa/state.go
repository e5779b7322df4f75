package mfa

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
)

// Purposes of a sealed State.
const (
	// PurposeLogin: the password was right; the second step is awaited.
	PurposeLogin = "login"
	// PurposePasskeyLogin: a passkey sign-in without a password was begun.
	PurposePasskeyLogin = "passkey_login"
	// PurposeRegister: a passkey registration was begun by a signed-in user.
	PurposeRegister = "register"
)

// State is what a login or passkey ceremony keeps between its two
// requests, sealed (AES-GCM under the state key) into a short-lived
// cookie: no server-side state, so any instance can take the second
// request.
type State struct {
	Purpose string    `json:"p"`
	UserID  int64     `json:"u,omitempty"`
	Epoch   int64     `json:"e,omitempty"` // the user's session epoch when it began: a password change ends it
	Expires time.Time `json:"x"`
	// WebAuthn is the ceremony's challenge and options, if one was begun.
	WebAuthn *webauthn.SessionData `json:"w,omitempty"`
}

// ErrStateInvalid is a sealed state that does not open, has expired or is
// for another purpose.
var ErrStateInvalid = errors.New("mfa: no valid sign-in state")

var stateAD = []byte("session-auth ceremony state")

// SealState returns st sealed, as a cookie value.
func (k *Keys) SealState(st *State) string {
	plain, err := json.Marshal(st)
	if err != nil {
		panic(err) // a State always encodes
	}
	return base64.RawURLEncoding.EncodeToString(seal(k.state, plain, stateAD))
}

// OpenState opens a cookie value made by SealState that is for purpose
// and not expired at now.
func (k *Keys) OpenState(v, purpose string, now time.Time) (*State, error) {
	if len(v) > 4096 {
		return nil, ErrStateInvalid
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, ErrStateInvalid
	}
	plain, err := open(k.state, raw, stateAD)
	if err != nil {
		return nil, ErrStateInvalid
	}
	st := new(State)
	if err := json.Unmarshal(plain, st); err != nil || st.Purpose != purpose || !now.Before(st.Expires) {
		return nil, ErrStateInvalid
	}
	return st, nil
}
