package caddymodule

import (
	"net/http"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/csrf"
)

// IsWebSocket is isWebSocket, for the cases a test cannot send through
// Caddy (HTTP/2 and HTTP/3 extended CONNECT need GODEBUG at start-up).
var IsWebSocket = isWebSocket

// CrossSiteCheck runs the cross-site rules for a handler trusting the
// given origins, as a request with (withSession) or without a session
// (X-CSRFToken "valid" becomes a good token), and returns the 403 body or "".
func CrossSiteCheck(trustedOrigins []string, r *http.Request, method string, withSession bool) string {
	trusted, err := parseOrigins(trustedOrigins)
	if err != nil {
		panic(err)
	}
	s := &SessionAuth{trusted: trusted, CSRFCookie: "csrftoken"}
	var p *principal
	if withSession {
		p = &principal{csrfSecret: csrf.NewSecret()}
		if r.Header.Get("X-CSRFToken") == "valid" {
			r.Header.Set("X-CSRFToken", csrf.Mask(p.csrfSecret))
		}
	}
	return string(s.crossSiteCheck(r, method, p))
}
