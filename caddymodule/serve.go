package caddymodule

import (
	"net"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// ServeHTTP strips spoofed identity headers, answers CORS preflights, serves
// the API's own routes and gates everything else.
func (s *SessionAuth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	s.inflight.Add(1) // a reload's Cleanup waits for these (drain.go)
	defer s.inflight.Add(-1)
	s.strip.stripIdentity(r.Header)
	s.strip.stripTrailers(r)
	if isPreflight(r) {
		s.answerPreflight(w, r)
		return nil
	}
	w = s.withCORS(w, r)
	if ep, ok := s.routes[r.URL.Path]; ok {
		if ep.raw != nil {
			ep.raw(s, w, r)
		} else {
			s.serveAPI(w, r, ep)
		}
		return nil
	}
	if _, ok := s.sessionItemPath(r.URL.Path); ok {
		s.serveAPI(w, r, sessionItem)
		return nil
	}
	if _, ok := s.passkeyItemPath(r.URL.Path); ok {
		s.serveAPI(w, r, passkeyItem)
		return nil
	}
	if _, ok := s.redirects[r.URL.Path]; ok {
		redirectSlash(w, r)
		return nil
	}
	return s.gate(w, r, next)
}

// apiItemID returns the id of an <api><collection><id>/ path (the last
// slash optional). ServeHTTP asks it of every request, so the prefix is
// matched in two steps rather than built (no concatenation, no allocation
// for a long api_prefix).
func (s *SessionAuth) apiItemID(path, collection string) (string, bool) {
	rest, ok := strings.CutPrefix(path, s.APIPrefix)
	if !ok {
		return "", false
	}
	if rest, ok = strings.CutPrefix(rest, collection); !ok {
		return "", false
	}
	id := strings.TrimSuffix(rest, "/")
	if id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}

// redirectSlash sends a slash-less API path to its slashed form with 308,
// which keeps the method and body (Django's APPEND_SLASH uses 301).
func redirectSlash(w http.ResponseWriter, r *http.Request) {
	target := r.URL.EscapedPath() + "/"
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	w.Header().Set("Location", target)
	w.Header()["Content-Length"] = valZero
	w.WriteHeader(http.StatusPermanentRedirect)
}

// gate lets a request with a live session through to next, with the user's
// identity; anything else is refused.
func (s *SessionAuth) gate(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if s.isPublic(r) {
		s.counters.gatePublic.Inc()
		dropCookie(r.Header, s.SessionCookie)
		return next.ServeHTTP(s.guardCookies(w, r), r)
	}
	auth, err := s.authenticate(r)
	if err != nil {
		s.counters.gateError.Inc()
		s.storeFailure(w, "reading session", err)
		return nil
	}
	if auth.who == nil {
		if auth.stale {
			s.expireSessionCookie(w, r)
		}
		if s.wantsLoginRedirect(r, r.Method) {
			s.counters.gateRedirected.Inc()
			s.redirectToLogin(w, r.URL.RequestURI())
			return nil
		}
		s.counters.gateDenied.Inc()
		writeJSON(w, http.StatusForbidden, bodyNotAuthenticated)
		return nil
	}
	// Unsafe methods and WebSocket handshakes: the Origin rule; unsafe
	// methods: the CSRF token too (csrfcheck.go).
	if body := s.crossSiteCheck(r, r.Method, auth.who); body != nil {
		s.counters.gateCSRF.Inc()
		writeJSON(w, http.StatusForbidden, body)
		return nil
	}
	// The require rules (permissions.go): a logged-in user who may not is
	// refused, browser or not (no sign-in redirect: they are signed in).
	u := auth.who.user
	// two_factor required: a session whose login proved no second factor
	// may only enrol one (browsers are sent to the sign-in page, which
	// leads them through it).
	if s.needsEnrolment(auth.who) {
		if s.wantsLoginRedirect(r, r.Method) {
			s.counters.gateRedirected.Inc()
			s.redirectToLogin(w, r.URL.RequestURI())
			return nil
		}
		s.counters.gateForbidden.Inc()
		writeJSON(w, http.StatusForbidden, bodyEnrolmentRequired)
		return nil
	}
	if !s.permitted(r, u) {
		s.counters.gateForbidden.Inc()
		writeJSON(w, http.StatusForbidden, bodyPermissionDenied)
		return nil
	}
	token, err := s.identityToken(r, u)
	if err != nil {
		s.counters.gateError.Inc()
		s.storeFailure(w, "signing the identity token", err)
		return nil
	}
	s.counters.gateAllowed.Inc()
	s.touchSession(auth.who)
	s.setIdentity(r, u, token)
	dropCookie(r.Header, s.SessionCookie)
	return next.ServeHTTP(s.guardCookies(w, r), r)
}

// clientIP is the client address as Caddy determined it (honouring
// trusted_proxies), for logs.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
