package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"

	"go.uber.org/zap"
)

// Revocation: a password change ends every other session of the user, and
// logout/all ends all of them. Both bump the user's SessionEpoch, which every
// request checks (authenticate), so no session store is scanned.

// Django's PasswordChangeForm messages.
const (
	msgOldPasswordWrong   = "Your old password was entered incorrectly. Please enter it again."
	msgPasswordWrong      = "Your password was entered incorrectly. Please enter it again."
	msgNewPasswordsDiffer = "The two password fields didn’t match."
)

var (
	bodyPasswordChanged = []byte(`{"detail":"New password has been saved."}`)
	bodyLogoutAll       = []byte(`{"message":"Logged out of all sessions"}`)
)

// checkNewPassword adds to errs, under new_password2 as Django's
// SetPasswordForm and PasswordChangeForm do, what is wrong with a new
// password typed twice for u: the two differ, or the validators refuse it.
func checkNewPassword(errs *accounts.FieldErrors, p1, p2 string, u *users.User) {
	if p1 != p2 {
		errs.Add("new_password2", msgNewPasswordsDiffer)
		return
	}
	for _, msg := range accounts.CheckPassword(p2, u.Username, u.Email) {
		errs.Add("new_password2", msg)
	}
}

// currentPassword checks password against u's, the signed-in user's, as
// a login: throttled and counted alike, checked before any hashing (a
// wrong one is a failed login; a right one clears nothing). A wrong one
// adds a message to errs under field. It returns false if it
// answered: 429, or 503 when no hashing slot came in time (or the client
// gave up), which tells nothing of the password and is not counted.
func (s *SessionAuth) currentPassword(w http.ResponseWriter, r *http.Request, u *users.User, password, field string, errs *accounts.FieldErrors) bool {
	att, throttled := s.loginThrottled(w, r, u.Username)
	if throttled != "" {
		return false
	}
	hctx, cancel := hashContext(r.Context())
	match, err := s.accounts.PasswordMatches(hctx, u, password)
	cancel()
	switch {
	case err != nil:
		s.loginCanceled(att)
		s.storeFailure(w, "checking credentials", err)
		return false
	case !match:
		s.loginFailed(att)
		msg := msgPasswordWrong
		if field == "old_password" {
			msg = msgOldPasswordWrong // Django's PasswordChangeForm's words
		}
		errs.Add(field, msg)
	default:
		// Right: the attempt is given back, but the username's failures
		// are not cleared (only a completed login clears them), so that
		// wrong second-factor codes between two right passwords add up.
		s.loginCanceled(att)
	}
	return true
}

// changePassword serves POST <prefix>/password/ with old_password,
// new_password and new_password2, as Django's PasswordChangeForm checks
// them. On success the user's other sessions end; this one goes on under a
// new token (the CSRF secret is kept, as Django's update_session_auth_hash
// keeps it).
func (s *SessionAuth) changePassword(w http.ResponseWriter, r *http.Request, auth authResult) {
	data, derr := readData(w, r, s.MaxBodyBytes)
	if derr != nil {
		writeJSON(w, derr.status, derr.body)
		return
	}
	u := auth.who.user
	var errs accounts.FieldErrors
	if old, ok := stringField(data, "old_password", &errs); ok && !s.currentPassword(w, r, u, old, "old_password", &errs) {
		return
	}
	newPassword, ok1 := stringField(data, "new_password", &errs)
	newPassword2, ok2 := stringField(data, "new_password2", &errs)
	if ok1 && ok2 {
		checkNewPassword(&errs, newPassword, newPassword2, u)
	}
	if !errs.Empty() {
		writeValue(w, http.StatusBadRequest, &errs)
		return
	}

	// The session that goes on is committed under the epoch about to be
	// set (not valid until the user record moves there); the password
	// change then ends every other session.
	var fresh context.Context
	var token string
	var expiry time.Time
	hctx, cancel := hashContext(r.Context())
	_, err := s.accounts.ChangePassword(hctx, u, newPassword, func(epoch int64) error {
		var err error
		if fresh, err = s.sessions.Load(r.Context(), ""); err != nil {
			return err
		}
		s.sessions.Put(fresh, keyUserID, u.ID)
		s.sessions.Put(fresh, keyEpoch, epoch)
		s.sessions.Put(fresh, keyCSRF, auth.who.csrfSecret)
		if s.sessions.GetBool(auth.who.ctx, keyMFA) {
			s.sessions.Put(fresh, keyMFA, true) // the second factor proved at login still holds
		}
		token, expiry, err = s.sessions.Commit(fresh)
		return err
	})
	cancel()
	if err != nil {
		if token != "" {
			if derr := s.sessions.Destroy(fresh); derr != nil {
				s.logger.Warn("could not delete an unused session", zap.Error(derr))
			}
		}
		if errors.Is(err, accounts.ErrSessionsEnded) {
			s.expireSessionCookie(w, r)
			writeJSON(w, http.StatusForbidden, bodyNotAuthenticated)
			return
		}
		s.storeFailure(w, "changing password", err) // also no hashing slot in time: 503
		return
	}
	// The old session is dead by its epoch already; deleting it only
	// frees the store early.
	if err := s.sessions.Destroy(auth.who.ctx); err != nil {
		s.logger.Warn("could not delete the replaced session", zap.Error(err))
	}
	s.indexSession(r, u, token, expiry)
	s.forgetSessions(u.ID, token)
	s.setSessionCookie(w, r, token)
	s.logger.Info("password changed; other sessions ended", zap.Int64("user_id", u.ID),
		zap.String("username", u.Username), zap.String("client_ip", clientIP(r)))
	s.audit(auditEntry{event: auditPasswordChanged, user: u, r: r, sessionID: sessionID(token)})
	writeJSON(w, http.StatusOK, bodyPasswordChanged)
}

// logoutAll serves POST <prefix>/logout/all/: every session of the user
// ends, this one included.
func (s *SessionAuth) logoutAll(w http.ResponseWriter, r *http.Request, auth authResult) {
	u := auth.who.user
	if _, err := s.accounts.EndSessions(r.Context(), u.ID); err != nil && !errors.Is(err, accounts.ErrNotFound) {
		s.storeFailure(w, "ending all sessions", err)
		return
	}
	if err := s.sessions.Destroy(auth.who.ctx); err != nil {
		s.logger.Warn("could not delete the ended session", zap.Error(err))
	}
	s.forgetSessions(u.ID, "")
	s.expireSessionCookie(w, r)
	s.logger.Info("logout from all sessions", zap.Int64("user_id", u.ID), zap.String("username", u.Username),
		zap.String("client_ip", clientIP(r)))
	s.audit(auditEntry{event: auditLogoutAll, user: u, r: r, sessionID: auth.who.sessionID()})
	writeJSON(w, http.StatusOK, bodyLogoutAll)
}
