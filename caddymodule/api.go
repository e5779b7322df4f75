package caddymodule

import (
	"errors"
	"net/http"
	"slices"
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

func (s *SessionAuth) buildRoutes() map[string]endpoint {
	p := s.APIPrefix
	return map[string]endpoint{
		p + "/register/":      {name: "Register", allow: allowPost, methods: postOnly, serve: (*SessionAuth).register},
		p + "/login/":         {name: "Login", allow: allowPost, methods: postOnly, serve: (*SessionAuth).login},
		p + "/logout/":        {name: "Logout", needsSession: true, allow: allowPost, methods: postOnly, serve: (*SessionAuth).logout},
		p + "/logout/all/":    {name: "Logout All", needsSession: true, allow: allowPost, methods: postOnly, serve: (*SessionAuth).logoutAll},
		p + "/password/":      {name: "Password Change", needsSession: true, allow: allowPost, methods: postOnly, serve: (*SessionAuth).changePassword},
		p + "/user/":          {name: "User", needsSession: true, allow: allowGet, methods: getHead, serve: (*SessionAuth).currentUser},
		p + "/protected/":     {name: "Protected", needsSession: true, allow: allowGet, methods: getHead, serve: (*SessionAuth).currentUser},
		s.HealthPath:          {raw: func(s *SessionAuth, w http.ResponseWriter, r *http.Request) { s.health.serve(w, r) }},
		p + "/auth/":          {raw: (*SessionAuth).forwardAuth},
		p + "/" + s.LoginPage: {raw: func(s *SessionAuth, w http.ResponseWriter, r *http.Request) { s.page.serve(w, r) }},
	}
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
	if auth.who != nil && isUnsafe(r.Method) {
		if body := s.checkCSRF(r, auth.who); body != nil {
			writeJSON(w, http.StatusForbidden, body)
			return
		}
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
		writeDetail(w, http.StatusMethodNotAllowed, `Method "`+r.Method+`" not allowed.`)
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
		_, err := s.users.ByUsername(username)
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

	hash, err := s.hasher.Hash(r.Context(), password)
	if err != nil {
		result = resultError
		s.serverError(w, "hashing password", err)
		return
	}
	u := &users.User{Username: username, Email: normalizeEmail(email), PasswordHash: hash, IsActive: true}
	if err := s.users.Create(u); err != nil {
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

	if result = s.loginThrottled(w, r, username); result != "" {
		return
	}
	u, ok, err := s.checkCredentials(r, normalizeUsername(username), password)
	if err != nil {
		result = resultError
		s.storeFailure(w, "checking credentials", err)
		return
	}
	if !ok {
		result = resultBadCredentials
		s.loginFailed(r, username)
		s.logger.Info("login failed", zap.String("username", username), zap.String("client_ip", clientIP(r)))
		writeJSON(w, http.StatusBadRequest, bodyBadCredentials)
		return
	}

	s.loginSucceeded(username)
	token, _, secret, err := s.startSession(r, u)
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
	u, err := s.users.ByUsername(username)
	if errors.Is(err, users.ErrNotFound) {
		s.hasher.VerifyDummy(r.Context(), password)
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	ok, rehash, err := s.hasher.Verify(r.Context(), password, u.PasswordHash)
	if err != nil && !errors.Is(err, passwords.ErrUnknownFormat) {
		s.logger.Warn("unusable password hash", zap.Int64("user_id", u.ID), zap.Error(err))
	}
	if !ok || !u.IsActive {
		return nil, false, nil
	}
	var newHash string
	if rehash {
		if newHash, err = s.hasher.Hash(r.Context(), password); err != nil {
			newHash = ""
		}
	}
	now := time.Now().UTC()
	updated, err := s.users.Update(u.ID, func(u *users.User) error {
		u.LastLogin = now
		if newHash != "" {
			u.PasswordHash = newHash
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return updated, true, nil
}

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

func (s *SessionAuth) serverError(w http.ResponseWriter, doing string, err error) {
	s.logger.Error("internal error", zap.String("while", doing), zap.Error(err))
	writeJSON(w, http.StatusInternalServerError, bodyServerError)
}
