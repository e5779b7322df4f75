package caddymodule

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/djangoimport"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/passwords"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/sessions"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:      "session-auth",
		Short:     "Manages the users of the session_auth handler",
		Long:      commandLong,
		CobraFunc: configureCommand,
	})
}

// dbOpenTimeout is how long --db waits for the bbolt lock: a running Caddy
// holds it, and the command should say so quickly.
const dbOpenTimeout = 2 * time.Second

const commandLong = `
Creates, changes, lists, imports and unbans the users of the session_auth
handler, manages their groups, and rotates the identity token's key.

Every subcommand works in one of two ways:

--db FILE | --db postgres://...
    Opens the users database (the handler's users_db) directly. For a bbolt
    file, Caddy must not be running with it: bbolt allows one process at a
    time, and the command fails within seconds if the file is in use. A
    PostgreSQL database (a postgres:// or postgresql:// URL) has no such
    lock: the command works on it while any number of Caddy instances run,
    and they see the change within a second.

--config FILE [--adapter NAME] [--users-db PATH|URL]
    Goes through the admin API of the Caddy running with that config (the
    admin address is found as 'caddy reload' finds it; --address overrides
    it), which changes the users on the open database: no need to stop the
    server, and changes take effect on the next request. If the config has
    several session_auth handlers with different users_db, --users-db
    chooses one.

Usernames and emails get the same normalisation and validation as
registration through the API; passwords go through the same validators
(--force sets a refused password anyway, with a warning). Changing a
password, deactivating, deleting a user and resetting their second factors
end all of that user's sessions.
Passwords are never taken from the command line: they are read, without
echo, from the terminal, or with --password-stdin from the first line of
standard input. No password or hash is ever printed.
`

// configureCommand adds the subcommands and shared flags to the
// session-auth command.
func configureCommand(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.String("db", "", "Users database to open directly: a bbolt file (Caddy stopped) or a postgres:// URL")
	pf.StringP("config", "c", "", "Config of the running Caddy, to go through its admin API")
	pf.StringP("adapter", "a", "", "Name of the config adapter (as for caddy reload)")
	pf.String("address", "", "Admin API address of the running Caddy (instead of finding it in --config)")
	pf.String("users-db", "", "With --config: which users_db (path or URL), if the config has several")
	pf.Bool("django-users", false, "With --db postgres://…: the users are Django's auth_user (as django_users)")
	pf.String("password-hasher", "", "With --django-users: pbkdf2_sha256 (default) or argon2, as password_hasher")
	pf.Int("pbkdf2-iterations", 0, "With --django-users: pbkdf2_sha256's iterations, as pbkdf2_iterations")

	for _, sub := range []*cobra.Command{
		createUserCommand(), setPasswordCommand(),
		setActiveCommand(false), setActiveCommand(true),
		deleteUserCommand(), reset2FACommand(), listUsersCommand(), importDjangoCommand(), unbanCommand(),
		groupCommand(true), groupCommand(false), rotateKeyCommand(), // groupadmin.go
		listSessionsCommand(), endSessionsCommand(), verifyEmailCommand(), // sessionadmin.go
		copyUsersCommand(), // copyusers.go
	} {
		sub.Args = cobra.NoArgs
		if sub.Name() == "import-django" {
			sub.Args = cobra.ExactArgs(1)
		}
		cmd.AddCommand(sub)
	}
	addOperatorCommands(cmd) // cmdops.go
}

func createUserCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "create-user --username NAME --email ADDRESS",
		Short: "Creates a user",
		Long: `
Creates an active user. The password is asked for twice on the terminal
(without echo), or read from the first line of standard input with
--password-stdin. --superuser also makes the user staff, as Django's
createsuperuser does.
`,
		Example: `  caddy session-auth create-user --db ./data/users.db --username alice --email alice@example.com
  printf '%s\n' "$PASSWORD" | caddy session-auth create-user --config Caddyfile \
      --username admin --email admin@example.com --superuser --password-stdin`,
	}
	f := c.Flags()
	f.String("username", "", "Username (required)")
	f.String("email", "", "Email address (required)")
	f.Bool("superuser", false, "Make the user a superuser (and staff)")
	f.Bool("staff", false, "Make the user staff")
	passwordFlags(c)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		req := createUserRequest{
			Username:  flagString(cmd, "username"),
			Email:     flagString(cmd, "email"),
			Superuser: flagBool(cmd, "superuser"),
			Staff:     flagBool(cmd, "staff"),
			Force:     flagBool(cmd, "force"),
		}
		// Refuse a bad username or email before asking for a password.
		if err := checkNewUser(req.Username, req.Email); err != nil {
			return err
		}
		return withAdmin(cmd, true, func(ctx context.Context, ua userAdmin) error {
			var err error
			if req.Password, err = readPassword(cmd); err != nil {
				return err
			}
			res, err := ua.createUser(ctx, req)
			if err != nil {
				return err
			}
			printWarnings(cmd, res.Warnings)
			fmt.Fprintf(cmd.OutOrStdout(), "created user %q (id %d)\n", res.User.Username, res.User.ID)
			return nil
		})
	}
	return c
}

func setPasswordCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "set-password --username NAME",
		Short: "Sets a user's password and ends their sessions",
		Long: `
Replaces a user's password (hashed with argon2id) and ends all of their
sessions: they must log in again with the new password.
`,
		Example: `  caddy session-auth set-password --config Caddyfile --username alice`,
	}
	c.Flags().String("username", "", "Username (required; matched regardless of case)")
	passwordFlags(c)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return withAdmin(cmd, false, func(ctx context.Context, ua userAdmin) error {
			req := setPasswordRequest{Username: flagString(cmd, "username"), Force: flagBool(cmd, "force")}
			if strings.TrimSpace(req.Username) == "" {
				return errors.New("--username is required")
			}
			var err error
			if req.Password, err = readPassword(cmd); err != nil {
				return err
			}
			res, err := ua.setPassword(ctx, req)
			if err != nil {
				return err
			}
			printWarnings(cmd, res.Warnings)
			fmt.Fprintf(cmd.OutOrStdout(), "password of %q (id %d) changed; their sessions have ended\n", res.User.Username, res.User.ID)
			return nil
		})
	}
	return c
}

func setActiveCommand(active bool) *cobra.Command {
	c := &cobra.Command{
		Use:     "deactivate --username NAME",
		Short:   "Deactivates a user and ends their sessions",
		Long:    "\nDeactivates a user: they can no longer log in, and all of their sessions end\nat once. 'activate' undoes it (the ended sessions stay ended).\n",
		Example: `  caddy session-auth deactivate --config Caddyfile --username mallory`,
	}
	if active {
		c.Use = "activate --username NAME"
		c.Short = "Activates a deactivated user"
		c.Long = "\nActivates a user, who can then log in again.\n"
		c.Example = `  caddy session-auth activate --config Caddyfile --username mallory`
	}
	c.Flags().String("username", "", "Username (required; matched regardless of case)")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return withAdmin(cmd, false, func(ctx context.Context, ua userAdmin) error {
			res, err := ua.setActive(ctx, userRequest{Username: flagString(cmd, "username")}, active)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case active && res.Changed:
				fmt.Fprintf(out, "activated %q (id %d)\n", res.User.Username, res.User.ID)
			case active:
				fmt.Fprintf(out, "%q (id %d) was already active\n", res.User.Username, res.User.ID)
			case res.Changed:
				fmt.Fprintf(out, "deactivated %q (id %d); their sessions have ended\n", res.User.Username, res.User.ID)
			default:
				fmt.Fprintf(out, "%q (id %d) was already inactive; any sessions have ended\n", res.User.Username, res.User.ID)
			}
			return nil
		})
	}
	return c
}

func deleteUserCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "delete-user --username NAME",
		Short: "Deletes a user and ends their sessions",
		Long: `
Deletes a user for good; their sessions end at once. Their id is not
reused for new users. To keep the account but refuse logins, use
'deactivate' instead.
`,
		Example: `  caddy session-auth delete-user --db ./data/users.db --username olduser`,
	}
	c.Flags().String("username", "", "Username (required; matched regardless of case)")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return withAdmin(cmd, false, func(ctx context.Context, ua userAdmin) error {
			res, err := ua.deleteUser(ctx, userRequest{Username: flagString(cmd, "username")})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %q (id %d); their sessions have ended\n", res.User.Username, res.User.ID)
			return nil
		})
	}
	return c
}

