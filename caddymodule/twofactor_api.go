package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/mfa"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// The second factor's endpoints (README "Second factor"):
//
//	GET    <api>/2fa/                          what the user has
//	POST   <api>/2fa/totp/setup/               {"password"} -> {"secret","otpauth_url","qr_svg"}
//	POST   <api>/2fa/totp/confirm/             {"code"} -> {"recovery_codes"}
//	POST   <api>/2fa/totp/disable/             {"password","code"}
//	POST   <api>/2fa/recovery-codes/           {"password"} -> {"recovery_codes"} (new ones)
//	GET    <api>/2fa/passkeys/                 the user's passkeys
//	POST   <api>/2fa/passkeys/register/begin/  {"password"} -> WebAuthn creation options
//	POST   <api>/2fa/passkeys/register/finish/ the PublicKeyCredential (+ "name") -> 201 {"id","name","created"}
//	DELETE <api>/2fa/passkeys/<id>/            {"password"} -> 204
//	POST   <api>/login/2fa/                    {"code"} (after login's "mfa_required")
//	POST   <api>/login/passkey/begin/          [{"discoverable": true}] -> WebAuthn request options
//	POST   <api>/login/passkey/finish/         the PublicKeyCredential -> login's answer

// twoFactorRoutes are the second factor's endpoints; enrolOK: a session
// limited to enrolment may use it.
func (s *SessionAuth) twoFactorRoutes() []route {
	p := s.APIPrefix
	// enrol: also for a session limited to enrolment; full: not (what
	// changes or removes a factor the user has).
	enrol := func(name string, allow, methods []string, serve func(*SessionAuth, http.ResponseWriter, *http.Request, authResult)) endpoint {
		return endpoint{name: name, needsSession: true, enrolOK: true, allow: allow, methods: methods, serve: serve}
	}
	full := func(name string, serve func(*SessionAuth, http.ResponseWriter, *http.Request, authResult)) endpoint {
		return endpoint{name: name, needsSession: true, allow: allowPost, methods: postOnly, serve: serve}
	}
	return []route{
		{p + "/2fa/", enrol("Two Factor", allowGet, getHead, (*SessionAuth).twoFactorStatus)},
		{p + "/2fa/totp/setup/", enrol("TOTP Setup", allowPost, postOnly, (*SessionAuth).totpSetup)},
		{p + "/2fa/totp/confirm/", enrol("TOTP Confirm", allowPost, postOnly, (*SessionAuth).totpConfirm)},
		{p + "/2fa/totp/disable/", full("TOTP Disable", (*SessionAuth).totpDisable)},
		{p + "/2fa/recovery-codes/", full("Recovery Codes", (*SessionAuth).recoveryCodes)},
		{p + "/2fa/passkeys/", enrol("Passkeys", allowGet, getHead, (*SessionAuth).listPasskeys)},
		{p + "/2fa/passkeys/register/begin/", enrol("Passkey Register Begin", allowPost, postOnly, (*SessionAuth).passkeyRegisterBegin)},
		{p + "/2fa/passkeys/register/finish/", enrol("Passkey Register Finish", allowPost, postOnly, (*SessionAuth).passkeyRegisterFinish)},
		{p + "/login/2fa/", endpoint{name: "Login Second Factor", allow: allowPost, methods: postOnly, serve: (*SessionAuth).loginSecondFactor}},
		{p + "/login/passkey/begin/", endpoint{name: "Passkey Login Begin", allow: allowPost, methods: postOnly, serve: (*SessionAuth).passkeyLoginBegin}},
		{p + "/login/passkey/finish/", endpoint{name: "Passkey Login Finish", allow: allowPost, methods: postOnly, serve: (*SessionAuth).passkeyLoginFinish}},
	}
}

// passkeyItemPath returns the id of a DELETE <api>/2fa/passkeys/<id>/ path.
func (s *SessionAuth) passkeyItemPath(path string) (string, bool) {
	id, ok := s.apiItemID(path, "/2fa/passkeys/")
	return id, ok && id != "register"
}

