// Package caddymodule is the session_auth Caddy HTTP handler: a JSON
// register/login/logout/current-user API with sessions, gating every other
// route in front of reverse_proxy.
package caddymodule
