package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/passwords"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// userAdmin is what the `caddy session-auth` commands do to users. It has
// two implementations: storeAdmin works on a users.Store (the bbolt file
// opened by the command with --db, or the running handler's store behind
// the admin API), and adminClient sends the same requests to a running
// Caddy's admin API (--config). Both apply the same rules, the store's.
type userAdmin interface {
	createUser(ctx context.Context, r createUserRequest) (*userResult, error)
	setPassword(ctx context.Context, r setPasswordRequest) (*userResult, error)
	setActive(ctx context.Context, r userRequest, active bool) (*userResult, error)
	deleteUser(ctx context.Context, r userRequest) (*userResult, error)
	listUsers(ctx context.Context) ([]userListEntry, error)
	importUsers(ctx context.Context, r importRequest) (*importResult, error)
	unban(ctx context.Context, r userRequest) (*userResult, error)
	// groupadmin.go
	addToGroup(ctx context.Context, r groupRequest) (*userResult, error)
	removeFromGroup(ctx context.Context, r groupRequest) (*userResult, error)
	rotateKey(ctx context.Context) (*rotateKeyResult, error)
	// sessionadmin.go
	listSessions(ctx context.Context, r userRequest) (*sessionsResult, error)
	endSessions(ctx context.Context, r userRequest) (*userResult, error)
	setEmailVerified(ctx context.Context, r userRequest) (*userResult, error)
	updateUser(ctx context.Context, r updateUserRequest) (*userResult, error) // updateuser.go
	resetSecondFactor(ctx context.Context, r userRequest) (*userResult, error)
}

// The requests and results below are also the admin API's JSON bodies.

type createUserRequest struct {
	Username  string `json:"username"`
	Email     string `json:"email"`
	Password  string `json:"password"`
	Superuser bool   `json:"superuser,omitempty"` // also makes the user staff, as Django's createsuperuser
	Staff     bool   `json:"staff,omitempty"`
	Force     bool   `json:"force,omitempty"` // accept a password the validators refuse
}

type setPasswordRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Force    bool   `json:"force,omitempty"`
}

type userRequest struct {
	Username string `json:"username"`
}

// userResult is the user after the change. Changed is false when there was
// nothing to do (activating an active user, unbanning one not banned).
// Warnings are the password validators' complaints that Force overrode.
type userResult struct {
	User     userInfo `json:"user"`
	Changed  bool     `json:"changed"`
	Warnings []string `json:"warnings,omitempty"`
	// Removed is what reset-2fa removed (e.g. ["totp", "1 passkey"]).
	Removed []string `json:"removed,omitempty"`
	group   string   // the group added or removed, for the admin API's log
}

// userInfo is a user as the commands show it: never the password hash.
type userInfo struct {
	ID          int64      `json:"id"`
	Username    string     `json:"username"`
	Email       string     `json:"email"`
	IsActive    bool       `json:"is_active"`
	IsSuperuser bool       `json:"is_superuser"`
	IsStaff     bool       `json:"is_staff"`
	DateJoined  time.Time  `json:"date_joined"`
	LastLogin   *time.Time `json:"last_login"` // null: never logged in
	Groups      []string   `json:"groups"`     // [] when none
	// EmailVerified: the user proved they receive mail at Email.
	EmailVerified bool `json:"email_verified"`
}

// userListEntry is a user as list-users shows it: with the second factors
// they have, in short form (["totp", "2 passkeys"]; [] when none).
type userListEntry struct {
	userInfo
	SecondFactors []string `json:"second_factors"`
}

func infoOf(u *users.User) userInfo {
	info := userInfo{
		ID:          u.ID,
		Username:    u.Username,
		Email:       u.Email,
		IsActive:    u.IsActive,
		IsSuperuser: u.IsSuperuser,
		IsStaff:     u.IsStaff,
		DateJoined:  u.DateJoined.UTC(),
		Groups:      u.Groups,

		EmailVerified: u.EmailVerified,
	}
	if info.Groups == nil {
		info.Groups = []string{}
	}
	if !u.LastLogin.IsZero() {
		t := u.LastLogin.UTC()
		info.LastLogin = &t
	}
	return info
}

// importRequest carries users read from a Django dump, hashes included.
type importRequest struct {
	Users        []importUser `json:"users"`
	SkipExisting bool         `json:"skip_existing,omitempty"`
}

type importUser struct {
	ID           int64      `json:"id"`
	Username     string     `json:"username"`
	Email        string     `json:"email"`
	PasswordHash string     `json:"password_hash"`
	IsActive     bool       `json:"is_active"`
	IsSuperuser  bool       `json:"is_superuser"`
	IsStaff      bool       `json:"is_staff"`
	DateJoined   time.Time  `json:"date_joined"`
	LastLogin    *time.Time `json:"last_login"`
	Groups       []string   `json:"groups,omitempty"`
}

