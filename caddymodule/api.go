package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"

	"go.uber.org/zap"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/csrf"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// endpoint is one of the API's own routes.
type endpoint struct {
	name string // DRF view name, for OPTIONS metadata
	// needsSession: anonymous requests are refused before the method is
	// looked at, as DRF's IsAuthenticated permission does.
	needsSession bool
	allow        []string // the Allow header
	methods      []string // methods the handler serves, besides OPTIONS
	serve        func(s *SessionAuth, w http.ResponseWriter, r *http.Request, auth authResult)
	// raw endpoints do their own checks (forward-auth, the sign-in page).
	raw func(s *SessionAuth, w http.ResponseWriter, r *http.Request)
	// enrolOK: a session limited to second-factor enrolment may use it.
	enrolOK bool
}

// route is an endpoint at its path.
type route struct {
	path string
	ep   endpoint
}

var (
	postOnly  = []string{http.MethodPost}
	getHead   = []string{http.MethodGet, http.MethodHead}
	allowPost = []string{"POST, OPTIONS"}
	allowGet  = []string{"GET, HEAD, OPTIONS"}
)

// buildRoutes maps each of the API's paths to its endpoint. Configurable
// paths (login_page, health_path) must not shadow another endpoint.
func (s *SessionAuth) buildRoutes() (map[string]endpoint, error) {
	p := s.APIPrefix
	list := []route{
		{p + "/register/", endpoint{name: "Register", allow: allowPost, methods: postOnly, serve: (*SessionAuth).register}},
		{p + "/login/", endpoint{name: "Login", allow: allowPost, methods: postOnly, serve: (*SessionAuth).login}},
		{p + "/logout/", endpoint{name: "Logout", needsSession: true, enrolOK: true, allow: allowPost, methods: postOnly, serve: (*SessionAuth).logout}},
		{p + "/logout/all/", endpoint{name: "Logout All", needsSession: true, enrolOK: true, allow: allowPost, methods: postOnly, serve: (*SessionAuth).logoutAll}},
		{p + "/password/", endpoint{name: "Password Change", needsSession: true, allow: allowPost, methods: postOnly, serve: (*SessionAuth).changePassword}},
		{p + "/sessions/", endpoint{name: "Sessions", needsSession: true, allow: allowGet, methods: getHead, serve: (*SessionAuth).listSessions}},
		{p + "/user/", endpoint{name: "User", needsSession: true, enrolOK: true, allow: allowGet, methods: getHead, serve: (*SessionAuth).currentUser}},
		{p + "/protected/", endpoint{name: "Protected", needsSession: true, allow: allowGet, methods: getHead, serve: (*SessionAuth).currentUser}},
		{p + "/auth/", endpoint{raw: (*SessionAuth).forwardAuth}},
		{s.HealthPath, endpoint{raw: func(s *SessionAuth, w http.ResponseWriter, r *http.Request) { s.health.serve(w, r) }}},
		{p + "/" + s.LoginPage, endpoint{raw: (*SessionAuth).serveSigninPage}}, // signin_form.go
		{p + accountPagePath, endpoint{raw: (*SessionAuth).serveAccountPage}},  // signin_form.go
	}
	if s.SMTP != "" {
		list = append(list, []route{
			{p + "/password/reset/", endpoint{name: "Password Reset", allow: allowPost, methods: postOnly, serve: (*SessionAuth).passwordReset}},
			{p + "/password/reset/confirm/", endpoint{name: "Password Reset Confirm", allow: allowPost, methods: postOnly, serve: (*SessionAuth).passwordResetConfirm}},
			{p + "/registration/verify-email/", endpoint{name: "Verify Email", allow: allowPost, methods: postOnly, serve: (*SessionAuth).verifyEmail}},
			{p + "/registration/resend-email/", endpoint{name: "Resend Email Verification", allow: allowPost, methods: postOnly, serve: (*SessionAuth).resendEmail}},
		}...)
	}
	if s.IdentityToken != nil {
		list = append(list, route{p + "/jwks/", endpoint{raw: (*SessionAuth).serveJWKS}})
	}
	list = append(list, s.twoFactorRoutes()...)
	routes := make(map[string]endpoint, len(list))
	for _, rt := range list {
		if _, taken := routes[rt.path]; taken {
			return nil, fmt.Errorf("path %s is already one of the API's endpoints: choose another login_page or health_path", rt.path)
		}
		routes[rt.path] = rt.ep
	}
	return routes, nil
}