// passkeyItem is the endpoint of DELETE <api>/2fa/passkeys/<id>/.
var passkeyItem = endpoint{name: "Passkey", needsSession: true, allow: []string{"DELETE, OPTIONS"},
	methods: []string{http.MethodDelete}, serve: (*SessionAuth).removePasskey}

// errAnswer is the answer to a client's error.
type errAnswer struct {
	err    error
	status int
	body   []byte
}

// The answers several endpoints give.
var (
	errInvalidCode    = errAnswer{mfa.ErrBadCode, http.StatusBadRequest, bodyInvalidCode}
	errTOTPEnabled    = errAnswer{mfa.ErrTOTPEnabled, http.StatusBadRequest, bodyTOTPEnabled}
	errPasskeysHere   = errAnswer{mfa.ErrPasskeysUnavailable, http.StatusBadRequest, bodyPasskeysHere}
	errPasskeyFailed  = errAnswer{mfa.ErrPasskeyFailed, http.StatusBadRequest, bodyPasskeyFailed}
	errMustKeepFactor = errAnswer{errFactorRequired, http.StatusBadRequest, bodyFactorRequired}
	errSignInAgain    = errAnswer{mfa.ErrHasFactor, http.StatusForbidden, bodySignInAgain}
)

// answerErr answers err, if not nil, with the first of answers it is, or
// else (a store that failed) 503 with doing in the log; it reports
// whether it answered.
func (s *SessionAuth) answerErr(w http.ResponseWriter, err error, doing string, answers ...errAnswer) bool {
	if err == nil {
		return false
	}
	for _, a := range answers {
		if errors.Is(err, a.err) {
			writeJSON(w, a.status, a.body)
			return true
		}
	}
	s.storeFailure(w, doing, err)
	return true
}

// mfaService answers 503 and returns nil when the key cannot be read.
func (s *SessionAuth) mfaService(w http.ResponseWriter, r *http.Request) *mfa.Service {
	svc, err := s.mfa.service(r.Context())
	if err != nil {
		s.storeFailure(w, "reading second factors", err)
		return nil
	}
	return svc
}

// userFactors reads the user's second factors, or answers 503 and
// returns nil.
func (s *SessionAuth) userFactors(w http.ResponseWriter, r *http.Request, id int64) *mfa.Data {
	svc := s.mfaService(w, r)
	if svc == nil {
		return nil
	}
	d, err := svc.Get(r.Context(), id)
	if err != nil {
		s.storeFailure(w, "reading second factors", err)
		return nil
	}
	return d
}

// passkeyService is the request's relying party and the mfa.Service, or
// a nil service if it answered: 400 where passkeys cannot work, 503.
func (s *SessionAuth) passkeyService(w http.ResponseWriter, r *http.Request) (mfa.RP, *mfa.Service) {
	rp, ok := s.relyingParty(r)
	if !ok {
		writeJSON(w, http.StatusBadRequest, bodyPasskeysHere)
		return rp, nil
	}
	return rp, s.mfaService(w, r)
}

// awaitSecondFactor is login's step after a right password: for a user
// with a second factor it answers "mfa_required" with the pending state
// cookie and returns true.
func (s *SessionAuth) awaitSecondFactor(w http.ResponseWriter, r *http.Request, u *users.User) (bool, error) {
	svc, err := s.mfa.service(r.Context())
	if err != nil {
		return false, err
	}
	d, err := svc.Get(r.Context(), u.ID)
	if errors.Is(err, users.ErrNotFound) {
		return false, nil // deleted meanwhile: the session will be refused at once
	}
	if err != nil {
		return false, err
	}
	if !d.HasFactor() {
		return false, nil
	}
	s.sealState(w, r, svc.Keys, &mfa.State{Purpose: mfa.PurposeLogin, UserID: u.ID, Epoch: u.SessionEpoch})
	s.logger.Info("login: second factor required", zap.Int64("user_id", u.ID), zap.String("username", u.Username),
		zap.String("client_ip", clientIP(r)))
	writeValue(w, http.StatusOK, mfaRequiredResponse{Detail: "Second factor required.", MFARequired: true, Methods: d.Methods()})
	return true, nil
}

