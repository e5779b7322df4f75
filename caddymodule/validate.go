package caddymodule

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/idtoken"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/sessions"
)

// `caddy validate` provisions the config as a start would, but nothing
// serves it: opening users_db would wait for the lock of the Caddy that
// runs it (and fail), and opening pools would dial Redis for nothing. So in
// a process that only checks configs, Provision checks the settings and
// opens no store (checkOffline).

// validationOnly reports whether this process only checks configs: it was
// started as `caddy validate` or `caddy adapt --validate` (Caddy's context
// does not say so: both call caddy.Validate, which provisions as a start
// does but never starts the apps). The one place that decides; the
// storage code asks it before opening anything.
func validationOnly() bool {
	return forceValidationOnly.Load() || isValidateCommand(os.Args)
}

// forceValidationOnly lets tests that run in-process check a config as
// `caddy validate` would.
var forceValidationOnly atomic.Bool

// isValidateCommand reads Caddy's command line: the first word that is not
// a flag names the subcommand.
func isValidateCommand(args []string) bool {
	if len(args) < 2 {
		return false
	}
	i := slices.IndexFunc(args[1:], func(a string) bool { return !strings.HasPrefix(a, "-") })
	if i < 0 {
		return false
	}
	rest := args[1+i:]
	switch rest[0] {
	case "validate":
		return true
	case "adapt":
		return slices.ContainsFunc(rest[1:], func(a string) bool {
			return a == "--validate" || a == "-validate" || a == "--validate=true"
		})
	}
	return false
}

// checkOffline checks, for `caddy validate`, what Provision would find
// wrong when opening the stores, without opening them: the Redis settings
// and TLS files (sessions.TLSConfigFromFiles, as at start), and the
// identity token's key files.
func (s *SessionAuth) checkOffline() error {
	if err := s.checkRedisSettings(); err != nil {
		return err
	}
	if s.Redis != "" {
		for _, f := range []struct{ name, path string }{
			{"redis_tls_ca", s.RedisTLSCA}, {"redis_tls_cert", s.RedisTLSCert}, {"redis_tls_key", s.RedisTLSKey},
		} {
			if f.path == "" {
				continue
			}
			if _, err := os.ReadFile(f.path); err != nil {
				return fmt.Errorf("%s: %v", f.name, err)
			}
		}
		// What the files hold, as openRedisBackend reads them at start.
		if s.RedisTLSCA != "" || s.RedisTLSCert != "" || s.RedisTLSKey != "" {
			if _, err := sessions.TLSConfigFromFiles(s.RedisTLSCA, s.RedisTLSCert, s.RedisTLSKey); err != nil {
				return fmt.Errorf("redis TLS (redis_tls_ca, redis_tls_cert, redis_tls_key): %v", err)
			}
		}
	}
	if it := s.IdentityToken; it != nil {
		if err := checkTokenHeader(it.Header, s.IdentityHeaders); err != nil {
			return err
		}
		if len(it.KeyFiles) > 0 {
			if _, err := idtoken.FromFiles(it.KeyFiles); err != nil {
				return err
			}
		}
	}
	return nil
}
