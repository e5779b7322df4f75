package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/sessions"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/throttle"
)

// What an operator sees: counters labelled with the handler's site and
// present from the start, the wait for a hashing slot, the reasons of
// failed logins, and one start-up line per handler.

// Label values of the counters, all created at zero when a handler starts,
// so that a dashboard or an alert on rate() sees them before the first
// event. (store_errors_total's "while" values grow with the code: the ones
// known here start at zero, others appear when first counted.)
var (
	loginResults        = []string{resultSuccess, resultBadCredentials, resultInvalid, resultThrottled, resultUnverified, resultMFARequired, resultError}
	registrationResults = []string{resultCreated, resultInvalid, resultThrottled, resultClosed, resultError}
	gateResults         = []string{"allowed", "public", "denied", "redirected", "csrf_failed", "forbidden", "error"}
	throttleKinds       = []string{kindLoginUsername, kindLoginIP, kindLoginLockout, "register_ip",
		"password_reset_ip", "password_reset_address", "email_verification_ip", "email_verification_address"}
	storeErrorWhiles = []string{"changing password", "checking credentials", "checking the login throttle",
		"checking the registration throttle", "creating user", "ending all sessions", "ending session",
		"looking up username", "reading session", "reading the identity token keys", "signing the identity token",
		"starting session", "reading second factors", "changing second factors", "reading the user",
		"checking the mail throttle", "ending a session", "listing sessions", "loading the token key",
		"resetting the password", "verifying the e-mail address"}
)

// siteMetrics are one handler's counters, labelled with its site, the
// gate's resolved ahead (the per-request path: Inc is one atomic add).
type siteMetrics struct {
	site string

	gateAllowed, gatePublic, gateDenied, gateRedirected, gateCSRF, gateError prometheus.Counter
	gateForbidden                                                            prometheus.Counter
	lockouts                                                                 prometheus.Counter
}

// newSiteMetrics resolves site's counters and creates every label value
// at zero.
func newSiteMetrics(site string) *siteMetrics {
	m := &siteMetrics{site: site}
	for _, r := range loginResults {
		metrics.logins.WithLabelValues(r, site)
	}
	for _, r := range registrationResults {
		metrics.registrations.WithLabelValues(r, site)
	}
	for _, r := range gateResults {
		metrics.gate.WithLabelValues(r, site)
	}
	for _, k := range throttleKinds {
		metrics.throttled.WithLabelValues(k, site)
	}
	for _, w := range storeErrorWhiles {
		metrics.storeErrors.WithLabelValues(w, site)
	}
	for _, method := range []string{"totp", "recovery_code", "passkey"} {
		for _, r := range []string{resultSuccess, "failed"} {
			metrics.secondFactor.WithLabelValues(method, r, site)
		}
	}
	m.gateAllowed = metrics.gate.WithLabelValues("allowed", site)
	m.gatePublic = metrics.gate.WithLabelValues("public", site)
	m.gateDenied = metrics.gate.WithLabelValues("denied", site)
	m.gateRedirected = metrics.gate.WithLabelValues("redirected", site)
	m.gateCSRF = metrics.gate.WithLabelValues("csrf_failed", site)
	m.gateError = metrics.gate.WithLabelValues("error", site)
	m.gateForbidden = metrics.gate.WithLabelValues("forbidden", site)
	m.lockouts = metrics.lockouts.WithLabelValues(site)
	return m
}

func (m *siteMetrics) secondFactor(method, result string) prometheus.Counter {
	return metrics.secondFactor.WithLabelValues(method, result, m.site)
}

func (m *siteMetrics) login(result string) prometheus.Counter {
	return metrics.logins.WithLabelValues(result, m.site)
}

func (m *siteMetrics) registration(result string) prometheus.Counter {
	return metrics.registrations.WithLabelValues(result, m.site)
}

func (m *siteMetrics) throttled(kind string) prometheus.Counter {
	return metrics.throttled.WithLabelValues(kind, m.site)
}

func (m *siteMetrics) storeError(while string) prometheus.Counter {
	return metrics.storeErrors.WithLabelValues(while, m.site)
}

// siteName is the name of the server (in Caddy's JSON: apps.http.servers)
// the handler is provisioned in: srv0, srv1… from a Caddyfile.
func siteName(ctx caddy.Context) string {
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv != nil {
		return srv.Name()
	}
	return ""
}

