package caddymodule

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics live in Caddy's registry, which is new at every config load: the
// collectors are made once and registered in each registry, so counts
// survive reloads (as reverse_proxy's do).
var metrics struct {
	once          sync.Once
	logins        *prometheus.CounterVec
	registrations *prometheus.CounterVec
	gate          *prometheus.CounterVec
	throttled     *prometheus.CounterVec
	lockouts      *prometheus.CounterVec
	storeErrors   *prometheus.CounterVec
	hashSeconds   prometheus.Histogram
	hashWait      prometheus.Histogram // signals.go
	mails         *prometheus.CounterVec
	secondFactor  *prometheus.CounterVec
}

// siteLabel names the handler's site (its server's name, e.g. srv0) on
// every counter: several sites in one Caddy are told apart.
const siteLabel = "site"

// Label values.
const (
	resultSuccess        = "success"
	resultBadCredentials = "bad_credentials"
	resultInvalid        = "invalid"
	resultThrottled      = "throttled"
	resultError          = "error"
	resultCreated        = "created"
	resultUnverified     = "unverified"
	resultMFARequired    = "mfa_required"
)

func initMetrics(registry *prometheus.Registry) error {
	const ns, sub = "caddy", "session_auth"
	metrics.once.Do(func() {
		metrics.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "login_attempts_total",
			Help: "Login attempts by result: success, bad_credentials, invalid (malformed request), throttled, unverified (right password, e-mail not verified under email_verification mandatory), mfa_required (right password, second factor awaited), error. The second step (login/2fa/, login/passkey/finish/) counts as a login attempt too.",
		}, []string{"result", siteLabel})
		metrics.registrations = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "registrations_total",
			Help: "Registrations by result: created, invalid, throttled, closed (registration closed), error.",
		}, []string{"result", siteLabel})
		metrics.gate = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "gate_decisions_total",
			Help: "Gate decisions on proxied paths: allowed, public, denied, redirected (to sign in), csrf_failed, forbidden (a require rule, or a second factor to enrol), error.",
		}, []string{"result", siteLabel})
		metrics.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "throttled_requests_total",
			Help: "Requests refused with 429, by what was throttled: login_username, login_ip, login_lockout, register_ip.",
		}, []string{"kind", siteLabel})
		metrics.lockouts = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "login_lockouts_total",
			Help: "Usernames locked out by login_lockout (too many failed logins in its long window).",
		}, []string{siteLabel})
		metrics.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "store_errors_total",
			Help: "Failed session or user store operations (answered 503).",
		}, []string{"while", siteLabel})
		metrics.hashSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "password_hash_duration_seconds",
			Help:    "Time of each password hash or verification (argon2id and imported formats), excluding the wait for a slot.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		})
		metrics.hashWait = newHashWaitHistogram(ns, sub) // signals.go
		metrics.mails = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "mails_total",
			Help: "Account mails by kind (password_reset, email_verification) and result: sent, failed (the SMTP server refused or did not answer), dropped (the queue was full).",
		}, []string{"kind", "result"})
		metrics.secondFactor = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "second_factor_total",
			Help: "Second factors presented at sign-in (and to disable TOTP), by method (totp, recovery_code, passkey) and result (success, failed).",
		}, []string{"method", "result", siteLabel})
		for _, kind := range []string{"password_reset", "email_verification"} {
			for _, result := range []string{"sent", "failed", "dropped"} {
				metrics.mails.WithLabelValues(kind, result) // present from start, at 0
			}
		}
	})
	if registry == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{metrics.logins, metrics.registrations, metrics.gate,
		metrics.throttled, metrics.lockouts, metrics.storeErrors, metrics.hashSeconds, metrics.hashWait, metrics.mails, metrics.secondFactor} {
		// Several session_auth handlers share one registry: register once.
		if err := registry.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// hashTap, when set (by tests), is told of every hash too.
var hashTap atomic.Pointer[func(time.Duration)]

func observeHash(d time.Duration) {
	metrics.hashSeconds.Observe(d.Seconds())
	if tap := hashTap.Load(); tap != nil {
		(*tap)(d)
	}
}
