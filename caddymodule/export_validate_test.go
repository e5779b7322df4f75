package caddymodule

// SetValidationOnly makes this process check configs as `caddy validate`
// does (no store opened), for in-process tests.
func SetValidationOnly(on bool) { forceValidationOnly.Store(on) }

// IsValidateCommand exposes the command-line test of validationOnly.
func IsValidateCommand(args []string) bool { return isValidateCommand(args) }

// AskNewPassword exposes the prompt loop of readPassword.
var AskNewPassword = askNewPassword
