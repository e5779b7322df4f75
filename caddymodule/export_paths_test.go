package caddymodule

import "net/http"

// StripIdentity runs the gate's header stripping with the default identity
// header names, for allocation tests and benchmarks.
func StripIdentity(h http.Header) {
	defaultNames.stripIdentity(h)
}

var defaultNames = newHeaderNames("X-Auth-User-Id", "X-Auth-Username", "X-Auth-Email")
