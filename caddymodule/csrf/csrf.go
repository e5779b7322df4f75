// Package csrf makes and checks CSRF tokens the way Django does: a 32-character
// secret kept server-side (here, in the session) and handed to clients only
// masked, so that no two responses carry the same token (BREACH).
package csrf

import (
	"crypto/rand"
	"crypto/subtle"
)

// Django's alphabet and lengths, so tokens look and check as Django's do.
const (
	alphabet     = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	SecretLength = 32
	TokenLength  = 2 * SecretLength
)

// index maps a byte to its place in alphabet, or -1.
var index = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	return t
}()

// NewSecret returns a fresh random secret.
func NewSecret() string {
	return randomString(SecretLength)
}

// randomString draws n characters of alphabet without modulo bias.
func randomString(n int) string {
	out := make([]byte, 0, n)
	var buf [64]byte
	for len(out) < n {
		rand.Read(buf[:]) // never fails (crypto/rand panics rather)
		for _, b := range buf {
			// 62*4 = 248: reject the top 8 values to keep the draw uniform.
			if b < 248 && len(out) < n {
				out = append(out, alphabet[b%62])
			}
		}
	}
	return string(out)
}

// Mask returns a new masked token for secret: a random mask followed by the
// secret shifted by the mask, as Django's _mask_cipher_secret.
func Mask(secret string) string {
	mask := randomString(SecretLength)
	token := make([]byte, TokenLength)
	copy(token, mask)
	for i := 0; i < SecretLength; i++ {
		token[SecretLength+i] = alphabet[(int(index[secret[i]])+int(index[mask[i]]))%62]
	}
	return string(token)
}

// Matches reports, in constant time for well-formed input, whether token
// (masked, 64 characters, or a bare 32-character secret as Django also
// accepts) carries secret. Malformed tokens never match.
func Matches(token, secret string) bool {
	if len(secret) != SecretLength {
		return false
	}
	var plain [SecretLength]byte
	switch len(token) {
	case SecretLength:
		for i := 0; i < SecretLength; i++ {
			if index[token[i]] < 0 {
				return false
			}
		}
		copy(plain[:], token)
	case TokenLength:
		for i := 0; i < SecretLength; i++ {
			m, c := index[token[i]], index[token[SecretLength+i]]
			if m < 0 || c < 0 {
				return false
			}
			plain[i] = alphabet[(int(c)-int(m)+62)%62]
		}
	default:
		return false
	}
	return subtle.ConstantTimeCompare(plain[:], []byte(secret)) == 1
}
