package caddymodule

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"golang.org/x/net/http/httpguts"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/sessions"
)

// Checks of single settings, shared by Validate (JSON and Caddyfile
// configs alike) and UnmarshalCaddyfile, which reports them at adapt time
// with the Caddyfile's file and line.

// durationHint says which durations work (caddy.ParseDuration's units).
const durationHint = "a number with a unit: 14d, 336h, 90m, 30s"

// parseDuration reads a positive duration; its error names sub and says
// which units work.
func parseDuration(sub, v string) (caddy.Duration, error) {
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur <= 0 {
		return 0, fmt.Errorf("%s: invalid duration %q (want %s)", sub, v, durationHint)
	}
	return caddy.Duration(dur), nil
}

// checkRedisURL refuses a redis setting that is not a Redis URL the session
// backend can use ("" is fine: sessions stay in users_db). The URL is
// quoted only redacted.
func checkRedisURL(v string) error {
	if v == "" {
		return nil
	}
	if !strings.Contains(v, "://") {
		return fmt.Errorf("redis: the URL has no scheme: want redis://host:port[/db], rediss://host:port[/db] (TLS), " +
			"redis+sentinel://host:port[,host:port...]/<master-name>[/<db>] or unix:///path/to/redis.sock")
	}
	if err := sessions.CheckRedisURL(v); err != nil {
		msg := err.Error()
		if rest, ok := strings.CutPrefix(msg, "sessions: invalid redis URL"); ok {
			msg = "invalid URL" + rest
		}
		return fmt.Errorf("redis: %s", msg)
	}
	return nil
}

// checkLoginRedirect refuses a login_redirect that is neither an absolute
// path nor an http(s) URL ("builtin" is resolved before this).
func checkLoginRedirect(resolved, raw string) error {
	if resolved == "" {
		return nil
	}
	u, err := url.Parse(resolved)
	relative := u != nil && u.Scheme == "" && strings.HasPrefix(resolved, "/") &&
		!strings.HasPrefix(resolved, "//") && !strings.HasPrefix(resolved, "/\\")
	if err != nil || (u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https") || (u.Scheme == "" && !relative) ||
		(u.Scheme != "" && u.Host == "") {
		return fmt.Errorf("login_redirect: want an absolute path (/login) or an absolute http(s) URL (https://sso.example.com/login), got %q", raw)
	}
	return nil
}

// identityHeaderCount is how many names identity_headers takes.
const identityHeaderCount = "3 to 5 header names: <user_id> <username> <email> [<groups> [<email_verified>]]"

// checkIdentityHeaders refuses a name that is no header name.
func checkIdentityHeaders(ih *IdentityHeaders) error {
	if ih == nil {
		return nil
	}
	for _, name := range []string{ih.UserID, ih.Username, ih.Email, ih.Groups, ih.EmailVerified} {
		if name != "" && !httpguts.ValidHeaderFieldName(name) {
			return fmt.Errorf("identity_headers: %q is not a header name", name)
		}
	}
	return nil
}

// seenHandlersKey is where parseCaddyfile keeps, in the adapter's State,
// the first session_auth handler of each site and block.
const seenHandlersKey = "session_auth.handlers"

// checkOneHandlerPerBlock refuses a second session_auth handler in the same
// site (or the same handle/route block of it): a request would go through
// both, and the second, seeing no session cookie (the first keeps it from
// the upstream), would refuse every request the first let through.
func checkOneHandlerPerBlock(h httpcaddyfile.Helper) error {
	if h.IsNamedRoute() {
		return nil
	}
	scope := blockScope(h)
	if scope == "" {
		return nil
	}
	seen, _ := h.State[seenHandlersKey].(map[string]string)
	if seen == nil {
		seen = make(map[string]string)
		h.State[seenHandlersKey] = seen
	}
	here := fmt.Sprintf("%s:%d", h.File(), h.Line())
	if first, ok := seen[scope]; ok {
		return h.Errf("a second session_auth handler in this site (the first is at %s): every request would go through both, "+
			"and the second refuses what the first let through; keep one (several sites or handle blocks may each have their own)", first)
	}
	seen[scope] = here
	return nil
}

// blockScope names the site block h is in (by its first address's file
// and line) and, inside it, the block (the site itself, or a handle or
// route block: each has its own BlockState). Caddy's Helper does not
// export its site block, so it is read by reflection; "" when that fails,
// and then the check is skipped.
func blockScope(h httpcaddyfile.Helper) (scope string) {
	defer func() {
		if recover() != nil {
			scope = ""
		}
	}()
	keys := reflect.ValueOf(h).FieldByName("parentBlock").FieldByName("Keys")
	if !keys.IsValid() || keys.Kind() != reflect.Slice || keys.Len() == 0 {
		return ""
	}
	k := keys.Index(0)
	site := fmt.Sprintf("%s:%d:%s", k.FieldByName("File").String(), k.FieldByName("Line").Int(), k.FieldByName("Text").String())
	return fmt.Sprintf("%s|%p", site, h.BlockState)
}
