package caddymodule

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// isPublic reports whether the request may pass without a session. Only a
// canonical path can be public: whatever the upstream makes of `..`, `//`,
// backslashes, path parameters (`;`, which Tomcat and Spring strip),
// encoded separators or an encoded `?`, `#` or `%`, it must not be able to
// resolve a "public" request to a protected resource.
func (s *SessionAuth) isPublic(r *http.Request) bool {
	if len(s.public) == 0 || !canonicalPath(r.URL) {
		return false
	}
	// Caddy's matcher ignores case; an upstream may not, so the pattern
	// must also match as written: /STATIC/x is not public for /static/*.
	return s.public.Match(r) && matchesCase(s.PublicPaths, r.URL.Path)
}

// matchesCase applies path-matcher patterns case-sensitively: exact,
// prefix*, *suffix, *substring*, or a path.Match glob. A pattern that
// begins with `*` never matches a path with a `.` in a segment before the
// last: PHP (cgi.fix_pathinfo), nginx and Apache path-info set-ups run
// /admin/users.php for /admin/users.php/x.css.
func matchesCase(patterns []string, p string) bool {
	dirDot := strings.Contains(p[:strings.LastIndexByte(p, '/')+1], ".")
	for _, pat := range patterns {
		if dirDot && strings.HasPrefix(pat, "*") {
			continue
		}
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
	// p is decoded: a `?`, `#` or `%` in it was sent encoded.
	if p == "" || p[0] != '/' || strings.Contains(p, "//") || strings.ContainsAny(p, "\\;\x00?#%") {
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
	h.Set("Location", s.loginURL+sep+"next="+url.QueryEscape(onSite(next)))
	h["Cache-Control"] = valNoStore
	h["Content-Length"] = valZero
	w.WriteHeader(http.StatusFound)
}

// onSite makes next a path on this site, for a sign-in page that sends the
// browser there: a leading run of slashes and backslashes, sent raw or
// encoded (%2F, %5C), with the tabs and newlines browsers ignore (%09, %0A,
// %0D), collapses to one `/`, so `//evil.com/` (a browser reads it as
// https://evil.com/) becomes `/evil.com/`. Anything not starting with `/`
// becomes `/`.
func onSite(next string) string {
	if next == "" || next[0] != '/' {
		return "/"
	}
	i := 1
	for i < len(next) {
		switch c := next[i]; {
		case c == '/' || c == '\\' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '%' && i+2 < len(next) && isSeparatorEscape(next[i+1:i+3]):
			i += 3
		default:
			return "/" + next[i:]
		}
	}
	return "/"
}

func isSeparatorEscape(hex string) bool {
	for _, sep := range []string{"2F", "5C", "09", "0A", "0D"} {
		if strings.EqualFold(hex, sep) {
			return true
		}
	}
	return false
}

// checkPaths rejects path settings that can never match a request.
func (s *SessionAuth) checkPaths() error {
	if s.HealthPath == "" || s.HealthPath[0] != '/' {
		return fmt.Errorf("health_path: %q is not an absolute path", s.HealthPath)
	}
	for _, p := range s.PublicPaths {
		if p == "" || (p[0] != '/' && p[0] != '*') {
			return fmt.Errorf("public: %q is not a path pattern (it must start with / or *)", p)
		}
	}
	return nil
}
