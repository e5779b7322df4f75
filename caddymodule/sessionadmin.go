package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// The CLI and admin API side of own sessions and e-mail verification:
// list-sessions, end-sessions, verify-email.

// sessionsResult is the admin API's answer to list-sessions.
type sessionsResult struct {
	User     userInfo      `json:"user"`
	Sessions []sessionJSON `json:"sessions"`
}

func (a storeAdmin) listSessions(ctx context.Context, r userRequest) (*sessionsResult, error) {
	u, err := a.lookup(ctx, r.Username)
	if err != nil {
		return nil, err
	}
	res := &sessionsResult{User: infoOf(u), Sessions: []sessionJSON{}}
	if a.sessionStores == nil {
		return res, nil
	}
	for _, acc := range a.sessionStores() {
		list, err := liveSessions(acc, u, "")
		if err != nil {
			return nil, &opError{status: http.StatusServiceUnavailable, msg: "the session store did not answer", cause: err}
		}
		res.Sessions = append(res.Sessions, list...)
	}
	return res, nil
}

// endSessions ends every session of the user (their epoch moves on, which
// every instance checks) and deletes the sessions the stores list.
func (a storeAdmin) endSessions(ctx context.Context, r userRequest) (*userResult, error) {
	u, err := a.lookup(ctx, r.Username)
	if err != nil {
		return nil, err
	}
	u, err = a.accounts.EndSessions(ctx, u.ID)
	if err != nil {
		return nil, adminError(err, r.Username, "")
	}
	a.freeSessions(u.ID)
	return &userResult{User: infoOf(u), Changed: true}, nil
}

// freeSessions deletes the user's indexed sessions from the known stores
// once an epoch change has ended them (nothing depends on it: it frees the
// stores sooner than expiry would).
func (a storeAdmin) freeSessions(userID int64) {
	if a.sessionStores == nil {
		return
	}
	for _, acc := range a.sessionStores() {
		_ = endIndexed(acc, userID, "")
	}
}

// setEmailVerified marks the user's address verified (an operator's word).
func (a storeAdmin) setEmailVerified(ctx context.Context, r userRequest) (*userResult, error) {
	u, err := a.lookup(ctx, r.Username)
	if err != nil {
		return nil, err
	}
	u, changed, err := a.accounts.SetEmailVerified(ctx, u.ID, true)
	if err != nil {
		return nil, adminError(err, r.Username, "")
	}
	return &userResult{User: infoOf(u), Changed: changed}, nil
}

func (c adminClient) listSessions(_ context.Context, r userRequest) (*sessionsResult, error) {
	return callFor[sessionsResult](c, http.MethodPost, "list-sessions", r)
}

func (c adminClient) endSessions(_ context.Context, r userRequest) (*userResult, error) {
	return callFor[userResult](c, http.MethodPost, "end-sessions", r)
}

func (c adminClient) setEmailVerified(_ context.Context, r userRequest) (*userResult, error) {
	return callFor[userResult](c, http.MethodPost, "verify-email", r)
}

func listSessionsCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "list-sessions --username NAME",
		Short: "Lists a user's live sessions",
		Long: `
Lists a user's live sessions: the opaque id (as GET <api>/sessions/ shows
it, never the token), when it was created and last seen (written at most
once a minute), the client IP and user agent at login. With --json, the
objects of GET <api>/sessions/ in an array. With --config the running
Caddy's session stores are read (Redis too); with --db only sessions kept
in the users_db file are seen.
`,
		Example: `  caddy session-auth list-sessions --config Caddyfile --username alice`,
	}
	c.Flags().String("username", "", "Username (required; matched regardless of case)")
	c.Flags().Bool("json", false, "Print JSON instead of a table")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return withAdmin(cmd, false, func(ctx context.Context, ua userAdmin) error {
			res, err := ua.listSessions(ctx, userRequest{Username: flagString(cmd, "username")})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if flagBool(cmd, "json") {
				return writeIndentedJSON(out, res.Sessions)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCREATED (UTC)\tLAST SEEN (UTC)\tCLIENT IP\tUSER AGENT")
			const layout = "2006-01-02 15:04"
			for _, s := range res.Sessions {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Created.UTC().Format(layout), s.LastSeen.UTC().Format(layout), s.ClientIP, s.UserAgent)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d session(s) of %q (id %d)\n", len(res.Sessions), res.User.Username, res.User.ID)
			return nil
		})
	}
	return c
}

func endSessionsCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "end-sessions --username NAME",
		Short: "Ends all of a user's sessions",
		Long: `
Ends every session of a user at once, on every instance ("log out
everywhere"); the account stays as it is.
`,
		Example: `  caddy session-auth end-sessions --config Caddyfile --username alice`,
	}
	c.Flags().String("username", "", "Username (required; matched regardless of case)")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return withAdmin(cmd, false, func(ctx context.Context, ua userAdmin) error {
			res, err := ua.endSessions(ctx, userRequest{Username: flagString(cmd, "username")})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ended the sessions of %q (id %d)\n", res.User.Username, res.User.ID)
			return nil
		})
	}
	return c
}

func verifyEmailCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "verify-email --username NAME",
		Short: "Marks a user's e-mail address verified",
		Long: `
Marks a user's e-mail address as verified, as if they had followed the
verification link: X-Auth-Email-Verified says true, and with
email_verification mandatory they may log in.
`,
		Example: `  caddy session-auth verify-email --config Caddyfile --username alice`,
	}
	c.Flags().String("username", "", "Username (required; matched regardless of case)")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return withAdmin(cmd, false, func(ctx context.Context, ua userAdmin) error {
			res, err := ua.setEmailVerified(ctx, userRequest{Username: flagString(cmd, "username")})
			if err != nil {
				return err
			}
			if res.Changed {
				fmt.Fprintf(cmd.OutOrStdout(), "the address of %q (id %d) is now verified\n", res.User.Username, res.User.ID)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "the address of %q (id %d) was verified already\n", res.User.Username, res.User.ID)
			}
			return nil
		})
	}
	return c
}

func writeIndentedJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
