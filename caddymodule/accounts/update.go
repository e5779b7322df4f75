package accounts

import (
	"context"
	"strings"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// Changes are an operator's changes to a user's details; nil fields stay
// as they are.
type Changes struct {
	Email       *string
	IsStaff     *bool
	IsSuperuser *bool
}

// Empty reports whether c changes nothing.
func (c Changes) Empty() bool { return c.Email == nil && c.IsStaff == nil && c.IsSuperuser == nil }

// Update applies c to the user in one transaction; changed is false when
// every field already had its value. An email is checked as registration
// checks it (a *FieldErrors); a new address (other than by case) is not
// verified. Privileges are read on every request, so the user's sessions
// go on and see the change at once.
func (s *Service) Update(ctx context.Context, id int64, c Changes) (u *users.User, changed bool, err error) {
	var email string
	if c.Email != nil {
		var ok bool
		email, ok = CheckEmail(*c.Email)
		switch {
		case strings.TrimSpace(*c.Email) == "":
			return nil, false, fieldError("email", MsgBlank)
		case !ok:
			return nil, false, fieldError("email", MsgEmailInvalid)
		}
	}
	u, err = s.Store.Update(ctx, id, func(u *users.User) error {
		before := *u
		if c.Email != nil {
			u.Email = email
			if !strings.EqualFold(email, before.Email) {
				u.EmailVerified = false
			}
		}
		if c.IsStaff != nil {
			u.IsStaff = *c.IsStaff
		}
		if c.IsSuperuser != nil {
			u.IsSuperuser = *c.IsSuperuser
		}
		changed = u.Email != before.Email || u.IsStaff != before.IsStaff || u.IsSuperuser != before.IsSuperuser
		return nil
	})
	return u, changed, err
}