type mfaRequiredResponse struct {
	Detail      string   `json:"detail"`
	MFARequired bool     `json:"mfa_required"`
	Methods     []string `json:"methods"`
}

// pendingUser is the user of the request's pending login (password
// right, second step awaited), or nil (answered 400 or 503).
func (s *SessionAuth) pendingUser(w http.ResponseWriter, r *http.Request, svc *mfa.Service) (*users.User, *mfa.State) {
	st, ok := s.openState(r, svc.Keys, mfa.PurposeLogin)
	if !ok {
		writeJSON(w, http.StatusBadRequest, bodyNoPendingLogin)
		return nil, nil
	}
	u, err := s.users.ByID(r.Context(), st.UserID)
	if errors.Is(err, users.ErrNotFound) {
		writeJSON(w, http.StatusBadRequest, bodyNoPendingLogin)
		return nil, nil
	}
	if err != nil {
		s.storeFailure(w, "reading the user", err)
		return nil, nil
	}
	if !u.IsActive || u.SessionEpoch != st.Epoch {
		// Deactivated, or the password changed (or sessions ended) since.
		writeJSON(w, http.StatusBadRequest, bodyNoPendingLogin)
		return nil, nil
	}
	return u, st
}

// loginSecondFactor serves POST <api>/login/2fa/ {"code"}: a TOTP code or
// a recovery code completes the pending login.
func (s *SessionAuth) loginSecondFactor(w http.ResponseWriter, r *http.Request, _ authResult) {
	result := resultInvalid
	defer func() { s.counters.login(result).Inc() }()
	data, derr := readData(w, r, s.MaxBodyBytes)
	if derr != nil {
		writeJSON(w, derr.status, derr.body)
		return
	}
	svc := s.mfaService(w, r)
	if svc == nil {
		result = resultError
		return
	}
	u, _ := s.pendingUser(w, r, svc)
	if u == nil {
		return
	}
	var errs accounts.FieldErrors
	code, _ := stringField(data, "code", &errs)
	if !errs.Empty() {
		writeValue(w, http.StatusBadRequest, &errs)
		return
	}
	att, throttled := s.loginThrottled(w, r, u.Username)
	if throttled != "" {
		result = throttled
		return
	}
	method, err := svc.Verify(r.Context(), u.ID, code)
	switch {
	case errors.Is(err, mfa.ErrBadCode):
		result = resultBadCredentials
		s.loginFailed(att)
		s.secondFactorFailed(r, u, methodOfCode(code))
		writeJSON(w, http.StatusBadRequest, bodyInvalidCode)
		return
	case err != nil:
		result = resultError
		s.loginCanceled(att)
		s.storeFailure(w, "reading second factors", err)
		return
	}
	s.loginSucceeded(att)
	s.counters.secondFactor(method, resultSuccess).Inc()
	if s.EmailVerification == emailVerificationMandatory && !u.EmailVerified {
		// The password step checked it; a pending login made by another
		// site over the same users (with other settings) did not.
		result = resultUnverified
		writeJSON(w, http.StatusBadRequest, bodyUnverified)
		return
	}
	if method == mfa.MethodRecoveryCode {
		left := 0
		if d, err := svc.Get(r.Context(), u.ID); err == nil {
			left = len(d.Recovery)
		}
		s.audit(auditEntry{event: auditRecoveryCodeUsed, user: u, r: r, extra: []zap.Field{zap.Int("recovery_codes_left", left)}})
	}
	result = s.completeLogin(w, r, u, true, method)
}

// methodOfCode guesses, for the metric and audit of a wrong code, what
// kind the user typed.
func methodOfCode(code string) string {
	if len(strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, code)) == mfa.Digits && len(strings.TrimSpace(code)) <= mfa.Digits+1 {
		return mfa.MethodTOTP
	}
	return mfa.MethodRecoveryCode
}

// factorChanged logs a change of u's factors (msg) and audits it (event),
// with fields on both.
func (s *SessionAuth) factorChanged(r *http.Request, u *users.User, msg, event string, fields ...zap.Field) {
	s.logger.Info(msg, append([]zap.Field{zap.Int64("user_id", u.ID), zap.String("username", u.Username)}, fields...)...)
	s.audit(auditEntry{event: event, user: u, r: r, extra: fields})
}