func reset2FACommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "reset-2fa --username NAME",
		Short: "Removes a user's second factors and ends their sessions",
		Long: `
Removes all of a user's second factors (TOTP, passkeys) and recovery
codes, and ends all of their sessions: their next login asks for the
password only (with two_factor required, they must then enrol again).
For a user who lost their authenticator, or whose factor is compromised.
`,
		Example: `  caddy session-auth reset-2fa --config Caddyfile --username alice`,
	}
	c.Flags().String("username", "", "Username (required; matched regardless of case)")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return withAdmin(cmd, false, func(ctx context.Context, ua userAdmin) error {
			res, err := ua.resetSecondFactor(ctx, userRequest{Username: flagString(cmd, "username")})
			if err != nil {
				return err
			}
			if len(res.Removed) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "removed the second factors of %q (id %d): %s; their sessions have ended\n",
					res.User.Username, res.User.ID, strings.Join(res.Removed, ", "))
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%q (id %d) had no second factor; their sessions have ended\n", res.User.Username, res.User.ID)
			}
			return nil
		})
	}
	return c
}

func unbanCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "unban --username NAME",
		Short: "Lifts a user's login bans",
		Long: `
Lifts the bans that failed logins put on a username (login_throttle's
username ban and login_lockout's lockout) and clears its failure counts,
so the user can log in again at once from anywhere. Bans of client IPs
stay. This goes through the running Caddy (--config): the counts live in
its memory, or in its Redis for every instance.
`,
		Example: `  caddy session-auth unban --config Caddyfile --username alice`,
	}
	c.Flags().String("username", "", "Username (required; matched regardless of case)")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if flagString(cmd, "db") != "" {
			return errors.New("unban goes through the running Caddy: use --config instead of --db " +
				"(failed logins are counted in its memory, or in its Redis)")
		}
		return withAdmin(cmd, false, func(ctx context.Context, ua userAdmin) error {
			res, err := ua.unban(ctx, userRequest{Username: flagString(cmd, "username")})
			if err != nil {
				return err
			}
			if res.Changed {
				fmt.Fprintf(cmd.OutOrStdout(), "unbanned %q (id %d); failed logins forgotten\n", res.User.Username, res.User.ID)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%q (id %d) was not banned; failed logins forgotten\n", res.User.Username, res.User.ID)
			}
			return nil
		})
	}
	return c
}

func listUsersCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "list-users",
		Short: "Lists the users",
		Long: `
Lists the users by id, as a table or, with --json, as a JSON array of
objects with id, username, email, is_active, is_superuser, is_staff,
date_joined and last_login (RFC 3339 in UTC; null if never logged in),
groups (an array of names) and second_factors (what the user has, e.g.
["totp", "2 passkeys"]; [] when none; the table's 2FA column).
`,
		Example: `  caddy session-auth list-users --config Caddyfile
  caddy session-auth list-users --db ./data/users.db --json | jq -r '.[].username'`,
	}
	c.Flags().Bool("json", false, "Print JSON instead of a table")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return withAdmin(cmd, false, func(ctx context.Context, ua userAdmin) error {
			list, err := ua.listUsers(ctx)
			if err != nil {
				return err
			}
			if flagBool(cmd, "json") {
				return writeIndentedJSON(cmd.OutOrStdout(), list) // sessionadmin.go
			}
			return printTable(cmd.OutOrStdout(), list)
		})
	}
	return c
}

func importDjangoCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "import-django DUMP.json",
		Short: "Imports users from a Django dumpdata file",
		Long: `
Imports the users of a Django project from the output of

    python manage.py dumpdata auth.user auth.group > users.json

('-' reads standard input). Ids, usernames, emails, is_active,
is_superuser, is_staff, date_joined, last_login, the names of their groups
(referred to by natural key with --natural-foreign, or by id, which the
auth.group entries name) and the password hashes are kept: users log in with their old passwords (Django's pbkdf2_sha256,
pbkdf2_sha1, argon2, bcrypt_sha256 and bcrypt hashes are understood), and
their hash is upgraded to argon2id on their first login. New users get ids
after the largest imported one.

The import is atomic: all users are written or none. A user whose id or
username (regardless of case) already exists is a conflict: all conflicts
are listed and nothing is written. With --skip-existing, users already
present with the same id and username are skipped, so running the same
import again is harmless; other conflicts still abort.
`,
		Example: `  caddy session-auth import-django --db ./data/users.db users.json
  caddy session-auth import-django --config Caddyfile --skip-existing users.json`,
	}
	c.Flags().Bool("skip-existing", false, "Skip users already present with the same id and username")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		dump, err := readDump(cmd, args[0])
		if err != nil {
			return err
		}
		return withAdmin(cmd, true, func(ctx context.Context, ua userAdmin) error {
			req := importRequest{SkipExisting: flagBool(cmd, "skip-existing"), Users: make([]importUser, len(dump.Users))}
			for i, u := range dump.Users {
				req.Users[i] = importUserOf(u)
			}
			res, err := ua.importUsers(ctx, req)
			if err != nil {
				return err
			}
			errOut := cmd.ErrOrStderr()
			if dump.OtherModels > 0 {
				fmt.Fprintf(errOut, "note: ignored %d entries of models other than %s and %s\n", dump.OtherModels, djangoimport.Model, djangoimport.GroupModel)
			}
			if n := len(dump.Unverifiable); n > 0 {
				fmt.Fprintf(errOut, "warning: %d user(s) cannot log in with a password until one is set with set-password:\n", n)
				for _, p := range dump.Unverifiable {
					fmt.Fprintf(errOut, "  id %d %q: %s\n", p.ID, p.Username, p.Reason)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d, skipped %d\n", res.Imported, res.Skipped)
			return nil
		})
	}
	return c
}