func importUserOf(u *users.User) importUser {
	info := infoOf(u)
	return importUser{ID: u.ID, Username: u.Username, Email: u.Email, PasswordHash: u.PasswordHash,
		IsActive: u.IsActive, IsSuperuser: u.IsSuperuser, IsStaff: u.IsStaff,
		DateJoined: info.DateJoined, LastLogin: info.LastLogin, Groups: u.Groups}
}

type importResult struct {
	Imported int `json:"imported"`
	Skipped  int `json:"skipped"` // already present with the same id and username
}

// opError is a refused request; status is what the admin API answers.
type opError struct {
	status int
	msg    string
	cause  error // for the log, not the answer
}

func (e *opError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &opError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func notFound(username string) error {
	return &opError{status: http.StatusNotFound, msg: fmt.Sprintf("no user named %q", username)}
}

func conflict(format string, args ...any) error {
	return &opError{status: http.StatusConflict, msg: fmt.Sprintf(format, args...)}
}

// storeAdmin applies userAdmin requests through the account rules
// (package accounts) to a users store. unbanUsername, set behind the admin
// API, lifts a username's login bans in the running handlers' throttle
// stores (nil with --db: Caddy is not running).
type storeAdmin struct {
	accounts      *accounts.Service
	unbanUsername func(username string) (lifted bool, err error)
	// sessionStores returns the session stores to list and end sessions
	// in (nil: none known).
	sessionStores func() []sessionAccess
}

var _ userAdmin = storeAdmin{}

func newStoreAdmin(store users.Store, hasher *passwords.Hasher) storeAdmin {
	return storeAdmin{accounts: &accounts.Service{Store: store, Hasher: hasher}}
}

// checkNewUser refuses, before a password is asked for, a username or
// email that create-user would refuse for its form (not for being taken).
func checkNewUser(username, email string) error {
	name := accounts.NormalizeUsername(strings.TrimSpace(username))
	if name == "" {
		return badRequest("username: %s", msgBlank)
	}
	if problems := accounts.UsernameProblems(name); len(problems) > 0 {
		return badRequest("username %q: %s", name, strings.Join(problems, " "))
	}
	if strings.TrimSpace(email) == "" {
		return badRequest("email: %s", msgBlank)
	}
	if _, ok := accounts.CheckEmail(email); !ok {
		return badRequest("email %q: %s", strings.TrimSpace(email), accounts.MsgEmailInvalid)
	}
	return nil
}

// adminError words the accounts package's refusals for the CLI and the
// admin API: the field and what was typed, a taken username is a
// conflict (409), other refusals 400, an unknown user 404.
func adminError(err error, username, email string) error {
	fe, ok := errors.AsType[*accounts.FieldErrors](err)
	if !ok {
		switch {
		case errors.Is(err, accounts.ErrNotFound):
			return notFound(accounts.NormalizeUsername(strings.TrimSpace(username)))
		}
		if ce, ok := errors.AsType[*accounts.InvalidError](err); ok {
			return badRequest("%s", ce.Error())
		}
		if ce, ok := errors.AsType[*accounts.ConflictError](err); ok {
			return conflict("%s", ce.Error())
		}
		return err
	}
	f := fe.Fields()[0]
	msg := strings.Join(fe.Messages(f), " ")
	switch f {
	case "username":
		name := accounts.NormalizeUsername(strings.TrimSpace(username))
		if msg == accounts.MsgUsernameTaken {
			return conflict("username %q: %s", name, msg)
		}
		return badRequest("username %q: %s", name, msg)
	case "email":
		return badRequest("email %q: %s", strings.TrimSpace(email), msg)
	case "password":
		return badRequest("password refused: %s (--force to set it anyway)", msg)
	}
	return badRequest("%s", fe.Error())
}

func (a storeAdmin) lookup(ctx context.Context, raw string) (*users.User, error) {
	u, err := a.accounts.Lookup(ctx, raw)
	if err != nil {
		return nil, adminError(err, raw, "")
	}
	return u, nil
}

func (a storeAdmin) createUser(ctx context.Context, r createUserRequest) (*userResult, error) {
	u, warnings, err := a.accounts.Create(ctx, accounts.NewUser{Username: r.Username, Email: r.Email, Password: r.Password,
		IsSuperuser: r.Superuser, IsStaff: r.Staff, Force: r.Force})
	if err != nil {
		return nil, adminError(err, r.Username, r.Email)
	}
	return &userResult{User: infoOf(u), Changed: true, Warnings: warnings}, nil
}

// setPassword replaces the hash and ends every session of the user, in one
// transaction.
func (a storeAdmin) setPassword(ctx context.Context, r setPasswordRequest) (*userResult, error) {
	u, err := a.lookup(ctx, r.Username)
	if err != nil {
		return nil, err
	}
	u, warnings, err := a.accounts.SetPassword(ctx, u.ID, r.Password, r.Force)
	if err != nil {
		return nil, adminError(err, r.Username, "")
	}
	return &userResult{User: infoOf(u), Changed: true, Warnings: warnings}, nil
}

// setActive activates or deactivates (which ends the user's sessions).
func (a storeAdmin) setActive(ctx context.Context, r userRequest, active bool) (*userResult, error) {
	u, err := a.lookup(ctx, r.Username)
	if err != nil {
		return nil, err
	}
	u, changed, err := a.accounts.SetActive(ctx, u.ID, active)
	if err != nil {
		return nil, adminError(err, r.Username, "")
	}
	return &userResult{User: infoOf(u), Changed: changed}, nil
}

// deleteUser removes the user; their sessions die with the record.
func (a storeAdmin) deleteUser(ctx context.Context, r userRequest) (*userResult, error) {
	u, err := a.lookup(ctx, r.Username)
	if err != nil {
		return nil, err
	}
	if err := a.accounts.Delete(ctx, u.ID); err != nil {
		return nil, adminError(err, r.Username, "")
	}
	return &userResult{User: infoOf(u), Changed: true}, nil
}

// unban lifts the user's login bans (login_throttle's username ban and
// login_lockout) and clears their failure counts. IP bans stay.
func (a storeAdmin) unban(ctx context.Context, r userRequest) (*userResult, error) {
	if a.unbanUsername == nil {
		return nil, badRequest("unban goes through the running Caddy: use --config (failed logins are counted in its memory, or in its Redis)")
	}
	u, err := a.lookup(ctx, r.Username)
	if err != nil {
		return nil, err
	}
	lifted, err := a.unbanUsername(u.Username)
	if err != nil {
		return nil, &opError{status: http.StatusServiceUnavailable,
			msg: "the login throttle's store (Redis) did not answer: nothing was lifted, try again", cause: err}
	}
	return &userResult{User: infoOf(u), Changed: lifted}, nil
}

func (a storeAdmin) listUsers(ctx context.Context) ([]userListEntry, error) {
	all, err := a.accounts.Store.List(ctx)
	if err != nil {
		return nil, err
	}
	// Every users backend keeps second factors; one that did not would
	// list none.
	factors, err := a.accounts.SecondFactors(ctx)
	if err != nil && !errors.Is(err, accounts.ErrNoFactors) {
		return nil, err
	}
	out := make([]userListEntry, len(all))
	for i := range all {
		out[i] = userListEntry{userInfo: infoOf(&all[i]), SecondFactors: factors[all[i].ID]}
		if out[i].SecondFactors == nil {
			out[i].SecondFactors = []string{}
		}
	}
	return out, nil
}

// resetSecondFactor removes the user's second factors and recovery codes
// and ends their sessions (accounts.ResetSecondFactor). Changed says
// whether there was a factor; Removed lists them.
func (a storeAdmin) resetSecondFactor(ctx context.Context, r userRequest) (*userResult, error) {
	u, err := a.lookup(ctx, r.Username)
	if err != nil {
		return nil, err
	}
	had, u, err := a.accounts.ResetSecondFactor(ctx, u.ID)
	if errors.Is(err, accounts.ErrNoFactors) {
		return nil, badRequest("this users database keeps no second factors")
	}
	if err != nil {
		return nil, adminError(err, r.Username, "")
	}
	a.freeSessions(u.ID) // sessionadmin.go
	return &userResult{User: infoOf(u), Changed: len(had) > 0, Removed: had}, nil
}

// importUsers writes all the users or none (accounts.Import).
func (a storeAdmin) importUsers(ctx context.Context, r importRequest) (*importResult, error) {
	us := make([]*users.User, 0, len(r.Users))
	for _, in := range r.Users {
		u := &users.User{ID: in.ID, Username: in.Username, Email: in.Email, PasswordHash: in.PasswordHash,
			IsActive: in.IsActive, IsSuperuser: in.IsSuperuser, IsStaff: in.IsStaff, DateJoined: in.DateJoined.UTC(),
			Groups: in.Groups}
		if in.LastLogin != nil {
			u.LastLogin = in.LastLogin.UTC()
		}
		us = append(us, u)
	}
	n, skipped, err := a.accounts.Import(ctx, us, r.SkipExisting)
	if err != nil {
		return nil, adminError(err, "", "")
	}
	return &importResult{Imported: n, Skipped: skipped}, nil
}
