package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/throttle"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// Throttle defaults, as Authelia's regulation has them in spirit (it bans
// after 3 failures in 2 minutes for 5 minutes) with room for typos.
const (
	defaultUserFailures      = 5
	defaultIPFailures        = 20
	defaultFailureWindow     = caddy.Duration(2 * time.Minute)
	defaultBanTime           = caddy.Duration(5 * time.Minute)
	defaultRegistrations     = 20
	defaultRegisterWindow    = caddy.Duration(10 * time.Minute)
	defaultThrottlePrefix    = "session_auth:throttle:"
	memoryThrottlePoolPrefix = "throttle-memory:"
	defaultLockoutFailures   = 50
	defaultLockoutWindow     = caddy.Duration(24 * time.Hour)
	// knownIPTTL is how long a successful login keeps its client IP known
	// to the account (the MaxPasses most recent are kept): a lockout lets
	// known IPs through.
	knownIPTTL = 30 * 24 * time.Hour
)

// LoginThrottle bounds failed logins, in the spirit of Authelia's
// regulation: UserFailures failed logins for one username, or IPFailures
// from one client IP, within Window ban that username (or IP) for Ban. While
// banned, logins for it get 429 with Retry-After, even with the right
// password, before any password is checked. A successful login clears its
// username's count (not its IP's). Wrong old passwords on the password
// change endpoint count too. Fields left out take the defaults (a zero or
// negative one written in a config is refused).
//
// Each password check is counted before it runs, so that concurrent
// requests (on any number of instances sharing Redis) never get more than
// UserFailures checks per username, or IPFailures per IP, within a window:
// while that many are failed or still running, further logins get 429. A
// check that succeeds gives its IP place back.
//
// The client IP is Caddy's (honouring the server's trusted_proxies); IPv6
// clients are counted per /64. With Redis configured the counts are kept
// there (every instance sees them) and a Redis that does not answer makes
// logins fail with 503 (fail closed); otherwise they are kept in memory.
type LoginThrottle struct {
	// Off disables the login throttle.
	Off bool `json:"off,omitempty"`
	// UserFailures is the number of failures that bans a username.
	// Default: 5.
	UserFailures int `json:"user_failures,omitempty"`
	// IPFailures is the number of failures that bans a client IP.
	// Default: 20.
	IPFailures int `json:"ip_failures,omitempty"`
	// Window is the time, from a key's first failure, within which its
	// failures count towards a ban. Default: 2m.
	Window caddy.Duration `json:"window,omitempty"`
	// Ban is how long a ban lasts. Default: 5m.
	Ban caddy.Duration `json:"ban,omitempty"`
}

// LoginLockout is the slow-guessing guard: Failures failed logins for one
// username (from any IPs) within Window lock that username out until a
// login with the right password from an IP that has logged in to the
// account before (in the last 30 days; the 10 most recent are
// remembered), or an operator's `caddy session-auth unban`, or, with
// Ban set, until Ban has passed. While locked, logins from other IPs get
// 429 before any password is checked. Any successful login clears the
// count. Counted with the login throttle's store (Redis when set, shared
// by every instance; fail closed). Fields left out take the defaults (a
// zero or negative one written in a config is refused).
type LoginLockout struct {
	// Off disables the lockout.
	Off bool `json:"off,omitempty"`
	// Failures is the number of failures that locks a username.
	// Default: 50.
	Failures int `json:"failures,omitempty"`
	// Window is the time, from a username's first counted failure,
	// within which its failures count toward a lockout. Default: 24h.
	Window caddy.Duration `json:"window,omitempty"`
	// Ban, if set, ends a lockout after that long. Default: none (until
	// lifted as above).
	Ban caddy.Duration `json:"ban,omitempty"`
}

// RegisterThrottle bounds registration attempts per client IP: beyond
// Count within Window (from the first), they get 429 until the window ends.
// Storage and failure behaviour are the login throttle's.
type RegisterThrottle struct {
	// Off disables the registration throttle.
	Off bool `json:"off,omitempty"`
	// Count is the number of attempts allowed per window. Default: 20.
	Count int `json:"count,omitempty"`
	// Window is the length of a window. Default: 10m.
	Window caddy.Duration `json:"window,omitempty"`
}

