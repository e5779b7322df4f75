package caddymodule_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// Settings that used to adapt and fail only at run time, without a
// location, are refused by `caddy adapt` with the Caddyfile's file and line.
func TestAdaptTimeErrors(t *testing.T) {
	for _, c := range []struct{ line, want string }{
		{"redis http://127.0.0.1:6379", `redis: invalid URL http://127.0.0.1:6379: unsupported scheme "http" (want redis, rediss, redis+sentinel, rediss+sentinel or unix)`},
		{"redis 127.0.0.1:6379", "redis: the URL has no scheme: want redis://host:port[/db]"},
		{"redis localhost:6379", "redis: the URL has no scheme"},
		{"redis redis://:s3cret@127.0.0.1:6379/x", `redis: invalid URL redis://:xxxxx@127.0.0.1:6379/x: invalid database number "x"`},
		{"cors_origins https://app.example/app", `cors_origins: "https://app.example/app" is not an origin (scheme://host[:port], no path): write "https://app.example"`},
		{"cors_origins http://localhost:3000 app.example", `cors_origins: "app.example" is not an origin (scheme://host[:port])`},
		{"csrf_trusted_origins https://admin.example/?x=1", `csrf_trusted_origins: "https://admin.example/?x=1" is not an origin`},
		{"login_redirect login", `login_redirect: want an absolute path (/login) or an absolute http(s) URL (https://sso.example.com/login), got "login"`},
		{"login_redirect //evil.example/", `login_redirect: want an absolute path`},
		{"login_redirect javascript:alert(1)", `login_redirect: want an absolute path`},
		{"login_redirect https:/nohost", `login_redirect: want an absolute path`},
		{"identity_headers X-Id X-User", "identity_headers: takes 3 to 5 header names: <user_id> <username> <email> [<groups> [<email_verified>]]; got 2"},
		{"identity_headers A B C D E F", "identity_headers: takes 3 to 5 header names: <user_id> <username> <email> [<groups> [<email_verified>]]; got 6"},
		{`identity_headers X-Id "X User" X-Email`, `identity_headers: "X User" is not a header name`},
		{"session_cookie sid 14days", `session_cookie: invalid max age "14days" (want a number with a unit: 14d, 336h, 90m, 30s)`},
		{"db_lock_timeout 3", `db_lock_timeout: invalid duration "3" (want a number with a unit: 14d, 336h, 90m, 30s)`},
		{"login_throttle 5 20 2min 5m", `login_throttle: window: invalid duration "2min" (want a number with a unit: 14d, 336h, 90m, 30s)`},
		{"login_lockout 50 1day", `login_lockout: window: invalid duration "1day" (want a number with a unit`},
		{"register_throttle 20 10", `register_throttle: window: invalid duration "10" (want a number with a unit`},
	} {
		_, err := adapt(":8000 {\n\tsession_auth {\n\t\t" + c.line + "\n\t}\n}")
		if err == nil {
			t.Errorf("%q adapted", c.line)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "Caddyfile:3") {
			t.Errorf("%q: error\n  %v\nwant %q at Caddyfile:3", c.line, err, c.want)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: the error shows the password: %v", c.line, err)
		}
	}
	// The units the messages name work.
	for _, line := range []string{"session_cookie sid 14d", "session_cookie sid 336h", "db_lock_timeout 30s", "login_lockout 50 1d 90m",
		"redis redis://127.0.0.1:6379/0", "redis unix:///run/redis.sock", "redis redis+sentinel://a:26379,b/mymaster/2",
		"login_redirect", "login_redirect /login", "login_redirect https://sso.example.com/login?x=1",
		"identity_headers A B C", "identity_headers A B C D", "identity_headers A B C D E", "cors_origins https://app.example/ http://localhost:3000"} {
		if _, err := adapt(":8000 {\n\tsession_auth {\n\t\t" + line + "\n\t}\n}"); err != nil {
			t.Errorf("%q: %v", line, err)
		}
	}
}

// Two session_auth handlers where a request goes through both refuse every
// request: an adapt-time error naming both lines. Separate sites and
// separate handle blocks may each have one.
func TestAdaptTwoHandlersInOneSite(t *testing.T) {
	_, err := adapt(`example.com {
	session_auth
	reverse_proxy 127.0.0.1:9000
	session_auth {
		api_prefix /auth
	}
}`)
	if err == nil || !strings.Contains(err.Error(), "a second session_auth handler in this site (the first is at Caddyfile:2)") ||
		!strings.Contains(err.Error(), "Caddyfile:4") {
		t.Errorf("two handlers in one site: %v", err)
	}
	_, err = adapt(`example.com {
	handle /a/* {
		session_auth
		session_auth
	}
}`)
	if err == nil || !strings.Contains(err.Error(), "(the first is at Caddyfile:3)") || !strings.Contains(err.Error(), "Caddyfile:4") {
		t.Errorf("two handlers in one handle block: %v", err)
	}
	for _, ok := range []string{
		"a.example {\n\tsession_auth\n}\nb.example {\n\tsession_auth\n}",
		"example.com {\n\thandle /a/* {\n\t\tsession_auth\n\t}\n\thandle {\n\t\tsession_auth {\n\t\t\tapi_prefix /b\n\t\t}\n\t}\n}",
		"(auth) {\n\tsession_auth\n}\na.example {\n\timport auth\n}\nb.example {\n\timport auth\n}",
	} {
		if _, err := adapt(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

// A JSON config gets the same checks, from Validate.
func TestValidateSharedChecks(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ field, want string }{
		{`"redis":"http://127.0.0.1:6379"`, `redis: invalid URL http://127.0.0.1:6379: unsupported scheme "http"`},
		{`"redis":"127.0.0.1:6379"`, "redis: the URL has no scheme"},
		{`"login_redirect":"login"`, "login_redirect: want an absolute path"},
		{`"cors_origins":["https://app.example/app"]`, `write "https://app.example"`},
		{`"identity_headers":{"user_id":"X Id"}`, `identity_headers: "X Id" is not a header name`},
	} {
		cfg := fmt.Sprintf(`{"admin":{"disabled":true},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:%d"],"routes":[{"handle":[{"handler":"session_auth","users_db":%q,%s}]}]}}}}}`,
			freePort(t), filepath.Join(dir, "u.db"), c.field)
		err := caddy.Validate(mustConfig(t, cfg))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.field, err)
		}
	}
}

func mustConfig(t *testing.T, js string) *caddy.Config {
	t.Helper()
	var cfg *caddy.Config
	if err := caddy.StrictUnmarshalJSON([]byte(js), &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}
