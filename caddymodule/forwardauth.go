package caddymodule

import (
	"crypto/tls"
	"net/http"
)

// forwardAuth answers `<prefix>/auth/` for another proxy's auth subrequest
// (Caddy's forward_auth, nginx auth_request, Traefik ForwardAuth): 200 with
// the identity headers (and the identity token) for a live session that
// the require rules let through, judged on X-Forwarded-Method and
// X-Forwarded-Uri (unknown: every rule may apply); else the JSON 403 (or,
// for a browser navigation without a session, or with one that may only
// enrol a second factor, and with login_redirect set, 302 to the sign-in
// page).
// The original method and URI come from X-Forwarded-Method/-Uri, the
// original origin from X-Forwarded-Host/-Proto, so unsafe requests and
// WebSocket handshakes are held to the cross-site rules as on the gate.
// Without X-Forwarded-Method the method is unknown: every request is held
// to the Origin rule (the token rule needs the method).
func (s *SessionAuth) forwardAuth(w http.ResponseWriter, r *http.Request) {
	original := r.Header.Get("X-Forwarded-Method")
	method := original
	if method == "" {
		method = r.Method // for the sign-in redirect: the subrequest's GET
	}
	auth, err := s.authenticate(r)
	if err != nil {
		s.storeFailure(w, "reading session", err)
		return
	}
	if auth.who == nil {
		if auth.stale {
			s.expireSessionCookie(w, r)
		}
		if s.wantsLoginRedirect(r, method) {
			s.redirectToLogin(w, r.Header.Get("X-Forwarded-Uri"))
			return
		}
		writeJSON(w, http.StatusForbidden, bodyNotAuthenticated)
		return
	}
	if body := s.crossSiteCheck(originalRequest(r), original, auth.who); body != nil {
		writeJSON(w, http.StatusForbidden, body)
		return
	}
	u := auth.who.user
	// two_factor required: as on the gate, a browser whose session may only
	// enrol goes to the sign-in page, which leads it through enrolment.
	if s.needsEnrolment(auth.who) {
		if s.wantsLoginRedirect(r, method) {
			s.redirectToLogin(w, r.Header.Get("X-Forwarded-Uri"))
			return
		}
		writeJSON(w, http.StatusForbidden, bodyEnrolmentRequired)
		return
	}
	if !s.rules.AllowsTarget(u, original, forwardedTarget(r), r.Header) {
		writeJSON(w, http.StatusForbidden, bodyPermissionDenied)
		return
	}
	if err := s.forwardAuthIdentity(w, r, u); err != nil {
		s.storeFailure(w, "signing the identity token", err)
		return
	}
	s.touchSession(auth.who)
	writeValue(w, http.StatusOK, userJSON{u.ID, u.Username, u.Email})
}

// originalRequest is r as the proxy in front received it, for the Origin
// check: the auth subrequest's own Host is the sidecar's, not the app's.
func originalRequest(r *http.Request) *http.Request {
	host := r.Header.Get("X-Forwarded-Host")
	if host == "" {
		return r
	}
	orig := *r
	orig.Host = host
	orig.TLS = nil
	if r.Header.Get("X-Forwarded-Proto") == "https" {
		orig.TLS = &tls.ConnectionState{}
	}
	return &orig
}
