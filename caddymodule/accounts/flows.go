package accounts

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// ErrTokenInvalid: a password-reset token that is malformed, forged,
// expired, already used, or made before the user's password, last login
// or e-mail changed.
var ErrTokenInvalid = errors.New("accounts: invalid password reset token")

// UsableHash reports whether a stored hash can ever match a password
// (Django's has_usable_password: an unusable one starts with "!").
func UsableHash(hash string) bool { return hash != "" && !strings.HasPrefix(hash, "!") }

// ResetRecipients are the users a password-reset mail for email goes
// to: active, with a usable password, whose address is email regardless
// of case (Django's PasswordResetForm.get_users).
func (s *Service) ResetRecipients(ctx context.Context, email string) ([]users.User, error) {
	return s.byEmail(ctx, email, func(u *users.User) bool { return u.IsActive && UsableHash(u.PasswordHash) })
}

// UnverifiedRecipients are the active users with the address email (any
// case) that is not verified yet: those a resent verification mail goes to.
func (s *Service) UnverifiedRecipients(ctx context.Context, email string) ([]users.User, error) {
	return s.byEmail(ctx, email, func(u *users.User) bool { return u.IsActive && !u.EmailVerified })
}

// byEmail returns the users whose address is email regardless of case and
// that keep accepts.
func (s *Service) byEmail(ctx context.Context, email string, keep func(u *users.User) bool) ([]users.User, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return nil, nil
	}
	f, finder := s.Store.(users.EmailFinder)
	var found []users.User
	var err error
	if finder {
		found, err = f.ByEmail(ctx, email)
	} else {
		found, err = s.Store.List(ctx) // filtered by address below
	}
	if err != nil {
		return nil, err
	}
	out := found[:0]
	for i := range found {
		if (finder || strings.EqualFold(found[i].Email, email)) && keep(&found[i]) {
			out = append(out, found[i])
		}
	}
	return out, nil
}

// ResetUser returns the user a reset link's uid names, if the token is
// theirs and valid at now; otherwise ErrNotFound (uid) or ErrTokenInvalid
// (token). Inactive users cannot reset.
func (s *Service) ResetUser(ctx context.Context, t *Tokens, uid, token string, timeout time.Duration, now time.Time) (*users.User, error) {
	id, ok := DecodeUID(uid)
	if !ok {
		return nil, ErrNotFound
	}
	u, err := s.Store.ByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if !u.IsActive || !t.CheckResetToken(u, token, timeout, now) {
		return nil, ErrTokenInvalid
	}
	return u, nil
}

// ResetPassword sets u's new password through a reset link (u as
// ResetUser returned it, the password already validated): in one
// transaction that fails with ErrTokenInvalid if the password, last login
// or e-mail changed since u was read (so two uses of one token cannot
// both succeed), it stores the hash, ends every session (epoch) and marks
// the e-mail verified (the link reached that mailbox).
func (s *Service) ResetPassword(ctx context.Context, u *users.User, newPassword string) (*users.User, error) {
	hash, err := s.Hasher.HashAs(ctx, newPassword, s.Scheme)
	if err != nil {
		return nil, err
	}
	updated, err := s.Store.Update(ctx, u.ID, func(cur *users.User) error {
		if cur.PasswordHash != u.PasswordHash || !cur.LastLogin.Equal(u.LastLogin) ||
			!strings.EqualFold(cur.Email, u.Email) || !cur.IsActive {
			return ErrTokenInvalid
		}
		cur.PasswordHash = hash
		cur.SessionEpoch++
		cur.EmailVerified = true
		return nil
	})
	if errors.Is(err, users.ErrNotFound) {
		return nil, ErrTokenInvalid
	}
	return updated, err
}

// VerifyEmail marks the address a verification key was made for as
// verified: ErrInvalidKey if the key is not valid at now (for an inactive
// or deleted user too). changed is false if it already was verified.
func (s *Service) VerifyEmail(ctx context.Context, t *Tokens, key string, now time.Time) (u *users.User, changed bool, err error) {
	id, ok := KeyUser(key)
	if !ok {
		return nil, false, ErrInvalidKey
	}
	u, err = s.Store.Update(ctx, id, func(cur *users.User) error {
		if !cur.IsActive || !t.CheckVerifyKey(cur, key, now) {
			return ErrInvalidKey
		}
		changed = !cur.EmailVerified
		cur.EmailVerified = true
		return nil
	})
	if errors.Is(err, users.ErrNotFound) {
		return nil, false, ErrInvalidKey
	}
	return u, changed, err
}

// SetEmailVerified marks the user's address verified or not (an
// operator's word); changed is false when it already was so.
func (s *Service) SetEmailVerified(ctx context.Context, id int64, verified bool) (u *users.User, changed bool, err error) {
	u, err = s.Store.Update(ctx, id, func(cur *users.User) error {
		changed = cur.EmailVerified != verified
		cur.EmailVerified = verified
		return nil
	})
	return u, changed, err
}
