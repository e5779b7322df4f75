package accounts

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// FieldErrors is a set of refusals by field, in the order they were found:
// DRF's validation error shape, {"field": ["message", …], …}. The API
// sends it as JSON; the CLI and the admin API print it as text.
type FieldErrors struct {
	fields []string
	msgs   map[string][]string
}

// Add records msg for field.
func (e *FieldErrors) Add(field, msg string) {
	if e.msgs == nil {
		e.msgs = map[string][]string{}
	}
	if _, seen := e.msgs[field]; !seen {
		e.fields = append(e.fields, field)
	}
	e.msgs[field] = append(e.msgs[field], msg)
}

// Empty reports whether nothing was refused.
func (e *FieldErrors) Empty() bool { return e == nil || len(e.fields) == 0 }

// Has reports whether field was refused.
func (e *FieldErrors) Has(field string) bool { return e != nil && len(e.msgs[field]) > 0 }

// Fields returns the refused fields in order.
func (e *FieldErrors) Fields() []string { return e.fields }

// Messages returns the messages of field.
func (e *FieldErrors) Messages(field string) []string { return e.msgs[field] }

// Error reads `username: A user with that username already exists.`, one
// field after the other.
func (e *FieldErrors) Error() string {
	var b strings.Builder
	for i, f := range e.fields {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f + ": " + strings.Join(e.msgs[f], " "))
	}
	return b.String()
}

// MarshalJSON writes DRF's shape, fields in order.
func (e *FieldErrors) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, f := range e.fields {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(f)
		v, _ := json.Marshal(e.msgs[f])
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}

// fieldError is a FieldErrors with one message.
func fieldError(field, msg string) *FieldErrors {
	var e FieldErrors
	e.Add(field, msg)
	return &e
}

var (
	// ErrNotFound: no such user.
	ErrNotFound = users.ErrNotFound
	// ErrBadCredentials: unknown user, wrong password or inactive user
	// (deliberately one error, answered alike).
	ErrBadCredentials = errors.New("accounts: unable to log in with provided credentials")
	// ErrInactive is the ErrBadCredentials of an inactive user who gave
	// the right password (errors.Is(ErrInactive, ErrBadCredentials)): the
	// client is answered alike, the operator's log tells them apart.
	ErrInactive = fmt.Errorf("%w (inactive user)", ErrBadCredentials)
	// ErrSessionsEnded: the user's sessions were ended (or the user
	// changed) while a request ran; the caller's session is no longer valid.
	ErrSessionsEnded = errors.New("accounts: the user's sessions ended during the request")
)

// ConflictError lists why an import or copy was refused; nothing was
// written.
type ConflictError struct {
	// Summary says what was refused, e.g. "import aborted, nothing written".
	Summary string
	// Items are the conflicts, one line each.
	Items []string
	// Hint, if set, says how to get past them.
	Hint string
}

func (e *ConflictError) Error() string {
	var b strings.Builder
	b.WriteString(e.Summary)
	if e.Hint != "" {
		b.WriteString(" (" + e.Hint + ")")
	}
	b.WriteString(":")
	for i, it := range e.Items {
		if i == maxListed {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Items)-maxListed)
			break
		}
		b.WriteString("\n  " + it)
	}
	return b.String()
}

// maxListed bounds the items an error message lists.
const maxListed = 20

// InvalidError is a request that can never succeed as given (an import
// with bad records): Error lists every problem.
type InvalidError struct{ ConflictError }
