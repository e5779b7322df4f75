package accounts

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/passwords"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// Service applies the account rules to a users store.
type Service struct {
	Store  users.Store
	Hasher *passwords.Hasher
	// Scheme is the format new password hashes are written in (the zero
	// value: the sidecar's argon2id; with django_users, what
	// password_hasher names), and so which stored hashes a login upgrades.
	Scheme passwords.Scheme
	// OnUnusableHash, if set, is told about a stored hash that cannot be
	// verified (corrupt or of an unknown scheme), for the log.
	OnUnusableHash func(u *users.User, err error)
}

// NewUser is a user to create.
type NewUser struct {
	Username, Email, Password string
	// IsSuperuser also makes the user staff, as Django's createsuperuser.
	IsSuperuser, IsStaff bool
	// Force accepts a password that the validators refuse: their messages
	// come back as warnings.
	Force bool
}

// Lookup finds a user by a username as typed (trimmed, normalised, matched
// regardless of case).
func (s *Service) Lookup(ctx context.Context, raw string) (*users.User, error) {
	name := NormalizeUsername(strings.TrimSpace(raw))
	if name == "" {
		return nil, fieldError("username", MsgBlank)
	}
	return s.Store.ByUsername(ctx, name)
}

// CheckUsername normalises a new username and returns what registration
// refuses in it: Django's characters and length, and a name that is taken
// regardless of case. An error is a store failure.
func (s *Service) CheckUsername(ctx context.Context, raw string) (name string, problems []string, err error) {
	name = NormalizeUsername(strings.TrimSpace(raw))
	if name == "" {
		return "", []string{MsgBlank}, nil
	}
	if problems = UsernameProblems(name); len(problems) > 0 {
		return name, problems, nil
	}
	switch _, err := s.Store.ByUsername(ctx, name); {
	case err == nil:
		return name, []string{MsgUsernameTaken}, nil
	case !errors.Is(err, users.ErrNotFound):
		return name, nil, err
	}
	return name, nil, nil
}

// CheckEmail returns the email as stored (domain lower-cased) and whether
// Django's validator accepts it.
func CheckEmail(raw string) (email string, ok bool) {
	email = strings.TrimSpace(raw)
	if email == "" || !ValidEmail(email) {
		return email, false
	}
	return NormalizeEmail(email), true
}

// CheckPassword returns what Django's validators say of password for a
// user with that username and email (nothing: it is accepted).
func CheckPassword(password, username, email string) []string {
	return passwords.Validate(password, map[string]string{"username": username, "email": email})
}

// Create validates in and creates an active user. Invalid input is a
// *FieldErrors (a taken username too, also when another request took it
// meanwhile); warnings are the validators' messages that Force overrode.
func (s *Service) Create(ctx context.Context, in NewUser) (u *users.User, warnings []string, err error) {
	var errs FieldErrors
	name, problems, err := s.CheckUsername(ctx, in.Username)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range problems {
		errs.Add("username", p)
	}
	email, ok := CheckEmail(in.Email)
	switch {
	case strings.TrimSpace(in.Email) == "":
		errs.Add("email", MsgBlank)
	case !ok:
		errs.Add("email", MsgEmailInvalid)
	}
	warnings, perr := s.passwordProblems(in.Password, name, email, in.Force)
	if perr != nil {
		errs.Add("password", perr.Error())
	}
	if !errs.Empty() {
		return nil, nil, &errs
	}
	hash, err := s.Hasher.HashAs(ctx, in.Password, s.Scheme)
	if err != nil {
		return nil, nil, err
	}
	u = &users.User{
		Username:     name,
		Email:        email,
		PasswordHash: hash,
		IsActive:     true,
		IsSuperuser:  in.IsSuperuser,
		IsStaff:      in.IsStaff || in.IsSuperuser,
	}
	if err := s.Store.Create(ctx, u); err != nil {
		if errors.Is(err, users.ErrUsernameTaken) { // lost a race with another registration
			return nil, nil, fieldError("username", MsgUsernameTaken)
		}
		return nil, nil, err
	}
	return u, warnings, nil
}

// passwordError is the validators' refusal of a password set by an
// operator, as one message.
type passwordError struct{ msgs []string }

func (e *passwordError) Error() string { return strings.Join(e.msgs, " ") }

// passwordProblems applies the validators to a password an operator sets.
// With force their messages are warnings. An empty password, or one with
// surrounding whitespace (the API trims password fields as DRF does, so it
// could never be typed in at login), is refused regardless.
func (s *Service) passwordProblems(password, username, email string, force bool) (warnings []string, err error) {
	if password == "" {
		return nil, &passwordError{[]string{MsgBlank}}
	}
	if strings.TrimSpace(password) != password {
		return nil, &passwordError{[]string{"Leading or trailing whitespace is not allowed (the login API trims it)."}}
	}
	problems := CheckPassword(password, username, email)
	if len(problems) == 0 {
		return nil, nil
	}
	if !force {
		return nil, &passwordError{problems}
	}
	return problems, nil
}

