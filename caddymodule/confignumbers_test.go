package caddymodule_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// Every count, duration and size that the Caddyfile refuses when zero or
// negative (or too large) is refused in a JSON config too, with the same
// message: a JSON config cannot get past a check by skipping the Caddyfile.
func TestNumbersCheckedInJSONAsInCaddyfile(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		caddyfile, json, want string
	}{
		{"session_cookie sid 0s", `"session_max_age":0`, "session_cookie: invalid max age"},
		{"session_cookie sid -1h", `"session_max_age":"-1h"`, "session_cookie: invalid max age"},
		{"csrf_cookie xsrf -1h", `"csrf_max_age":-3600000000000`, "csrf_cookie: invalid max age"},
		{"max_body_size 0", `"max_body_bytes":0`, "max_body_size: invalid size"},
		{"max_body_size -5", `"max_body_bytes":-5`, "max_body_size: invalid size"},
		{"max_body_size 2GiB", `"max_body_bytes":2147483648`, "max_body_size: invalid size"},
		{"hash_concurrency 0", `"hash_concurrency":0`, "hash_concurrency: want a positive integer"},
		{"hash_concurrency -2", `"hash_concurrency":-2`, "hash_concurrency: want a positive integer"},
		{"db_lock_timeout -1s", `"db_lock_timeout":"-1s"`, "db_lock_timeout: invalid duration"},
		{"db_lock_timeout 0s", `"db_lock_timeout":0`, "db_lock_timeout: invalid duration"},
		{"smtp_timeout 0s", `"smtp_timeout":0`, "smtp_timeout: invalid duration"},
		{"smtp_timeout -5s", `"smtp_timeout":"-5s"`, "smtp_timeout: invalid duration"},
		{"password_reset_timeout -1h", `"password_reset_timeout":-3600000000000`, "password_reset_timeout: invalid duration"},
		{"session_cache 0", `"session_cache":0`, "session_cache: want a number of sessions"},
		{"login_throttle 0 20 2m 5m", `"login_throttle":{"user_failures":0}`, "login_throttle: user_failures: want a positive integer"},
		{"login_throttle -1 20 2m 5m", `"login_throttle":{"user_failures":-1}`, "login_throttle: user_failures: want a positive integer"},
		{"login_throttle 5 -20 2m 5m", `"login_throttle":{"ip_failures":-20}`, "login_throttle: ip_failures: want a positive integer"},
		{"login_throttle 5 20 -2m 5m", `"login_throttle":{"window":"-2m"}`, "login_throttle: window: invalid duration"},
		{"login_throttle 5 20 2m 0s", `"login_throttle":{"ban":0}`, "login_throttle: ban: invalid duration"},
		{"login_lockout -50 24h", `"login_lockout":{"failures":-50}`, "login_lockout: failures: want a positive integer"},
		{"login_lockout 50 0s", `"login_lockout":{"window":"0s"}`, "login_lockout: window: invalid duration"},
		{"login_lockout 50 24h -1h", `"login_lockout":{"ban":"-1h"}`, "login_lockout: ban: invalid duration"},
		{"register_throttle 0 10m", `"register_throttle":{"count":0}`, "register_throttle: count: want a positive integer"},
		{"register_throttle 20 -10m", `"register_throttle":{"window":-600000000000}`, "register_throttle: window: invalid duration"},
	} {
		_, errCaddyfile := adapt(fmt.Sprintf(":%d {\n\tsession_auth {\n\t\tusers_db %s\n\t\t%s\n\t}\n}", freePort(t), filepath.Join(dir, "u.db"), c.caddyfile))
		errJSON := caddy.Load([]byte(jsonConfig(t, filepath.Join(dir, "u.db"), c.json)), true)
		for what, err := range map[string]error{"Caddyfile " + c.caddyfile: errCaddyfile, "JSON " + c.json: errJSON} {
			if err == nil {
				caddy.Stop()
				t.Errorf("%s: accepted", what)
			} else if !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want %q", what, err, c.want)
			}
		}
	}
	// Left out, they take their defaults; in range, they load.
	for _, fields := range []string{
		`"login_throttle":{},"login_lockout":{},"register_throttle":{}`,
		`"session_max_age":"1h","max_body_bytes":1024,"hash_concurrency":2,"db_lock_timeout":"1s","session_cache":5,` +
			`"login_throttle":{"user_failures":3,"ip_failures":9,"window":"1m","ban":"1m"},"login_lockout":{"failures":9,"window":"1h","ban":"1h"},` +
			`"register_throttle":{"count":3,"window":"1m"}`,
	} {
		if err := caddy.Load([]byte(jsonConfig(t, filepath.Join(dir, "u.db"), fields)), true); err != nil {
			t.Errorf("%s: %v", fields, err)
		} else {
			caddy.Stop()
		}
	}
	// Unknown fields are still refused.
	if err := caddy.Load([]byte(jsonConfig(t, filepath.Join(dir, "u.db"), `"hash_concurency":2`)), true); err == nil || !strings.Contains(err.Error(), "unknown field") {
		caddy.Stop()
		t.Errorf("a misspelt field: %v", err)
	}
}