// slashless lists the routes' paths without their trailing slash, which
// are redirected to them.
func slashless(routes map[string]endpoint) map[string]struct{} {
	m := make(map[string]struct{}, len(routes))
	for path := range routes {
		if trimmed := strings.TrimSuffix(path, "/"); trimmed != path && trimmed != "" {
			m[trimmed] = struct{}{}
		}
	}
	return m
}

// serveAPI runs an endpoint through DRF's order: authentication (with CSRF
// for a live session), permission, then method.
func (s *SessionAuth) serveAPI(w http.ResponseWriter, r *http.Request, ep endpoint) {
	w.Header()["Allow"] = ep.allow
	auth, err := s.authenticate(r)
	if err != nil {
		s.storeFailure(w, "reading session", err)
		return
	}
	if auth.stale {
		s.expireSessionCookie(w, r)
	}
	// Unsafe requests pass the Origin rule with or without a session (no
	// login or registration from a cross-site page); with one, the token
	// rule too.
	if body := s.crossSiteCheck(r, r.Method, auth.who); body != nil {
		writeJSON(w, http.StatusForbidden, body)
		return
	}
	if ep.needsSession && auth.who == nil {
		writeJSON(w, http.StatusForbidden, bodyNotAuthenticated)
		return
	}
	if auth.who != nil {
		if ep.needsSession && !ep.enrolOK && s.needsEnrolment(auth.who) {
			writeJSON(w, http.StatusForbidden, bodyEnrolmentRequired)
			return
		}
		s.touchSession(auth.who)
	}
	switch {
	case r.Method == http.MethodOptions:
		writeValue(w, http.StatusOK, metadata{Name: ep.name, Description: "", Renders: []string{"application/json"},
			Parses: []string{"application/json", "application/x-www-form-urlencoded", "multipart/form-data"}})
	case slices.Contains(ep.methods, r.Method):
		ep.serve(s, w, r, auth)
	default:
		writeMethodNotAllowed(w, r.Method)
	}
}

type metadata struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Renders     []string `json:"renders"`
	Parses      []string `json:"parses"`
}

func (s *SessionAuth) register(w http.ResponseWriter, r *http.Request, _ authResult) {
	result := resultInvalid
	defer func() { s.counters.registration(result).Inc() }()
	if s.Registration == registrationClosed {
		// Before the throttle: a closed door counts nobody's attempts.
		result = resultClosed
		writeJSON(w, http.StatusForbidden, bodyRegistrationClosed)
		return
	}
	if result = s.registerThrottled(w, r); result != "" {
		return
	}
	result = resultInvalid
	data, derr := readData(w, r, s.MaxBodyBytes)
	if derr != nil {
		writeJSON(w, derr.status, derr.body)
		return
	}
	// DRF's order: each field's own checks, then whether the two
	// passwords match; the rules themselves are the accounts package's.
	var errs accounts.FieldErrors
	username, okName := stringField(data, "username", &errs)
	if okName {
		name, problems, err := s.accounts.CheckUsername(r.Context(), username)
		if err != nil {
			result = resultError
			s.storeFailure(w, "looking up username", err)
			return
		}
		username = name
		for _, msg := range problems {
			errs.Add("username", msg)
		}
	}
	email, okEmail := stringField(data, "email", &errs)
	if okEmail {
		if _, ok := accounts.CheckEmail(email); !ok {
			errs.Add("email", accounts.MsgEmailInvalid)
		}
	}
	password, okPass := stringField(data, "password", &errs)
	if okPass {
		for _, msg := range accounts.CheckPassword(password, username, email) {
			errs.Add("password", msg)
		}
	}
	password2, _ := stringField(data, "password2", &errs)
	if errs.Empty() && password != password2 {
		errs.Add("password", msgPasswordsDiffer)
	}
	if !errs.Empty() {
		writeValue(w, http.StatusBadRequest, &errs)
		return
	}

	ctx, cancel := hashContext(r.Context())
	u, _, err := s.accounts.Create(ctx, accounts.NewUser{Username: username, Email: email, Password: password})
	cancel()
	if fe, ok := errors.AsType[*accounts.FieldErrors](err); ok { // lost a race with another registration
		writeValue(w, http.StatusBadRequest, fe)
		return
	}
	if err != nil {
		result = resultError
		s.storeFailure(w, "creating user", err) // also no hashing slot in time: 503, retry later
		return
	}
	result = resultCreated
	s.logger.Info("user registered", zap.Int64("user_id", u.ID), zap.String("username", u.Username),
		zap.String("client_ip", clientIP(r)))
	s.audit(auditEntry{event: auditRegister, user: u, r: r})
	if s.mail != nil && s.EmailVerification != emailVerificationOff {
		s.sendVerification(r, u)
	}
	writeValue(w, http.StatusCreated, userJSON{u.ID, u.Username, u.Email})
}

