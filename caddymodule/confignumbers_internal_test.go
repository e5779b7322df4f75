package caddymodule

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// A config made in Go (no JSON to note what was written) gets the same
// messages for negative numbers as the Caddyfile and JSON.
func TestCheckNumbersGoConfig(t *testing.T) {
	neg := caddy.Duration(-1)
	for want, s := range map[string]*SessionAuth{
		"session_cookie: invalid max age":                   {SessionMaxAge: neg},
		"csrf_cookie: invalid max age":                      {CSRFMaxAge: neg},
		"max_body_size: invalid size":                       {MaxBodyBytes: maxBodyLimit + 1},
		"hash_concurrency: want a positive integer":         {HashConcurrency: -1},
		"db_lock_timeout: invalid duration":                 {DBLockTimeout: neg},
		"smtp_timeout: invalid duration":                    {SMTPTimeout: neg},
		"password_reset_timeout: invalid duration":          {PasswordResetTimeout: neg},
		"login_throttle: user_failures: want a positive":    {LoginThrottle: &LoginThrottle{UserFailures: -1}},
		"login_throttle: ip_failures: want a positive":      {LoginThrottle: &LoginThrottle{IPFailures: -1}},
		"login_throttle: window: invalid duration \"-1ns\"": {LoginThrottle: &LoginThrottle{Window: neg}},
		"login_throttle: ban: invalid duration":             {LoginThrottle: &LoginThrottle{Ban: neg}},
		"login_lockout: failures: want a positive":          {LoginLockout: &LoginLockout{Failures: -1}},
		"login_lockout: window: invalid duration":           {LoginLockout: &LoginLockout{Window: neg}},
		"login_lockout: ban: invalid duration":              {LoginLockout: &LoginLockout{Ban: neg}},
		"register_throttle: count: want a positive":         {RegisterThrottle: &RegisterThrottle{Count: -1}},
		"register_throttle: window: invalid duration":       {RegisterThrottle: &RegisterThrottle{Window: neg}},
	} {
		if err := s.checkNumbers(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
	if err := (&SessionAuth{LoginThrottle: &LoginThrottle{}}).checkNumbers(); err != nil {
		t.Errorf("zero values (defaults to come): %v", err)
	}
}
