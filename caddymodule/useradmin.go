package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/djangoimport"
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
	listUsers(ctx context.Context) ([]userInfo, error)
	importUsers(ctx context.Context, r importRequest) (*importResult, error)
	unban(ctx context.Context, r userRequest) (*userResult, error)
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
}

func importUserOf(u *users.User) importUser {
	info := infoOf(u)
	return importUser{ID: u.ID, Username: u.Username, Email: u.Email, PasswordHash: u.PasswordHash,
		IsActive: u.IsActive, IsSuperuser: u.IsSuperuser, IsStaff: u.IsStaff,
		DateJoined: info.DateJoined, LastLogin: info.LastLogin}
}

type importResult struct {
	Imported int `json:"imported"`
	Skipped  int `json:"skipped"` // already present with the same id and username
}

// opError is a refused request; status is what the admin API answers.
type opError struct {
	status int
	msg    string
}

func (e *opError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &opError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func notFound(username string) error {
	return &opError{http.StatusNotFound, fmt.Sprintf("no user named %q", username)}
}

func conflict(format string, args ...any) error {
	return &opError{http.StatusConflict, fmt.Sprintf(format, args...)}
}

// storeAdmin applies userAdmin requests to a users store. unbanUsername,
// set behind the admin API, lifts a username's login bans in the running
// handlers' throttle stores (nil with --db: Caddy is not running).
type storeAdmin struct {
	store         users.Store
	hasher        *passwords.Hasher
	unbanUsername func(username string) (lifted bool, err error)
}

var _ userAdmin = storeAdmin{}

// checkUsername trims, normalises and validates a new username as
// registration does.
func checkUsername(raw string) (string, error) {
	name := normalizeUsername(strings.TrimSpace(raw))
	if name == "" {
		return "", badRequest("username: %s", msgBlank)
	}
	if problems := usernameProblems(name); len(problems) > 0 {
		return "", badRequest("username %q: %s", name, strings.Join(problems, " "))
	}
	return name, nil
}

// checkEmail validates an email as registration does and normalises it.
func checkEmail(raw string) (string, error) {
	email := strings.TrimSpace(raw)
	if email == "" {
		return "", badRequest("email: %s", msgBlank)
	}
	if !validEmail(email) {
		return "", badRequest("email %q: %s", email, msgEmailInvalid)
	}
	return normalizeEmail(email), nil
}

// checkPassword runs registration's validators. With force their messages
// become warnings; an empty password is refused regardless.
func checkPassword(password, username, email string, force bool) (warnings []string, err error) {
	if password == "" {
		return nil, badRequest("password: %s", msgBlank)
	}
	if strings.TrimSpace(password) != password {
		// The API trims password fields as DRF does, so such a password
		// could never be typed in at login.
		return nil, badRequest("password: leading or trailing whitespace is not allowed (the login API trims it)")
	}
	problems := passwords.Validate(password, map[string]string{"username": username, "email": email})
	if len(problems) == 0 {
		return nil, nil
	}
	if !force {
		return nil, badRequest("password refused: %s (--force to set it anyway)", strings.Join(problems, " "))
	}
	return problems, nil
}

func (a storeAdmin) lookup(ctx context.Context, raw string) (*users.User, error) {
	name := normalizeUsername(strings.TrimSpace(raw))
	if name == "" {
		return nil, badRequest("username: %s", msgBlank)
	}
	u, err := a.store.ByUsername(ctx, name)
	if errors.Is(err, users.ErrNotFound) {
		return nil, notFound(name)
	}
	return u, err
}

func (a storeAdmin) createUser(ctx context.Context, r createUserRequest) (*userResult, error) {
	username, err := checkUsername(r.Username)
	if err != nil {
		return nil, err
	}
	email, err := checkEmail(r.Email)
	if err != nil {
		return nil, err
	}
	warnings, err := checkPassword(r.Password, username, email, r.Force)
	if err != nil {
		return nil, err
	}
	if _, err := a.store.ByUsername(ctx, username); err == nil {
		return nil, conflict("username %q: %s", username, msgUsernameTaken)
	} else if !errors.Is(err, users.ErrNotFound) {
		return nil, err
	}
	hash, err := a.hasher.Hash(ctx, r.Password)
	if err != nil {
		return nil, err
	}
	u := &users.User{
		Username:     username,
		Email:        email,
		PasswordHash: hash,
		IsActive:     true,
		IsSuperuser:  r.Superuser,
		IsStaff:      r.Staff || r.Superuser,
	}
	if err := a.store.Create(ctx, u); err != nil {
		if errors.Is(err, users.ErrUsernameTaken) {
			return nil, conflict("username %q: %s", username, msgUsernameTaken)
		}
		return nil, err
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
	warnings, err := checkPassword(r.Password, u.Username, u.Email, r.Force)
	if err != nil {
		return nil, err
	}
	hash, err := a.hasher.Hash(ctx, r.Password)
	if err != nil {
		return nil, err
	}
	u, err = a.store.Update(ctx, u.ID, func(u *users.User) error {
		u.PasswordHash = hash
		u.SessionEpoch++
		return nil
	})
	if errors.Is(err, users.ErrNotFound) {
		return nil, notFound(r.Username)
	}
	if err != nil {
		return nil, err
	}
	return &userResult{User: infoOf(u), Changed: true, Warnings: warnings}, nil
}

// setActive activates or deactivates; deactivating also ends every session
// of the user (the gate refuses inactive users anyway, this makes sure a
// later activation does not bring the old sessions back).
func (a storeAdmin) setActive(ctx context.Context, r userRequest, active bool) (*userResult, error) {
	u, err := a.lookup(ctx, r.Username)
	if err != nil {
		return nil, err
	}
	changed := false
	u, err = a.store.Update(ctx, u.ID, func(u *users.User) error {
		changed = u.IsActive != active
		u.IsActive = active
		if !active {
			u.SessionEpoch++
		}
		return nil
	})
	if errors.Is(err, users.ErrNotFound) {
		return nil, notFound(r.Username)
	}
	if err != nil {
		return nil, err
	}
	return &userResult{User: infoOf(u), Changed: changed}, nil
}

// deleteUser removes the user; their sessions die with the record (the gate
// finds no user for them), and ids are never handed out again by Create.
func (a storeAdmin) deleteUser(ctx context.Context, r userRequest) (*userResult, error) {
	u, err := a.lookup(ctx, r.Username)
	if err != nil {
		return nil, err
	}
	if err := a.store.Delete(ctx, u.ID); err != nil {
		if errors.Is(err, users.ErrNotFound) {
			return nil, notFound(r.Username)
		}
		return nil, err
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
		return nil, &opError{http.StatusServiceUnavailable, "the login throttle's store did not answer: " + err.Error()}
	}
	return &userResult{User: infoOf(u), Changed: lifted}, nil
}

func (a storeAdmin) listUsers(ctx context.Context) ([]userInfo, error) {
	all, err := a.store.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]userInfo, len(all))
	for i := range all {
		out[i] = infoOf(&all[i])
	}
	return out, nil
}

