package caddymodule

import (
	"net/http"
	"net/url"
	"path"
	"strings"
)

// isPublic reports whether the request may pass without a session. Only a
// canonical path can be public: whatever the upstream makes of `..`, `//`,
// backslashes, path parameters (`;`, which Tomcat and Spring strip) or
// encoded separators, it must not be able to resolve a "public" request to
// a protected resource.
func (s *SessionAuth) isPublic(r *http.Request) bool {
	if len(s.public) == 0 || !canonicalPath(r.URL) {
		return false
	}
	// Caddy's matcher ignores case; an upstream may not, so the pattern
	// must also match as written: /STATIC/x is not public for /static/*.
	return s.public.Match(r) && matchesCase(s.PublicPaths, r.URL.Path)
}

// matchesCase applies path-matcher patterns case-sensitively: exact,
// prefix*, *suffix, *substring*, or a path.Match glob.
func matchesCase(patterns []string, p string) bool {
	for _, pat := range patterns {
		inner := strings.Trim(pat, "*")
		switch {
		case !strings.Contains(pat, "*"):
			if p == pat {
				return true
			}
		case strings.Contains(inner, "*"):
			if ok, _ := path.Match(pat, p); ok {
				return true
			}
		case strings.HasPrefix(pat, "*") && strings.HasSuffix(pat, "*"):
			if strings.Contains(p, inner) {
				return true
			}
		case strings.HasSuffix(pat, "*"):
			if strings.HasPrefix(p, inner) {
				return true
			}
		default:
			if strings.HasSuffix(p, inner) {
				return true
			}
		}
	}
	return false
}

func canonicalPath(u *url.URL) bool {
	p := u.Path
	if p == "" || p[0] != '/' || strings.Contains(p, "//") || strings.ContainsAny(p, "\\;\x00") {
		return false
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	if raw := u.RawPath; raw != "" {
		lower := strings.ToLower(raw)
		for _, enc := range []string{"%2f", "%2e", "%5c", "%00", "%3b"} {
			if strings.Contains(lower, enc) {
				return false
			}
		}
	}
	return true
}

// wantsLoginRedirect: a browser navigation without a session is sent to the
// sign-in page instead of getting the JSON 403.
func (s *SessionAuth) wantsLoginRedirect(r *http.Request, method string) bool {
	return s.loginURL != "" && (method == http.MethodGet || method == http.MethodHead) &&
		strings.Contains(r.Header.Get("Accept"), "text/html")
}

// redirectToLogin answers 302 Found to the sign-in URL with next = the
// original path and query (relative, so it cannot point off-site).
func (s *SessionAuth) redirectToLogin(w http.ResponseWriter, next string) {
	sep := "?"
	if strings.Contains(s.loginURL, "?") {
		sep = "&"
	}
	h := w.Header()
	h.Set("Location", s.loginURL+sep+"next="+url.QueryEscape(next))
	h["Cache-Control"] = valNoStore
	h["Content-Length"] = valZero
	w.WriteHeader(http.StatusFound)
}
