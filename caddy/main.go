// Command caddy is a Caddy build with the standard modules and the
// session_auth plugin, so `go run ./caddy run` works without xcaddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddy-session-auth/caddy-session-auth/caddymodule"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func main() {
	caddycmd.Main()
}
