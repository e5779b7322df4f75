package accounts

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// TokenKeySecret is the users.Secrets entry holding the key that signs
// password-reset tokens and e-mail verification keys, made on first use
// and shared by every instance (and the CLI) over the same users backend.
// Deleting it invalidates every outstanding token and key.
const TokenKeySecret = "account_token_key"

// tokenEpoch is where token timestamps count from, as Django's
// PasswordResetTokenGenerator counts (2001-01-01).
var tokenEpoch = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)

// Tokens makes and checks password-reset tokens and e-mail verification
// keys: HMAC-SHA256, under a key from users.Secrets, over what the token
// must die with. No state is kept: a reset token dies when the password
// hash, last_login or e-mail changes (so it is single-use: using it sets
// a new password) or when it is older than the timeout; a verification
// key dies when the e-mail changes or after KeyMaxAge.
type Tokens struct {
	key []byte
}

// KeyMaxAge is how long an e-mail verification key stays valid (allauth's
// EMAIL_CONFIRMATION_EXPIRE_DAYS).
const KeyMaxAge = 3 * 24 * time.Hour

// LoadTokens reads the key from sec, making it if there is none (every
// instance agrees on the first one written).
func LoadTokens(ctx context.Context, sec users.Secrets) (*Tokens, error) {
	key, err := users.RandomSecret(ctx, sec, TokenKeySecret, 32)
	if err != nil {
		return nil, err
	}
	return &Tokens{key: key}, nil
}

// NewTokens uses key (32 bytes or more) directly, for tests.
func NewTokens(key []byte) *Tokens { return &Tokens{key: key} }

// EncodeUID is Django's urlsafe_base64_encode(force_bytes(pk)): the
// decimal id in unpadded base64url.
func EncodeUID(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(id, 10)))
}

// DecodeUID reverses EncodeUID; ok is false for anything else (padding is
// accepted, as Django's decoder adds it back).
func DecodeUID(s string) (id int64, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	id, err = strconv.ParseInt(string(b), 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != string(b) {
		return 0, false
	}
	return id, true
}

// mac is the hex HMAC of the parts, every other character kept (Django's
// [::2]): 32 hex characters, 128 bits.
func (t *Tokens) mac(purpose string, parts ...string) string {
	h := hmac.New(sha256.New, t.key)
	h.Write([]byte("caddy-session-auth." + purpose))
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	full := hex.EncodeToString(h.Sum(nil))
	out := make([]byte, 0, len(full)/2)
	for i := 0; i < len(full); i += 2 {
		out = append(out, full[i])
	}
	return string(out)
}

func (t *Tokens) resetMAC(u *users.User, ts string) string {
	last := ""
	if !u.LastLogin.IsZero() {
		last = strconv.FormatInt(u.LastLogin.UnixMicro(), 10)
	}
	return t.mac("password-reset", strconv.FormatInt(u.ID, 10), u.PasswordHash, last, ts, strings.ToLower(u.Email))
}

func (t *Tokens) verifyMAC(u *users.User, ts string) string {
	return t.mac("email-verify", strconv.FormatInt(u.ID, 10), strings.ToLower(u.Email), ts)
}

// stamp is a token's timestamp for now: base 36 seconds since 2001, as
// Django's.
func stamp(now time.Time) string {
	return strconv.FormatInt(int64(now.Sub(tokenEpoch)/time.Second), 36)
}

// fresh reports whether ts is a stamp in canonical form made within maxAge
// before now (and not after it, give or take a minute of clock skew).
func fresh(ts string, maxAge time.Duration, now time.Time) bool {
	if len(ts) == 0 || len(ts) > 13 {
		return false
	}
	secs, err := strconv.ParseInt(ts, 36, 64)
	if err != nil || secs < 0 || strconv.FormatInt(secs, 36) != ts {
		return false
	}
	made := tokenEpoch.Add(time.Duration(secs) * time.Second)
	return !made.After(now.Add(time.Minute)) && now.Sub(made) <= maxAge
}

// ResetToken makes u's password-reset token at now: "<ts>-<mac>", ts in
// base 36 seconds since 2001, as Django's.
func (t *Tokens) ResetToken(u *users.User, now time.Time) string {
	ts := stamp(now)
	return ts + "-" + t.resetMAC(u, ts)
}

// CheckResetToken reports whether token is u's, made within timeout
// before now (and not after it), in constant time.
func (t *Tokens) CheckResetToken(u *users.User, token string, timeout time.Duration, now time.Time) bool {
	ts, sum, ok := strings.Cut(token, "-")
	if !ok || len(sum) != 32 || !fresh(ts, timeout, now) {
		return false
	}
	return hmac.Equal([]byte(t.resetMAC(u, ts)), []byte(sum))
}

// VerifyKey makes a key that verifies u's current e-mail address:
// "<uid>-<ts>-<mac>".
func (t *Tokens) VerifyKey(u *users.User, now time.Time) string {
	ts := stamp(now)
	return EncodeUID(u.ID) + "-" + ts + "-" + t.verifyMAC(u, ts)
}

// ErrInvalidKey is returned for a verification key that is malformed,
// forged, expired, or made for an address the user no longer has.
var ErrInvalidKey = errors.New("accounts: invalid or expired e-mail verification key")

// KeyUser returns the user id a key names, before any check; ok is false
// for a malformed key.
func KeyUser(key string) (id int64, ok bool) {
	uid, _, found := strings.Cut(key, "-")
	if !found {
		return 0, false
	}
	return DecodeUID(uid)
}

// CheckVerifyKey reports whether key verifies u's current address at now.
func (t *Tokens) CheckVerifyKey(u *users.User, key string, now time.Time) bool {
	parts := strings.Split(key, "-")
	if len(parts) != 3 || len(parts[2]) != 32 || !fresh(parts[1], KeyMaxAge, now) {
		return false
	}
	if id, ok := DecodeUID(parts[0]); !ok || id != u.ID {
		return false
	}
	return hmac.Equal([]byte(t.verifyMAC(u, parts[1])), []byte(parts[2]))
}
