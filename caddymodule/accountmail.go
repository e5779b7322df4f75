package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/mailer"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// Account mail: password reset and e-mail verification (issue 14), in the
// shapes of dj-rest-auth.

// Values of EmailVerification.
const (
	emailVerificationOff       = "off"
	emailVerificationOptional  = "optional"
	emailVerificationMandatory = "mandatory"
)

const (
	defaultPasswordResetTimeout = caddy.Duration(time.Hour)
	// Reset and resend requests: per client IP (429 beyond), and per
	// address (beyond, the request is answered alike but sends nothing,
	// so that nobody can flood a mailbox).
	mailIPLimit      = 20
	mailIPWindow     = 10 * time.Minute
	mailAddressLimit = 3
	mailAddressWin   = time.Hour
	// mailCloseWait is how long a config being unloaded lets its queued
	// mails go out.
	mailCloseWait = 5 * time.Second
)

// Messages and bodies (dj-rest-auth's).
var (
	bodyResetSent     = []byte(`{"detail":"Password reset e-mail has been sent."}`)
	bodyResetDone     = []byte(`{"detail":"Password has been reset with the new password."}`)
	bodyOK            = []byte(`{"detail":"ok"}`)
	bodyUIDInvalid    = []byte(`{"uid":["Invalid value"]}`)
	bodyTokenInvalid  = []byte(`{"token":["Invalid value"]}`)
	bodyKeyNotFound   = []byte(`{"detail":"Not found."}`)
	bodyUnverified    = []byte(`{"non_field_errors":["E-mail is not verified."]}`)
	msgEmailInvalidRF = "Enter a valid email address."
)

// accountMail is what a handler with `smtp` has for sending account mail.
type accountMail struct {
	mailer *mailer.Mailer
	tokens tokenHolder
}

// tokenHolder loads the token key from the users backend on first use
// (and again after a failure), so that a backend down at start does not
// stop the sidecar.
type tokenHolder struct {
	mu  sync.Mutex
	t   *accounts.Tokens
	sec users.Secrets
}

func (h *tokenHolder) get(ctx context.Context) (*accounts.Tokens, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.t != nil {
		return h.t, nil
	}
	if h.sec == nil {
		return nil, errors.New("the users backend keeps no secrets")
	}
	t, err := accounts.LoadTokens(ctx, h.sec)
	if err != nil {
		return nil, err
	}
	h.t = t
	return t, nil
}

// checkMailSettings is Validate's part for mail.
func (s *SessionAuth) checkMailSettings() error {
	switch s.EmailVerification {
	case "", emailVerificationOff, emailVerificationOptional, emailVerificationMandatory:
	default:
		return fmt.Errorf("email_verification: want off, optional or mandatory, got %q", s.EmailVerification)
	}
	if s.SMTP == "" {
		// The other mail settings are ignored without smtp (as the
		// Redis-only ones without redis), so that a config can leave
		// smtp to an environment variable; verification cannot be.
		if s.EmailVerification != "" && s.EmailVerification != emailVerificationOff {
			return fmt.Errorf("email_verification %s needs smtp (the server verification mail is sent through)", s.EmailVerification)
		}
		return nil
	}
	if _, err := mailer.ParseURL(s.SMTP); err != nil {
		return err
	}
	if s.EmailFrom == "" {
		return errors.New("smtp needs email_from (the sender of account mail, \"Name <addr@example.com>\")")
	}
	if _, err := mailer.ParseFrom(s.EmailFrom); err != nil {
		return err
	}
	if s.SMTPTLSCA != "" {
		if _, err := mailer.LoadCA(s.SMTPTLSCA); err != nil {
			return err
		}
	}
	if err := checkLinkTemplate("password_reset_url", s.PasswordResetURL, "{uid}", "{token}"); err != nil {
		return err
	}
	if err := checkLinkTemplate("email_verify_url", s.EmailVerifyURL, "{key}"); err != nil {
		return err
	}
	return nil // (negative timeouts: checkNumbers, confignumbers.go)
}

func checkLinkTemplate(name, tmpl string, placeholders ...string) error {
	if tmpl == "" {
		return nil
	}
	u, err := url.Parse(strings.NewReplacer("{uid}", "u", "{token}", "t", "{key}", "k").Replace(tmpl))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: want an absolute http(s) URL, got %q", name, tmpl)
	}
	for _, p := range placeholders {
		if !strings.Contains(tmpl, p) {
			return fmt.Errorf("%s %q: the link must contain %s", name, tmpl, p)
		}
	}
	return nil
}