func (s *SessionAuth) login(w http.ResponseWriter, r *http.Request, _ authResult) {
	result := resultInvalid
	defer func() { s.counters.login(result).Inc() }()
	data, derr := readData(w, r, s.MaxBodyBytes)
	if derr != nil {
		writeJSON(w, derr.status, derr.body)
		return
	}
	var errs accounts.FieldErrors
	username, _ := stringField(data, "username", &errs)
	password, _ := stringField(data, "password", &errs)
	if !errs.Empty() {
		writeValue(w, http.StatusBadRequest, &errs)
		return
	}

	att, throttled := s.loginThrottled(w, r, username)
	if throttled != "" {
		result = throttled
		if throttled == resultThrottled {
			s.audit(auditEntry{event: auditLoginFailed, username: username, r: r, reason: reasonThrottled})
		}
		return
	}
	hctx, cancel := hashContext(r.Context())
	u, err := s.accounts.Authenticate(hctx, username, password)
	cancel()
	if err != nil && !errors.Is(err, accounts.ErrBadCredentials) {
		result = resultError
		s.logger.Info("login failed", zap.String("username", loggableUsername(username)), zap.String("client_ip", clientIP(r)),
			zap.String("reason", failReason(err)))
		s.loginCanceled(att) // a 503 tells nothing of the password
		s.storeFailure(w, "checking credentials", err)
		return
	}
	if err != nil {
		result = resultBadCredentials
		s.loginFailed(att)
		reason := failReason(err) // bad_credentials or inactive
		s.logger.Info("login failed", zap.String("username", loggableUsername(username)), zap.String("client_ip", clientIP(r)),
			zap.String("reason", reason))
		s.audit(auditEntry{event: auditLoginFailed, username: username, r: r, reason: reason})
		writeJSON(w, http.StatusBadRequest, bodyBadCredentials)
		return
	}

	if s.EmailVerification == emailVerificationMandatory && !u.EmailVerified {
		// The password was right (so the throttle counts a success), but
		// the address is not proven yet: no session.
		s.loginSucceeded(att)
		result = resultUnverified
		s.logger.Info("login failed", zap.Int64("user_id", u.ID), zap.String("username", u.Username), zap.String("client_ip", clientIP(r)),
			zap.String("reason", reasonUnverified))
		s.audit(auditEntry{event: auditLoginFailed, user: u, r: r, reason: reasonUnverified})
		writeJSON(w, http.StatusBadRequest, bodyUnverified)
		return
	}
	// A user with a second factor gets no session yet: the password's
	// attempt is given back (not cleared: only the whole login clears the
	// username's failures, so wrong codes add up), and the second step is
	// awaited under a sealed cookie.
	pending, err := s.awaitSecondFactor(w, r, u)
	if err != nil {
		result = resultError
		s.loginCanceled(att)
		s.storeFailure(w, "reading second factors", err)
		return
	}
	if pending {
		result = resultMFARequired
		s.loginCanceled(att)
		return
	}
	s.loginSucceeded(att)
	result = s.completeLogin(w, r, u, false, "")
}

