package caddymodule

import "github.com/spf13/cobra"

// NewSessionAuthCommand returns a fresh `caddy session-auth` command tree,
// so tests can run its subcommands in-process with their own stdin, stdout
// and stderr.
func NewSessionAuthCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "session-auth", SilenceUsage: true, SilenceErrors: true}
	configureCommand(cmd)
	return cmd
}
