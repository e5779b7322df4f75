package mfa

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// Errors a client may cause; anything else is a store failure.
var (
	ErrBadCode        = errors.New("mfa: invalid code")
	ErrNoPendingTOTP  = errors.New("mfa: no TOTP setup to confirm")
	ErrTOTPEnabled    = errors.New("mfa: TOTP is already enabled")
	ErrTOTPNotEnabled = errors.New("mfa: TOTP is not enabled")
	ErrNoPasskey      = errors.New("mfa: no such passkey")
	ErrPasskeyReplay  = errors.New("mfa: the authenticator's signature counter went back (a cloned or replayed credential)")
	// ErrHasFactor: only a user's first factor may be added this way (by
	// a session that proved none).
	ErrHasFactor = errors.New("mfa: the user has a second factor already")
)

// TOTP parameters (RFC 6238's defaults, what every authenticator app
// reads from an otpauth URL).
const (
	Period   = 30
	Digits   = 6
	Skew     = 1  // steps accepted either side of now
	Recovery = 10 // recovery codes handed out at once
)

var totpOpts = totp.ValidateOpts{Period: Period, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// Service reads and changes users' second factors.
type Service struct {
	Store users.Factors
	Keys  *Keys
	Now   func() time.Time // nil: time.Now

	passkeys passkeyConfigs
}

func isNotFound(err error) bool { return errors.Is(err, users.ErrNotFound) }

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Get returns the user's factors (an empty Data if none); ErrNotFound
// (users) if there is no such user.
func (s *Service) Get(ctx context.Context, id int64) (*Data, error) {
	b, err := s.Store.Factors(ctx, id)
	if err != nil {
		return nil, err
	}
	return Decode(b)
}

// update runs fn on the user's decoded factors in one store transaction.
func (s *Service) update(ctx context.Context, id int64, fn func(d *Data) error) (*Data, error) {
	var out *Data
	_, err := s.Store.UpdateFactors(ctx, id, func(cur []byte) ([]byte, error) {
		d, err := Decode(cur)
		if err != nil {
			return nil, err
		}
		if err := fn(d); err != nil {
			return nil, err
		}
		out = d
		return d.encode()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// BeginTOTP makes a new secret for the user and keeps it as pending (a
// later BeginTOTP replaces it): it is no factor until ConfirmTOTP. It
// returns the secret (base32) and its otpauth:// URL.
func (s *Service) BeginTOTP(ctx context.Context, id int64, issuer, account string) (secret, url string, err error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: Period,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1, SecretSize: 20})
	if err != nil {
		return "", "", err
	}
	_, err = s.update(ctx, id, func(d *Data) error {
		if d.TOTP != nil {
			return ErrTOTPEnabled
		}
		d.PendingTOTP = &TOTP{Secret: seal(s.Keys.totp, []byte(key.Secret()), userAD(id)), Created: s.now().UTC()}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	return key.Secret(), key.URL(), nil
}

// ConfirmTOTP activates the pending secret if code is right for it and
// returns new recovery codes (replacing any earlier ones), shown once, and
// whether it is the user's first factor. With onlyFirst, a user who has a
// factor already is refused (ErrHasFactor), decided in the same
// transaction.
func (s *Service) ConfirmTOTP(ctx context.Context, id int64, code string, onlyFirst bool) (codes []string, first bool, err error) {
	codes, digests, err := newRecoveryCodes(id)
	if err != nil {
		return nil, false, err
	}
	_, err = s.update(ctx, id, func(d *Data) error {
		if d.TOTP != nil {
			return ErrTOTPEnabled
		}
		if d.PendingTOTP == nil {
			return ErrNoPendingTOTP
		}
		if first = !d.HasFactor(); onlyFirst && !first {
			return ErrHasFactor
		}
		t := d.PendingTOTP
		if !s.checkTOTP(id, t, code) {
			return ErrBadCode
		}
		d.TOTP, d.PendingTOTP = t, nil
		d.Recovery = digests
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return codes, first, nil
}

// DisableTOTP removes the user's TOTP secret if code (a TOTP code or a
// recovery code) is right. allow, if set, is asked first with the factors
// as they would be (a policy that requires a factor refuses to leave
// none); its error is returned. The recovery codes go too when no factor
// is left.
func (s *Service) DisableTOTP(ctx context.Context, id int64, code string, allow func(after *Data) error) (usedRecovery bool, err error) {
	_, err = s.update(ctx, id, func(d *Data) error {
		if d.TOTP == nil {
			return ErrTOTPNotEnabled
		}
		used, ok := s.check(id, d, code)
		if !ok {
			return ErrBadCode
		}
		usedRecovery = used == MethodRecoveryCode
		d.TOTP, d.PendingTOTP = nil, nil
		if !d.HasFactor() {
			d.Recovery = nil
		}
		if allow != nil {
			return allow(d)
		}
		return nil
	})
	return usedRecovery, err
}

// Verify checks a code given at sign-in: a TOTP code (each accepted once)
// or a recovery code (used up). It returns which it was.
func (s *Service) Verify(ctx context.Context, id int64, code string) (method string, err error) {
	_, err = s.update(ctx, id, func(d *Data) error {
		m, ok := s.check(id, d, code)
		if !ok {
			return ErrBadCode
		}
		method = m
		return nil
	})
	return method, err
}

// check tries code as a TOTP code, then as a recovery code, consuming
// what it matches (in d, which the caller stores).
func (s *Service) check(id int64, d *Data, code string) (method string, ok bool) {
	if d.TOTP != nil && s.checkTOTP(id, d.TOTP, code) {
		return MethodTOTP, true
	}
	if !d.HasFactor() {
		return "", false
	}
	if i := matchRecovery(id, d.Recovery, code); i >= 0 {
		d.Recovery = append(d.Recovery[:i:i], d.Recovery[i+1:]...)
		return MethodRecoveryCode, true
	}
	return "", false
}

// checkTOTP reports whether code is t's code for a step within Skew of
// now that is later than the last one accepted, and if so records that
// step as the last.
func (s *Service) checkTOTP(id int64, t *TOTP, code string) bool {
	code = strings.Map(dropSeparators, code)
	if len(code) != Digits {
		return false
	}
	plain, err := open(s.Keys.totp, t.Secret, userAD(id))
	if err != nil {
		return false // a secret sealed under another key: the user must enrol again
	}
	now := s.now().Unix() / Period
	ok := false
	var matched int64
	for step := now - Skew; step <= now+Skew; step++ {
		want, err := totp.GenerateCodeCustom(string(plain), time.Unix(step*Period, 0), totpOpts)
		if err != nil {
			return false
		}
		// Every step is computed and compared, matched or not: the time
		// taken does not tell which step matched.
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && step > t.LastStep && !ok {
			ok, matched = true, step
		}
	}
	if ok {
		t.LastStep = matched
	}
	return ok
}

// Reset removes all of the user's factors and recovery codes; it reports
// whether there were any.
func (s *Service) Reset(ctx context.Context, id int64) (had []string, err error) {
	_, err = s.Store.UpdateFactors(ctx, id, func(cur []byte) ([]byte, error) {
		if d, derr := Decode(cur); derr == nil {
			had = d.Summary()
		}
		return nil, nil
	})
	return had, err
}

// NewRecoveryCodes replaces the user's recovery codes (a user with a
// factor only) and returns the new ones, shown once.
func (s *Service) NewRecoveryCodes(ctx context.Context, id int64) ([]string, error) {
	codes, digests, err := newRecoveryCodes(id)
	if err != nil {
		return nil, err
	}
	_, err = s.update(ctx, id, func(d *Data) error {
		if !d.HasFactor() {
			return ErrTOTPNotEnabled
		}
		d.Recovery = digests
		return nil
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// recoveryAlphabet: lower-case base32 without padding; codes are shown as
// two groups of five (xxxxx-xxxxx, 50 bits).
var recoveryEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func newRecoveryCodes(id int64) (codes, digests []string, err error) {
	codes, digests = make([]string, Recovery), make([]string, Recovery)
	for i := range codes {
		var b [7]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, nil, err
		}
		c := recoveryEncoding.EncodeToString(b[:])[:10]
		codes[i] = c[:5] + "-" + c[5:]
		digests[i] = recoveryDigest(id, c)
	}
	return codes, digests, nil
}

// recoveryDigest is what is kept of a recovery code: SHA-256 over the
// user's id and the code, so that one pass over a leaked table cannot try
// every user's codes at once.
func recoveryDigest(id int64, normal string) string {
	sum := sha256.Sum256(append(binary.BigEndian.AppendUint64([]byte("session-auth recovery code\x00"), uint64(id)), normal...))
	return hex.EncodeToString(sum[:])
}

// matchRecovery returns the index of code's digest in digests, or -1;
// every digest is compared.
func matchRecovery(id int64, digests []string, code string) int {
	normal := strings.ToLower(strings.Map(dropSeparators, code))
	if len(normal) != 10 {
		return -1
	}
	want := []byte(recoveryDigest(id, normal))
	found := -1
	for i, d := range digests {
		if subtle.ConstantTimeCompare([]byte(d), want) == 1 && found < 0 {
			found = i
		}
	}
	return found
}

func dropSeparators(r rune) rune {
	if r == ' ' || r == '-' || r == '\t' {
		return -1
	}
	return r
}
