// Package rules decides which logged-in users may make a request: an
// ordered list of rules, each naming who may pass (staff, superusers,
// members of a group: any of them), the methods it covers (none: all) and
// path patterns. The first rule whose method and path match the request
// decides; a request no rule matches is open to every logged-in user; a
// superuser passes every rule, as in Django.
//
// Patterns are those of the sidecar's public paths: exact (/admin),
// prefix (/admin/*), suffix (*.php), substring (*admin*), or a path.Match
// glob (/api/*/admin), matched regardless of case. Where public paths must
// match strictly (a trick must never make a path public), a rule must match
// loosely (a trick must never get past it): the upstream decides what a
// path means, so a path it could read in several ways is held to the rule
// that decides each of those readings. A plain path (canonical, ASCII, no
// segment ending in a dot or space) has one reading, plus, for a segment
// with a dot before the last, the path cut after it (PHP's PATH_INFO runs
// /admin/users.php for /admin/users.php/x.css). Any other path is read
// every way an upstream might: with its escapes decoded once, fully or not
// at all; backslashes as slashes and repeated slashes as one; `;`
// parameters and anything from an encoded `?` or `#` dropped; trailing dots
// and spaces of segments dropped (Windows); dot segments resolved; and
// Unicode case and compatibility forms folded.
//
// Methods match regardless of case (Django dispatches `post` to post()). A
// rule for GET also covers HEAD and CONNECT (an HTTP/2 or 3 WebSocket
// handshake, which Caddy's reverse_proxy sends on as a GET). A request that asks for another method
// through X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override (any
// spelling of the names) or a `_method` query parameter is held to the
// rules of both methods; a `_method` field in a form body is not read, so
// a rule for DELETE should also list POST.
//
// The package knows nothing of HTTP servers or Caddy.
package rules
