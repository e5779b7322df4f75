package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/csrf"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/passwords"
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
	list := []struct {
		path string
		ep   endpoint
	}{
		{p + "/register/", endpoint{name: "Register", allow: allowPost, methods: postOnly, serve: (*SessionAuth).register}},
		{p + "/login/", endpoint{name: "Login", allow: allowPost, methods: postOnly, serve: (*SessionAuth).login}},
		{p + "/logout/", endpoint{name: "Logout", needsSession: true, allow: allowPost, methods: postOnly, serve: (*SessionAuth).logout}},
		{p + "/logout/all/", endpoint{name: "Logout All", needsSession: true, allow: allowPost, methods: postOnly, serve: (*SessionAuth).logoutAll}},
		{p + "/password/", endpoint{name: "Password Change", needsSession: true, allow: allowPost, methods: postOnly, serve: (*SessionAuth).changePassword}},
		{p + "/user/", endpoint{name: "User", needsSession: true, allow: allowGet, methods: getHead, serve: (*SessionAuth).currentUser}},
		{p + "/protected/", endpoint{name: "Protected", needsSession: true, allow: allowGet, methods: getHead, serve: (*SessionAuth).currentUser}},
		{p + "/auth/", endpoint{raw: (*SessionAuth).forwardAuth}},
		{s.HealthPath, endpoint{raw: func(s *SessionAuth, w http.ResponseWriter, r *http.Request) { s.health.serve(w, r) }}},
		{p + "/" + s.LoginPage, endpoint{raw: func(s *SessionAuth, w http.ResponseWriter, r *http.Request) { s.page.serve(w, r) }}},
	}
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
	defer func() { metrics.registrations.WithLabelValues(result).Inc() }()
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
	var errs fieldErrors
	username, okName := stringField(data, "username", &errs)
	if okName {
		username = normalizeUsername(username)
		for _, msg := range usernameProblems(username) {
			errs.add("username", msg)
			okName = false
		}
	}
	if okName {
		_, err := s.users.ByUsername(r.Context(), username)
		switch {
		case err == nil:
			errs.add("username", msgUsernameTaken)
		case !errors.Is(err, users.ErrNotFound):
			result = resultError
			s.storeFailure(w, "looking up username", err)
			return
		}
	}
	email, okEmail := stringField(data, "email", &errs)
	if okEmail && !validEmail(email) {
		errs.add("email", msgEmailInvalid)
	}
	password, okPass := stringField(data, "password", &errs)
	if okPass {
		attrs := map[string]string{"username": username, "email": email}
		for _, msg := range passwords.Validate(password, attrs) {
			errs.add("password", msg)
		}
	}
	password2, _ := stringField(data, "password2", &errs)
	if errs.empty() && password != password2 {
		errs.add("password", msgPasswordsDiffer)
	}
	if !errs.empty() {
		writeValue(w, http.StatusBadRequest, &errs)
		return
	}

	ctx, cancel := hashContext(r.Context())
	hash, err := s.hasher.Hash(ctx, password)
	cancel()
	if err != nil {
		result = resultError
		s.storeFailure(w, "hashing password", err) // no slot in time: 503, retry later
		return
	}
	u := &users.User{Username: username, Email: normalizeEmail(email), PasswordHash: hash, IsActive: true}
	if err := s.users.Create(r.Context(), u); err != nil {
		if errors.Is(err, users.ErrUsernameTaken) { // lost a race with another registration
			errs.add("username", msgUsernameTaken)
			writeValue(w, http.StatusBadRequest, &errs)
			return
		}
		result = resultError
		s.storeFailure(w, "creating user", err)
		return
	}
	result = resultCreated
	s.logger.Info("user registered", zap.Int64("user_id", u.ID), zap.String("username", u.Username),
		zap.String("client_ip", clientIP(r)))
	writeValue(w, http.StatusCreated, userJSON{u.ID, u.Username, u.Email})
}

