package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/mfa"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/rules"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// TwoFactor configures the second factor (TOTP and passkeys). Every user
// may add one (policy optional, the default); with policy required, the
// users it names must: after a right password, one who has none gets a
// session limited to enrolment.
type TwoFactor struct {
	// Policy is "optional" (default) or "required".
	Policy string `json:"policy,omitempty"`
	// Who, with policy required, names who must have a second factor,
	// as a require rule does: "staff", "superuser", "group:<name>" (any
	// of them). None: every user.
	Who []string `json:"who,omitempty"`
	// PasskeyRPID is the WebAuthn relying party id (a domain: passkeys
	// made for it work on it and its subdomains). Default: the host of
	// each request, so passkeys made on one host name do not work on
	// another.
	PasskeyRPID string `json:"passkey_rp_id,omitempty"`
	// PasskeyOrigins are the origins (https://host[:port]) passkey
	// ceremonies are accepted from when PasskeyRPID is set. Default:
	// the request's own origin, if its host is PasskeyRPID or a
	// subdomain of it.
	PasskeyOrigins []string `json:"passkey_origins,omitempty"`
	// TOTPIssuer names the site in authenticator apps. Default:
	// login_page_title, else the request's host.
	TOTPIssuer string `json:"totp_issuer,omitempty"`
}

// Values of TwoFactor.Policy.
const (
	twoFactorOptional = "optional"
	twoFactorRequired = "required"
)

// keyMFA marks a session whose login (or an enrolment made in it) proved
// a second factor.
const keyMFA = "mfa"

// Bodies of the second factor's answers.
var (
	bodyEnrolmentRequired = detailError(http.StatusForbidden, "Two-factor enrolment required.").body
	bodyNoPendingLogin    = detailError(http.StatusBadRequest, "No sign-in is waiting for a second factor: log in with your password again.").body
	bodyTOTPEnabled       = detailError(http.StatusBadRequest, "TOTP is already enabled.").body
	bodyTOTPNotEnabled    = detailError(http.StatusBadRequest, "TOTP is not enabled.").body
	bodyNoTOTPSetup       = detailError(http.StatusBadRequest, "Start TOTP setup first.").body
	bodyFactorRequired    = detailError(http.StatusBadRequest, "Your account must keep a second factor.").body
	bodyPasskeyFailed     = detailError(http.StatusBadRequest, "Passkey verification failed.").body
	bodyPasskeyNoCeremony = detailError(http.StatusBadRequest, "No passkey request is waiting: start again.").body
	bodyPasskeysHere      = detailError(http.StatusBadRequest, "Passkeys are not available at this address.").body
	bodyTooManyPasskeys   = detailError(http.StatusBadRequest, fmt.Sprintf("You have %d passkeys already: remove one first.", mfa.MaxPasskeys)).body
	bodyNoSuchPasskey     = []byte(`{"detail":"Not found."}`)
	bodyNoPasskeyHere     = detailError(http.StatusBadRequest, "You have no passkey for this site: use a code.").body
	bodyNoFactorYet       = detailError(http.StatusBadRequest, "Add a second factor first.").body
	bodyInvalidCode       = []byte(`{"code":["Invalid code."]}`)
	bodySignInAgain       = detailError(http.StatusForbidden, "Sign in again with your second factor.").body
)

// stateTTL is how long a password's pending second step, or a begun
// passkey ceremony, stays valid.
const stateTTL = 5 * time.Minute

// twoFactorState is the handler's second-factor machinery.
type twoFactorState struct {
	who      *rules.Who // nil: everyone (with policy required)
	required bool
	factors  users.Factors
	secrets  users.Secrets

	mu  sync.Mutex
	svc *mfa.Service // made on first use (its key is read from the users backend)
}

// checkTwoFactor checks the two_factor settings (Validate and Provision).
func (s *SessionAuth) checkTwoFactor() error {
	tf := s.TwoFactor
	if tf == nil {
		return nil
	}
	if err := checkTwoFactorPolicy(tf); err != nil {
		return err
	}
	if tf.PasskeyRPID != "" {
		if strings.ContainsAny(tf.PasskeyRPID, ":/ ") || net.ParseIP(tf.PasskeyRPID) != nil || !strings.Contains(tf.PasskeyRPID, ".") && tf.PasskeyRPID != "localhost" {
			return fmt.Errorf("passkey_rp_id: %q is not a domain name (e.g. example.com)", tf.PasskeyRPID)
		}
	} else if len(tf.PasskeyOrigins) > 0 {
		return fmt.Errorf("passkey_origins needs passkey_rp_id")
	}
	for _, o := range tf.PasskeyOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return fmt.Errorf("passkey_origins: %q is not an origin (https://host[:port])", o)
		}
		if h := u.Hostname(); h != tf.PasskeyRPID && !strings.HasSuffix(h, "."+tf.PasskeyRPID) {
			return fmt.Errorf("passkey_origins: %q is not on passkey_rp_id %s or a subdomain of it", o, tf.PasskeyRPID)
		}
	}
	return nil
}

// checkTwoFactorPolicy checks two_factor's policy and who.
func checkTwoFactorPolicy(tf *TwoFactor) error {
	switch tf.Policy {
	case "", twoFactorOptional:
		if len(tf.Who) > 0 {
			return fmt.Errorf("two_factor: who must have a second factor is given only with required")
		}
	case twoFactorRequired:
		if _, err := rules.CompileWho(tf.Who); err != nil {
			return fmt.Errorf("two_factor: %v", err)
		}
	default:
		return fmt.Errorf("two_factor: want optional or required, got %q", tf.Policy)
	}
	return nil
}

