package caddymodule

import (
	"strings"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"
)

// DRF's messages for CharField failures, and the registration form's own.
const (
	msgRequired        = "This field is required."
	msgBlank           = accounts.MsgBlank
	msgNull            = "This field may not be null."
	msgNotString       = "Not a valid string."
	msgPasswordsDiffer = "Password fields didn't match."
)

// stringField reads a required CharField as DRF does (trimming surrounding
// whitespace). ok is false when an error was recorded.
func stringField(data requestData, name string, errs *accounts.FieldErrors) (string, bool) {
	v, present := data[name]
	switch {
	case !present:
		errs.Add(name, msgRequired)
	case v.kind == fieldNull:
		errs.Add(name, msgNull)
	case v.kind == fieldNotString:
		errs.Add(name, msgNotString)
	default:
		s := strings.TrimSpace(v.str)
		if s == "" {
			errs.Add(name, msgBlank)
			return "", false
		}
		return s, true
	}
	return "", false
}

// loggableUsername is a typed username fit for a log line: what users
// type there is sometimes their password, so only a name that could be a
// username is logged, and never more than a username's length.
func loggableUsername(typed string) string {
	name := accounts.NormalizeUsername(strings.TrimSpace(typed))
	if len(accounts.UsernameProblems(name)) > 0 {
		return "(not a valid username)"
	}
	return name
}
