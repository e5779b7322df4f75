package caddymodule

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// normalCookieDomain is a cookie_domain as a browser stores it (RFC 6265
// 5.2.3): without its leading dot, in lower case.
func normalCookieDomain(d string) string {
	return strings.ToLower(strings.TrimPrefix(d, "."))
}

// checkCookieDomain refuses a cookie_domain that browsers would not store
// a cookie for, so that the sidecar's cookies, and the guard that keeps the
// app from replacing them, are what the configuration says: a domain name
// (a leading dot is allowed and ignored), no scheme, port or path, no IP
// address, not a public suffix (com, co.uk, github.io) or a single label.
func checkCookieDomain(raw string) error {
	if raw == "" {
		return nil
	}
	d := normalCookieDomain(raw)
	bad := func(why string) error {
		return fmt.Errorf("cookie_domain: want a domain name such as example.com (%s), got %q", why, raw)
	}
	switch {
	case strings.Contains(raw, "://"):
		return bad("no scheme")
	case strings.ContainsAny(d, "/?#"):
		return bad("no path")
	case net.ParseIP(strings.Trim(d, "[]")) != nil:
		return bad("not an IP address: leave cookie_domain out for host-only cookies")
	case strings.Contains(d, ":"):
		return bad("no port: cookies are shared across ports")
	case d == "" || strings.HasSuffix(d, ".") || strings.HasPrefix(d, "."):
		return bad("no empty label")
	}
	if err := (&http.Cookie{Name: "x", Value: "x", Domain: d}).Valid(); err != nil {
		return bad("letters, digits, '-' and '.' only")
	}
	if suffix, _ := publicsuffix.PublicSuffix(d); suffix == d {
		return bad("not a public suffix or a single label, which browsers refuse cookies for: leave cookie_domain out for host-only cookies")
	}
	return nil
}

// cookieDomainFor returns the domain a browser keeps the sidecar's cookies
// under, as the cookie guard compares it, in the answer to r: cookie_domain
// when r's host is within it, else "" (host-only). A browser refuses a
// cookie whose Domain its host is not within, so there the sidecar's cookies
// do not exist and an app's host-only cookie of the same name would take
// their place: the guard drops those.
func (s *SessionAuth) cookieDomainFor(r *http.Request) string {
	d := s.cookieDomain
	if d == "" {
		return ""
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(host, ".")
	if len(host) == len(d) && strings.EqualFold(host, d) {
		return d
	}
	if len(host) > len(d) && host[len(host)-len(d)-1] == '.' && strings.EqualFold(host[len(host)-len(d):], d) {
		return d
	}
	return ""
}