// passkeyFields name a passkey in logs.
func passkeyFields(pk *mfa.Passkey) []zap.Field {
	return []zap.Field{zap.String("method", mfa.MethodPasskey), zap.String("passkey_id", pk.ID()), zap.String("passkey_name", pk.Name)}
}

// secondFactorFailed counts and records a wrong second factor.
func (s *SessionAuth) secondFactorFailed(r *http.Request, u *users.User, method string) {
	s.counters.secondFactor(method, "failed").Inc()
	s.logger.Info("login failed", zap.Int64("user_id", u.ID), zap.String("username", u.Username),
		zap.String("client_ip", clientIP(r)), zap.String("reason", "bad_second_factor"), zap.String("method", method))
	s.audit(auditEntry{event: auditMFAFailed, user: u, r: r, extra: []zap.Field{zap.String("method", method)}})
}

// withPassword reads a request that must carry the signed-in user's
// password again ("password", checked as a login is: throttled, counted)
// and the other required fields named, and returns the fields' values. It
// returns false if it answered: 400 with the fields' errors (a wrong
// password among them), 413/415 for the body, 429 or 503.
func (s *SessionAuth) withPassword(w http.ResponseWriter, r *http.Request, u *users.User, more ...string) (map[string]string, bool) {
	data, derr := readData(w, r, s.MaxBodyBytes)
	if derr != nil {
		writeJSON(w, derr.status, derr.body)
		return nil, false
	}
	var errs accounts.FieldErrors
	if password, ok := stringField(data, "password", &errs); ok && !s.currentPassword(w, r, u, password, "password", &errs) {
		return nil, false
	}
	values := make(map[string]string, len(more))
	for _, name := range more {
		values[name], _ = stringField(data, name, &errs)
	}
	if !errs.Empty() {
		writeValue(w, http.StatusBadRequest, &errs)
		return nil, false
	}
	return values, true
}

type twoFactorStatusJSON struct {
	TOTP              bool     `json:"totp"`
	Passkeys          int      `json:"passkeys"`
	RecoveryCodes     int      `json:"recovery_codes"`
	Methods           []string `json:"methods"`
	Required          bool     `json:"required"`
	EnrolmentRequired bool     `json:"enrolment_required"`
}

func (s *SessionAuth) twoFactorStatus(w http.ResponseWriter, r *http.Request, auth authResult) {
	d := s.userFactors(w, r, auth.who.user.ID)
	if d == nil {
		return
	}
	methods := d.Methods()
	if methods == nil {
		methods = []string{}
	}
	writeValue(w, http.StatusOK, twoFactorStatusJSON{TOTP: d.TOTP != nil, Passkeys: len(d.Passkeys), RecoveryCodes: len(d.Recovery),
		Methods: methods, Required: s.mfa.mustHave(auth.who.user), EnrolmentRequired: s.needsEnrolment(auth.who)})
}

// firstFactorAdded is what follows a user's first second factor: every
// other session of theirs ends (one opened with the password alone before
// now must not outlive it), and the request's session goes on under a new
// token, marked as having proved a second factor (which lifts an
// enrolment-only limit).
func (s *SessionAuth) firstFactorAdded(w http.ResponseWriter, r *http.Request, p *principal) bool {
	u, err := s.accounts.EndSessions(r.Context(), p.user.ID)
	if err != nil {
		s.storeFailure(w, "ending all sessions", err)
		return false
	}
	s.sessions.Put(p.ctx, keyEpoch, u.SessionEpoch)
	s.sessions.Put(p.ctx, keyMFA, true)
	if err := s.sessions.RenewToken(p.ctx); err != nil {
		s.storeFailure(w, "starting session", err)
		return false
	}
	token, expiry, err := s.sessions.Commit(p.ctx)
	if err != nil {
		s.storeFailure(w, "starting session", err)
		return false
	}
	s.indexSession(r, u, token, expiry)
	s.forgetSessions(u.ID, token)
	s.setSessionCookie(w, r, token)
	return true
}

