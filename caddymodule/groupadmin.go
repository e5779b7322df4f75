package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/idtoken"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// Groups and the identity token's keys, as the CLI and the admin API
// manage them (see useradmin.go for the rest).

// groupRequest is the admin API's body for add-to-group and
// remove-from-group.
type groupRequest struct {
	Username string `json:"username"`
	Group    string `json:"group"`
}

// rotateKeyResult is the admin API's answer to rotate-key.
type rotateKeyResult struct {
	// KeyID is the new signing key's kid.
	KeyID string `json:"kid"`
	// Published are the kids the JWKS lists now, newest first.
	Published []string `json:"published"`
}

// groupError words a refused group name for the CLI and the admin API.
func groupError(err error, r groupRequest) error {
	if fe, ok := errors.AsType[*accounts.FieldErrors](err); ok && fe.Has("group") {
		return badRequest("group %q: %s", strings.TrimSpace(r.Group), strings.Join(fe.Messages("group"), " "))
	}
	return adminError(err, r.Username, "")
}

func (a storeAdmin) addToGroup(ctx context.Context, r groupRequest) (*userResult, error) {
	u, err := a.lookup(ctx, r.Username)
	if err != nil {
		return nil, err
	}
	u, changed, err := a.accounts.AddToGroup(ctx, u.ID, r.Group)
	if err != nil {
		return nil, groupError(err, r)
	}
	return &userResult{User: infoOf(u), Changed: changed, group: strings.TrimSpace(r.Group)}, nil
}

func (a storeAdmin) removeFromGroup(ctx context.Context, r groupRequest) (*userResult, error) {
	u, err := a.lookup(ctx, r.Username)
	if err != nil {
		return nil, err
	}
	u, changed, err := a.accounts.RemoveFromGroup(ctx, u.ID, r.Group)
	if err != nil {
		return nil, groupError(err, r)
	}
	return &userResult{User: infoOf(u), Changed: changed, group: strings.TrimSpace(r.Group)}, nil
}

// rotateKey retires the identity token's signing key kept with the users
// and adds a new one (idtoken.Rotate).
func (a storeAdmin) rotateKey(ctx context.Context) (*rotateKeyResult, error) {
	sec, ok := a.accounts.Store.(users.Secrets)
	if !ok {
		return nil, badRequest("this users database cannot keep keys")
	}
	now := time.Now()
	ks, err := idtoken.Rotate(ctx, sec, now)
	if errors.Is(err, idtoken.ErrCorrupt) {
		return nil, &opError{status: http.StatusConflict, msg: fmt.Sprintf("%v: nothing changed (the %q secret in the users database)", err, idtoken.SecretName)}
	}
	if err != nil {
		return nil, err
	}
	res := &rotateKeyResult{KeyID: ks.Signing().ID, Published: []string{}}
	for _, k := range ks.Published(now) {
		res.Published = append(res.Published, k.ID)
	}
	return res, nil
}

func (c adminClient) addToGroup(_ context.Context, r groupRequest) (*userResult, error) {
	return callFor[userResult](c, http.MethodPost, "add-to-group", r)
}

func (c adminClient) removeFromGroup(_ context.Context, r groupRequest) (*userResult, error) {
	return callFor[userResult](c, http.MethodPost, "remove-from-group", r)
}

func (c adminClient) rotateKey(context.Context) (*rotateKeyResult, error) {
	return callFor[rotateKeyResult](c, http.MethodPost, "rotate-key", struct{}{})
}

// groupCommand is add-to-group (add) or remove-from-group.
func groupCommand(add bool) *cobra.Command {
	c := &cobra.Command{
		Use:   "add-to-group --username NAME --group GROUP",
		Short: "Puts a user in a group",
		Long: `
Puts a user in a group (a name, as Django's auth_group names them: up to 150
characters, compared exactly, no commas). The change applies from the
user's next request: require rules, the X-Auth-Groups header and the
identity token follow it. Their sessions go on.
`,
		Example: `  caddy session-auth add-to-group --config Caddyfile --username alice --group editors
  caddy session-auth add-to-group --db ./data/users.db --username bob --group "Content Editors"`,
	}
	if !add {
		c.Use = "remove-from-group --username NAME --group GROUP"
		c.Short = "Takes a user out of a group"
		c.Long = "\nTakes a user out of a group; it applies from the user's next request.\n"
		c.Example = `  caddy session-auth remove-from-group --config Caddyfile --username alice --group editors`
	}
	c.Flags().String("username", "", "Username (required; matched regardless of case)")
	c.Flags().String("group", "", "Group name (required; exact)")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		r := groupRequest{Username: flagString(cmd, "username"), Group: flagString(cmd, "group")}
		if strings.TrimSpace(r.Group) == "" {
			return errors.New("--group is required")
		}
		return withAdmin(cmd, false, func(ctx context.Context, ua userAdmin) error {
			var res *userResult
			var err error
			if add {
				res, err = ua.addToGroup(ctx, r)
			} else {
				res, err = ua.removeFromGroup(ctx, r)
			}
			if err != nil {
				return err
			}
			g, out := strings.TrimSpace(r.Group), cmd.OutOrStdout()
			switch {
			case add && res.Changed:
				fmt.Fprintf(out, "added %q (id %d) to group %q\n", res.User.Username, res.User.ID, g)
			case add:
				fmt.Fprintf(out, "%q (id %d) was already in group %q\n", res.User.Username, res.User.ID, g)
			case res.Changed:
				fmt.Fprintf(out, "removed %q (id %d) from group %q\n", res.User.Username, res.User.ID, g)
			default:
				fmt.Fprintf(out, "%q (id %d) was not in group %q\n", res.User.Username, res.User.ID, g)
			}
			return nil
		})
	}
	return c
}

func rotateKeyCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "rotate-key",
		Short: "Rotates the identity token's signing key",
		Long: `
Adds a new signing key for the identity token (identity_token) to the users
database and makes it the one that signs; the old key stays published in
the JWKS (<api_prefix>/jwks/) for 5 minutes, until every token it signed has
expired. Through --config, the running Caddy signs with the new key at once;
other instances sharing the users database within 5 seconds. Handlers with
identity_token_key use their key files instead: replace the file (naming
the old one after it for a while) and reload.
`,
		Example: `  caddy session-auth rotate-key --config Caddyfile`,
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return withAdmin(cmd, false, func(ctx context.Context, ua userAdmin) error {
			res, err := ua.rotateKey(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "new signing key %s; the JWKS publishes %s\n", res.KeyID, strings.Join(res.Published, ", "))
			return nil
		})
	}
	return c
}