// completeLogin starts u's session (marked if a second factor was proved,
// by method) and answers as a login does; it returns the metrics result.
func (s *SessionAuth) completeLogin(w http.ResponseWriter, r *http.Request, u *users.User, mfaDone bool, method string) string {
	token, secret, err := s.startSession(r, u, mfaDone)
	if err != nil {
		s.storeFailure(w, "starting session", err)
		return resultError
	}
	s.setSessionCookie(w, r, token)
	s.setCSRFCookie(w, r, secret)
	if _, ok := cookieValue(r, s.stateCookie()); ok {
		s.setStateCookie(w, r, "", -1)
	}
	fields := []zap.Field{zap.Int64("user_id", u.ID), zap.String("username", u.Username), zap.String("client_ip", clientIP(r))}
	var extra []zap.Field
	if method != "" {
		extra = []zap.Field{zap.String("method", method)}
	}
	s.logger.Info("login", append(fields, extra...)...)
	s.audit(auditEntry{event: auditLogin, user: u, r: r, sessionID: sessionID(token), extra: extra})
	writeValue(w, http.StatusOK, loginResponse{
		Message:           "Login successful",
		User:              userJSON{u.ID, u.Username, u.Email},
		CSRFToken:         csrf.Mask(secret),
		EnrolmentRequired: !mfaDone && s.mfa.mustHave(u),
	})
	return resultSuccess
}

type loginResponse struct {
	Message   string   `json:"message"`
	User      userJSON `json:"user"`
	CSRFToken string   `json:"csrf_token"`
	// EnrolmentRequired: two_factor required names the user, who has no
	// second factor; the session may only enrol one.
	EnrolmentRequired bool `json:"mfa_enrolment_required,omitempty"`
}

// logUnusableHash logs a stored hash that cannot be verified.
func (s *SessionAuth) logUnusableHash(u *users.User, err error) {
	s.logger.Warn("unusable password hash", zap.Int64("user_id", u.ID), zap.Error(err))
}

func (s *SessionAuth) logout(w http.ResponseWriter, r *http.Request, auth authResult) {
	if err := s.sessions.Destroy(auth.who.ctx); err != nil {
		s.storeFailure(w, "ending session", err)
		return
	}
	if s.sessAccess.index != nil {
		if err := s.sessAccess.index.RemoveUserSessions(auth.who.user.ID, storeKey(auth.who.token)); err != nil {
			s.logger.Warn("could not remove an ended session from the list", zap.Error(err))
		}
	}
	s.expireSessionCookie(w, r)
	s.logger.Info("logout", zap.Int64("user_id", auth.who.user.ID), zap.String("username", auth.who.user.Username),
		zap.String("client_ip", clientIP(r)))
	s.audit(auditEntry{event: auditLogout, user: auth.who.user, r: r, sessionID: auth.who.sessionID()})
	writeJSON(w, http.StatusOK, bodyLogout)
}

func (s *SessionAuth) currentUser(w http.ResponseWriter, r *http.Request, auth authResult) {
	u := auth.who.user
	writeValue(w, http.StatusOK, userJSON{u.ID, u.Username, u.Email})
}

// storeFailure answers 503 when a store is down: the client keeps its
// cookie and may retry; the error goes to the log, not to the client.
func (s *SessionAuth) storeFailure(w http.ResponseWriter, doing string, err error) {
	s.counters.storeError(doing).Inc()
	s.logger.Error("store failure", zap.String("while", doing), zap.Error(err))
	w.Header().Del("Set-Cookie")
	writeJSON(w, http.StatusServiceUnavailable, bodyStoreDown)
}