// factorChangeRefused answers 403 if the request's session is limited to
// enrolment and its user has a second factor already: such a session was
// opened with the password alone before the factor was added (by the
// owner, perhaps elsewhere), and may not change the factors. It reports
// whether it answered.
func (s *SessionAuth) factorChangeRefused(w http.ResponseWriter, r *http.Request, p *principal, svc *mfa.Service) bool {
	if !s.needsEnrolment(p) {
		return false
	}
	d, err := svc.Get(r.Context(), p.user.ID)
	if err != nil {
		s.storeFailure(w, "reading second factors", err)
		return true
	}
	if d.HasFactor() {
		writeJSON(w, http.StatusForbidden, bodySignInAgain)
		return true
	}
	return false
}

type totpSetupJSON struct {
	Secret     string `json:"secret"`
	OTPAuthURL string `json:"otpauth_url"`
	QRSVG      string `json:"qr_svg"`
}

func (s *SessionAuth) totpSetup(w http.ResponseWriter, r *http.Request, auth authResult) {
	u := auth.who.user
	if _, ok := s.withPassword(w, r, u); !ok {
		return
	}
	svc := s.mfaService(w, r)
	if svc == nil {
		return
	}
	if s.factorChangeRefused(w, r, auth.who, svc) {
		return
	}
	secret, url, err := svc.BeginTOTP(r.Context(), u.ID, s.totpIssuer(r), u.Username)
	if s.answerErr(w, err, "changing second factors", errTOTPEnabled) {
		return
	}
	svg, err := qrSVG(url)
	if err != nil {
		s.logger.Error("could not draw the TOTP QR code", zap.Error(err))
	}
	writeValue(w, http.StatusOK, totpSetupJSON{Secret: secret, OTPAuthURL: url, QRSVG: svg})
}

type recoveryCodesJSON struct {
	RecoveryCodes []string `json:"recovery_codes"`
}

func (s *SessionAuth) totpConfirm(w http.ResponseWriter, r *http.Request, auth authResult) {
	data, derr := readData(w, r, s.MaxBodyBytes)
	if derr != nil {
		writeJSON(w, derr.status, derr.body)
		return
	}
	var errs accounts.FieldErrors
	code, _ := stringField(data, "code", &errs)
	if !errs.Empty() {
		writeValue(w, http.StatusBadRequest, &errs)
		return
	}
	svc := s.mfaService(w, r)
	if svc == nil {
		return
	}
	u := auth.who.user
	codes, first, err := svc.ConfirmTOTP(r.Context(), u.ID, code, s.needsEnrolment(auth.who))
	if s.answerErr(w, err, "changing second factors", errInvalidCode, errTOTPEnabled, errSignInAgain,
		errAnswer{mfa.ErrNoPendingTOTP, http.StatusBadRequest, bodyNoTOTPSetup}) {
		return
	}
	s.factorChanged(r, u, "second factor added", auditMFAEnabled, zap.String("method", mfa.MethodTOTP))
	if first && !s.firstFactorAdded(w, r, auth.who) {
		return
	}
	writeValue(w, http.StatusOK, recoveryCodesJSON{codes})
}

func (s *SessionAuth) totpDisable(w http.ResponseWriter, r *http.Request, auth authResult) {
	u := auth.who.user
	fields, ok := s.withPassword(w, r, u, "code")
	if !ok {
		return
	}
	code := fields["code"]
	svc := s.mfaService(w, r)
	if svc == nil {
		return
	}
	// A wrong code counts as a failed login of the username, as at login.
	att, throttled := s.loginThrottled(w, r, u.Username)
	if throttled != "" {
		return
	}
	usedRecovery, err := svc.DisableTOTP(r.Context(), u.ID, code, s.allowAfter(u))
	if errors.Is(err, mfa.ErrBadCode) {
		s.loginFailed(att)
	} else {
		s.loginCanceled(att)
	}
	switch {
	case errors.Is(err, mfa.ErrBadCode):
		s.secondFactorFailed(r, u, methodOfCode(code))
		writeJSON(w, http.StatusBadRequest, bodyInvalidCode)
		return
	case s.answerErr(w, err, "changing second factors", errAnswer{mfa.ErrTOTPNotEnabled, http.StatusBadRequest, bodyTOTPNotEnabled}, errMustKeepFactor):
		return
	}
	if usedRecovery {
		s.audit(auditEntry{event: auditRecoveryCodeUsed, user: u, r: r})
	}
	s.factorChanged(r, u, "second factor removed", auditMFADisabled, zap.String("method", mfa.MethodTOTP))
	writeJSON(w, http.StatusOK, []byte(`{"detail":"TOTP disabled."}`))
}

