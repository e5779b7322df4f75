package caddymodule

import (
	"net/http"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/csrf"
)

func isUnsafe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// checkCSRF applies Django 4's CsrfViewMiddleware rules to an unsafe request
// that carries a live session. It returns the 403 body to send, or nil.
func (s *SessionAuth) checkCSRF(r *http.Request, p *principal) []byte {
	if origin := r.Header.Get("Origin"); origin != "" && origin != s.ownOrigin(r) && !s.trusted.has(origin) {
		return detailError(http.StatusForbidden,
			"CSRF Failed: Origin checking failed - "+origin+" does not match any trusted origins.").body
	}
	if _, ok := cookieValue(r, s.CSRFCookie); !ok {
		return bodyCSRFNoCookie
	}
	if !csrf.Matches(r.Header.Get("X-CSRFToken"), p.csrfSecret) {
		return bodyCSRFBadToken
	}
	return nil
}

// ownOrigin is the origin the request was sent to.
func (s *SessionAuth) ownOrigin(r *http.Request) string {
	if requestIsHTTPS(r) {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}
