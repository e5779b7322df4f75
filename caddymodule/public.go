package caddymodule

import (
	"net/http"
	"net/url"
	"strings"
)

// isPublic reports whether the request may pass without a session. Only a
// canonical path can be public: whatever the upstream makes of `..`, `//`,
// backslashes or encoded separators, it must not be able to resolve a
// "public" request to a protected resource.
func (s *SessionAuth) isPublic(r *http.Request) bool {
	if len(s.public) == 0 || !canonicalPath(r.URL) {
		return false
	}
	return s.public.Match(r)
}

func canonicalPath(u *url.URL) bool {
	p := u.Path
	if p == "" || p[0] != '/' || strings.Contains(p, "//") || strings.ContainsRune(p, '\\') {
		return false
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	if raw := u.RawPath; raw != "" {
		lower := strings.ToLower(raw)
		for _, enc := range []string{"%2f", "%2e", "%5c", "%00"} {
			if strings.Contains(lower, enc) {
				return false
			}
		}
	}
	return !strings.ContainsRune(p, 0)
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