// provisionMail starts the mail sender (with smtp set).
func (s *SessionAuth) provisionMail() error {
	if s.EmailVerification == "" {
		s.EmailVerification = emailVerificationOff
	}
	if s.PasswordResetTimeout <= 0 {
		s.PasswordResetTimeout = defaultPasswordResetTimeout
	}
	if s.SMTPTimeout <= 0 {
		s.SMTPTimeout = caddy.Duration(mailer.DefaultTimeout)
	}
	if s.SMTP == "" {
		return nil
	}
	if err := s.checkMailSettings(); err != nil {
		return err
	}
	sec, _ := s.users.(users.Secrets)
	logger := s.slogger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := mailer.New(mailer.Config{URL: s.SMTP, From: s.EmailFrom, CAFile: s.SMTPTLSCA, Timeout: time.Duration(s.SMTPTimeout)},
		logger, s.mailSent)
	if err != nil {
		return err
	}
	s.mail = &accountMail{mailer: m, tokens: tokenHolder{sec: sec}}
	if s.PasswordResetURL == "" || (s.EmailVerifyURL == "" && s.EmailVerification != emailVerificationOff) {
		s.logger.Warn("account mail links point at the built-in page on the host each request names, and are sent only " +
			"for hosts this site can vouch for (loopback, csrf_trusted_origins or cors_origins, the TLS server name): " +
			"set password_reset_url and email_verify_url behind a proxy that terminates TLS")
	}
	return nil
}

func (s *SessionAuth) releaseMail() {
	if s.mail != nil {
		s.mail.mailer.Close(mailCloseWait)
		s.mail = nil
	}
}

// mailSent logs and counts each delivery attempt. The recipient is logged
// (the operator needs it to help a user), never the link.
func (s *SessionAuth) mailSent(m *mailer.Message, err error) {
	if err != nil {
		metrics.mails.WithLabelValues(m.Kind, "failed").Inc()
		s.logger.Error("account mail not sent", zap.String("kind", m.Kind), zap.String("to", m.To),
			zap.String("smtp", s.mail.server()), zap.Error(err))
		return
	}
	metrics.mails.WithLabelValues(m.Kind, "sent").Inc()
	s.logger.Info("account mail sent", zap.String("kind", m.Kind), zap.String("to", m.To))
}

func (a *accountMail) server() string {
	if a == nil {
		return ""
	}
	return a.mailer.Server().String()
}

// enqueueMail queues a mail job; a full queue drops it (logged, counted).
func (s *SessionAuth) enqueueMail(kind string, prepare func(ctx context.Context) *mailer.Message) {
	if err := s.mail.mailer.Enqueue(prepare); err != nil {
		metrics.mails.WithLabelValues(kind, "dropped").Inc()
		s.logger.Error("account mail dropped", zap.String("kind", kind), zap.Error(err))
	}
}

// linkBase is the origin of the built-in pages' links: the request's
// scheme and Host, but only a Host this site can vouch for, since a client
// chooses the Host header and a mail's link must not point at a host of
// the attacker's choosing (Django checks ALLOWED_HOSTS for the same
// reason): a loopback name (a development set-up), an origin the operator
// listed (cors_origins, csrf_trusted_origins), or the TLS server name the
// connection was made for (Caddy has a certificate for it). ok is false
// otherwise: the mail is not sent and the log says to set
// password_reset_url and email_verify_url. Configured URLs need none of
// this.
func (s *SessionAuth) linkBase(r *http.Request) (base string, ok bool) {
	scheme := "http"
	if requestIsHTTPS(r) {
		scheme = "https"
	}
	host := r.Host
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-:[]", c) >= 0) {
			return "", false
		}
	}
	if host == "" {
		return "", false
	}
	base = scheme + "://" + host
	name := strings.ToLower(host)
	if h, _, err := net.SplitHostPort(name); err == nil {
		name = h
	}
	name = strings.Trim(name, "[]")
	switch {
	case name == "localhost", net.ParseIP(name) != nil && net.ParseIP(name).IsLoopback():
		return base, true
	case s.trusted.has(strings.ToLower(base)):
		return base, true
	case r.TLS != nil && strings.EqualFold(r.TLS.ServerName, name):
		return base, true
	}
	return "", false
}

