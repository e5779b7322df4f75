package accounts

import (
	"context"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// Group names are Django's auth_group names: up to 150 characters, compared
// exactly (case and spaces count). The sidecar sends a user's groups to the
// upstream as one comma-separated header, so a name must not contain a
// comma, nor a control character (which no header may carry).
const (
	MaxGroupNameLength  = 150
	MsgGroupNameLong    = "Ensure this field has no more than 150 characters."
	MsgGroupNameInvalid = "Group names may not contain commas or control characters (the groups header is a comma-separated list)."
	MsgGroupNameSpaces  = "Group names may not begin or end with whitespace."
)

// GroupNameProblems returns what is wrong with a group name as it would be
// stored (nothing: it is acceptable).
func GroupNameProblems(name string) []string {
	if name == "" {
		return []string{MsgBlank}
	}
	var out []string
	if strings.TrimSpace(name) != name {
		out = append(out, MsgGroupNameSpaces)
	}
	for _, r := range name {
		if r == ',' || unicode.IsControl(r) || r == utf8.RuneError {
			out = append(out, MsgGroupNameInvalid)
			break
		}
	}
	if utf8.RuneCountInString(name) > MaxGroupNameLength {
		out = append(out, MsgGroupNameLong)
	}
	return out
}

// checkGroup trims a group name as typed and checks it: a *FieldErrors on
// "group" if it is refused.
func checkGroup(raw string) (string, error) {
	name := strings.TrimSpace(raw)
	if problems := GroupNameProblems(name); len(problems) > 0 {
		var errs FieldErrors
		for _, p := range problems {
			errs.Add("group", p)
		}
		return name, &errs
	}
	return name, nil
}

// AddToGroup puts the user in the named group (a name as typed: surrounding
// whitespace is dropped); changed is false if they already were. The
// change applies from the user's next request: the gate reads the user,
// groups included, on every request, and the identity token is re-signed
// when the groups change. A refused name is a *FieldErrors on "group".
func (s *Service) AddToGroup(ctx context.Context, id int64, group string) (u *users.User, changed bool, err error) {
	name, err := checkGroup(group)
	if err != nil {
		return nil, false, err
	}
	u, err = s.Store.Update(ctx, id, func(u *users.User) error {
		changed = !u.InGroup(name)
		if changed {
			u.Groups = append(u.Groups, name) // the store sorts them
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return u, changed, nil
}

// RemoveFromGroup takes the user out of the named group; changed is false
// if they were not in it. It applies from the user's next request.
func (s *Service) RemoveFromGroup(ctx context.Context, id int64, group string) (u *users.User, changed bool, err error) {
	name := strings.TrimSpace(group)
	if name == "" {
		return nil, false, fieldError("group", MsgBlank)
	}
	u, err = s.Store.Update(ctx, id, func(u *users.User) error {
		i, found := slices.BinarySearch(u.Groups, name)
		changed = found
		if found {
			u.Groups = slices.Delete(u.Groups, i, i+1)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return u, changed, nil
}
