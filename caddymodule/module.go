package caddymodule

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"

	"github.com/alexedwards/scs/v2"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/passwords"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/rules"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/sessions"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

func init() {
	caddy.RegisterModule(SessionAuth{})
}

// Defaults, as the Django backend had them.
const (
	defaultAPIPrefix     = "/api"
	defaultSessionCookie = "sessionid"
	defaultCSRFCookie    = "csrftoken"
	defaultSessionAge    = caddy.Duration(1209600 * time.Second) // two weeks
	defaultCSRFAge       = caddy.Duration(31449600 * time.Second)
	defaultMaxBody       = 64 << 10
	defaultRedisPrefix   = "session_auth:session:"
	defaultDBLockTimeout = caddy.Duration(3 * time.Second)
	// Each argon2id hash holds 19 MiB: at 4 at once, 200 concurrent logins
	// peak near 250 MiB of RSS (memory_test.go); 8 reach about 440 MiB.
	maxDefaultHashConcurrency = 4
)

// SessionAuth is an HTTP handler that answers a session-login JSON API
// (register, login, logout, current user) under APIPrefix and gates every
// other request: anonymous ones are refused, authenticated ones go on to the
// next handler (typically reverse_proxy) with the user's identity in request
// headers and in the {http.auth.user.*} placeholders.
type SessionAuth struct {
	// UsersDB is where users live: a bbolt file (a path), which holds
	// sessions too when Redis is not set, or a PostgreSQL database (a
	// postgres:// or postgresql:// URL, libpq's parameters; {env.VAR}
	// placeholders are replaced), shared by any number of instances, which
	// then need Redis for sessions. See README "Scaling out". Default:
	// session_auth/users.db in Caddy's data directory.
	UsersDB string `json:"users_db,omitempty"`

	// DjangoUsers keeps the users in Django's own auth_user table of the
	// UsersDB PostgreSQL database (groups read from auth_group and
	// auth_user_groups), so a Django app and the sidecar see the same
	// users at all times. See README "Sharing users with Django".
	DjangoUsers bool `json:"django_users,omitempty"`

	// PasswordHasher is the format of new password hashes with
	// DjangoUsers: "pbkdf2_sha256" (default; Django's default hasher) or
	// "argon2" (Django's Argon2PasswordHasher, which needs argon2-cffi on
	// the Django side). Hashes in other formats are upgraded at the next
	// login through the sidecar, as Django does.
	PasswordHasher string `json:"password_hasher,omitempty"`

	// PBKDF2Iterations is pbkdf2_sha256's iteration count (default
	// 1,500,000, Django 6.1's); set it to your Django's
	// PBKDF2PasswordHasher.iterations.
	PBKDF2Iterations int `json:"pbkdf2_iterations,omitempty"`

	// Redis is the URL of the Redis server that holds sessions:
	// redis://[[user]:password@]host:port/db (user: a Redis 6 ACL user),
	// rediss:// for TLS, unix:///path/to/redis.sock, or
	// redis+sentinel://[[user]:password@]host:port[,host:port...]/<master-name>[/<db>]
	// to find the master through Redis Sentinel and follow its failovers
	// (rediss+sentinel:// for TLS to the Sentinels and the master). Empty
	// keeps sessions in the UsersDB file, and the settings below that only
	// concern Redis are then ignored.
	Redis string `json:"redis,omitempty"`

	// SentinelPassword authenticates to the Sentinels of a
	// redis+sentinel:// URL (the URL's password is the Redis one).
	SentinelPassword string `json:"sentinel_password,omitempty"`

	// RedisTLSCA is a PEM file of the CA certificates that sign the Redis
	// server's certificate (rediss:// only). Default: the system's roots.
	RedisTLSCA string `json:"redis_tls_ca,omitempty"`

	// RedisTLSCert and RedisTLSKey are PEM files of a client certificate
	// and its key, for a Redis that asks for one (tls-auth-clients).
	RedisTLSCert string `json:"redis_tls_cert,omitempty"`
	RedisTLSKey  string `json:"redis_tls_key,omitempty"`

	// SessionCache bounds the in-memory cache of Redis session reads, kept
	// exact by Redis's client-side caching invalidations (CLIENT TRACKING):
	// a number of sessions, or "off". Default: 10000.
	SessionCache SessionCache `json:"session_cache,omitempty"`

	// RedisKeyPrefix prefixes every session key in Redis.
	// Default: "session_auth:session:".
	RedisKeyPrefix string `json:"redis_key_prefix,omitempty"`

	// APIPrefix is the path under which the API's endpoints live
	// (register/, login/, logout/, user/, protected/). Default: "/api".
	APIPrefix string `json:"api_prefix,omitempty"`

	// SessionCookie names the session cookie. Default: "sessionid".
	SessionCookie string `json:"session_cookie,omitempty"`

	// SessionMaxAge is both the session lifetime and the session cookie's
	// Max-Age. Default: two weeks.
	SessionMaxAge caddy.Duration `json:"session_max_age,omitempty"`

	// CookieDomain sets the Domain attribute of both cookies, e.g.
	// "example.com" so that a session made on auth.example.com is sent to
	// app.example.com (forward-auth for several sites). Default: none
	// (host-only cookies).
	CookieDomain string `json:"cookie_domain,omitempty"`

	// CookieSecure says when both cookies get the Secure attribute: "auto"
	// when the client's request is HTTPS (it came over TLS, or from one of
	// the server's trusted_proxies with `X-Forwarded-Proto: https`),
	// "always" on every response (needed for `__Host-` and `__Secure-`
	// cookie names). Default: "auto".
	CookieSecure string `json:"cookie_secure,omitempty"`

	// CSRFCookie names the cookie that carries the (masked) CSRF token.
	// Default: "csrftoken".
	CSRFCookie string `json:"csrf_cookie,omitempty"`

	// CSRFMaxAge is the CSRF cookie's Max-Age. Default: 364 days.
	CSRFMaxAge caddy.Duration `json:"csrf_max_age,omitempty"`

	// CORSOrigins lists the origins (scheme://host[:port], exact) allowed to
	// call with credentials, as django-cors-headers' CORS_ALLOWED_ORIGINS.
	CORSOrigins []string `json:"cors_origins,omitempty"`

	// CSRFTrustedOrigins are origins, besides the request's own and the CORS
	// origins, from which unsafe requests with a session are accepted.
	CSRFTrustedOrigins []string `json:"csrf_trusted_origins,omitempty"`

	// MaxBodyBytes bounds API request bodies; larger ones get 413.
	// Default: 65536.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`

	// HashConcurrency bounds how many password hashes run at once (each
	// takes 19 MiB), so a login flood cannot exhaust memory. The bound is
	// one for the whole process (every site, the admin API): with several
	// session_auth handlers, the smallest figure applies.
	// Default: the number of CPUs, at most 4.
	HashConcurrency int `json:"hash_concurrency,omitempty"`

	// DBLockTimeout is how long to wait for the UsersDB file lock before
	// failing (another process holds it). Default: 3s.
	DBLockTimeout caddy.Duration `json:"db_lock_timeout,omitempty"`

	// IdentityHeaders names the request headers that carry the user's
	// identity to the upstream. Defaults: X-Auth-User-Id, X-Auth-Username,
	// X-Auth-Email.
	IdentityHeaders *IdentityHeaders `json:"identity_headers,omitempty"`

	// LoginThrottle bounds failed logins per username and per client IP.
	// Default: on, 5 failures per username or 20 per IP within 2 minutes
	// ban that username or IP for 5 minutes. See LoginThrottle.
	LoginThrottle *LoginThrottle `json:"login_throttle,omitempty"`

	// LoginLockout locks a username out after many failed logins from
	// any IPs over a long window, until a login from an IP known to the
	// account or an operator's unban. Default: on, 50 failures within 24h.
	// See LoginLockout.
	LoginLockout *LoginLockout `json:"login_lockout,omitempty"`

	// RegisterThrottle bounds registrations per client IP. Default: on,
	// 20 per IP per 10 minutes. See RegisterThrottle.
	RegisterThrottle *RegisterThrottle `json:"register_throttle,omitempty"`

	// ThrottleKeyPrefix prefixes the throttles' counters in Redis (when
	// Redis is set; otherwise they are kept in memory).
	// Default: "session_auth:throttle:".
	ThrottleKeyPrefix string `json:"throttle_key_prefix,omitempty"`

	// HealthPath is where the readiness endpoint answers: 200 when the
	// users DB (and Redis, if configured) answer, 503 otherwise, with a JSON
	// report. Unauthenticated. Default: "<api_prefix>/health/".
	HealthPath string `json:"health_path,omitempty"`

	// PublicPaths are path patterns (Caddy's path matcher syntax: exact,
	// prefix `/static/*`, suffix `*.css`, substring) that pass without a
	// session and without identity headers, matched case-sensitively. Only
	// canonical paths qualify: a path with `..`, `//`, a backslash, `;` or
	// an encoded `/`, `.`, `\`, `;`, `?`, `#` or `%` is never public, and a
	// pattern that begins with `*` never matches a path with a `.` before
	// its last segment (/admin/users.php/x.css runs users.php in PHP), so
	// no request reaches a protected page through a public pattern. Every
	// pattern must begin with `/` or `*`.
	PublicPaths []string `json:"public_paths,omitempty"`

	// LoginRedirect, if set, sends browser navigations (GET or HEAD asking
	// for text/html) that have no session to this URL with `next` set to the
	// original path and query; API calls still get the JSON 403. The
	// special value "builtin" is the built-in sign-in page.
	LoginRedirect string `json:"login_redirect,omitempty"`

	// LoginPage is where the built-in sign-in page is served, relative to
	// APIPrefix. Default: "signin/".
	LoginPage string `json:"login_page,omitempty"`

	// LoginPageTitle names the site on the sign-in page (its title and
	// heading). Default: the host the page was asked for.
	LoginPageTitle string `json:"login_page_title,omitempty"`

	// LoginPageCSS is a CSS file added to the sign-in page's style (after
	// the built-in one), e.g. colours and a logo: images may come from the
	// site itself or data: URLs.
	LoginPageCSS string `json:"login_page_css,omitempty"`

	// Registration is "open" (anyone may POST <api_prefix>/register/) or
	// "closed" (the endpoint answers 403 and the sign-in page offers no
	// form; operators create users with the CLI or the admin API).
	// Default: "open".
	Registration string `json:"registration,omitempty"`

	// Rules say which logged-in users may make a gated request (the
	// Caddyfile's require lines), in order: the first whose methods and
	// path patterns match decides; a request no rule matches is open to
	// every logged-in user; superusers pass every rule. A refused user
	// gets 403 {"detail": "You do not have permission to perform this
	// action."}. See package rules for how paths are matched.
	Rules []rules.Spec `json:"rules,omitempty"`

	// IdentityToken, if set, adds a signed JWT with the user's identity to
	// forwarded requests and forward-auth answers. See IdentityToken.
	IdentityToken *IdentityToken `json:"identity_token,omitempty"`

	// SMTP is the server account mail (password reset, e-mail
	// verification) goes through: smtp://[user:pass@]host[:port] (STARTTLS
	// when the server offers it) or smtps://... (implicit TLS). Empty: no
	// account mail, and the reset and verification endpoints do not exist.
	SMTP string `json:"smtp,omitempty"`

	// EmailFrom is the sender of account mail, "Name <addr@example.com>".
	// Required with SMTP.
	EmailFrom string `json:"email_from,omitempty"`

	// SMTPTLSCA is a PEM file of the CA certificates that sign the SMTP
	// server's certificate. Default: the system's roots.
	SMTPTLSCA string `json:"smtp_tls_ca,omitempty"`

	// SMTPTimeout bounds the delivery of one mail. Requests never wait
	// for it: mail is sent from a queue. Default: 10s.
	SMTPTimeout caddy.Duration `json:"smtp_timeout,omitempty"`

	// PasswordResetURL is the link of password-reset mails, with {uid}
	// and {token} filled in, e.g. https://app.example.com/reset/{uid}/{token}.
	// Default: the built-in page (<api_prefix>/<login_page>) on the host
	// the request was made to.
	PasswordResetURL string `json:"password_reset_url,omitempty"`

	// EmailVerifyURL is the link of verification mails, with {key} filled
	// in. Default: the built-in page, as for PasswordResetURL.
	EmailVerifyURL string `json:"email_verify_url,omitempty"`

	// PasswordResetTimeout is how long a reset link stays valid (it also
	// dies once used, or when the password or last login changes).
	// Default: 1h.
	PasswordResetTimeout caddy.Duration `json:"password_reset_timeout,omitempty"`

	// TwoFactor configures the second factor (TOTP, passkeys) and who
	// must have one. See TwoFactor.
	TwoFactor *TwoFactor `json:"two_factor,omitempty"`

	// EmailVerification is "off" (no verification mail; the default),
	// "optional" (a mail on registration; unverified users may log in) or
	// "mandatory" (they may not until they verified). Needs SMTP unless off.
	EmailVerification string `json:"email_verification,omitempty"`

	logger    *zap.Logger
	db        *sharedDB
	dbKey     string
	slogger   *slog.Logger
	backend   sessionBackend
	users     users.Store
	accounts  *accounts.Service // account rules over users
	sessions  *scs.SessionManager
	hasher    *passwords.Hasher // the process's (hashers.go)
	hashHeld  bool              // HashConcurrency counts toward its bound
	scheme    passwords.Scheme  // password_hasher with django_users (djangousers.go)
	limits    *limiter          // login and registration throttles
	inflight  *atomic.Int64     // requests being served (drain.go)
	origins   originSet         // CORS origins
	trusted   originSet         // CORS + CSRF trusted origins
	routes    map[string]endpoint
	redirects map[string]struct{} // slash-less API paths
	public    caddyhttp.MatchPath
	loginURL  string // resolved LoginRedirect
	page      signinPage
	health    *healthCheck
	strip     headerNames
	rules     *rules.Set   // nil: no rules
	token     *tokenIssuer // nil: no identity token
	mail      *accountMail // nil: no smtp
	// sessAccess is the session store with its user index (own
	// sessions); seen limits last-seen writes (ownsessions.go).
	sessAccess sessionAccess
	seen       *seenSet
	registered bool        // in sessionRegistry
	auditLog   *zap.Logger // http.handlers.session_auth.audit

	counters *siteMetrics // this site's counters (signals.go)
	mfa      *twoFactorState

	// cookieWarned: an upstream's Set-Cookie for our cookies was logged
	// (cookieguard.go).
	cookieWarned *atomic.Bool
	// badNumber is the first number out of range in the JSON config
	// (confignumbers.go).
	badNumber error
	// cookieDomain is CookieDomain as browsers store it: lower case, no
	// leading dot (cookies.go).
	cookieDomain string
}

