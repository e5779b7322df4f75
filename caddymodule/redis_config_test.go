package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// The Redis settings get the same errors from a JSON config as from a
// Caddyfile (the checks are in Provision/Validate); the Caddyfile parser
// adds file:line for what it cannot even read.
func TestRedisSettingsErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		caddyfile string
		json      string
		want      string
	}{
		{"redis redis://127.0.0.1:6379/0\n\t\tsentinel_password pw", `"redis":"redis://127.0.0.1:6379/0","sentinel_password":"pw"`,
			"sentinel_password: needs a redis+sentinel:// URL"},
		{"redis redis://127.0.0.1:6379/0\n\t\tredis_tls_ca /tmp/ca.pem", `"redis":"redis://127.0.0.1:6379/0","redis_tls_ca":"/tmp/ca.pem"`,
			"redis_tls_ca: needs a rediss:// (TLS) URL"},
		{"redis rediss://127.0.0.1:6379/0\n\t\tredis_tls_cert /tmp/c.pem", `"redis":"rediss://127.0.0.1:6379/0","redis_tls_cert":"/tmp/c.pem"`,
			"redis_tls_cert and redis_tls_key go together"},
		{"redis rediss://127.0.0.1:6379/0\n\t\tredis_tls_ca " + filepath.Join(dir, "missing.pem"),
			`"redis":"rediss://127.0.0.1:6379/0","redis_tls_ca":` + quote(filepath.Join(dir, "missing.pem")),
			"redis TLS (redis_tls_ca, redis_tls_cert, redis_tls_key): CA file"},
		{"redis redis+sentinel://127.0.0.1:26379", `"redis":"redis+sentinel://127.0.0.1:26379"`, "missing master name"},
		{"redis redis+sentinel://:s3cret@127.0.0.1:26379,/m", `"redis":"redis+sentinel://:s3cret@127.0.0.1:26379,/m"`, "empty Sentinel address"},
	} {
		cfg, err := adapt(fmt.Sprintf(":%d {\n\tsession_auth {\n\t\tusers_db %s\n\t\t%s\n\t}\n}", freePort(t), filepath.Join(dir, "u.db"), c.caddyfile))
		errCaddyfile := err
		if err != nil {
			// A URL the session backend cannot use is an adapt error, with
			// the line (issue 15).
			if !strings.Contains(err.Error(), "Caddyfile:4") {
				t.Errorf("%s: adapt error without the line: %v", c.caddyfile, err)
			}
		} else {
			errCaddyfile = caddy.Load(cfg, true)
		}
		errJSON := caddy.Load([]byte(jsonConfig(t, filepath.Join(dir, "u.db"), c.json)), true)
		for what, err := range map[string]error{"Caddyfile": errCaddyfile, "JSON": errJSON} {
			if err == nil {
				caddy.Stop()
				t.Errorf("%s %s: loaded", what, c.json)
				continue
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s %s: %v, want %q", what, c.json, err, c.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("%s %s: the error shows the password: %v", what, c.json, err)
			}
		}
	}

	// session_cache: a number or off; the Caddyfile and JSON say so alike.
	for _, v := range []string{"0", "-1", "many", "20000000"} {
		_, err := adapt(":8000 {\n\tsession_auth {\n\t\tsession_cache " + v + "\n\t}\n}")
		if err == nil || !strings.Contains(err.Error(), "session_cache: want a number of sessions") || !strings.Contains(err.Error(), "Caddyfile:3") {
			t.Errorf("session_cache %s: %v", v, err)
		}
	}
	for _, v := range []string{`-5`, `"on"`, `1.5`, `20000000`} {
		err := caddy.Load([]byte(jsonConfig(t, filepath.Join(dir, "u.db"), `"session_cache":`+v)), true)
		if err == nil || !strings.Contains(err.Error(), "session_cache: want a number of sessions") {
			t.Errorf(`"session_cache":%s: %v`, v, err)
		}
	}
	for caddyfile, want := range map[string]string{"session_cache off": `"session_cache":"off"`, "session_cache 500": `"session_cache":500`} {
		cfg, err := adapt(":8000 {\n\tsession_auth {\n\t\t" + caddyfile + "\n\t\tsentinel_password pw\n\t\tredis_tls_ca ca.pem\n\t\tredis_tls_cert c.pem\n\t\tredis_tls_key k.pem\n\t}\n}")
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{want, `"sentinel_password":"pw"`, `"redis_tls_ca":"ca.pem"`, `"redis_tls_cert":"c.pem"`, `"redis_tls_key":"k.pem"`} {
			if !strings.Contains(string(cfg), w) {
				t.Errorf("%s: adapted config lacks %s: %s", caddyfile, w, cfg)
			}
		}
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func jsonConfig(t *testing.T, usersDB, fields string) string {
	return fmt.Sprintf(`{"admin":{"disabled":true},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:%d"],"routes":[{"handle":[{"handler":"session_auth","users_db":%s,%s}]}]}}}}}`,
		freePort(t), quote(usersDB), fields)
}

// A Redis or Sentinel URL whose password holds characters URLs reserve
// (pasted unescaped) never shows it, or a piece of it, in the load error,
// from a Caddyfile or JSON alike.
func TestRedisURLPasswordNotInLoadError(t *testing.T) {
	dir := t.TempDir()
	for _, u := range []string{
		"redis+sentinel://user:Pa55/wOrdX@127.0.0.1:26379,127.0.0.1:26380/mymaster",
		"redis+sentinel://:Pa55#wOrdX@127.0.0.1:26379/mymaster",
		"redis+sentinel://user:Pa55?wOrdX@127.0.0.1:26379/mymaster/0",
		"rediss+sentinel://Pa55/wOrdX@127.0.0.1:26379/mymaster",
		"redis://:Pa55/wOrdX@127.0.0.1:6379/0",
		"redis://user:Pa55#wOrdX@127.0.0.1:6379/0",
		"redis://127.0.0.1:6379/0?password=Pa55@wOrdX",
	} {
		// The Caddyfile refuses the URL when adapting (with the line); were
		// it to adapt, loading must refuse it.
		cfg, errCaddyfile := adapt(fmt.Sprintf(":%d {\n\tsession_auth {\n\t\tusers_db %s\n\t\tredis %q\n\t}\n}", freePort(t), filepath.Join(dir, "u.db"), u))
		if errCaddyfile == nil {
			errCaddyfile = caddy.Load(cfg, true)
		}
		errJSON := caddy.Load([]byte(jsonConfig(t, filepath.Join(dir, "u.db"), `"redis":`+quote(u))), true)
		for what, err := range map[string]error{"Caddyfile": errCaddyfile, "JSON": errJSON} {
			if err == nil {
				caddy.Stop()
				t.Errorf("%s %s: loaded", what, u)
				continue
			}
			if strings.Contains(err.Error(), "Pa55") || strings.Contains(err.Error(), "wOrd") {
				t.Errorf("%s %s: the error shows (part of) the password: %v", what, u, err)
			}
		}
	}
}