// newHashWaitHistogram is the wait for a password-hash slot, for every
// hash and verification of the process (the slots are one bound for the
// process, so the histogram has no site): near zero normally, up to the
// 10 s bound (then 503) in a login flood.
func newHashWaitHistogram(ns, sub string) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: ns, Subsystem: sub, Name: "password_hash_wait_seconds",
		Help:    "Wait for a password-hash slot (hash_concurrency) before each hash or verification, also of those that gave up (503).",
		Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
}

func observeHashWait(d time.Duration) {
	if metrics.hashWait != nil {
		metrics.hashWait.Observe(d.Seconds())
	}
}

// seconds is a duration for the log: whole seconds, rounded up (a field
// named *_s).
func seconds(d time.Duration) int64 {
	return int64(math.Ceil(d.Seconds()))
}

// Reasons of a failed login in the log ("login failed", field reason).
const (
	reasonBadCredentials = "bad_credentials" // unknown user or wrong password
	reasonInactive       = "inactive"        // the right password of an inactive user
	reasonThrottled      = "throttled"       // login_throttle's ban of the username or IP
	reasonLockedOut      = "locked_out"      // login_lockout
	reasonHashBusy       = "hash_slots_busy" // no password-hash slot within 10 s (503)
	reasonStoreError     = "store_error"     // the users or throttle store failed (503)
)

// failReason names why Authenticate refused.
func failReason(err error) string {
	switch {
	case errors.Is(err, accounts.ErrInactive):
		return reasonInactive
	case errors.Is(err, accounts.ErrBadCredentials):
		return reasonBadCredentials
	case errors.Is(err, context.DeadlineExceeded):
		return reasonHashBusy
	}
	return reasonStoreError
}

// logStartup writes one line per handler: its site, where users and
// sessions are kept (URLs without passwords), and the throttles.
func (s *SessionAuth) logStartup() {
	sessionsAt := "users_db"
	if s.Redis != "" {
		sessionsAt = sessions.RedactURL(s.Redis)
	}
	s.logger.Info("session_auth started",
		zap.String("site", s.counters.site),
		zap.String("api_prefix", s.APIPrefix),
		zap.String("users_db", redactStoreURL(s.UsersDB)),
		zap.String("sessions", sessionsAt),
		zap.String("registration", s.Registration),
		zap.String("login_throttle", s.limits.describeLogin()),
		zap.String("login_lockout", s.limits.describeLockout()),
		zap.String("register_throttle", s.limits.describeRegister()),
		zap.String("throttle_store", s.throttleStoreName()),
		zap.Int("hash_concurrency", s.HashConcurrency),
	)
}

// redactStoreURL hides a password in a users_db URL (PostgreSQL); a path
// is shown as it is.
func redactStoreURL(v string) string {
	if !strings.Contains(v, "://") {
		return v
	}
	return sessions.RedactURL(v)
}

func (s *SessionAuth) throttleStoreName() string {
	if s.limits == nil || s.limits.store == nil {
		return "none"
	}
	if _, ok := s.limits.store.(*throttle.Memory); ok {
		return "memory"
	}
	return "redis"
}

func (l *limiter) describeLogin() string {
	if l == nil || l.login == nil {
		return "off"
	}
	c := l.login
	return fmt.Sprintf("%d per username, %d per IP in %ds, ban %ds", c.UserFailures, c.IPFailures,
		seconds(time.Duration(c.Window)), seconds(time.Duration(c.Ban)))
}

func (l *limiter) describeLockout() string {
	if l == nil || l.lockout == nil {
		return "off"
	}
	c := l.lockout
	until := "until a login from a known IP or an unban"
	if c.Ban > 0 {
		until = fmt.Sprintf("for %ds", seconds(time.Duration(c.Ban)))
	}
	return fmt.Sprintf("%d per username in %ds, %s", c.Failures, seconds(time.Duration(c.Window)), until)
}

func (l *limiter) describeRegister() string {
	if l == nil || l.register == nil {
		return "off"
	}
	return fmt.Sprintf("%d per IP in %ds", l.register.Count, seconds(time.Duration(l.register.Window)))
}
