package caddymodule

import (
	"io"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// The app behind the sidecar must not replace the sidecar's cookies: Django
// behind RemoteUserMiddleware answers the first request after a login with
// its own `sessionid` and a rotated `csrftoken`, which would log the
// browser out of the sidecar (issue 9, item 8). So the response of every
// forwarded request goes through cookieGuard, which drops each upstream
// Set-Cookie that names the same cookie as the sidecar's session or CSRF
// cookie: same name (exactly: names are case-sensitive), same domain (the
// sidecar's cookie_domain when it covers the request's host, else
// host-only: see cookieDomainFor) and path "/". A
// cookie that only shares the name (another Path or Domain) is another
// cookie to the browser and passes.

// guardCookies wraps w for a request that goes on to the next handler.
func (s *SessionAuth) guardCookies(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	g := &cookieGuard{s: s, r: r}
	g.ResponseWriter = w
	return g
}

// cookieGuard filters the upstream's Set-Cookie lines when the header is
// written: at WriteHeader (informational answers, such as 103 Early Hints,
// included) or at the first Write, ReadFrom or Flush that comes first.
// Hijack, Push and the rest go to the wrapped writer (Unwrap), as with any
// caddyhttp.ResponseWriterWrapper.
type cookieGuard struct {
	caddyhttp.ResponseWriterWrapper // embedded by value: one allocation per request
	s                               *SessionAuth
	r                               *http.Request
	wroteHeader                     bool
}

func (g *cookieGuard) WriteHeader(status int) {
	if !g.wroteHeader {
		g.wroteHeader = status >= 200 || status == http.StatusSwitchingProtocols
		g.s.dropOwnCookies(g.Header(), g.r)
	}
	g.ResponseWriter.WriteHeader(status)
}

func (g *cookieGuard) Write(b []byte) (int, error) {
	if !g.wroteHeader {
		g.WriteHeader(http.StatusOK)
	}
	return g.ResponseWriter.Write(b)
}

func (g *cookieGuard) ReadFrom(src io.Reader) (int64, error) {
	if !g.wroteHeader {
		g.WriteHeader(http.StatusOK)
	}
	return g.ResponseWriterWrapper.ReadFrom(src)
}

// FlushError is what http.ResponseController calls: a flush before any
// WriteHeader writes the header (status 200), so it is filtered first.
func (g *cookieGuard) FlushError() error {
	if !g.wroteHeader {
		g.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(g.ResponseWriter).Flush()
}

// Flush serves handlers that assert http.Flusher.
func (g *cookieGuard) Flush() { _ = g.FlushError() }

// dropOwnCookies removes from h the Set-Cookie lines that would replace the
// sidecar's cookies, for a response to r. It allocates only when it drops
// something.
func (s *SessionAuth) dropOwnCookies(h http.Header, r *http.Request) {
	lines := h["Set-Cookie"]
	drop := -1
	for i, line := range lines {
		if s.isOwnCookie(line, r) {
			drop = i
			break
		}
	}
	if drop < 0 {
		return
	}
	kept := make([]string, drop, len(lines)-1)
	copy(kept, lines[:drop])
	var names [2]bool // which of ours were seen: session, CSRF
	for _, line := range lines[drop:] {
		if !s.isOwnCookie(line, r) {
			kept = append(kept, line)
			continue
		}
		name, _ := setCookieName(line)
		names[0] = names[0] || name == s.SessionCookie
		names[1] = names[1] || name == s.CSRFCookie
	}
	if len(kept) == 0 {
		delete(h, "Set-Cookie")
	} else {
		h["Set-Cookie"] = kept
	}
	if s.cookieWarned != nil && s.cookieWarned.CompareAndSwap(false, true) {
		var dropped []string
		if names[0] {
			dropped = append(dropped, s.SessionCookie)
		}
		if names[1] {
			dropped = append(dropped, s.CSRFCookie)
		}
		s.logger.Warn("dropped a Set-Cookie from the upstream that would replace the sidecar's cookie "+
			"(logged once; rename the app's cookie, or let it be dropped)",
			zap.Strings("cookies", dropped), zap.String("path", r.URL.Path))
	}
}

// isOwnCookie tells whether the Set-Cookie line names the sidecar's session
// or CSRF cookie, as RFC 6265 (section 5.2, 5.3) has a browser store it.
func (s *SessionAuth) isOwnCookie(line string, r *http.Request) bool {
	name, attrs := setCookieName(line)
	if name != s.SessionCookie && name != s.CSRFCookie {
		return false
	}
	domain, path, hasPath := "", "", false
	for attrs != "" {
		var av string
		av, attrs, _ = strings.Cut(attrs, ";")
		k, v, _ := strings.Cut(av, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case strings.EqualFold(k, "Domain"):
			if v != "" { // an empty Domain is ignored
				domain = strings.TrimPrefix(v, ".")
			}
		case strings.EqualFold(k, "Path"):
			// The last Path counts; one that does not start with "/"
			// means the default path.
			path, hasPath = v, v != "" && v[0] == '/'
		}
	}
	if !strings.EqualFold(domain, s.cookieDomainFor(r)) {
		return false
	}
	if !hasPath {
		return defaultCookiePathIsRoot(r)
	}
	return path == "/"
}

// setCookieName splits a Set-Cookie line into the cookie's name and the
// attributes after the first ";". A line without "=" in its first part
// is a cookie with an empty name, as browsers read it.
func setCookieName(line string) (name, attrs string) {
	nv, attrs, _ := strings.Cut(line, ";")
	name, _, ok := strings.Cut(nv, "=")
	if !ok {
		return "", attrs
	}
	return strings.TrimSpace(name), attrs
}

// defaultCookiePathIsRoot tells whether a cookie set without a Path in the
// answer to r gets the path "/" (RFC 6265 5.1.4: the request path up to its
// last "/", or "/" when that is the first one). The path is the one the
// browser asked for, before any rewrite.
func defaultCookiePathIsRoot(r *http.Request) bool {
	p := r.URL.Path
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil {
		p = orig.URL.EscapedPath()
	}
	return !strings.HasPrefix(p, "/") || strings.LastIndexByte(p, '/') == 0
}
