package mfa

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// KeySecret is the users.Secrets entry holding the second factor's master
// key, made on first use and shared by every instance over the same users
// backend. Two keys are derived from it: one encrypts TOTP secrets at
// rest, one seals the short-lived state a login or a passkey ceremony
// keeps in a cookie between its two requests. Deleting it makes every
// stored TOTP secret unreadable (those users must enrol again).
const KeySecret = "second_factor_key"

// Keys are the derived keys.
type Keys struct {
	totp  cipher.AEAD
	state cipher.AEAD
}

// LoadKeys reads the master key from sec, making it if there is none
// (every instance agrees on the first one written).
func LoadKeys(ctx context.Context, sec users.Secrets) (*Keys, error) {
	master, err := users.RandomSecret(ctx, sec, KeySecret, 32)
	if err != nil {
		return nil, err
	}
	return newKeys(master)
}

func newKeys(master []byte) (*Keys, error) {
	if len(master) < 32 {
		return nil, errors.New("mfa: master key too short")
	}
	derive := func(label string) (cipher.AEAD, error) {
		m := hmac.New(sha256.New, master)
		m.Write([]byte(label))
		block, err := aes.NewCipher(m.Sum(nil))
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(block)
	}
	totp, err := derive("session-auth totp secret v1")
	if err != nil {
		return nil, err
	}
	state, err := derive("session-auth ceremony state v1")
	if err != nil {
		return nil, err
	}
	return &Keys{totp: totp, state: state}, nil
}

// seal encrypts plain with a random nonce, binding it to ad.
func seal(a cipher.AEAD, plain, ad []byte) []byte {
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(plain)+a.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return a.Seal(nonce, nonce, plain, ad)
}

// open reverses seal.
func open(a cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	n := a.NonceSize()
	if len(sealed) < n+a.Overhead() {
		return nil, errSealed
	}
	out, err := a.Open(nil, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, errSealed
	}
	return out, nil
}

var errSealed = errors.New("mfa: sealed value does not open")

// userAD is the additional data that binds a TOTP secret to its user.
func userAD(id int64) []byte {
	return binary.BigEndian.AppendUint64([]byte("totp:"), uint64(id))
}
