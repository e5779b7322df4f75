package caddymodule

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// headerNames is the set of identity header names, normalised (lower case,
// '_' read as '-'), so that every spelling a client may send is caught.
type headerNames struct {
	userID, username, email string // canonical names we set
	normal                  []string
}

func newHeaderNames(userID, username, email string) headerNames {
	n := headerNames{
		userID:   http.CanonicalHeaderKey(userID),
		username: http.CanonicalHeaderKey(username),
		email:    http.CanonicalHeaderKey(email),
	}
	for _, h := range []string{userID, username, email} {
		n.normal = append(n.normal, normalHeader(h))
	}
	return n
}

func normalHeader(h string) string {
	return strings.ReplaceAll(strings.ToLower(h), "_", "-")
}

// sameHeader compares a header key with a normalised name without allocating.
func sameHeader(key, normal string) bool {
	if len(key) != len(normal) {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '_' {
			c = '-'
		}
		if c != normal[i] {
			return false
		}
	}
	return true
}

// stripIdentity removes every client-sent copy of the identity headers.
func (n headerNames) stripIdentity(h http.Header) {
	for key := range h {
		for _, name := range n.normal {
			if sameHeader(key, name) {
				delete(h, key)
				break
			}
		}
	}
}

// setIdentity writes the identity headers into h (a request's, for the
// upstream, or a response's, for forward-auth).
func (n headerNames) setIdentity(h http.Header, id string, u *users.User) {
	h[n.userID] = []string{id}
	h[n.username] = []string{u.Username}
	h[n.email] = []string{u.Email}
}

// setIdentity hands the user's identity to the next handler: request
// headers for the upstream and placeholders for the rest of the config.
func (s *SessionAuth) setIdentity(r *http.Request, u *users.User) {
	id := strconv.FormatInt(u.ID, 10)
	s.strip.setIdentity(r.Header, id, u)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.auth.user.id", id)
		repl.Set("http.auth.user.username", u.Username)
		repl.Set("http.auth.user.email", u.Email)
	}
}

// dropCookie removes the named cookie from the request's Cookie headers so
// the session token never reaches the upstream.
func dropCookie(h http.Header, name string) {
	lines := h["Cookie"]
	if len(lines) == 0 {
		return
	}
	kept := lines[:0:0]
	changed := false
	for _, line := range lines {
		if !strings.Contains(line, name) {
			kept = append(kept, line)
			continue
		}
		var b strings.Builder
		for part := range strings.SplitSeq(line, ";") {
			p := strings.TrimSpace(part)
			if k, _, _ := strings.Cut(p, "="); strings.TrimSpace(k) == name {
				changed = true
				continue
			}
			if p == "" {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(p)
		}
		if b.Len() > 0 {
			kept = append(kept, b.String())
		}
	}
	if !changed {
		return
	}
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = kept
}

// cookieValue finds a cookie's value in the request without parsing every
// cookie (net/http's r.Cookie allocates them all). The first one wins, as
// in net/http.
func cookieValue(r *http.Request, name string) (string, bool) {
	for _, line := range r.Header["Cookie"] {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimLeft(part, " \t")
			if len(part) > len(name) && part[len(name)] == '=' && part[:len(name)] == name {
				v := strings.TrimRight(part[len(name)+1:], " \t")
				if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
					v = v[1 : len(v)-1]
				}
				return v, true
			}
		}
	}
	return "", false
}