func (s *SessionAuth) recoveryCodes(w http.ResponseWriter, r *http.Request, auth authResult) {
	u := auth.who.user
	if _, ok := s.withPassword(w, r, u); !ok {
		return
	}
	svc := s.mfaService(w, r)
	if svc == nil {
		return
	}
	codes, err := svc.NewRecoveryCodes(r.Context(), u.ID)
	if s.answerErr(w, err, "changing second factors", errAnswer{mfa.ErrTOTPNotEnabled, http.StatusBadRequest, bodyNoFactorYet}) {
		return
	}
	writeValue(w, http.StatusOK, recoveryCodesJSON{codes})
}

type passkeyJSON struct {
	ID       string     `json:"id"`
	Name     string     `json:"name"`
	Created  time.Time  `json:"created"`
	LastUsed *time.Time `json:"last_used,omitempty"`
}

func passkeyView(p *mfa.Passkey) passkeyJSON {
	v := passkeyJSON{ID: p.ID(), Name: p.Name, Created: p.Created}
	if !p.LastUsed.IsZero() {
		v.LastUsed = &p.LastUsed
	}
	return v
}

func (s *SessionAuth) listPasskeys(w http.ResponseWriter, r *http.Request, auth authResult) {
	d := s.userFactors(w, r, auth.who.user.ID)
	if d == nil {
		return
	}
	out := make([]passkeyJSON, 0, len(d.Passkeys))
	for i := range d.Passkeys {
		out = append(out, passkeyView(&d.Passkeys[i]))
	}
	writeValue(w, http.StatusOK, out)
}

func (s *SessionAuth) passkeyRegisterBegin(w http.ResponseWriter, r *http.Request, auth authResult) {
	u := auth.who.user
	if _, ok := s.withPassword(w, r, u); !ok {
		return
	}
	rp, svc := s.passkeyService(w, r)
	if svc == nil {
		return
	}
	if s.factorChangeRefused(w, r, auth.who, svc) {
		return
	}
	creation, sd, err := svc.BeginRegistration(r.Context(), rp, u.ID, u.Username)
	if s.answerErr(w, err, "reading second factors", errPasskeysHere) {
		return
	}
	s.sealState(w, r, svc.Keys, &mfa.State{Purpose: mfa.PurposeRegister, UserID: u.ID, Epoch: u.SessionEpoch, WebAuthn: sd})
	writeValue(w, http.StatusOK, creation)
}

func (s *SessionAuth) passkeyRegisterFinish(w http.ResponseWriter, r *http.Request, auth authResult) {
	body, derr := readJSONBody(w, r, s.MaxBodyBytes)
	if derr != nil {
		writeJSON(w, derr.status, derr.body)
		return
	}
	var named struct {
		Name any `json:"name"`
	}
	_ = json.Unmarshal(body, &named)
	name, _ := named.Name.(string)
	if len([]rune(name)) > 64 {
		var errs accounts.FieldErrors
		errs.Add("name", "Ensure this field has no more than 64 characters.")
		writeValue(w, http.StatusBadRequest, &errs)
		return
	}
	u := auth.who.user
	rp, svc := s.passkeyService(w, r)
	if svc == nil {
		return
	}
	st, ok := s.openState(r, svc.Keys, mfa.PurposeRegister)
	if !ok || st.UserID != u.ID || st.Epoch != u.SessionEpoch || st.WebAuthn == nil {
		writeJSON(w, http.StatusBadRequest, bodyPasskeyNoCeremony)
		return
	}
	pk, first, err := svc.FinishRegistration(r.Context(), rp, u.ID, u.Username, *st.WebAuthn, body, name, s.needsEnrolment(auth.who))
	if errors.Is(err, mfa.ErrPasskeyFailed) {
		s.logger.Info("passkey registration failed", zap.Int64("user_id", u.ID), zap.String("username", u.Username), zap.Error(err))
	}
	if s.answerErr(w, err, "changing second factors", errPasskeyFailed, errSignInAgain,
		errAnswer{mfa.ErrTooManyPasskeys, http.StatusBadRequest, bodyTooManyPasskeys}) {
		return
	}
	s.setStateCookie(w, r, "", -1)
	s.factorChanged(r, u, "second factor added", auditPasskeyAdded, passkeyFields(pk)...)
	if first && !s.firstFactorAdded(w, r, auth.who) {
		return
	}
	v := passkeyView(pk)
	writeValue(w, http.StatusCreated, struct {
		ID      string    `json:"id"`
		Name    string    `json:"name"`
		Created time.Time `json:"created"`
	}{v.ID, v.Name, v.Created})
}

