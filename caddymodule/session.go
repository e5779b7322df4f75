package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/csrf"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/sessions"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// Keys of what a session holds.
const (
	keyUserID = "uid"
	keyEpoch  = "epoch"
	keyCSRF   = "csrf"
)

// principal is the user behind a live session.
type principal struct {
	user       *users.User
	ctx        context.Context // carries the scs session data
	csrfSecret string
	token      string // the session cookie's value
}

// authResult is what the session cookie of a request amounts to.
type authResult struct {
	who *principal
	// stale is true when a session cookie was sent that is not (or no longer)
	// a live session: the response expires it.
	stale bool
}

// authenticate reads the session named by the request's cookie: one store
// read and one user read. An error means a store failed (503), never that
// the client is anonymous: a transient fault is not a logout.
func (s *SessionAuth) authenticate(r *http.Request) (authResult, error) {
	token, ok := cookieValue(r, s.SessionCookie)
	if !ok || token == "" {
		return authResult{}, nil
	}
	if !plausibleToken(token) {
		return authResult{stale: true}, nil
	}
	ctx, err := s.sessions.Load(r.Context(), token)
	if err != nil {
		if isCorrupt(err) {
			return authResult{stale: true}, nil
		}
		return authResult{}, err
	}
	uid := s.sessions.GetInt64(ctx, keyUserID)
	if uid == 0 {
		return authResult{stale: true}, nil
	}
	u, err := s.users.ByID(r.Context(), uid)
	if errors.Is(err, users.ErrNotFound) {
		return authResult{stale: true}, nil
	}
	if err != nil {
		return authResult{}, err
	}
	if !u.IsActive || u.SessionEpoch != s.sessions.GetInt64(ctx, keyEpoch) {
		return authResult{stale: true}, nil
	}
	return authResult{who: &principal{user: u, ctx: ctx, csrfSecret: s.sessions.GetString(ctx, keyCSRF), token: token}}, nil
}

// sessionID is the opaque id of the principal's session.
func (p *principal) sessionID() string {
	if p == nil || p.token == "" {
		return ""
	}
	return sessionID(p.token)
}

// plausibleToken filters out cookie values scs could never have issued
// (43 characters of unpadded base64url) before they reach the store.
func plausibleToken(t string) bool {
	if len(t) != 43 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// isCorrupt tells a session record that does not decode (treated as no
// session) from a store that failed (treated as unavailable).
func isCorrupt(err error) bool {
	return errors.Is(err, sessions.ErrCorrupt)
}

// startSession ends the request's current session, if any, and commits a
// new one (new token, new CSRF secret) for u, marked if its login proved a
// second factor. It returns the new token and the CSRF secret.
func (s *SessionAuth) startSession(r *http.Request, u *users.User, mfaDone bool) (token, secret string, err error) {
	old, _ := cookieValue(r, s.SessionCookie)
	if !plausibleToken(old) {
		old = ""
	}
	ctx, err := s.sessions.Load(r.Context(), old)
	if err != nil && !isCorrupt(err) {
		return "", "", err
	}
	if err != nil { // undecodable record: start from nothing
		ctx, _ = s.sessions.Load(r.Context(), "")
	}
	if s.sessions.Token(ctx) != "" {
		// A token the client holds is never adopted; its session ends here.
		if err := s.sessions.Destroy(ctx); err != nil {
			return "", "", err
		}
	}
	if err := s.sessions.RenewToken(ctx); err != nil {
		return "", "", err
	}
	secret = csrf.NewSecret()
	s.sessions.Put(ctx, keyUserID, u.ID)
	s.sessions.Put(ctx, keyEpoch, u.SessionEpoch)
	s.sessions.Put(ctx, keyCSRF, secret)
	if mfaDone {
		s.sessions.Put(ctx, keyMFA, true)
	}
	var expiry time.Time
	if token, expiry, err = s.sessions.Commit(ctx); err != nil {
		return "", "", err
	}
	s.indexSession(r, u, token, expiry)
	return token, secret, nil
}

// setSessionCookie and expireSessionCookie write the cookies as Django does.
func (s *SessionAuth) setSessionCookie(w http.ResponseWriter, r *http.Request, token string) {
	s.setCookie(w, r, s.SessionCookie, token, int(time.Duration(s.SessionMaxAge).Seconds()), true)
}

func (s *SessionAuth) expireSessionCookie(w http.ResponseWriter, r *http.Request) {
	s.setCookie(w, r, s.SessionCookie, "", -1, true)
}

func (s *SessionAuth) setCSRFCookie(w http.ResponseWriter, r *http.Request, secret string) {
	s.setCookie(w, r, s.CSRFCookie, csrf.Mask(secret), int(time.Duration(s.CSRFMaxAge).Seconds()), false)
}

func (s *SessionAuth) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int, httpOnly bool) {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		Domain:   s.cookieDomain,
		MaxAge:   maxAge,
		HttpOnly: httpOnly,
		Secure:   s.CookieSecure == cookieSecureAlways || requestIsHTTPS(r),
		SameSite: http.SameSiteLaxMode,
	}
	if maxAge > 0 {
		c.Expires = time.Now().Add(time.Duration(maxAge) * time.Second).UTC()
	} else {
		c.Expires = time.Unix(0, 0).UTC()
	}
	w.Header().Add("Set-Cookie", c.String())
}

// requestIsHTTPS reports whether the client sent r over HTTPS: r came over
// TLS, or through a proxy that Caddy trusts (the server's trusted_proxies)
// and that says so with `X-Forwarded-Proto: https` (its last value, as
// reverse_proxy reads it). From any other peer the header is ignored. The
// cookies' Secure attribute (cookie_secure auto) and the Origin check's
// idea of the request's own origin both go by it.
func requestIsHTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	protos := r.Header.Values("X-Forwarded-Proto")
	if len(protos) == 0 {
		return false
	}
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); !trusted {
		return false
	}
	return strings.EqualFold(strings.TrimSpace(protos[len(protos)-1]), "https")
}
