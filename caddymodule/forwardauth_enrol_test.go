package caddymodule_test

import (
	"strings"
	"testing"
)

// Under `two_factor required`, a browser navigation in a session that may
// only enrol a second factor is sent to the sign-in page (which leads it
// through enrolment) by forward-auth as by the gate; other requests get
// the JSON 403.
func TestEnrolmentOnlyBrowserSentToSignIn(t *testing.T) {
	s := startCustomSite(t, siteConfig{extra: throttlesOff + "two_factor required group:admins\nlogin_redirect /signin\n"})
	s.newMember(t, "ada", false, false, "admins")
	r := s.do(t, req{method: "POST", path: "/api/login/", body: jsonBody(map[string]string{"username": "ada", "password": strongPassword})})
	limited := sessionOf(t, r)
	html := map[string]string{"Accept": "text/html"}
	for _, q := range []req{
		{method: "GET", path: "/app", headers: html},
		{method: "GET", path: "/api/auth/", headers: map[string]string{"Accept": "text/html", "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/app"}},
	} {
		q.session = limited
		r := s.do(t, q)
		if loc := r.Header.Get("Location"); r.StatusCode != 302 || !strings.HasPrefix(loc, "/signin?next=%2Fapp") {
			t.Errorf("browser GET %s in an enrolment-only session: %d Location %q, want 302 to /signin?next=%%2Fapp", q.path, r.StatusCode, loc)
		}
	}
	const refused = `{"detail":"Two-factor enrolment required."}`
	for _, q := range []req{{method: "GET", path: "/app"}, {method: "GET", path: "/api/auth/"}} {
		q.session = limited
		if r := s.do(t, q); r.StatusCode != 403 || string(r.body) != refused {
			t.Errorf("GET %s (not a browser) in an enrolment-only session: %d %s", q.path, r.StatusCode, r.body)
		}
	}
}