func (s *SessionAuth) removePasskey(w http.ResponseWriter, r *http.Request, auth authResult) {
	id, _ := s.passkeyItemPath(r.URL.Path)
	u := auth.who.user
	if _, ok := s.withPassword(w, r, u); !ok {
		return
	}
	svc := s.mfaService(w, r)
	if svc == nil {
		return
	}
	pk, err := svc.RemovePasskey(r.Context(), u.ID, id, s.allowAfter(u))
	if s.answerErr(w, err, "changing second factors", errAnswer{mfa.ErrNoPasskey, http.StatusNotFound, bodyNoSuchPasskey}, errMustKeepFactor) {
		return
	}
	s.factorChanged(r, u, "second factor removed", auditPasskeyRemoved, passkeyFields(pk)...)
	w.Header()["Content-Length"] = valZero
	w.WriteHeader(http.StatusNoContent)
}

// passkeyLoginBegin serves POST <api>/login/passkey/begin/: with a pending
// login (the password was right), an assertion for that user's passkeys;
// without, one for any discoverable passkey (sign-in without a password).
func (s *SessionAuth) passkeyLoginBegin(w http.ResponseWriter, r *http.Request, _ authResult) {
	rp, svc := s.passkeyService(w, r)
	if svc == nil {
		return
	}
	// {"discoverable": true} asks for the sign-in without a password even
	// when a password step was left unfinished (another person at the
	// same browser, say).
	discoverable, derr := wantsDiscoverable(w, r, s.MaxBodyBytes)
	if derr != nil {
		writeJSON(w, derr.status, derr.body)
		return
	}
	st, pending := s.openState(r, svc.Keys, mfa.PurposeLogin)
	if discoverable || !pending {
		st, pending = &mfa.State{Purpose: mfa.PurposePasskeyLogin}, false
	}
	assertion, sd, err := svc.BeginLogin(r.Context(), rp, st.UserID)
	if s.answerErr(w, err, "reading second factors", errAnswer{mfa.ErrNoPasskey, http.StatusBadRequest, bodyNoPasskeyHere}, errPasskeysHere,
		errAnswer{users.ErrNotFound, http.StatusBadRequest, bodyNoPendingLogin}) {
		return
	}
	st.WebAuthn = sd
	if pending {
		// The pending login keeps its expiry: beginning a ceremony again
		// and again must not keep a right password's state alive.
		s.setStateCookie(w, r, svc.Keys.SealState(st), max(1, int(time.Until(st.Expires)/time.Second)))
	} else {
		s.sealState(w, r, svc.Keys, st)
	}
	writeValue(w, http.StatusOK, assertion)
}