// SetPassword replaces the user's password (an operator's reset) and ends
// all of their sessions, in one transaction. Refused passwords are a
// *FieldErrors on "password" unless force.
func (s *Service) SetPassword(ctx context.Context, id int64, password string, force bool) (*users.User, []string, error) {
	u, err := s.Store.ByID(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	warnings, perr := s.passwordProblems(password, u.Username, u.Email, force)
	if perr != nil {
		return nil, nil, fieldError("password", perr.Error())
	}
	hash, err := s.Hasher.HashAs(ctx, password, s.Scheme)
	if err != nil {
		return nil, nil, err
	}
	u, err = s.Store.Update(ctx, id, func(u *users.User) error {
		u.PasswordHash = hash
		u.SessionEpoch++
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return u, warnings, nil
}

// SetActive activates or deactivates the user; changed is false when it
// already was. Deactivating also ends every session of the user (the gate
// refuses inactive users anyway; this makes sure a later activation does
// not bring the old sessions back).
func (s *Service) SetActive(ctx context.Context, id int64, active bool) (u *users.User, changed bool, err error) {
	u, err = s.Store.Update(ctx, id, func(u *users.User) error {
		changed = u.IsActive != active
		u.IsActive = active
		if !active {
			u.SessionEpoch++
		}
		return nil
	})
	return u, changed, err
}

// Delete removes the user; their sessions die with the record (the gate
// finds no user for them). Ids are never handed out again.
func (s *Service) Delete(ctx context.Context, id int64) error {
	return s.Store.Delete(ctx, id)
}

// EndSessions ends every session of the user ("log out everywhere").
func (s *Service) EndSessions(ctx context.Context, id int64) (*users.User, error) {
	return s.Store.Update(ctx, id, func(u *users.User) error {
		u.SessionEpoch++
		return nil
	})
}

// ChangePassword is the user's own password change, the old password
// already checked against u (as read at the start of the request): it
// hashes newPassword, lets keep commit the session that goes on under the
// epoch about to be set (it is not valid before the user record moves
// there, and if anything fails the current session is untouched), then
// stores the hash and the new epoch, which ends every other session. If
// the user's sessions were ended (or the user deleted) meanwhile, it
// returns ErrSessionsEnded and writes nothing. Validation of newPassword is
// the caller's (it answers with the form's own field names).
func (s *Service) ChangePassword(ctx context.Context, u *users.User, newPassword string, keep func(epoch int64) error) (*users.User, error) {
	hash, err := s.Hasher.HashAs(ctx, newPassword, s.Scheme)
	if err != nil {
		return nil, err
	}
	epoch := u.SessionEpoch + 1
	if keep != nil {
		if err := keep(epoch); err != nil {
			return nil, err
		}
	}
	updated, err := s.Store.Update(ctx, u.ID, func(cur *users.User) error {
		if cur.SessionEpoch != u.SessionEpoch {
			return ErrSessionsEnded
		}
		cur.PasswordHash = hash
		cur.SessionEpoch = epoch
		return nil
	})
	if errors.Is(err, users.ErrNotFound) {
		return nil, ErrSessionsEnded
	}
	return updated, err
}

// Authenticate checks a username (as typed) and password in the same time
// whether or not the user exists or is active, and records the login:
// last_login is set and a verified outdated hash is upgraded. Unknown
// user, wrong password and inactive user are all ErrBadCredentials. Any
// other error (a store failure, or ctx ending while waiting for a hashing
// slot) says nothing of the password. ctx bounds the hashing wait.
func (s *Service) Authenticate(ctx context.Context, username, password string) (*users.User, error) {
	u, err := s.Store.ByUsername(ctx, NormalizeUsername(username))
	if errors.Is(err, users.ErrNotFound) {
		s.Hasher.VerifyDummyAs(ctx, password, s.Scheme)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, err
	}
	ok, rehash, verr := s.Hasher.VerifyAs(ctx, password, u.PasswordHash, s.Scheme)
	if err := ctx.Err(); err != nil {
		return nil, err // no slot in time: not "wrong password"
	}
	if verr != nil && !errors.Is(verr, passwords.ErrUnknownFormat) && s.OnUnusableHash != nil {
		s.OnUnusableHash(u, verr)
	}
	if !ok {
		return nil, ErrBadCredentials
	}
	if !u.IsActive {
		return nil, ErrInactive
	}
	var newHash string
	if rehash {
		if newHash, err = s.Hasher.HashAs(ctx, password, s.Scheme); err != nil {
			newHash = ""
		}
	}
	now := time.Now().UTC()
	updated, err := s.Store.Update(ctx, u.ID, func(cur *users.User) error {
		// The password was checked against the record read above; if an
		// operator changed the password, epoch or state meanwhile, that
		// check no longer stands (and a rehash must not undo a reset).
		if cur.PasswordHash != u.PasswordHash || cur.SessionEpoch != u.SessionEpoch || !cur.IsActive {
			return ErrBadCredentials
		}
		cur.LastLogin = now
		if newHash != "" {
			cur.PasswordHash = newHash
		}
		return nil
	})
	if errors.Is(err, users.ErrNotFound) {
		return nil, ErrBadCredentials
	}
	return updated, err
}

// PasswordMatches checks password against u's stored hash (a user
// confirming their password, e.g. the old one on a password change). An
// error (ctx ended while waiting for a hashing slot) says nothing of the
// password.
func (s *Service) PasswordMatches(ctx context.Context, u *users.User, password string) (bool, error) {
	ok, _, _ := s.Hasher.VerifyAs(ctx, password, u.PasswordHash, s.Scheme)
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return ok, nil
}