// untrustedLink logs a mail not sent because its link would have named a
// host the site cannot vouch for (see linkBase).
func (s *SessionAuth) untrustedLink(kind string, r *http.Request) {
	metrics.mails.WithLabelValues(kind, "dropped").Inc()
	s.logger.Error("account mail not sent: its link would point at the request's Host, which this site cannot vouch for; "+
		"set password_reset_url and email_verify_url (or list the site's origin in csrf_trusted_origins)",
		zap.String("kind", kind), zap.String("host", loggableHost(r.Host)), zap.String("client_ip", clientIP(r)))
}

// loggableHost is a Host header fit for the log (bounded, printable).
func loggableHost(h string) string {
	if len(h) > 100 {
		h = h[:100]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, h)
}

// resetLink and verifyLink fill in the configured link, or point at the
// built-in page (the secrets in the fragment, which no server sees).
func (s *SessionAuth) resetLink(base, uid, token string) string {
	if s.PasswordResetURL != "" {
		return strings.NewReplacer("{uid}", url.PathEscape(uid), "{token}", url.PathEscape(token)).Replace(s.PasswordResetURL)
	}
	return base + s.APIPrefix + "/" + s.LoginPage + "#reset-confirm/" + uid + "/" + token
}

func (s *SessionAuth) verifyLink(base, key string) string {
	if s.EmailVerifyURL != "" {
		return strings.Replace(s.EmailVerifyURL, "{key}", url.PathEscape(key), -1)
	}
	return base + s.APIPrefix + "/" + s.LoginPage + "#verify/" + key
}

func mailSiteName(link string) string {
	if u, err := url.Parse(link); err == nil && u.Host != "" {
		return u.Hostname()
	}
	return "our site"
}

// The mails' text, Django's and allauth's templates in spirit.
func resetMail(u *users.User, link string) *mailer.Message {
	site := mailSiteName(link)
	return &mailer.Message{
		Kind:    "password_reset",
		To:      u.Email,
		Subject: "Password reset on " + site,
		Body: "You're receiving this email because you requested a password reset for your user account at " + site + ".\r\n\r\n" +
			"Please go to the following page and choose a new password:\r\n" + link + "\r\n\r\n" +
			"Your username, in case you've forgotten: " + u.Username + "\r\n\r\n" +
			"If you did not ask for this, you can ignore this mail: your password stays as it is.\r\n\r\n" +
			"Thanks for using our site!\r\n",
	}
}

func verifyMail(u *users.User, link string) *mailer.Message {
	site := mailSiteName(link)
	return &mailer.Message{
		Kind:    "email_verification",
		To:      u.Email,
		Subject: "Please confirm your e-mail address",
		Body: "Hello from " + site + "!\r\n\r\n" +
			"You're receiving this email because user " + u.Username + " has given your e-mail address to register an account on " + site + ".\r\n\r\n" +
			"To confirm this is correct, go to:\r\n" + link + "\r\n\r\n" +
			"Thank you for using " + site + "!\r\n",
	}
}

// mailThrottled counts a reset or resend request against the client IP
// (429 beyond the limit, 503 if the throttle store fails; true: answered)
// and reports whether the address is over its own limit (then the request
// is answered as usual and sends nothing).
func (s *SessionAuth) mailThrottled(w http.ResponseWriter, r *http.Request, kind, email string) (answered, addressOver bool) {
	if s.limits == nil || s.limits.store == nil {
		return false, false
	}
	wait, err := s.limits.store.Take(kind+"-ip:"+ipThrottleKey(r), mailIPLimit, mailIPWindow)
	if err != nil {
		s.storeFailure(w, "checking the mail throttle", err)
		return true, false
	}
	if wait > 0 {
		s.counters.throttled(kind + "_ip").Inc()
		s.logger.Info("mail request throttled", zap.String("kind", kind), zap.String("client_ip", clientIP(r)))
		writeThrottled(w, wait)
		return true, false
	}
	wait, err = s.limits.store.Take(kind+"-addr:"+usernameHash(strings.ToLower(email)), mailAddressLimit, mailAddressWin)
	if err != nil {
		s.storeFailure(w, "checking the mail throttle", err)
		return true, false
	}
	if wait > 0 {
		s.counters.throttled(kind + "_address").Inc()
		return false, true
	}
	return false, false
}

