package caddymodule

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/idtoken"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/rules"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// bodyPermissionDenied is DRF's answer when a logged-in user may not do
// something (a require rule refused them).
var bodyPermissionDenied = []byte(`{"detail":"You do not have permission to perform this action."}`)

// provisionRules compiles Rules (the require lines) in order.
func (s *SessionAuth) provisionRules() error {
	set, err := rules.Compile(s.Rules)
	if err != nil {
		return fmt.Errorf("require: %v", err)
	}
	if set.Len() > 0 {
		s.rules = set
	}
	return nil
}

// permitted reports whether the rules let u make the gated request r.
func (s *SessionAuth) permitted(r *http.Request, u *users.User) bool {
	return s.rules.Allows(u, r.Method, r.URL, r.Header)
}

// forwardedTarget is the original request's URI that a proxy in front
// sends to forward-auth (X-Forwarded-Uri), or nil if it sends none that
// parses: then every rule may apply.
func forwardedTarget(r *http.Request) *url.URL {
	v := r.Header.Get("X-Forwarded-Uri")
	if v == "" {
		return nil
	}
	u, err := url.ParseRequestURI(v)
	if err != nil {
		return nil
	}
	return u
}

// forwardedOrigin is the original request's origin, for the token's
// default issuer on forward-auth answers.
func forwardedOrigin(r *http.Request) idtoken.Origin {
	host := r.Header.Get("X-Forwarded-Host")
	if host == "" {
		return idtoken.Origin{HTTPS: requestIsHTTPS(r), Host: r.Host}
	}
	return idtoken.Origin{HTTPS: strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"), Host: host}
}

// forwardAuthIdentity writes the identity headers (and token) of a
// forward-auth answer; an error is a token that could not be signed.
func (s *SessionAuth) forwardAuthIdentity(w http.ResponseWriter, r *http.Request, u *users.User) error {
	token := ""
	if s.token != nil {
		var origin idtoken.Origin
		if s.token.signer.Issuer == "" {
			origin = forwardedOrigin(r)
		}
		var err error
		if token, err = s.token.tokenFor(u, origin); err != nil {
			return err
		}
	}
	s.strip.setIdentity(w.Header(), strconv.FormatInt(u.ID, 10), strings.Join(u.Groups, ","), token, u)
	return nil
}