// limiter applies the throttles of one handler.
type limiter struct {
	store    throttle.Store
	login    *LoginThrottle    // nil: off
	lockout  *LoginLockout     // nil: off
	register *RegisterThrottle // nil: off
	poolKey  string            // memory store's usage pool key, if any
	dbKey    string            // the users DB it counts logins for
}

// throttlePool shares in-memory counters across config reloads, keyed by
// the users DB (one DB is one deployment).
var throttlePool = caddy.NewUsagePool()

type memoryThrottle struct{ *throttle.Memory }

func (memoryThrottle) Destruct() error { return nil }

// provisionThrottle fills in the throttles' defaults and picks their store:
// the session backend's (Redis) when it has one, else memory shared by
// configs over one DB.
func (s *SessionAuth) provisionThrottle() error {
	l := &limiter{}
	if lt := s.LoginThrottle; lt == nil || !lt.Off {
		c := LoginThrottle{}
		if lt != nil {
			c = *lt
		}
		c.UserFailures = orDefault(c.UserFailures, defaultUserFailures)
		c.IPFailures = orDefault(c.IPFailures, defaultIPFailures)
		c.Window = orDefault(c.Window, defaultFailureWindow)
		c.Ban = orDefault(c.Ban, defaultBanTime)
		l.login = &c
	}
	if lo := s.LoginLockout; lo == nil || !lo.Off {
		c := LoginLockout{}
		if lo != nil {
			c = *lo
		}
		c.Failures = orDefault(c.Failures, defaultLockoutFailures)
		c.Window = orDefault(c.Window, defaultLockoutWindow)
		if c.Ban < 0 {
			c.Ban = 0
		}
		l.lockout = &c
	}
	if rt := s.RegisterThrottle; rt == nil || !rt.Off {
		c := RegisterThrottle{}
		if rt != nil {
			c = *rt
		}
		c.Count = orDefault(c.Count, defaultRegistrations)
		c.Window = orDefault(c.Window, defaultRegisterWindow)
		l.register = &c
	}
	if s.ThrottleKeyPrefix == "" {
		s.ThrottleKeyPrefix = defaultThrottlePrefix
	}
	s.limits = l
	// Account mail requests (reset, resend) are always throttled.
	if l.login == nil && l.lockout == nil && l.register == nil && s.SMTP == "" {
		return nil
	}
	if st := s.backend.throttleStore(s.ThrottleKeyPrefix); st != nil {
		l.store = st
	} else {
		key := memoryThrottlePoolPrefix + s.dbKey
		v, _, err := throttlePool.LoadOrNew(key, func() (caddy.Destructor, error) {
			return memoryThrottle{throttle.NewMemory(0)}, nil
		})
		if err != nil {
			return err
		}
		l.store, l.poolKey = v.(memoryThrottle).Memory, key
	}
	if l.login != nil || l.lockout != nil {
		l.dbKey = s.dbKey
		registerLimiter(l)
	}
	return nil
}

func (s *SessionAuth) releaseThrottle() error {
	if s.limits == nil {
		return nil
	}
	unregisterLimiter(s.limits)
	if s.limits.poolKey == "" {
		return nil
	}
	_, err := throttlePool.Delete(s.limits.poolKey)
	return err
}

// liveLimiters holds the login limiters of the running handlers (old and
// new configs during a reload) by users DB, so that an operator's unban
// (admin API) reaches every store that counts logins for that DB.
var liveLimiters struct {
	sync.Mutex
	byDB map[string][]*limiter
}

func registerLimiter(l *limiter) {
	liveLimiters.Lock()
	defer liveLimiters.Unlock()
	if liveLimiters.byDB == nil {
		liveLimiters.byDB = map[string][]*limiter{}
	}
	liveLimiters.byDB[l.dbKey] = append(liveLimiters.byDB[l.dbKey], l)
}

func unregisterLimiter(l *limiter) {
	liveLimiters.Lock()
	defer liveLimiters.Unlock()
	list := slices.DeleteFunc(liveLimiters.byDB[l.dbKey], func(m *limiter) bool { return m == l })
	if len(list) == 0 {
		delete(liveLimiters.byDB, l.dbKey)
	} else {
		liveLimiters.byDB[l.dbKey] = list
	}
}