// emailField reads the one "email" field of a reset or resend request
// (a DRF EmailField).
func emailField(w http.ResponseWriter, r *http.Request, limit int64) (string, bool) {
	data, derr := readData(w, r, limit)
	if derr != nil {
		writeJSON(w, derr.status, derr.body)
		return "", false
	}
	var errs accounts.FieldErrors
	email, ok := stringField(data, "email", &errs)
	if ok {
		if _, valid := accounts.CheckEmail(email); !valid {
			errs.Add("email", msgEmailInvalidRF)
		}
	}
	if !errs.Empty() {
		writeValue(w, http.StatusBadRequest, &errs)
		return "", false
	}
	return email, true
}

// passwordReset serves POST <api>/password/reset/ {"email"}: always 200
// with the same body, in the same time whether or not the address is
// known: the look-up and the mail happen off the request, in the sender.
func (s *SessionAuth) passwordReset(w http.ResponseWriter, r *http.Request, _ authResult) {
	email, ok := emailField(w, r, s.MaxBodyBytes)
	if !ok {
		return
	}
	answered, over := s.mailThrottled(w, r, "password_reset", email)
	if answered {
		return
	}
	if over {
		s.logger.Info("password reset not sent: too many requests for this address", zap.String("client_ip", clientIP(r)))
		writeJSON(w, http.StatusOK, bodyResetSent)
		return
	}
	base, trusted := s.linkBase(r)
	if !trusted && s.PasswordResetURL == "" {
		s.untrustedLink("password_reset", r)
		writeJSON(w, http.StatusOK, bodyResetSent) // as always: nothing told
		return
	}
	ip, ua := clientIP(r), userAgent(r)
	s.enqueueMail("password_reset", func(ctx context.Context) *mailer.Message {
		found, err := s.accounts.ResetRecipients(ctx, email)
		if err != nil {
			s.logger.Error("password reset: looking up the address", zap.Error(err))
			return nil
		}
		if len(found) == 0 {
			s.audit(auditEntry{event: auditPasswordResetRequested, extra: []zap.Field{zap.String("client_ip", ip),
				zap.String("user_agent", ua), zap.Bool("known_address", false)}})
			return nil
		}
		tokens, err := s.mail.tokens.get(ctx)
		if err != nil {
			s.logger.Error("password reset: loading the token key", zap.Error(err))
			return nil
		}
		// Several accounts may share an address: one mail each, the
		// first sent here, the others queued after it.
		for i := range found {
			u := &found[i]
			s.audit(auditEntry{event: auditPasswordResetRequested, user: u, extra: []zap.Field{zap.String("client_ip", ip),
				zap.String("user_agent", ua), zap.Bool("known_address", true)}})
			if i > 0 {
				msg := resetMail(u, s.resetLink(base, accounts.EncodeUID(u.ID), tokens.ResetToken(u, time.Now())))
				s.enqueueMail("password_reset", func(context.Context) *mailer.Message { return msg })
			}
		}
		u := &found[0]
		return resetMail(u, s.resetLink(base, accounts.EncodeUID(u.ID), tokens.ResetToken(u, time.Now())))
	})
	writeJSON(w, http.StatusOK, bodyResetSent)
}

// passwordResetConfirm serves POST <api>/password/reset/confirm/ with
// uid, token, new_password1 and new_password2, in dj-rest-auth's order:
// the uid, the token, then Django's SetPasswordForm. Success sets the
// password, ends every session of the user and makes the token useless.
func (s *SessionAuth) passwordResetConfirm(w http.ResponseWriter, r *http.Request, _ authResult) {
	data, derr := readData(w, r, s.MaxBodyBytes)
	if derr != nil {
		writeJSON(w, derr.status, derr.body)
		return
	}
	var errs accounts.FieldErrors
	p1, _ := stringField(data, "new_password1", &errs)
	p2, _ := stringField(data, "new_password2", &errs)
	uid, _ := stringField(data, "uid", &errs)
	token, _ := stringField(data, "token", &errs)
	if !errs.Empty() {
		writeValue(w, http.StatusBadRequest, &errs)
		return
	}
	tokens, err := s.mail.tokens.get(r.Context())
	if err != nil {
		s.storeFailure(w, "loading the token key", err)
		return
	}
	u, err := s.accounts.ResetUser(r.Context(), tokens, uid, token, time.Duration(s.PasswordResetTimeout), time.Now())
	switch {
	case errors.Is(err, accounts.ErrNotFound):
		writeJSON(w, http.StatusBadRequest, bodyUIDInvalid)
		return
	case errors.Is(err, accounts.ErrTokenInvalid):
		writeJSON(w, http.StatusBadRequest, bodyTokenInvalid)
		return
	case err != nil:
		s.storeFailure(w, "reading the user", err)
		return
	}
	checkNewPassword(&errs, p1, p2, u)
	if !errs.Empty() {
		writeValue(w, http.StatusBadRequest, &errs)
		return
	}
	hctx, cancel := hashContext(r.Context())
	u, err = s.accounts.ResetPassword(hctx, u, p1)
	cancel()
	if errors.Is(err, accounts.ErrTokenInvalid) {
		writeJSON(w, http.StatusBadRequest, bodyTokenInvalid)
		return
	}
	if err != nil {
		s.storeFailure(w, "resetting the password", err)
		return
	}
	s.forgetSessions(u.ID, "")
	s.audit(auditEntry{event: auditPasswordReset, user: u, r: r})
	writeJSON(w, http.StatusOK, bodyResetDone)
}