// provisionTwoFactor sets up the second factor; its key is read on first
// use, so that Caddy starts while the users backend is down.
func (s *SessionAuth) provisionTwoFactor() error {
	if s.TwoFactor == nil {
		s.TwoFactor = new(TwoFactor)
	}
	if s.TwoFactor.Policy == "" {
		s.TwoFactor.Policy = twoFactorOptional
	}
	if err := s.checkTwoFactor(); err != nil {
		return err
	}
	st := &twoFactorState{required: s.TwoFactor.Policy == twoFactorRequired}
	if len(s.TwoFactor.Who) > 0 {
		st.who, _ = rules.CompileWho(s.TwoFactor.Who)
	}
	if s.users != nil {
		var ok bool
		if st.factors, ok = s.users.(users.Factors); !ok {
			return errors.New("two_factor: the users backend cannot keep second factors")
		}
		if st.secrets, ok = s.users.(users.Secrets); !ok {
			return errors.New("two_factor: the users backend keeps no secrets")
		}
	}
	s.mfa = st
	return nil
}

// service returns the mfa.Service, reading (or making) its key on first
// use; an error is a users backend that failed (503, try again).
func (t *twoFactorState) service(ctx context.Context) (*mfa.Service, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.svc != nil {
		return t.svc, nil
	}
	keys, err := mfa.LoadKeys(ctx, t.secrets)
	if err != nil {
		return nil, err
	}
	t.svc = &mfa.Service{Store: t.factors, Keys: keys}
	return t.svc, nil
}

// mustHave reports whether the policy requires u to have a second factor.
func (t *twoFactorState) mustHave(u *users.User) bool {
	return t != nil && t.required && (t.who == nil || t.who.Matches(u))
}

// needsEnrolment reports whether the session p may only enrol a second
// factor: the policy requires one of its user, and its login proved none.
func (s *SessionAuth) needsEnrolment(p *principal) bool {
	return s.mfa.mustHave(p.user) && !s.sessions.GetBool(p.ctx, keyMFA) // a map read, only under the policy
}

// allowAfter is the policy check of a factor's removal: a user the policy
// requires to have one must keep one.
func (s *SessionAuth) allowAfter(u *users.User) func(*mfa.Data) error {
	return func(after *mfa.Data) error {
		if s.mfa.mustHave(u) && !after.HasFactor() {
			return errFactorRequired
		}
		return nil
	}
}

var errFactorRequired = errors.New("a second factor is required")

// stateCookie names the cookie that carries a pending login's or a
// passkey ceremony's sealed state.
func (s *SessionAuth) stateCookie() string { return s.SessionCookie + "_mfa" }

func (s *SessionAuth) setStateCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	path := s.APIPrefix + "/"
	if strings.HasPrefix(strings.ToLower(s.SessionCookie), "__host-") {
		path = "/" // browsers take a __Host- cookie only with Path=/
	}
	c := &http.Cookie{Name: s.stateCookie(), Value: value, Path: path, Domain: s.cookieDomain, MaxAge: maxAge,
		HttpOnly: true, Secure: s.CookieSecure == cookieSecureAlways || requestIsHTTPS(r), SameSite: http.SameSiteLaxMode}
	if maxAge < 0 {
		c.Expires = time.Unix(0, 0).UTC()
	}
	w.Header().Add("Set-Cookie", c.String())
}

// sealState seals st (expiring after stateTTL) into the state cookie.
func (s *SessionAuth) sealState(w http.ResponseWriter, r *http.Request, keys *mfa.Keys, st *mfa.State) {
	st.Expires = time.Now().Add(stateTTL)
	s.setStateCookie(w, r, keys.SealState(st), int(stateTTL/time.Second))
}

// openState reads the request's state cookie for one of purposes.
func (s *SessionAuth) openState(r *http.Request, keys *mfa.Keys, purposes ...string) (*mfa.State, bool) {
	v, ok := cookieValue(r, s.stateCookie())
	if !ok || v == "" {
		return nil, false
	}
	for _, p := range purposes {
		if st, err := keys.OpenState(v, p, time.Now()); err == nil {
			return st, true
		}
	}
	return nil, false
}

// relyingParty is the WebAuthn relying party of a request: passkey_rp_id
// and the request's origin if passkey_origins (or the id's domain) allow
// it, else the request's host and origin.
func (s *SessionAuth) relyingParty(r *http.Request) (mfa.RP, bool) {
	scheme := "http://"
	if requestIsHTTPS(r) {
		scheme = "https://"
	}
	origin := scheme + strings.ToLower(r.Host)
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "" || net.ParseIP(strings.Trim(host, "[]")) != nil {
		return mfa.RP{}, false // WebAuthn has no relying party on an IP address
	}
	tf := s.TwoFactor
	rp := mfa.RP{ID: host, Origin: origin}
	if tf.PasskeyRPID != "" {
		rp.ID = tf.PasskeyRPID
		if len(tf.PasskeyOrigins) > 0 {
			found := false
			for _, o := range tf.PasskeyOrigins {
				if strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
					found = true
				}
			}
			if !found {
				return mfa.RP{}, false
			}
		} else if host != rp.ID && !strings.HasSuffix(host, "."+rp.ID) {
			return mfa.RP{}, false
		}
	}
	rp.Name = s.LoginPageTitle
	if rp.Name == "" {
		rp.Name = rp.ID
	}
	return rp, true
}

// totpIssuer names the site in authenticator apps.
func (s *SessionAuth) totpIssuer(r *http.Request) string {
	switch {
	case s.TwoFactor.TOTPIssuer != "":
		return s.TwoFactor.TOTPIssuer
	case s.LoginPageTitle != "":
		return s.LoginPageTitle
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return host
}
