package caddymodule

import (
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// headerNames is the set of identity header names, normalised (lower case,
// without '-', '_' and '.'), so that every spelling a client may send is
// caught: CGI-style backends (PHP, WSGI) read X_Auth_User_Id, and PHP also
// X.Auth.User.Id, as X-Auth-User-Id.
type headerNames struct {
	userID, username, email, groups string // canonical names we set
	emailVerified                   string // "" when not set (tests)
	token                           string // the identity token's, "" if off
	normal                          []string
}

// newHeaderNames: token is the identity token's header, "" when off.
func newHeaderNames(userID, username, email, groups, token string) headerNames {
	n := headerNames{
		userID:   http.CanonicalHeaderKey(userID),
		username: http.CanonicalHeaderKey(username),
		email:    http.CanonicalHeaderKey(email),
		groups:   http.CanonicalHeaderKey(groups),
	}
	names := []string{userID, username, email, groups}
	if token != "" {
		n.token = http.CanonicalHeaderKey(token)
		names = append(names, token)
	}
	for _, h := range names {
		n.normal = append(n.normal, normalHeader(h))
	}
	return n
}

// withEmailVerified adds the header that says whether the e-mail is
// verified (stripped from clients like the others).
func (n headerNames) withEmailVerified(name string) headerNames {
	n.emailVerified = http.CanonicalHeaderKey(name)
	n.normal = append(n.normal[:len(n.normal):len(n.normal)], normalHeader(name))
	return n
}

func normalHeader(h string) string {
	return strings.NewReplacer("-", "", "_", "", ".", "").Replace(strings.ToLower(h))
}

// sameHeader compares a header name with a normalised name, ignoring case,
// '-', '_' and '.', without allocating.
func sameHeader(key, normal string) bool {
	if len(key) < len(normal) {
		return false
	}
	j := 0
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c == '-' || c == '_' || c == '.':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if j == len(normal) || c != normal[j] {
			return false
		}
		j++
	}
	return j == len(normal)
}

func (n headerNames) isIdentity(key string) bool {
	for _, name := range n.normal {
		if sameHeader(key, name) {
			return true
		}
	}
	return false
}

// stripIdentity removes every client-sent copy of the identity headers, and
// their names from the Connection header: a proxy (reverse_proxy,
// php_fastcgi) drops the headers that Connection names, which would remove
// the identity the gate sets.
func (n headerNames) stripIdentity(h http.Header) {
	for key := range h {
		if n.isIdentity(key) {
			delete(h, key)
		}
	}
	if v, ok := h["Connection"]; ok {
		if kept, changed := n.connectionWithout(v); changed {
			if len(kept) == 0 {
				delete(h, "Connection")
			} else {
				h["Connection"] = kept
			}
		}
	}
}

// connectionWithout returns the Connection header's values without the
// tokens that name an identity header. It allocates only when there is
// one (the common `Connection: keep-alive` costs nothing).
func (n headerNames) connectionWithout(values []string) ([]string, bool) {
	found := false
	for _, v := range values {
		for rest := v; rest != "" && !found; {
			var tok string
			tok, rest, _ = strings.Cut(rest, ",")
			found = n.isIdentity(strings.Trim(tok, " \t"))
		}
	}
	if !found {
		return values, false
	}
	var kept []string
	for _, v := range values {
		var toks []string
		for tok := range strings.SplitSeq(v, ",") {
			if tok = strings.Trim(tok, " \t"); tok != "" && !n.isIdentity(tok) {
				toks = append(toks, tok)
			}
		}
		if len(toks) > 0 {
			kept = append(kept, strings.Join(toks, ", "))
		}
	}
	return kept, true
}

// stripTrailers removes identity names from the request's trailers, now
// (declared names) and when the body has been read (their values): Caddy's
// reverse_proxy forwards request trailers. net/http fills r.Trailer, a map
// the handlers' copies of the request share, only for declared trailers.
func (n headerNames) stripTrailers(r *http.Request) {
	if r.Trailer == nil {
		return
	}
	for key := range r.Trailer {
		if n.isIdentity(key) {
			delete(r.Trailer, key)
		}
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &trailerStripper{ReadCloser: r.Body, names: n, trailer: r.Trailer}
	}
}

// trailerStripper removes identity trailers once the body reaches EOF,
// which is when net/http stores the trailers' values.
type trailerStripper struct {
	io.ReadCloser
	names   headerNames
	trailer http.Header
}

func (b *trailerStripper) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		for key := range b.trailer {
			if b.names.isIdentity(key) {
				delete(b.trailer, key)
			}
		}
	}
	return n, err
}

// setIdentity writes the identity headers into h (a request's, for the
// upstream, or a response's, for forward-auth): groups is the user's
// groups joined with commas, token the identity token ("" if off).
func (n headerNames) setIdentity(h http.Header, id, groups, token string, u *users.User) {
	// One backing array for every value (one allocation, not one per
	// header); each header gets its own element with cap 1, so a later
	// handler that edits or appends to one cannot touch another.
	all := []string{id, u.Username, u.Email, groups, strconv.FormatBool(u.EmailVerified), token}
	h[n.userID] = all[0:1:1]
	h[n.username] = all[1:2:2]
	h[n.email] = all[2:3:3]
	h[n.groups] = all[3:4:4]
	if n.emailVerified != "" {
		h[n.emailVerified] = all[4:5:5]
	}
	if n.token != "" {
		h[n.token] = all[5:6:6]
	}
}

// setIdentity hands the user's identity to the next handler: request
// headers for the upstream and placeholders for the rest of the config.
func (s *SessionAuth) setIdentity(r *http.Request, u *users.User, token string) {
	id := strconv.FormatInt(u.ID, 10)
	groups := strings.Join(u.Groups, ",")
	s.strip.setIdentity(r.Header, id, groups, token, u)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.auth.user.id", id)
		repl.Set("http.auth.user.username", u.Username)
		repl.Set("http.auth.user.email", u.Email)
		repl.Set("http.auth.user.groups", groups)
		repl.Set("http.auth.user.email_verified", u.EmailVerified)
		repl.Set("http.auth.user.is_staff", u.IsStaff)
		repl.Set("http.auth.user.is_superuser", u.IsSuperuser)
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
