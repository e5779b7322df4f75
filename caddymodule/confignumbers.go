package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// The Caddyfile refuses a zero or negative count, duration or size where it
// reads one; a JSON config must get the same answer. A field left out of
// the JSON (Go's zero value) takes its default; a number written in it must
// be in range: UnmarshalJSON notes what was written, and Provision
// (checkNumbers) refuses it with the Caddyfile's message.

// numberField is a numeric field of the JSON config: where it is (key, or
// parent and key), what it is, and how the Caddyfile names it in errors.
type numberField struct {
	parent, key string
	duration    bool
	max         int64  // 0: no maximum
	message     string // fmt format with the value as %q
}

var numberFields = []numberField{
	{key: "session_max_age", duration: true, message: "session_cookie: invalid max age %q"},
	{key: "csrf_max_age", duration: true, message: "csrf_cookie: invalid max age %q"},
	{key: "max_body_bytes", max: maxBodyLimit, message: "max_body_size: invalid size %q"},
	{key: "hash_concurrency", message: "hash_concurrency: want a positive integer, got %q"},
	{key: "db_lock_timeout", duration: true, message: "db_lock_timeout: invalid duration %q"},
	{key: "smtp_timeout", duration: true, message: "smtp_timeout: invalid duration %q"},
	{key: "password_reset_timeout", duration: true, message: "password_reset_timeout: invalid duration %q"},
	{parent: "login_throttle", key: "user_failures", message: "login_throttle: user_failures: want a positive integer, got %q"},
	{parent: "login_throttle", key: "ip_failures", message: "login_throttle: ip_failures: want a positive integer, got %q"},
	{parent: "login_throttle", key: "window", duration: true, message: "login_throttle: window: invalid duration %q"},
	{parent: "login_throttle", key: "ban", duration: true, message: "login_throttle: ban: invalid duration %q"},
	{parent: "login_lockout", key: "failures", message: "login_lockout: failures: want a positive integer, got %q"},
	{parent: "login_lockout", key: "window", duration: true, message: "login_lockout: window: invalid duration %q"},
	{parent: "login_lockout", key: "ban", duration: true, message: "login_lockout: ban: invalid duration %q"},
	{parent: "register_throttle", key: "count", message: "register_throttle: count: want a positive integer, got %q"},
	{parent: "register_throttle", key: "window", duration: true, message: "register_throttle: window: invalid duration %q"},
}

// maxBodyLimit is the largest max_body_size (1 GiB).
const maxBodyLimit = 1 << 30

// UnmarshalJSON decodes the handler's config as Caddy does (unknown fields
// refused) and notes the first number written out of range, for Provision.
func (s *SessionAuth) UnmarshalJSON(b []byte) error {
	type plain SessionAuth // the fields without this method
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode((*plain)(s)); err != nil {
		return err
	}
	s.badNumber = nil
	var top map[string]json.RawMessage
	if json.Unmarshal(b, &top) != nil {
		return nil
	}
	nested := map[string]map[string]json.RawMessage{}
	for _, f := range numberFields {
		obj := top
		if f.parent != "" {
			m, ok := nested[f.parent]
			if !ok {
				_ = json.Unmarshal(top[f.parent], &m) // absent or null: none
				nested[f.parent] = m
			}
			obj = m
		}
		raw, ok := obj[f.key]
		if !ok || string(raw) == "null" {
			continue
		}
		if !f.inRange(raw) {
			text := strings.Trim(string(raw), `"`)
			s.badNumber = fmt.Errorf(f.message, text)
			return nil
		}
	}
	return nil
}

// inRange reports whether a written JSON value of f is positive (and at
// most f.max).
func (f numberField) inRange(raw json.RawMessage) bool {
	if f.duration {
		var d caddy.Duration
		return d.UnmarshalJSON(raw) == nil && d > 0
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	return err == nil && n > 0 && (f.max == 0 || n <= f.max)
}

// checkNumbers refuses numbers out of range, before defaults fill in the
// fields left out: those written in a JSON config (including a zero), and
// negative ones in a config made in Go.
func (s *SessionAuth) checkNumbers() error {
	if s.badNumber != nil {
		return s.badNumber
	}
	type check struct {
		parent, key string // the numberFields entry, for its message
		bad         bool
		v           any
	}
	checks := []check{
		{"", "session_max_age", s.SessionMaxAge < 0, s.SessionMaxAge},
		{"", "csrf_max_age", s.CSRFMaxAge < 0, s.CSRFMaxAge},
		{"", "max_body_bytes", s.MaxBodyBytes < 0 || s.MaxBodyBytes > maxBodyLimit, s.MaxBodyBytes},
		{"", "hash_concurrency", s.HashConcurrency < 0, s.HashConcurrency},
		{"", "db_lock_timeout", s.DBLockTimeout < 0, s.DBLockTimeout},
		{"", "smtp_timeout", s.SMTPTimeout < 0, s.SMTPTimeout},
		{"", "password_reset_timeout", s.PasswordResetTimeout < 0, s.PasswordResetTimeout},
	}
	if lt := s.LoginThrottle; lt != nil {
		checks = append(checks,
			check{"login_throttle", "user_failures", lt.UserFailures < 0, lt.UserFailures},
			check{"login_throttle", "ip_failures", lt.IPFailures < 0, lt.IPFailures},
			check{"login_throttle", "window", lt.Window < 0, lt.Window},
			check{"login_throttle", "ban", lt.Ban < 0, lt.Ban})
	}
	if lo := s.LoginLockout; lo != nil {
		checks = append(checks,
			check{"login_lockout", "failures", lo.Failures < 0, lo.Failures},
			check{"login_lockout", "window", lo.Window < 0, lo.Window},
			check{"login_lockout", "ban", lo.Ban < 0, lo.Ban})
	}
	if rt := s.RegisterThrottle; rt != nil {
		checks = append(checks,
			check{"register_throttle", "count", rt.Count < 0, rt.Count},
			check{"register_throttle", "window", rt.Window < 0, rt.Window})
	}
	for _, c := range checks {
		if c.bad {
			v := fmt.Sprint(c.v)
			if d, ok := c.v.(caddy.Duration); ok {
				v = fmt.Sprint(time.Duration(d))
			}
			return fmt.Errorf(numberMessage(c.parent, c.key), v)
		}
	}
	return nil
}

// numberMessage is the message of numberFields' entry for key (under
// parent).
func numberMessage(parent, key string) string {
	for _, f := range numberFields {
		if f.parent == parent && f.key == key {
			return f.message
		}
	}
	panic("confignumbers: no numberFields entry for " + parent + "." + key)
}