// passkeyLoginFinish serves POST <api>/login/passkey/finish/: a verified
// assertion completes the login (the pending one, or, for a discoverable
// passkey, the login of the passkey's user).
func (s *SessionAuth) passkeyLoginFinish(w http.ResponseWriter, r *http.Request, _ authResult) {
	result := resultInvalid
	defer func() { s.counters.login(result).Inc() }()
	body, derr := readJSONBody(w, r, s.MaxBodyBytes)
	if derr != nil {
		writeJSON(w, derr.status, derr.body)
		return
	}
	rp, svc := s.passkeyService(w, r)
	if svc == nil {
		if rp.ID != "" { // the users backend failed (503)
			result = resultError
		}
		return
	}
	st, ok := s.openState(r, svc.Keys, mfa.PurposeLogin, mfa.PurposePasskeyLogin)
	if !ok || st.WebAuthn == nil {
		writeJSON(w, http.StatusBadRequest, bodyPasskeyNoCeremony)
		return
	}
	var pending *users.User
	var att *loginAttempt
	if st.Purpose == mfa.PurposeLogin {
		if pending, _ = s.pendingUser(w, r, svc); pending == nil {
			return
		}
		var throttled string
		if att, throttled = s.loginThrottled(w, r, pending.Username); throttled != "" {
			result = throttled
			return
		}
	}
	uid, pk, err := svc.FinishLogin(r.Context(), rp, *st.WebAuthn, body)
	if errors.Is(err, mfa.ErrPasskeyFailed) || errors.Is(err, mfa.ErrPasskeyReplay) || errors.Is(err, mfa.ErrNoPasskey) {
		result = resultBadCredentials
		s.loginFailed(att)
		if pending != nil {
			s.secondFactorFailed(r, pending, mfa.MethodPasskey)
		} else {
			s.counters.secondFactor(mfa.MethodPasskey, "failed").Inc()
			s.logger.Info("login failed", zap.String("client_ip", clientIP(r)), zap.String("reason", "bad_passkey"), zap.Error(err))
			s.audit(auditEntry{event: auditMFAFailed, r: r, extra: []zap.Field{zap.String("method", mfa.MethodPasskey)}})
		}
		writeJSON(w, http.StatusBadRequest, bodyPasskeyFailed)
		return
	}
	if err != nil {
		result = resultError
		s.loginCanceled(att)
		s.storeFailure(w, "reading second factors", err)
		return
	}
	u := pending
	if u == nil || u.ID != uid {
		if u, err = s.users.ByID(r.Context(), uid); err != nil {
			result = resultError
			if errors.Is(err, users.ErrNotFound) {
				result = resultBadCredentials
				writeJSON(w, http.StatusBadRequest, bodyPasskeyFailed)
				return
			}
			s.storeFailure(w, "reading the user", err)
			return
		}
	}
	if !u.IsActive {
		result = resultBadCredentials
		s.audit(auditEntry{event: auditLoginFailed, user: u, r: r, reason: reasonInactive})
		writeJSON(w, http.StatusBadRequest, bodyBadCredentials)
		return
	}
	if s.EmailVerification == emailVerificationMandatory && !u.EmailVerified {
		result = resultUnverified
		s.audit(auditEntry{event: auditLoginFailed, user: u, r: r, reason: reasonUnverified})
		writeJSON(w, http.StatusBadRequest, bodyUnverified)
		return
	}
	s.loginSucceeded(att)
	s.counters.secondFactor(mfa.MethodPasskey, resultSuccess).Inc()
	_ = pk
	result = s.completeLogin(w, r, u, true, mfa.MethodPasskey)
}

// wantsDiscoverable reads passkey login begin's optional body,
// {"discoverable": true}.
func wantsDiscoverable(w http.ResponseWriter, r *http.Request, limit int64) (bool, *decodeError) {
	if r.Header.Get("Content-Type") == "" {
		return false, nil
	}
	body, derr := readJSONBody(w, r, limit)
	if derr != nil {
		return false, derr
	}
	var v struct {
		Discoverable bool `json:"discoverable"`
	}
	if len(bytes.TrimSpace(body)) > 0 && json.Unmarshal(body, &v) != nil {
		return false, parseError("discoverable must be true or false.")
	}
	return v.Discoverable, nil
}

// readJSONBody reads a JSON body (a WebAuthn response) whole, within
// limit, with readData's answers for what it refuses.
func readJSONBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *decodeError) {
	ctype := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ctype); err != nil || mt != "application/json" {
		return nil, unsupported(ctype)
	}
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return nil, readFailure(err, limit)
	}
	if !json.Valid(body) {
		return nil, parseError("the body is not valid JSON.")
	}
	return body, nil
}
