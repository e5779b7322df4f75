package caddymodule

import (
	"strconv"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/passwords"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("session_auth", parseCaddyfile)
	// Authentication goes where Caddy's own basic_auth goes, so the directive
	// works without an `order` option or a route block.
	httpcaddyfile.RegisterDirectiveOrder("session_auth", httpcaddyfile.Before, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	s := new(SessionAuth)
	if err := s.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return s, err
	}
	h.Reset()
	h.Next()
	return s, checkOneHandlerPerBlock(h) // checks.go
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	session_auth {
//	    users_db             <path> | postgres://<url>
//	    redis                [<url>]
//	    redis_key_prefix     <prefix>
//	    sentinel_password    <password>
//	    redis_tls_ca         <file>
//	    redis_tls_cert       <file>
//	    redis_tls_key        <file>
//	    session_cache        <entries> | off
//	    api_prefix           <path>
//	    session_cookie       <name> [<max_age>]
//	    csrf_cookie          <name> [<max_age>]
//	    cookie_domain        <domain>
//	    cookie_secure        auto | always
//	    cors_origins         <origin...>
//	    csrf_trusted_origins <origin...>
//	    max_body_size        <size>
//	    hash_concurrency     <n>
//	    db_lock_timeout      <duration>
//	    identity_headers     <user_id> <username> <email> [<groups> [<email_verified>]]
//	    login_throttle       off | <user_failures> <ip_failures> <window> <ban>
//	    login_lockout        off | <failures> <window> [<ban>]
//	    register_throttle    off | <count> <window>
//	    throttle_key_prefix  <prefix>
//	    public               <path_pattern...>
//	    login_redirect       [<url>]
//	    login_page           <path>
//	    login_page_title     <title>
//	    login_page_css       <file>
//	    registration         open | closed
//	    health_path          <path>
//	    require              <who…> [<METHOD…>] <path_pattern…>
//	    identity_token       [<header>]
//	    identity_token_issuer   <issuer>
//	    identity_token_audience <audience>
//	    identity_token_key   <pem_file> [<old_pem_file>…]
//	    smtp                 smtp://[user:pass@]host:port | smtps://...
//	    email_from           "Name <addr@example.com>"
//	    smtp_tls_ca          <pem_file>
//	    smtp_timeout         <duration>
//	    password_reset_url   <url with {uid} and {token}>
//	    password_reset_timeout <duration>
//	    email_verify_url     <url with {key}>
//	    email_verification   off | optional | mandatory
//	}
//
// `smtp` with no URL (an unset environment variable) sends no mail.
//
// `login_redirect` with no URL uses the built-in sign-in page.
//
// `redis` with no URL (e.g. an unset environment variable) keeps sessions in
// the users_db file.
func (s *SessionAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	var perms permsParse
	for d.NextBlock(0) {
		switch d.Val() {
		case "users_db":
			if !d.AllArgs(&s.UsersDB) {
				return d.ArgErr()
			}
		case "django_users":
			if d.NextArg() {
				return d.ArgErr()
			}
			s.DjangoUsers = true
		case "password_hasher":
			if !d.AllArgs(&s.PasswordHasher) {
				return d.ArgErr()
			}
			if _, err := passwords.ParseScheme(s.PasswordHasher, 0); err != nil {
				return d.Err(err.Error())
			}
		case "pbkdf2_iterations":
			var n string
			if !d.AllArgs(&n) {
				return d.ArgErr()
			}
			it, err := strconv.Atoi(n)
			if err != nil || it < 1 || it > passwords.MaxPBKDF2Iterations {
				return d.Errf("pbkdf2_iterations: want a number from 1 to %d, got %q", passwords.MaxPBKDF2Iterations, n)
			}
			s.PBKDF2Iterations = it
		case "redis":
			if !optionalArg(d, &s.Redis, "") {
				return d.ArgErr()
			}
			if err := checkRedisURL(s.Redis); err != nil {
				return d.Err(err.Error())
			}
		case "redis_key_prefix":
			if !d.AllArgs(&s.RedisKeyPrefix) {
				return d.ArgErr()
			}
		case "sentinel_password":
			if !d.AllArgs(&s.SentinelPassword) {
				return d.ArgErr()
			}
		case "redis_tls_ca":
			if !d.AllArgs(&s.RedisTLSCA) {
				return d.ArgErr()
			}
		case "redis_tls_cert":
			if !d.AllArgs(&s.RedisTLSCert) {
				return d.ArgErr()
			}
		case "redis_tls_key":
			if !d.AllArgs(&s.RedisTLSKey) {
				return d.ArgErr()
			}
		case "session_cache":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			if v == "off" {
				s.SessionCache = sessionCacheOff
				break
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxSessionCache {
				return d.Errf("session_cache: want a number of sessions (1 to %d) or off, got %q", maxSessionCache, v)
			}
			s.SessionCache = SessionCache(n)
		case "api_prefix":
			if !d.AllArgs(&s.APIPrefix) {
				return d.ArgErr()
			}
		case "session_cookie":
			if err := cookieArgs(d, &s.SessionCookie, &s.SessionMaxAge); err != nil {
				return err
			}
		case "csrf_cookie":
			if err := cookieArgs(d, &s.CSRFCookie, &s.CSRFMaxAge); err != nil {
				return err
			}
		case "cors_origins":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			if _, err := parseOrigins(args); err != nil {
				return d.Errf("cors_origins: %v", err)
			}
			s.CORSOrigins = append(s.CORSOrigins, args...)
		case "csrf_trusted_origins":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			if _, err := parseOrigins(args); err != nil {
				return d.Errf("csrf_trusted_origins: %v", err)
			}
			s.CSRFTrustedOrigins = append(s.CSRFTrustedOrigins, args...)
		case "max_body_size":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			n, err := humanize.ParseBytes(v)
			if err != nil || n == 0 || n > 1<<30 {
				return d.Errf("max_body_size: invalid size %q", v)
			}
			s.MaxBodyBytes = int64(n)
		case "hash_concurrency":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return d.Errf("hash_concurrency: want a positive integer, got %q", v)
			}
			s.HashConcurrency = n
		case "db_lock_timeout":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dur, err := parseDuration("db_lock_timeout", v)
			if err != nil {
				return d.Err(err.Error())
			}
			s.DBLockTimeout = dur
		case "health_path":
			if !d.AllArgs(&s.HealthPath) {
				return d.ArgErr()
			}
		case "cookie_domain":
			if !d.AllArgs(&s.CookieDomain) {
				return d.ArgErr()
			}
		case "cookie_secure":
			if !d.AllArgs(&s.CookieSecure) {
				return d.ArgErr()
			}
			if s.CookieSecure != "auto" && s.CookieSecure != "always" {
				return d.Errf("cookie_secure: want auto or always, got %q", s.CookieSecure)
			}
		case "public":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			s.PublicPaths = append(s.PublicPaths, args...)
		case "login_redirect":
			if !optionalArg(d, &s.LoginRedirect, "builtin") {
				return d.ArgErr()
			}
			if s.LoginRedirect != "builtin" {
				if err := checkLoginRedirect(s.LoginRedirect, s.LoginRedirect); err != nil {
					return d.Err(err.Error())
				}
			}
		case "login_page":
			if !d.AllArgs(&s.LoginPage) {
				return d.ArgErr()
			}
		case "smtp", "email_from", "smtp_tls_ca", "password_reset_url", "email_verify_url", "email_verification":
			if err := s.unmarshalMailString(d); err != nil {
				return err
			}
		case "smtp_timeout", "password_reset_timeout":
			name := d.Val()
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dur, err := parseDuration(name, v)
			if err != nil {
				return d.Err(err.Error())
			}
			if name == "smtp_timeout" {
				s.SMTPTimeout = dur
			} else {
				s.PasswordResetTimeout = dur
			}
		case "login_page_title":
			if !d.AllArgs(&s.LoginPageTitle) {
				return d.ArgErr()
			}
		case "login_page_css":
			if !d.AllArgs(&s.LoginPageCSS) {
				return d.ArgErr()
			}
		case "registration":
			if !d.AllArgs(&s.Registration) {
				return d.ArgErr()
			}
			if err := checkRegistration(s.Registration); err != nil {
				return d.Err(err.Error())
			}
		case "login_throttle":
			lt, err := parseLoginThrottle(d)
			if err != nil {
				return err
			}
			s.LoginThrottle = lt
		case "login_lockout":
			lo, err := parseLoginLockout(d)
			if err != nil {
				return err
			}
			s.LoginLockout = lo
		case "register_throttle":
			rt, err := parseRegisterThrottle(d)
			if err != nil {
				return err
			}
			s.RegisterThrottle = rt
		case "throttle_key_prefix":
			if !d.AllArgs(&s.ThrottleKeyPrefix) {
				return d.ArgErr()
			}
		case "identity_headers":
			var ih IdentityHeaders
			args := d.RemainingArgs()
			if len(args) < 3 || len(args) > 5 {
				return d.Errf("identity_headers: takes %s; got %d", identityHeaderCount, len(args))
			}
			ih.UserID, ih.Username, ih.Email = args[0], args[1], args[2]
			if len(args) >= 4 {
				ih.Groups = args[3]
			}
			if len(args) == 5 {
				ih.EmailVerified = args[4]
			}
			if err := checkIdentityHeaders(&ih); err != nil {
				return d.Err(err.Error())
			}
			s.IdentityHeaders = &ih
		default:
			handled, err := s.unmarshalPermissions(d, &perms) // caddyfile_perms.go
			if err != nil {
				return err
			}
			if !handled {
				return d.Errf("unknown session_auth subdirective %q", d.Val())
			}
		}
	}
	return s.finishPermissions(&perms)
}

// optionalArg reads `[<value>]` into dst, def when absent; false if there
// are more arguments.
func optionalArg(d *caddyfile.Dispenser, dst *string, def string) bool {
	args := d.RemainingArgs()
	switch len(args) {
	case 0:
		*dst = def
	case 1:
		*dst = args[0]
	default:
		return false
	}
	return true
}

// cookieArgs reads `<name> [<max_age>]`.
func cookieArgs(d *caddyfile.Dispenser, name *string, maxAge *caddy.Duration) error {
	sub := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 || len(args) > 2 {
		return d.ArgErr()
	}
	*name = args[0]
	if len(args) == 2 {
		dur, err := caddy.ParseDuration(args[1])
		if err != nil || dur <= 0 {
			return d.Errf("%s: invalid max age %q (want %s)", sub, args[1], durationHint)
		}
		*maxAge = caddy.Duration(dur)
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*SessionAuth)(nil)

// unmarshalMailString reads one of the mail settings that take a string
// (smtp may be given empty, as an unset environment variable leaves it).
func (s *SessionAuth) unmarshalMailString(d *caddyfile.Dispenser) error {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) > 1 || (len(args) == 0 && name != "smtp") {
		return d.ArgErr()
	}
	v := ""
	if len(args) == 1 {
		v = args[0]
	}
	switch name {
	case "smtp":
		s.SMTP = v
	case "email_from":
		s.EmailFrom = v
	case "smtp_tls_ca":
		s.SMTPTLSCA = v
	case "password_reset_url":
		s.PasswordResetURL = v
	case "email_verify_url":
		s.EmailVerifyURL = v
	case "email_verification":
		s.EmailVerification = v
	}
	return nil
}