// importUsers writes all the users or none. A user whose id or username
// (regardless of case) is already taken is a conflict that aborts the
// import; with SkipExisting, a user already present with the same id and
// username is skipped instead (so re-running an import is a no-op), but any
// other clash still aborts: it would be a different account.
func (a storeAdmin) importUsers(ctx context.Context, r importRequest) (*importResult, error) {
	var problems []string
	us := make([]*users.User, 0, len(r.Users))
	for _, in := range r.Users {
		name := normalizeUsername(in.Username)
		if in.ID <= 0 {
			problems = append(problems, fmt.Sprintf("id %d of %q is not positive", in.ID, name))
		}
		if name == "" {
			problems = append(problems, fmt.Sprintf("id %d: empty username", in.ID))
		} else if msgs := usernameProblems(name); len(msgs) > 0 {
			problems = append(problems, fmt.Sprintf("id %d: username %q: %s", in.ID, name, strings.Join(msgs, " ")))
		}
		u := &users.User{ID: in.ID, Username: name, Email: in.Email, PasswordHash: in.PasswordHash,
			IsActive: in.IsActive, IsSuperuser: in.IsSuperuser, IsStaff: in.IsStaff, DateJoined: in.DateJoined.UTC()}
		if in.LastLogin != nil {
			u.LastLogin = in.LastLogin.UTC()
		}
		us = append(us, u)
	}
	if len(problems) > 0 {
		return nil, badRequest("import refused, nothing written:%s", djangoimport.Indented(problems))
	}

	existing, err := a.store.List(ctx)
	if err != nil {
		return nil, err
	}
	nameOfID := make(map[int64]string, len(existing))
	idOfKey := make(map[string]int64, len(existing))
	for _, u := range existing {
		nameOfID[u.ID] = u.Username
		idOfKey[users.UsernameKey(u.Username)] = u.ID
	}
	var conflicts []string
	var create []*users.User
	sameUser, skipped := 0, 0
	for _, u := range us {
		holder, idTaken := nameOfID[u.ID]
		owner, nameTaken := idOfKey[users.UsernameKey(u.Username)]
		switch {
		case !idTaken && !nameTaken:
			create = append(create, u)
		case idTaken && nameTaken && owner == u.ID:
			if r.SkipExisting {
				skipped++
				continue
			}
			sameUser++
			conflicts = append(conflicts, fmt.Sprintf("id %d %q is already there", u.ID, u.Username))
		case idTaken:
			conflicts = append(conflicts, fmt.Sprintf("id %d %q: id %d is user %q here", u.ID, u.Username, u.ID, holder))
		default:
			conflicts = append(conflicts, fmt.Sprintf("id %d %q: the username is taken (regardless of case) by user %d %q",
				u.ID, u.Username, owner, nameOfID[owner]))
		}
	}
	if len(conflicts) > 0 {
		hint := ""
		if sameUser > 0 {
			hint = " (users already imported with the same id and username are skipped with --skip-existing)"
		}
		return nil, conflict("import aborted, nothing written: %d conflict(s) with existing users%s:%s",
			len(conflicts), hint, djangoimport.Indented(conflicts))
	}
	for _, u := range create {
		// Sessions record the user id and epoch. An imported id may be that
		// of a deleted user whose session records linger until they
		// expire: a fresh epoch makes sure they never match.
		u.SessionEpoch = rand.Int64N(1<<53) + 1
	}
	n, err := a.store.CreateMany(ctx, create, false)
	if err != nil {
		if errors.Is(err, users.ErrIDTaken) || errors.Is(err, users.ErrUsernameTaken) {
			// Lost a race with a registration; the transaction wrote nothing.
			return nil, conflict("import aborted, nothing written: %v", err)
		}
		return nil, err
	}
	return &importResult{Imported: n, Skipped: skipped}, nil
}
