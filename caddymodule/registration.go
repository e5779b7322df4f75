package caddymodule

import (
	"fmt"
	"net/http"
)

// The values of the registration setting.
const (
	registrationOpen   = "open"
	registrationClosed = "closed"
)

// checkRegistration is the one check of the setting (Validate, and the
// Caddyfile parser for a file:line error).
func checkRegistration(v string) error {
	if v != registrationOpen && v != registrationClosed {
		return fmt.Errorf("registration: want open or closed, got %q", v)
	}
	return nil
}

// resultClosed labels a registration refused because registration is closed.
const resultClosed = "closed"

var bodyRegistrationClosed = detailError(http.StatusForbidden, "Registration is closed.").body
