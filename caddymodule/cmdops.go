package caddymodule

import "github.com/spf13/cobra"

// addOperatorCommands adds the subcommands kept in their own files (each
// sets its own Args).
func addOperatorCommands(cmd *cobra.Command) {
	cmd.AddCommand(backupCommand()) // backup.go
}