// unbanUsername lifts the login bans of username (the throttle's and the
// lockout) and clears its failure counts, in every store that counts
// logins for the users DB dbKey. lifted reports whether it was banned.
func unbanUsername(dbKey, username string) (lifted bool, err error) {
	liveLimiters.Lock()
	list := slices.Clone(liveLimiters.byDB[dbKey])
	liveLimiters.Unlock()
	h := usernameHash(username)
	for _, l := range list {
		was, err := l.store.Unban(userPrefix+h, lockoutPrefix+h)
		if err != nil {
			return lifted, err
		}
		lifted = lifted || was
	}
	return lifted, nil
}

// orDefault returns v, or def when v is not positive.
func orDefault[T int | caddy.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Throttle keys: a username is hashed (bounded length, never stored as
// typed), folded first so that its case and look-alike spellings count as
// one; an IP is kept as is, IPv6 cut to its /64.
func usernameHash(username string) string {
	sum := sha256.Sum256([]byte(users.UsernameKey(accounts.NormalizeUsername(username))))
	return hex.EncodeToString(sum[:16])
}

// Prefixes of a username's keys: the login throttle's and the lockout's.
const (
	userPrefix    = "u:"
	lockoutPrefix = "lock:"
)

// ipPass is what the lockout remembers of a client IP: a hash of its
// throttle key, so the store holds no address in clear.
func ipPass(ipKey string) string {
	sum := sha256.Sum256([]byte(ipKey))
	return hex.EncodeToString(sum[:8])
}

func ipThrottleKey(r *http.Request) string {
	ip := clientIP(r)
	if parsed := net.ParseIP(ip); parsed != nil {
		if v4 := parsed.To4(); v4 != nil {
			ip = v4.String()
		} else {
			ip = parsed.Mask(net.CIDRMask(64, 128)).String() + "/64"
		}
	}
	return "ip:" + ip
}

// loginAttempt is a password check that the login throttle admitted, to be
// settled by loginFailed, loginSucceeded or loginCanceled. nil (throttle
// off) settles as nothing.
type loginAttempt struct {
	*throttle.Attempt
	kinds              []string // per limit: kindLoginUsername, ...
	username, clientIP string
}

// Kinds of login limits, as the throttled-requests metric labels them.
const (
	kindLoginUsername = "login_username"
	kindLoginIP       = "login_ip"
	kindLoginLockout  = "login_lockout"
)

// loginLimits returns the limits a login for username from r counts
// against, and their kinds.
func (l *limiter) loginLimits(r *http.Request, username string) ([]throttle.Limit, []string) {
	limits := make([]throttle.Limit, 0, 3)
	kinds := make([]string, 0, 3)
	h, ipKey := usernameHash(username), ipThrottleKey(r)
	if lt := l.login; lt != nil {
		window, ban := time.Duration(lt.Window), time.Duration(lt.Ban)
		limits = append(limits,
			throttle.Limit{Key: userPrefix + h, Max: lt.UserFailures, Window: window, Ban: ban, ClearOnSuccess: true},
			throttle.Limit{Key: ipKey, Max: lt.IPFailures, Window: window, Ban: ban})
		kinds = append(kinds, kindLoginUsername, kindLoginIP)
	}
	if lo := l.lockout; lo != nil {
		limits = append(limits, throttle.Limit{Key: lockoutPrefix + h, Max: lo.Failures, Window: time.Duration(lo.Window),
			Ban: time.Duration(lo.Ban), ClearOnSuccess: true, Pass: ipPass(ipKey), PassTTL: knownIPTTL})
		kinds = append(kinds, kindLoginLockout)
	}
	return limits, kinds
}

// loginThrottled counts a login attempt against its username and client IP
// (login_throttle) and its username's long window (login_lockout) before
// any password is checked, and returns it (nil with both off) and "" to let
// the check go on. When either key is banned (a lockout: unless the client
// IP is known to the account), or has as many checks in its window as it
// allows (failed or still running: so parallel requests cannot get more
// checks than the limit), it answers 429 (with Retry-After, unless the ban
// lasts until lifted); if the throttle's store fails, 503 (fail closed); it
// then returns the metrics result (resultThrottled or resultError).
func (s *SessionAuth) loginThrottled(w http.ResponseWriter, r *http.Request, username string) (*loginAttempt, string) {
	if s.limits == nil || (s.limits.login == nil && s.limits.lockout == nil) {
		return nil, ""
	}
	limits, kinds := s.limits.loginLimits(r, username)
	a, wait, which, err := s.limits.store.Admit(limits...)
	if err != nil {
		s.storeFailure(w, "checking the login throttle", err)
		return nil, resultError
	}
	if a == nil {
		kind := kinds[which]
		s.counters.throttled(kind).Inc()
		reason := reasonThrottled
		if kind == kindLoginLockout {
			reason = reasonLockedOut
		}
		fields := []zap.Field{zap.String("username", loggableUsername(username)), zap.String("client_ip", clientIP(r)),
			zap.String("reason", reason), zap.String("banned", kind)}
		if wait != throttle.Indefinitely {
			fields = append(fields, zap.Int64("retry_after_s", seconds(wait)))
		}
		s.logger.Info("login failed", fields...)
		writeThrottled(w, wait)
		return nil, resultThrottled
	}
	return &loginAttempt{Attempt: a, kinds: kinds, username: username, clientIP: clientIP(r)}, ""
}

// loginFailed settles a as a failed login: it stays counted, and if it was
// the last its username's (or IP's) window allows, that is banned. A store
// failure here is logged only: the answer (400) is already known, and the
// attempt stays counted until its window ends.
func (s *SessionAuth) loginFailed(a *loginAttempt) {
	if a == nil {
		return
	}
	banned, err := s.limits.store.Fail(a.Attempt)
	if err != nil {
		s.logger.Error("store failure", zap.String("while", "counting a failed login"), zap.Error(err))
		return
	}
	for i, kind := range a.kinds {
		if i >= len(banned) || !banned[i] {
			continue
		}
		switch kind {
		case kindLoginLockout:
			s.counters.lockouts.Inc()
			lo := s.limits.lockout
			until := "a login from a known IP or an unban"
			if lo.Ban > 0 {
				until = "the ban ends, a login from a known IP or an unban"
			}
			s.logger.Warn("too many failed logins: username locked out", zap.String("username", loggableUsername(a.username)),
				zap.String("client_ip", a.clientIP), zap.Int("failures", lo.Failures), zap.Int64("window_s", seconds(time.Duration(lo.Window))),
				zap.Int64("ban_s", seconds(time.Duration(lo.Ban))), zap.String("until", until))
		default:
			what := "username"
			if kind == kindLoginIP {
				what = "client IP"
			}
			s.logger.Warn("too many failed logins: "+what+" banned", zap.String("username", loggableUsername(a.username)),
				zap.String("client_ip", a.clientIP), zap.Int64("ban_s", seconds(a.Limits[i].Ban)))
		}
	}
}

// loginSucceeded settles a as a right password: its username's count is
// cleared, and its IP's gets a's place back.
func (s *SessionAuth) loginSucceeded(a *loginAttempt) {
	if a == nil {
		return
	}
	if err := s.limits.store.Succeed(a.Attempt); err != nil {
		s.logger.Error("store failure", zap.String("while", "clearing failed logins"), zap.Error(err))
	}
}

// loginCanceled settles a as a check whose outcome nobody learns (the
// answer is an error): its places are given back.
func (s *SessionAuth) loginCanceled(a *loginAttempt) {
	if a == nil {
		return
	}
	if err := s.limits.store.Cancel(a.Attempt); err != nil {
		s.logger.Error("store failure", zap.String("while", "releasing a login attempt"), zap.Error(err))
	}
}

// registerThrottled counts a registration attempt against the client IP
// and answers 429 (over the limit) or 503 (store failure), returning the
// metrics result; "" lets the registration go on.
func (s *SessionAuth) registerThrottled(w http.ResponseWriter, r *http.Request) string {
	if s.limits == nil || s.limits.register == nil {
		return ""
	}
	rt := s.limits.register
	wait, err := s.limits.store.Take("reg:"+ipThrottleKey(r), rt.Count, time.Duration(rt.Window))
	if err != nil {
		s.storeFailure(w, "checking the registration throttle", err)
		return resultError
	}
	if wait > 0 {
		s.counters.throttled("register_ip").Inc()
		s.logger.Info("registration throttled", zap.String("client_ip", clientIP(r)), zap.Int64("retry_after_s", seconds(wait)))
		writeThrottled(w, wait)
		return resultThrottled
	}
	return ""
}

// writeThrottled answers as DRF's throttling does: 429, Retry-After in whole
// seconds, and its message; for a ban without a known end, as DRF's
// Throttled with no wait: no Retry-After and no "Expected available".
func writeThrottled(w http.ResponseWriter, wait time.Duration) {
	if wait == throttle.Indefinitely {
		writeDetail(w, http.StatusTooManyRequests, "Request was throttled.")
		return
	}
	secs := max(1, seconds(wait))
	n := strconv.FormatInt(secs, 10)
	unit := " seconds."
	if secs == 1 {
		unit = " second."
	}
	w.Header().Set("Retry-After", n)
	writeDetail(w, http.StatusTooManyRequests, "Request was throttled. Expected available in "+n+unit)
}

// parseLoginThrottle reads `login_throttle off` or
// `login_throttle <user_failures> <ip_failures> <window> <ban>`.
func parseLoginThrottle(d *caddyfile.Dispenser) (*LoginThrottle, error) {
	args := d.RemainingArgs()
	if len(args) == 1 && args[0] == "off" {
		return &LoginThrottle{Off: true}, nil
	}
	if len(args) != 4 {
		return nil, d.Errf("login_throttle: want `off` or <user_failures> <ip_failures> <window> <ban>, got %d arguments", len(args))
	}
	var lt LoginThrottle
	var err error
	if lt.UserFailures, err = positiveInt(d, "login_throttle", "user_failures", args[0]); err != nil {
		return nil, err
	}
	if lt.IPFailures, err = positiveInt(d, "login_throttle", "ip_failures", args[1]); err != nil {
		return nil, err
	}
	if lt.Window, err = positiveDuration(d, "login_throttle", "window", args[2]); err != nil {
		return nil, err
	}
	if lt.Ban, err = positiveDuration(d, "login_throttle", "ban", args[3]); err != nil {
		return nil, err
	}
	return &lt, nil
}

// parseLoginLockout reads `login_lockout off` or
// `login_lockout <failures> <window> [<ban>]`.
func parseLoginLockout(d *caddyfile.Dispenser) (*LoginLockout, error) {
	args := d.RemainingArgs()
	if len(args) == 1 && args[0] == "off" {
		return &LoginLockout{Off: true}, nil
	}
	if len(args) != 2 && len(args) != 3 {
		return nil, d.Errf("login_lockout: want `off` or <failures> <window> [<ban>], got %d arguments", len(args))
	}
	var lo LoginLockout
	var err error
	if lo.Failures, err = positiveInt(d, "login_lockout", "failures", args[0]); err != nil {
		return nil, err
	}
	if lo.Window, err = positiveDuration(d, "login_lockout", "window", args[1]); err != nil {
		return nil, err
	}
	if len(args) == 3 {
		if lo.Ban, err = positiveDuration(d, "login_lockout", "ban", args[2]); err != nil {
			return nil, err
		}
	}
	return &lo, nil
}

// parseRegisterThrottle reads `register_throttle off` or
// `register_throttle <count> <window>`.
func parseRegisterThrottle(d *caddyfile.Dispenser) (*RegisterThrottle, error) {
	args := d.RemainingArgs()
	if len(args) == 1 && args[0] == "off" {
		return &RegisterThrottle{Off: true}, nil
	}
	if len(args) != 2 {
		return nil, d.Errf("register_throttle: want `off` or <count> <window>, got %d arguments", len(args))
	}
	var rt RegisterThrottle
	var err error
	if rt.Count, err = positiveInt(d, "register_throttle", "count", args[0]); err != nil {
		return nil, err
	}
	if rt.Window, err = positiveDuration(d, "register_throttle", "window", args[1]); err != nil {
		return nil, err
	}
	return &rt, nil
}

func positiveInt(d *caddyfile.Dispenser, sub, what, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, d.Errf("%s: %s: want a positive integer, got %q", sub, what, v)
	}
	return n, nil
}

func positiveDuration(d *caddyfile.Dispenser, sub, what, v string) (caddy.Duration, error) {
	dur, err := parseDuration(sub+": "+what, v)
	if err != nil {
		return 0, d.Err(err.Error())
	}
	return dur, nil
}