// IdentityHeaders names the headers set on requests to the upstream.
type IdentityHeaders struct {
	UserID   string `json:"user_id,omitempty"`
	Username string `json:"username,omitempty"`
	Email    string `json:"email,omitempty"`
	// Groups carries the user's groups, comma-separated (empty when none).
	// Default: X-Auth-Groups.
	Groups string `json:"groups,omitempty"`
	// EmailVerified carries "true" or "false": whether the user proved
	// they receive mail at the address in Email. Default:
	// X-Auth-Email-Verified.
	EmailVerified string `json:"email_verified,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (SessionAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.session_auth",
		New: func() caddy.Module { return new(SessionAuth) },
	}
}

// Provision fills in defaults and opens (or shares) the stores.
func (s *SessionAuth) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	s.auditLog = s.logger.Named(auditLoggerName)
	s.slogger = ctx.Slogger()
	s.inflight = new(atomic.Int64)
	s.cookieWarned = new(atomic.Bool)
	if err := s.checkNumbers(); err != nil {
		return err
	}
	s.setDefaults()
	var err error
	if s.origins, err = parseOrigins(s.CORSOrigins); err != nil {
		return fmt.Errorf("cors_origins: %v", err)
	}
	trusted, err := parseOrigins(s.CSRFTrustedOrigins)
	if err != nil {
		return fmt.Errorf("csrf_trusted_origins: %v", err)
	}
	s.trusted = s.origins.union(trusted)
	// Caddy's matcher lower-cases its patterns in place: give it a copy, so
	// that PublicPaths keeps the case that matchesCase needs.
	s.public = caddyhttp.MatchPath(slices.Clone(s.PublicPaths))
	if err := s.public.Provision(ctx); err != nil {
		return fmt.Errorf("public: %v", err)
	}
	if s.page, err = newSigninPage(s.APIPrefix, s.LoginPage, s.CSRFCookie, s.Registration == registrationOpen, s.SMTP != ""); err != nil {
		return err
	}
	if err = s.page.setLook(s.LoginPageTitle, s.LoginPageCSS); err != nil {
		return err
	}
	if s.routes, err = s.buildRoutes(); err != nil {
		return err
	}
	s.redirects = slashless(s.routes)
	if err := s.provisionRules(); err != nil {
		return err
	}
	tokenHeader := ""
	if s.IdentityToken != nil {
		tokenHeader = s.IdentityToken.Header
	}
	ih := s.IdentityHeaders
	s.strip = newHeaderNames(ih.UserID, ih.Username, ih.Email, ih.Groups, tokenHeader).withEmailVerified(ih.EmailVerified)
	if s.HashConcurrency <= 0 {
		s.HashConcurrency = defaultHashConcurrency()
	}
	s.hasher, s.hashHeld = acquireHasher(s.HashConcurrency), true // released in release()
	if err := initMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering metrics: %v", err)
	}
	s.counters = newSiteMetrics(siteName(ctx)) // signals.go

	if s.scheme, err = s.checkDjangoUsers(); err != nil { // djangousers.go
		return err
	}
	if err := s.checkSharedSessions(); err != nil {
		return err
	}
	if validationOnly() { // validate.go: `caddy validate` takes no lock and opens no pool
		if err := s.provisionTwoFactor(); err != nil {
			return err
		}
		return s.checkOffline()
	}
	if s.db, s.dbKey, err = openSharedDB(s.usersDBSpec(), time.Duration(s.DBLockTimeout)); err != nil {
		return err
	}
	s.users = s.db.users
	s.accounts = &accounts.Service{Store: s.users, Hasher: s.hasher, Scheme: s.db.scheme, OnUnusableHash: s.logUnusableHash}
	if err := s.provisionIdentityToken(); err != nil {
		return err
	}
	if err := s.provisionMail(); err != nil {
		return err
	}
	if err := s.provisionTwoFactor(); err != nil {
		return err
	}

	s.sessions = scs.New()
	s.sessions.Lifetime = time.Duration(s.SessionMaxAge)
	s.sessions.HashTokenInStore = true
	s.sessions.Codec = sessions.Codec{}
	s.sessions.Cookie.Name = s.SessionCookie
	if s.backend, err = s.openSessionBackend(); err != nil {
		return err
	}
	s.sessions.Store = s.backend.store()
	s.sessAccess = sessionAccess{store: s.backend.store()}
	s.sessAccess.index, _ = s.sessAccess.store.(sessions.UserIndex)
	s.seen = new(seenSet)
	registerSessions(s)
	s.registered = true
	s.health = &healthCheck{db: s.db, sessions: s.backend}
	if err := s.backend.ping(); err != nil {
		// Start anyway: sessions come back when Redis does.
		s.logger.Warn("redis unreachable at start; session requests will get 503 until it is back",
			zap.String("redis", sessions.RedactURL(s.Redis)), zap.Error(err))
	}
	if err := s.provisionThrottle(); err != nil {
		return err
	}
	s.logStartup() // signals.go
	return nil
}

func (s *SessionAuth) setDefaults() {
	// {env.VAR} in JSON, as {$VAR} in a Caddyfile (replaced when adapting).
	s.UsersDB = strings.TrimSpace(caddy.NewReplacer().ReplaceKnown(s.UsersDB, ""))
	s.cookieDomain = normalCookieDomain(s.CookieDomain)
	if s.UsersDB == "" {
		s.UsersDB = filepath.Join(caddy.AppDataDir(), "session_auth", "users.db")
	}
	if s.RedisKeyPrefix == "" {
		s.RedisKeyPrefix = defaultRedisPrefix
	}
	if s.APIPrefix == "" {
		s.APIPrefix = defaultAPIPrefix
	}
	s.APIPrefix = "/" + strings.Trim(s.APIPrefix, "/")
	if s.APIPrefix == "/" {
		s.APIPrefix = ""
	}
	if s.SessionCookie == "" {
		s.SessionCookie = defaultSessionCookie
	}
	if s.CSRFCookie == "" {
		s.CSRFCookie = defaultCSRFCookie
	}
	if s.CookieSecure == "" {
		s.CookieSecure = cookieSecureAuto
	}
	if s.SessionMaxAge <= 0 {
		s.SessionMaxAge = defaultSessionAge
	}
	if s.CSRFMaxAge <= 0 {
		s.CSRFMaxAge = defaultCSRFAge
	}
	if s.MaxBodyBytes <= 0 {
		s.MaxBodyBytes = defaultMaxBody
	}
	if s.DBLockTimeout <= 0 {
		s.DBLockTimeout = defaultDBLockTimeout
	}
	if s.HealthPath == "" {
		s.HealthPath = s.APIPrefix + "/health/"
	}
	if s.LoginPage == "" {
		s.LoginPage = "signin/"
	}
	if s.Registration == "" {
		s.Registration = registrationOpen
	}
	s.LoginPage = strings.Trim(s.LoginPage, "/") + "/"
	s.loginURL = s.LoginRedirect
	if s.loginURL == "builtin" {
		s.loginURL = s.APIPrefix + "/" + s.LoginPage
	}
	if s.IdentityHeaders == nil {
		s.IdentityHeaders = new(IdentityHeaders)
	}
	ih := s.IdentityHeaders
	if ih.UserID == "" {
		ih.UserID = "X-Auth-User-Id"
	}
	if ih.Username == "" {
		ih.Username = "X-Auth-Username"
	}
	if ih.Email == "" {
		ih.Email = "X-Auth-Email"
	}
	if ih.Groups == "" {
		ih.Groups = "X-Auth-Groups"
	}
	if ih.EmailVerified == "" {
		ih.EmailVerified = "X-Auth-Email-Verified"
	}
	if s.IdentityToken != nil && s.IdentityToken.Header == "" {
		s.IdentityToken.Header = defaultTokenHeader
	}
}

// Validate checks settings that Provision cannot fix.
func (s *SessionAuth) Validate() error {
	if err := s.checkPaths(); err != nil {
		return err
	}
	if _, err := s.checkDjangoUsers(); err != nil {
		return err
	}
	if s.SessionCookie == s.CSRFCookie {
		return fmt.Errorf("session_cookie and csrf_cookie must differ")
	}
	if s.CookieSecure != cookieSecureAuto && s.CookieSecure != cookieSecureAlways {
		return fmt.Errorf("cookie_secure: want auto or always, got %q", s.CookieSecure)
	}
	if err := checkCookieDomain(s.CookieDomain); err != nil {
		return err
	}
	for _, name := range []string{s.SessionCookie, s.CSRFCookie} {
		if !validCookieName(name) {
			return fmt.Errorf("invalid cookie name %q", name)
		}
		if err := s.checkCookiePrefix(name); err != nil {
			return err
		}
	}
	if err := checkLoginRedirect(s.loginURL, s.LoginRedirect); err != nil { // checks.go
		return err
	}
	if err := checkIdentityHeaders(s.IdentityHeaders); err != nil {
		return err
	}
	if err := checkRegistration(s.Registration); err != nil {
		return err
	}
	if err := s.checkMailSettings(); err != nil {
		return err
	}
	if err := s.checkTwoFactor(); err != nil {
		return err
	}
	return s.checkRedisSettings()
}

// release releases the shared stores this instance acquired (Cleanup, in
// drain.go, calls it once no request is using them).
func (s *SessionAuth) release() error {
	s.releaseMail()
	if s.registered {
		unregisterSessions(s)
		s.registered = false
	}
	if s.hashHeld {
		releaseHasher(s.HashConcurrency)
		s.hashHeld = false
	}
	var firstErr error
	if s.backend != nil {
		if err := s.backend.release(); err != nil {
			firstErr = err
		}
	}
	if s.dbKey != "" {
		if _, err := dbPool.Delete(s.dbKey); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if err := s.releaseThrottle(); err != nil && firstErr == nil {
		firstErr = err
	}
	return firstErr
}

// Values of CookieSecure.
const (
	cookieSecureAuto   = "auto"
	cookieSecureAlways = "always"
)

// checkCookiePrefix refuses a cookie name whose prefix browsers would hold
// against the cookies we set: `__Secure-` needs Secure on every response,
// `__Host-` that too and no Domain (Path=/ it always has). Browsers match
// the prefixes regardless of case.
func (s *SessionAuth) checkCookiePrefix(name string) error {
	lower := strings.ToLower(name)
	host := strings.HasPrefix(lower, "__host-")
	if !host && !strings.HasPrefix(lower, "__secure-") {
		return nil
	}
	if s.CookieSecure != cookieSecureAlways {
		return fmt.Errorf("cookie name %q: browsers accept a %s cookie only with Secure: set cookie_secure always", name, name[:strings.IndexByte(name, '-')+1])
	}
	if host && s.CookieDomain != "" {
		return fmt.Errorf("cookie name %q: browsers refuse a __Host- cookie with a Domain: remove cookie_domain, or use another name", name)
	}
	return nil
}

func validCookieName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// Interface guards
var (
	_ caddy.Provisioner           = (*SessionAuth)(nil)
	_ caddy.Validator             = (*SessionAuth)(nil)
	_ caddy.CleanerUpper          = (*SessionAuth)(nil)
	_ caddyhttp.MiddlewareHandler = (*SessionAuth)(nil)
)
