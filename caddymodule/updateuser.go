package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"
)

// update-user: an operator changes a user's email and privileges.

// updateUserRequest is the admin API's body for update-user; absent
// fields stay as they are.
type updateUserRequest struct {
	Username  string  `json:"username"`
	Email     *string `json:"email,omitempty"`
	Staff     *bool   `json:"staff,omitempty"`
	Superuser *bool   `json:"superuser,omitempty"`
}

func (a storeAdmin) updateUser(ctx context.Context, r updateUserRequest) (*userResult, error) {
	c := accounts.Changes{Email: r.Email, IsStaff: r.Staff, IsSuperuser: r.Superuser}
	if c.Empty() {
		return nil, badRequest("nothing to change: give email, staff or superuser")
	}
	u, err := a.lookup(ctx, r.Username)
	if err != nil {
		return nil, err
	}
	u, changed, err := a.accounts.Update(ctx, u.ID, c)
	if err != nil {
		email := ""
		if r.Email != nil {
			email = *r.Email
		}
		return nil, adminError(err, r.Username, email)
	}
	return &userResult{User: infoOf(u), Changed: changed}, nil
}

func (c adminClient) updateUser(_ context.Context, r updateUserRequest) (*userResult, error) {
	return callFor[userResult](c, http.MethodPost, "update-user", r)
}

func updateUserCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "update-user --username NAME [--email ADDRESS] [--staff|--no-staff] [--superuser|--no-superuser]",
		Short: "Changes a user's email, staff or superuser flag",
		Long: `
Changes a user's email address (checked as registration checks it) and
staff and superuser flags; what is not given stays. Privileges are read on
every request: the change applies from the user's next request, and their
sessions go on. (--superuser does not imply --staff here: each flag
changes its own field.)
`,
		Example: `  caddy session-auth update-user --config Caddyfile --username alice --email alice@new.example
  caddy session-auth update-user --db ./data/users.db bob --staff --no-superuser`,
	}
	f := c.Flags()
	f.String("username", "", "Username (required; matched regardless of case)")
	f.String("email", "", "New email address")
	f.Bool("staff", false, "Make the user staff")
	f.Bool("no-staff", false, "Make the user not staff")
	f.Bool("superuser", false, "Make the user a superuser")
	f.Bool("no-superuser", false, "Make the user not a superuser")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		req := updateUserRequest{Username: flagString(cmd, "username")}
		if strings.TrimSpace(req.Username) == "" {
			return errors.New("--username is required")
		}
		if cmd.Flags().Changed("email") {
			e := flagString(cmd, "email")
			req.Email = &e
		}
		var err error
		if req.Staff, err = flagPair(cmd, "staff"); err != nil {
			return err
		}
		if req.Superuser, err = flagPair(cmd, "superuser"); err != nil {
			return err
		}
		if req.Email == nil && req.Staff == nil && req.Superuser == nil {
			return errors.New("nothing to change: give --email, --staff/--no-staff or --superuser/--no-superuser")
		}
		return withAdmin(cmd, false, func(ctx context.Context, ua userAdmin) error {
			res, err := ua.updateUser(ctx, req)
			if err != nil {
				return err
			}
			u := res.User
			yes := map[bool]string{true: "yes", false: "no"}
			state := fmt.Sprintf("email %s, staff %s, superuser %s", u.Email, yes[u.IsStaff], yes[u.IsSuperuser])
			if res.Changed {
				fmt.Fprintf(cmd.OutOrStdout(), "updated %q (id %d): %s\n", u.Username, u.ID, state)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%q (id %d) unchanged: %s\n", u.Username, u.ID, state)
			}
			return nil
		})
	}
	return c
}

// flagPair reads --name / --no-name: nil when neither is given.
func flagPair(cmd *cobra.Command, name string) (*bool, error) {
	on, off := flagBool(cmd, name), flagBool(cmd, "no-"+name)
	switch {
	case on && off:
		return nil, fmt.Errorf("--%s and --no-%s contradict each other", name, name)
	case on:
		return &on, nil
	case off:
		v := false
		return &v, nil
	}
	return nil, nil
}
