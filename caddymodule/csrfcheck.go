package caddymodule

import (
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/csrf"
)

// The cross-site rules, in one place for the API, the gate, WebSocket
// upgrades and forward-auth:
//
//   - The Origin rule: a request whose Origin is neither its own origin,
//     a CORS origin nor a csrf_trusted origin is refused, and so is one
//     without Origin that a browser marked `Sec-Fetch-Site: cross-site`.
//     `Origin: null` (sandboxed frames, data: URLs, some redirects) is
//     cross-site. A request with neither header (curl, scripts) passes.
//     It applies to every unsafe request, with or without a session (a
//     cross-site form must not log a browser in as someone else), and to
//     every WebSocket handshake (the browser sends the cookies and Origin,
//     and no page script can add a CSRF token to it).
//   - The token rule (Django's): an unsafe request that carries a live
//     session needs the CSRF cookie and a matching X-CSRFToken.

// crossSiteCheck is what the API, the gate and forward-auth call: method
// is the request's method (for forward-auth, the original one; "" when the
// proxy did not say), r the request as its client sent it, and p the
// session's principal or nil. It returns the 403 body to send, or nil.
func (s *SessionAuth) crossSiteCheck(r *http.Request, method string, p *principal) []byte {
	unsafe := method == "" || isUnsafe(method) // unknown: assume the worst
	ws := isWebSocket(r)
	if unsafe || ws {
		if body := s.checkOrigin(r); body != nil {
			return body
		}
	}
	// The token rule needs the method; an extended CONNECT (a WebSocket
	// handshake over HTTP/2 or 3) cannot carry a token, like an upgrade.
	if p != nil && unsafe && method != "" && !(method == http.MethodConnect && ws) {
		return s.checkToken(r, p)
	}
	return nil
}

func isUnsafe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// isWebSocket reports a WebSocket handshake: an HTTP/1.1 upgrade, or an
// HTTP/2 or HTTP/3 extended CONNECT (RFC 8441, RFC 9220), which Caddy's
// reverse_proxy turns into an upgrade. Forward-auth proxies drop the
// hop-by-hop Upgrade header from the auth request (Traefik, nginx) or keep
// it without Connection (Caddy), so Upgrade alone counts, and so does
// Sec-WebSocket-Version, which every client handshake carries (RFC 6455
// and 8441), which proxies pass on, and which no page script can set.
func isWebSocket(r *http.Request) bool {
	if up, ok := r.Header["Upgrade"]; ok && httpguts.HeaderValuesContainsToken(up, "websocket") {
		return true
	}
	if _, ok := r.Header["Sec-Websocket-Version"]; ok {
		return true
	}
	if r.Method == http.MethodConnect && r.ProtoMajor >= 2 {
		return strings.EqualFold(r.Header.Get(":protocol"), "websocket") || strings.EqualFold(r.Proto, "websocket")
	}
	return false
}

// bodyCrossSiteNoOrigin refuses a request that a browser marked cross-site
// but sent without Origin (an extension or a proxy stripped it): there is
// no origin to name, so the message names what was seen.
var bodyCrossSiteNoOrigin = detailError(http.StatusForbidden,
	"CSRF Failed: Origin checking failed - (cross-site, no Origin header) does not match any trusted origins.").body

// checkOrigin applies the Origin rule to r (as its client sent it).
func (s *SessionAuth) checkOrigin(r *http.Request) []byte {
	origin := r.Header.Get("Origin")
	if origin == "" {
		if strings.EqualFold(r.Header.Get("Sec-Fetch-Site"), "cross-site") {
			return bodyCrossSiteNoOrigin
		}
		return nil
	}
	if origin != "null" && (sameOrigin(origin, r) || s.trusted.has(origin)) {
		return nil
	}
	return detailError(http.StatusForbidden,
		"CSRF Failed: Origin checking failed - "+origin+" does not match any trusted origins.").body
}

// checkToken applies Django's token rule to an unsafe request with a live
// session.
func (s *SessionAuth) checkToken(r *http.Request, p *principal) []byte {
	if _, ok := cookieValue(r, s.CSRFCookie); !ok {
		return bodyCSRFNoCookie
	}
	if !csrf.Matches(r.Header.Get("X-CSRFToken"), p.csrfSecret) {
		return bodyCSRFBadToken
	}
	return nil
}

// sameOrigin reports whether origin is the one the request was sent to
// (scheme from TLS, host and port from Host), ignoring case.
func sameOrigin(origin string, r *http.Request) bool {
	scheme := "http://"
	if requestIsHTTPS(r) {
		scheme = "https://"
	}
	return len(origin) == len(scheme)+len(r.Host) &&
		strings.EqualFold(origin[:len(scheme)], scheme) && strings.EqualFold(origin[len(scheme):], r.Host)
}
