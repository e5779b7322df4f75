package caddymodule

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"

	"go.uber.org/zap"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// The audit log: every security event as one structured line on its own
// logger, http.handlers.session_auth.audit, so that Caddy's `log` blocks
// can send it elsewhere (`include http.handlers.session_auth.audit`).
// Fields: event, user_id, username, client_ip, user_agent, session_id (the
// opaque one of GET <api>/sessions/, never the token), and per event
// reason or actor. Never a password, hash, token or key.

// Audit events.
const (
	auditRegister               = "register"
	auditLogin                  = "login"
	auditLoginFailed            = "login_failed"
	auditLogout                 = "logout"
	auditLogoutAll              = "logout_all"
	auditPasswordChanged        = "password_changed"
	auditPasswordResetRequested = "password_reset_requested"
	auditPasswordReset          = "password_reset"
	auditEmailVerified          = "email_verified"
	auditSessionEnded           = "session_ended"
	auditUserCreated            = "user_created"
	auditUserChanged            = "user_changed"
	auditUserDeleted            = "user_deleted"
	auditMFAEnabled             = "mfa_enabled"
	auditMFADisabled            = "mfa_disabled"
	auditMFAFailed              = "mfa_failed"
	auditPasskeyAdded           = "passkey_added"
	auditPasskeyRemoved         = "passkey_removed"
	auditRecoveryCodeUsed       = "recovery_code_used"
)

// Reasons of login_failed: those of the log's "login failed" (signals.go)
// and one more.
const reasonUnverified = "unverified" // the right password, e-mail not verified (email_verification mandatory)

// auditLoggerName is the audit logger's name under the handler's logger
// (http.handlers.session_auth.audit; the admin API logs there too).
const auditLoggerName = "audit"

// auditEntry is one event; zero fields are left out.
type auditEntry struct {
	event     string
	user      *users.User
	username  string // when there is no user (a failed login)
	r         *http.Request
	sessionID string
	reason    string
	actor     string
	extra     []zap.Field
}

func (s *SessionAuth) audit(e auditEntry) { writeAudit(s.auditLog, e) }

// writeAudit writes e on an audit logger: a handler's, or the admin API's
// of the same name.
func writeAudit(log *zap.Logger, e auditEntry) {
	if log == nil {
		return
	}
	fields := make([]zap.Field, 0, 9+len(e.extra))
	fields = append(fields, zap.String("event", e.event))
	switch {
	case e.user != nil:
		fields = append(fields, zap.Int64("user_id", e.user.ID), zap.String("username", e.user.Username))
	case e.username != "":
		fields = append(fields, zap.String("username", loggableUsername(e.username)))
	}
	if e.r != nil {
		fields = append(fields, zap.String("client_ip", clientIP(e.r)), zap.String("user_agent", userAgent(e.r)))
	}
	if e.sessionID != "" {
		fields = append(fields, zap.String("session_id", e.sessionID))
	}
	if e.reason != "" {
		fields = append(fields, zap.String("reason", e.reason))
	}
	if e.actor != "" {
		fields = append(fields, zap.String("actor", e.actor))
	}
	fields = append(fields, e.extra...)
	log.Info(e.event, fields...)
}

// maxUserAgent bounds the user agent kept in the log and in a session.
const maxUserAgent = 256

func userAgent(r *http.Request) string {
	ua := r.UserAgent()
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
	}
	return ua
}

// sessionID is the opaque id of the session whose token is token: derived
// from the key the store keeps it under (scs: base64url(SHA-256(token))),
// so that it names the session without letting anyone use it.
func sessionID(token string) string {
	if token == "" {
		return ""
	}
	return sessionIDFromKey(storeKey(token))
}

// storeKey is the key scs keeps the session under (HashTokenInStore).
func storeKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func sessionIDFromKey(key string) string {
	sum := sha256.Sum256([]byte("caddy-session-auth session id\x00" + key))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}
