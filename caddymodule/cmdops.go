package caddymodule

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
)

// addOperatorCommands adds the subcommands kept in their own files (each
// sets its own Args), and gives every subcommand two conveniences: a
// username as the first argument where --username is expected
// (`caddy session-auth deactivate bob`), and a quiet Caddy (its "using
// config from file" and adapter lines) unless --verbose.
func addOperatorCommands(cmd *cobra.Command) {
	cmd.AddCommand(backupCommand(), updateUserCommand()) // backup.go, updateuser.go
	cmd.PersistentFlags().Bool("verbose", false, "Show Caddy's own log lines (loading and adapting --config)")
	for _, sub := range cmd.Commands() {
		if sub.Flags().Lookup("username") != nil {
			positionalUsername(sub)
		}
		quietCaddy(sub)
	}
}

// positionalUsername lets the username be the first argument.
func positionalUsername(c *cobra.Command) {
	c.Use = strings.Replace(c.Use, "--username NAME", "(USERNAME | --username NAME)", 1)
	c.Args = cobra.MaximumNArgs(1)
	run := c.RunE
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 1 {
			if prev := flagString(cmd, "username"); prev != "" && prev != args[0] {
				return fmt.Errorf("two usernames: %q and --username %q", args[0], prev)
			}
			if err := cmd.Flags().Set("username", args[0]); err != nil {
				return err
			}
		}
		return run(cmd, nil)
	}
}

// quietCaddy keeps Caddy's default logger (which caddycmd.LoadConfig
// writes to) from printing while the command runs, unless --verbose: the
// command prints only its own result. Whatever was logged is dropped.
func quietCaddy(c *cobra.Command) {
	run := c.RunE
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if flagBool(cmd, "verbose") {
			return run(cmd, args)
		}
		_, orig, _ := caddy.BufferedLog()
		defer func() {
			caddy.UnbufferDefaultLogger(zap.NewNop()) // drop the buffered lines
			caddy.BufferedLog()
			caddy.UnbufferDefaultLogger(orig) // and put the logger back
		}()
		return run(cmd, args)
	}
}

// passwordTries is how often a new password may be mistyped at the prompt.
const passwordTries = 3

// askNewPassword asks for a new password and its confirmation, again on a
// mismatch or an empty password, passwordTries times in all.
func askNewPassword(prompt func(label string) ([]byte, error), errOut io.Writer) (string, error) {
	for try := 1; ; try++ {
		first, err := prompt("Password: ")
		if err != nil {
			return "", err
		}
		problem := "the password is empty"
		if len(first) > 0 {
			second, err := prompt("Password (again): ")
			if err != nil {
				return "", err
			}
			if bytes.Equal(first, second) {
				return string(first), nil
			}
			problem = "the passwords do not match"
		}
		if try == passwordTries {
			return "", fmt.Errorf("%s (%d tries); nothing changed", problem, passwordTries)
		}
		fmt.Fprintf(errOut, "%s%s; try again.\n", strings.ToUpper(problem[:1]), problem[1:])
	}
}