// sendVerification queues the verification mail of u's address.
func (s *SessionAuth) sendVerification(r *http.Request, u *users.User) {
	base, trusted := s.linkBase(r)
	if !trusted && s.EmailVerifyURL == "" {
		s.untrustedLink("email_verification", r)
		return
	}
	user := *u
	s.enqueueMail("email_verification", func(ctx context.Context) *mailer.Message {
		tokens, err := s.mail.tokens.get(ctx)
		if err != nil {
			s.logger.Error("e-mail verification: loading the token key", zap.Error(err))
			return nil
		}
		return verifyMail(&user, s.verifyLink(base, tokens.VerifyKey(&user, time.Now())))
	})
}

// verifyEmail serves POST <api>/registration/verify-email/ {"key"}:
// 200 {"detail": "ok"}, or 404 as dj-rest-auth answers an unknown key.
func (s *SessionAuth) verifyEmail(w http.ResponseWriter, r *http.Request, _ authResult) {
	data, derr := readData(w, r, s.MaxBodyBytes)
	if derr != nil {
		writeJSON(w, derr.status, derr.body)
		return
	}
	var errs accounts.FieldErrors
	key, _ := stringField(data, "key", &errs)
	if !errs.Empty() {
		writeValue(w, http.StatusBadRequest, &errs)
		return
	}
	tokens, err := s.mail.tokens.get(r.Context())
	if err != nil {
		s.storeFailure(w, "loading the token key", err)
		return
	}
	u, changed, err := s.accounts.VerifyEmail(r.Context(), tokens, key, time.Now())
	if errors.Is(err, accounts.ErrInvalidKey) {
		writeJSON(w, http.StatusNotFound, bodyKeyNotFound)
		return
	}
	if err != nil {
		s.storeFailure(w, "verifying the e-mail address", err)
		return
	}
	if changed {
		s.audit(auditEntry{event: auditEmailVerified, user: u, r: r})
	}
	writeJSON(w, http.StatusOK, bodyOK)
}

// resendEmail serves POST <api>/registration/resend-email/ {"email"}:
// always 200 {"detail": "ok"}; a mail goes to each active account with
// that address that is not verified yet.
func (s *SessionAuth) resendEmail(w http.ResponseWriter, r *http.Request, _ authResult) {
	email, ok := emailField(w, r, s.MaxBodyBytes)
	if !ok {
		return
	}
	answered, over := s.mailThrottled(w, r, "email_verification", email)
	if answered {
		return
	}
	base, trusted := s.linkBase(r)
	if !trusted && s.EmailVerifyURL == "" {
		s.untrustedLink("email_verification", r)
		over = true // nothing sent; the answer is the same
	}
	if !over {
		s.enqueueMail("email_verification", func(ctx context.Context) *mailer.Message {
			found, err := s.accounts.UnverifiedRecipients(ctx, email)
			if err != nil {
				s.logger.Error("e-mail verification: looking up the address", zap.Error(err))
				return nil
			}
			if len(found) == 0 {
				return nil
			}
			tokens, err := s.mail.tokens.get(ctx)
			if err != nil {
				s.logger.Error("e-mail verification: loading the token key", zap.Error(err))
				return nil
			}
			for i := 1; i < len(found); i++ {
				msg := verifyMail(&found[i], s.verifyLink(base, tokens.VerifyKey(&found[i], time.Now())))
				s.enqueueMail("email_verification", func(context.Context) *mailer.Message { return msg })
			}
			return verifyMail(&found[0], s.verifyLink(base, tokens.VerifyKey(&found[0], time.Now())))
		})
	}
	writeJSON(w, http.StatusOK, bodyOK)
}