func (s *SessionAuth) login(w http.ResponseWriter, r *http.Request, _ authResult) {
	result := resultInvalid
	defer func() { metrics.logins.WithLabelValues(result).Inc() }()
	data, derr := readData(w, r, s.MaxBodyBytes)
	if derr != nil {
		writeJSON(w, derr.status, derr.body)
		return
	}
	var errs fieldErrors
	username, _ := stringField(data, "username", &errs)
	password, _ := stringField(data, "password", &errs)
	if !errs.empty() {
		writeValue(w, http.StatusBadRequest, &errs)
		return
	}

	att, throttled := s.loginThrottled(w, r, username)
	if throttled != "" {
		result = throttled
		return
	}
	u, ok, err := s.checkCredentials(r, normalizeUsername(username), password)
	if err != nil {
		result = resultError
		s.loginCanceled(att) // a 503 tells nothing of the password
		s.storeFailure(w, "checking credentials", err)
		return
	}
	if !ok {
		result = resultBadCredentials
		s.loginFailed(att)
		s.logger.Info("login failed", zap.String("username", loggableUsername(username)), zap.String("client_ip", clientIP(r)))
		writeJSON(w, http.StatusBadRequest, bodyBadCredentials)
		return
	}

	s.loginSucceeded(att)
	token, secret, err := s.startSession(r, u)
	if err != nil {
		result = resultError
		s.storeFailure(w, "starting session", err)
		return
	}
	result = resultSuccess
	s.setSessionCookie(w, r, token)
	s.setCSRFCookie(w, r, secret)
	s.logger.Info("login", zap.Int64("user_id", u.ID), zap.String("username", u.Username),
		zap.String("client_ip", clientIP(r)))
	writeValue(w, http.StatusOK, loginResponse{
		Message:   "Login successful",
		User:      userJSON{u.ID, u.Username, u.Email},
		CSRFToken: csrf.Mask(secret),
	})
}

type loginResponse struct {
	Message   string   `json:"message"`
	User      userJSON `json:"user"`
	CSRFToken string   `json:"csrf_token"`
}

// checkCredentials verifies a password in the same time whether or not the
// user exists or is active. A verified outdated hash is upgraded, and the
// last-login time is recorded.
func (s *SessionAuth) checkCredentials(r *http.Request, username, password string) (*users.User, bool, error) {
	ctx, cancel := hashContext(r.Context())
	defer cancel()
	u, err := s.users.ByUsername(r.Context(), username)
	if errors.Is(err, users.ErrNotFound) {
		s.hasher.VerifyDummy(ctx, password)
		return nil, false, ctx.Err()
	}
	if err != nil {
		return nil, false, err
	}
	ok, rehash, err := s.hasher.Verify(ctx, password, u.PasswordHash)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, false, ctxErr // no slot in time: 503, not "wrong password"
	}
	if err != nil && !errors.Is(err, passwords.ErrUnknownFormat) {
		s.logger.Warn("unusable password hash", zap.Int64("user_id", u.ID), zap.Error(err))
	}
	if !ok || !u.IsActive {
		return nil, false, nil
	}
	var newHash string
	if rehash {
		if newHash, err = s.hasher.Hash(ctx, password); err != nil {
			newHash = ""
		}
	}
	now := time.Now().UTC()
	updated, err := s.users.Update(r.Context(), u.ID, func(cur *users.User) error {
		// The password was checked against the record read above; if an
		// operator changed the password, epoch or state meanwhile, that
		// check no longer stands (and a rehash must not undo a reset).
		if cur.PasswordHash != u.PasswordHash || cur.SessionEpoch != u.SessionEpoch || !cur.IsActive {
			return errCredentialsChanged
		}
		cur.LastLogin = now
		if newHash != "" {
			cur.PasswordHash = newHash
		}
		return nil
	})
	if errors.Is(err, errCredentialsChanged) || errors.Is(err, users.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return updated, true, nil
}

var errCredentialsChanged = errors.New("user changed while the password was checked")

func (s *SessionAuth) logout(w http.ResponseWriter, r *http.Request, auth authResult) {
	if err := s.sessions.Destroy(auth.who.ctx); err != nil {
		s.storeFailure(w, "ending session", err)
		return
	}
	s.expireSessionCookie(w, r)
	s.logger.Info("logout", zap.Int64("user_id", auth.who.user.ID), zap.String("username", auth.who.user.Username),
		zap.String("client_ip", clientIP(r)))
	writeJSON(w, http.StatusOK, bodyLogout)
}

func (s *SessionAuth) currentUser(w http.ResponseWriter, r *http.Request, auth authResult) {
	u := auth.who.user
	writeValue(w, http.StatusOK, userJSON{u.ID, u.Username, u.Email})
}

// storeFailure answers 503 when a store is down: the client keeps its
// cookie and may retry; the error goes to the log, not to the client.
func (s *SessionAuth) storeFailure(w http.ResponseWriter, doing string, err error) {
	metrics.storeErrors.WithLabelValues(doing).Inc()
	s.logger.Error("store failure", zap.String("while", doing), zap.Error(err))
	w.Header().Del("Set-Cookie")
	writeJSON(w, http.StatusServiceUnavailable, bodyStoreDown)
}
