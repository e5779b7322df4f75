// Package sessionauth registers the session_auth Caddy module. It exists so
// that xcaddy can build from a local checkout, which it can only replace as a
// whole module:
//
//	xcaddy build v2.11.9 --with github.com/caddy-session-auth/caddy-session-auth=.
//
// The plugin itself is github.com/caddy-session-auth/caddy-session-auth/caddymodule.
package sessionauth

import _ "github.com/caddy-session-auth/caddy-session-auth/caddymodule"