func readDump(cmd *cobra.Command, path string) (*djangoimport.Dump, error) {
	var r io.Reader
	if path == "-" {
		r = cmd.InOrStdin()
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	dump, err := djangoimport.Parse(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return dump, nil
}

func passwordFlags(c *cobra.Command) {
	c.Flags().Bool("password-stdin", false, "Read the password from the first line of standard input")
	c.Flags().Bool("force", false, "Set the password even if the validators refuse it (with a warning)")
}

func flagString(cmd *cobra.Command, name string) string {
	v, _ := cmd.Flags().GetString(name)
	return v
}

func flagBool(cmd *cobra.Command, name string) bool {
	v, _ := cmd.Flags().GetBool(name)
	return v
}

func printWarnings(cmd *cobra.Command, warnings []string) {
	for _, w := range warnings {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: password accepted despite --force: %s\n", w)
	}
}

func printTable(w io.Writer, list []userListEntry) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSERNAME\tEMAIL\tACTIVE\tSUPERUSER\tSTAFF\tJOINED (UTC)\tLAST LOGIN (UTC)\tGROUPS\t2FA")
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	const layout = "2006-01-02 15:04"
	for _, u := range list {
		last := "never"
		if u.LastLogin != nil {
			last = u.LastLogin.Format(layout)
		}
		groups := strings.Join(u.Groups, ",")
		if groups == "" {
			groups = "-"
		}
		factors := strings.Join(u.SecondFactors, ", ")
		if factors == "" {
			factors = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, u.Username, u.Email,
			yes(u.IsActive), yes(u.IsSuperuser), yes(u.IsStaff), u.DateJoined.Format(layout), last, groups, factors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(list) == 0 {
		_, err := fmt.Fprintln(w, "(no users)")
		return err
	}
	return nil
}

// readPassword reads a new password: the first line of stdin with
// --password-stdin, else twice from the terminal without echo.
func readPassword(cmd *cobra.Command) (string, error) {
	in := cmd.InOrStdin()
	if flagBool(cmd, "password-stdin") {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the password from stdin: %v", err)
		}
		// Drop the line ending (\n or \r\n), as caddy hash-password does.
		if trimmed, ok := strings.CutSuffix(line, "\n"); ok {
			line = strings.TrimSuffix(trimmed, "\r")
		}
		if line == "" {
			return "", errors.New("no password on stdin (--password-stdin reads its first line)")
		}
		return line, nil
	}
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("standard input is not a terminal to ask for the password: pipe it in with --password-stdin")
	}
	fd := int(f.Fd())
	// Give the terminal its echo back if interrupted at the prompt.
	state, err := term.GetState(fd)
	if err != nil {
		return "", err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	done := make(chan struct{})
	defer func() { signal.Stop(sig); close(done) }()
	go func() {
		select {
		case <-sig:
			_ = term.Restore(fd, state)
			fmt.Fprintln(cmd.ErrOrStderr())
			os.Exit(caddy.ExitCodeFailedStartup)
		case <-done:
		}
	}()
	prompt := func(label string) ([]byte, error) {
		fmt.Fprint(cmd.ErrOrStderr(), label)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(cmd.ErrOrStderr())
		return b, err
	}
	return askNewPassword(prompt, cmd.ErrOrStderr()) // cmdops.go
}

// withAdmin runs fn with the userAdmin chosen by the flags: the database
// file (--db) or a running Caddy's admin API (--config / --address).
// mayCreate allows --db to create a missing file (create-user, import).
func withAdmin(cmd *cobra.Command, mayCreate bool, fn func(ctx context.Context, ua userAdmin) error) error {
	dbPath := flagString(cmd, "db")
	config, adapter := flagString(cmd, "config"), flagString(cmd, "adapter")
	address, usersDB := flagString(cmd, "address"), flagString(cmd, "users-db")
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	switch {
	case dbPath != "" && (config != "" || address != ""):
		return errors.New("--db opens the file directly, --config/--address go through a running Caddy: use one or the other")
	case dbPath != "":
		if usersDB != "" || adapter != "" {
			return errors.New("--users-db and --adapter go with --config, not --db")
		}
		key, err := cliDjangoKey(cmd, dbPath) // djangousers.go
		if err != nil {
			return err
		}
		ua, closeDB, err := openLocalAdmin(ctx, key, mayCreate)
		if err != nil {
			return err
		}
		err = fn(ctx, ua)
		if cerr := closeDB(); cerr != nil && err == nil {
			err = cerr
		}
		return err
	case config != "" || address != "":
		ac, err := newAdminClient(config, adapter, address, usersDB)
		if err != nil {
			return err
		}
		return fn(ctx, ac)
	}
	return errors.New("where are the users? --db FILE opens the users database (Caddy stopped); " +
		"--config FILE goes through the running Caddy's admin API")
}

func openLocalAdmin(ctx context.Context, path string, mayCreate bool) (userAdmin, func() error, error) {
	d, err := openCLIUsersDB(ctx, path, !mayCreate)
	if isLockTimeout(err) {
		return nil, nil, fmt.Errorf("%w\nIf Caddy is running with this users_db, manage users through it instead: "+
			"replace --db with --config <its Caddyfile or JSON config>", err)
	}
	if err != nil {
		return nil, nil, err
	}
	sa := newStoreAdmin(d.users, passwords.NewHasher(passwords.DefaultParams, 0))
	sa.accounts.Scheme = d.scheme // django_users: Django's format
	// Sessions kept in a bbolt users_db (no Redis) are listed and ended
	// here too; the epoch ends the others.
	if d.db != nil {
		ss, err := sessions.NewBoltStore(d.db, 0)
		if err != nil {
			d.Destruct()
			return nil, nil, fmt.Errorf("opening the sessions in %s: %w", path, err)
		}
		sa.sessionStores = func() []sessionAccess { return []sessionAccess{{store: ss, index: ss}} }
	}
	return sa, d.Destruct, nil
}

// adminClient sends userAdmin requests to the admin.api.session_auth
// module of a running Caddy.
type adminClient struct {
	addr    string
	usersDB string
}

var _ userAdmin = adminClient{}

// newAdminClient finds the admin address as `caddy reload` does.
func newAdminClient(configFile, adapter, address, usersDB string) (adminClient, error) {
	var cfg []byte
	if configFile != "" {
		var err error
		cfg, configFile, _, err = caddycmd.LoadConfig(configFile, adapter)
		if err != nil {
			return adminClient{}, err
		}
		var admin struct {
			Admin caddy.AdminConfig `json:"admin"`
		}
		if err := json.Unmarshal(cfg, &admin); err == nil && admin.Admin.Disabled && address == "" {
			return adminClient{}, errors.New("this config turns the admin API off (admin off): " +
				"stop Caddy and use --db, or enable the admin endpoint")
		}
	} else if adapter != "" {
		return adminClient{}, errors.New("--adapter needs --config")
	}
	addr, err := caddycmd.DetermineAdminAPIAddress(address, cfg, configFile, adapter)
	if err != nil {
		return adminClient{}, fmt.Errorf("couldn't determine admin API address: %v", err)
	}
	return adminClient{addr: addr, usersDB: usersDB}, nil
}

func (c adminClient) call(method, op string, in, out any) error {
	uri := adminAPIBase + op
	if c.usersDB != "" {
		uri += "?users_db=" + url.QueryEscape(c.usersDB)
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	resp, err := caddycmd.AdminAPIRequest(c.addr, method, uri, nil, body)
	if err != nil {
		return c.explain(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("reading the admin API's answer: %v", err)
	}
	return nil
}

// explain turns AdminAPIRequest's errors into the admin API's own message,
// or says that Caddy could not be reached.
func (c adminClient) explain(err error) error {
	msg := err.Error()
	const marker = "caddy responded with error: HTTP "
	if rest, ok := strings.CutPrefix(msg, marker); ok {
		status, body, _ := strings.Cut(rest, ": ")
		var apiErr struct {
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(body), &apiErr) == nil && apiErr.Error != "" {
			if status == "404" && strings.HasPrefix(apiErr.Error, "resource not found") {
				return fmt.Errorf("the Caddy at %s has no session-auth admin API (is it built with this plugin?): %s", c.addr, apiErr.Error)
			}
			return errors.New(apiErr.Error)
		}
		return err
	}
	return fmt.Errorf("cannot reach Caddy's admin API at %s (is Caddy running with this config? With Caddy stopped, use --db): %v", c.addr, err)
}

// callFor makes one admin API call and decodes its answer into a new T.
func callFor[T any](c adminClient, method, op string, in any) (*T, error) {
	res := new(T)
	if err := c.call(method, op, in, res); err != nil {
		return nil, err
	}
	return res, nil
}

func (c adminClient) createUser(_ context.Context, r createUserRequest) (*userResult, error) {
	return callFor[userResult](c, http.MethodPost, "create-user", r)
}

func (c adminClient) setPassword(_ context.Context, r setPasswordRequest) (*userResult, error) {
	return callFor[userResult](c, http.MethodPost, "set-password", r)
}

func (c adminClient) setActive(_ context.Context, r userRequest, active bool) (*userResult, error) {
	op := "deactivate"
	if active {
		op = "activate"
	}
	return callFor[userResult](c, http.MethodPost, op, r)
}

func (c adminClient) deleteUser(_ context.Context, r userRequest) (*userResult, error) {
	return callFor[userResult](c, http.MethodPost, "delete-user", r)
}

func (c adminClient) listUsers(context.Context) ([]userListEntry, error) {
	list, err := callFor[[]userListEntry](c, http.MethodGet, "users", nil)
	if err != nil {
		return nil, err
	}
	if *list == nil {
		return []userListEntry{}, nil
	}
	return *list, nil
}

func (c adminClient) importUsers(_ context.Context, r importRequest) (*importResult, error) {
	return callFor[importResult](c, http.MethodPost, "import-django", r)
}

func (c adminClient) resetSecondFactor(_ context.Context, r userRequest) (*userResult, error) {
	return callFor[userResult](c, http.MethodPost, "reset-2fa", r)
}

func (c adminClient) unban(_ context.Context, r userRequest) (*userResult, error) {
	return callFor[userResult](c, http.MethodPost, "unban", r)
}
