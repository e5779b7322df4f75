package rules

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// Who may pass a rule, as written.
const (
	WhoStaff       = "staff"
	WhoSuperuser   = "superuser"
	WhoGroupPrefix = "group:"
)

// Spec is a rule as configured.
type Spec struct {
	// Who may pass: "staff", "superuser" or "group:<name>"; any of them.
	Who []string `json:"who"`
	// Methods the rule covers, upper case; none: every method.
	Methods []string `json:"methods,omitempty"`
	// Paths are path patterns (see the package doc).
	Paths []string `json:"paths"`
}

// Rule is a compiled Spec.
type Rule struct {
	Who
	methods  []string
	patterns []pattern
}

// Set is an ordered list of rules. The zero Set has no rules.
type Set struct {
	rules []Rule
}

// Compile checks and compiles specs, in order. Errors name the rule
// (1-based) and what is wrong.
func Compile(specs []Spec) (*Set, error) {
	s := new(Set)
	for i, sp := range specs {
		r, err := compile(sp)
		if err != nil {
			return nil, fmt.Errorf("rule %d (require %s): %v", i+1, sp, err)
		}
		s.rules = append(s.rules, r)
	}
	return s, nil
}

// String writes the spec as the Caddyfile's require line does.
func (sp Spec) String() string {
	return strings.Join(slices.Concat(sp.Who, sp.Methods, sp.Paths), " ")
}

// Len is the number of rules.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

func compile(sp Spec) (Rule, error) {
	var r Rule
	if len(sp.Who) == 0 {
		return r, errors.New("no one may pass: name staff, superuser or group:<name>")
	}
	who, err := CompileWho(sp.Who)
	if err != nil {
		return r, err
	}
	r.Who = *who
	for _, m := range sp.Methods {
		if !IsMethod(m) {
			return r, fmt.Errorf("%q is not an upper-case HTTP method", m)
		}
		if !slices.Contains(r.methods, m) {
			r.methods = append(r.methods, m)
		}
	}
	if len(sp.Paths) == 0 {
		return r, errors.New("no path pattern")
	}
	for _, p := range sp.Paths {
		pat, err := compilePattern(p)
		if err != nil {
			return r, err
		}
		r.patterns = append(r.patterns, pat)
	}
	return r, nil
}

// IsMethod reports whether m is written as an HTTP method in a rule: upper
// case letters, maybe with '-' (VERSION-CONTROL).
func IsMethod(m string) bool {
	if m == "" || m[0] == '-' {
		return false
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; !('A' <= c && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

// IsPattern reports whether p is written as a path pattern.
func IsPattern(p string) bool { return p != "" && (p[0] == '/' || p[0] == '*') }

// Who is a list of who may pass, as in a require rule: staff, superusers,
// members of groups (any of them). The zero Who matches nobody.
type Who struct {
	staff, superuser bool
	groups           []string // sorted
}

// CompileWho checks and compiles who-words ("staff", "superuser",
// "group:<name>").
func CompileWho(words []string) (*Who, error) {
	w := new(Who)
	for _, word := range words {
		switch {
		case word == WhoStaff:
			w.staff = true
		case word == WhoSuperuser:
			w.superuser = true
		case strings.HasPrefix(word, WhoGroupPrefix):
			name := strings.TrimPrefix(word, WhoGroupPrefix)
			if problems := accounts.GroupNameProblems(name); len(problems) > 0 {
				return nil, fmt.Errorf("%q: not a group name: %s", word, strings.Join(problems, " "))
			}
			w.groups = append(w.groups, name)
		default:
			return nil, fmt.Errorf("%q: who may pass is staff, superuser or group:<name>", word)
		}
	}
	w.groups = users.SortGroups(w.groups)
	return w, nil
}

// Matches reports whether u is one of w (by its flags and groups only:
// a superuser who is not staff does not match "staff").
func (w *Who) Matches(u *users.User) bool {
	if (w.staff && u.IsStaff) || (w.superuser && u.IsSuperuser) {
		return true
	}
	for _, g := range w.groups {
		if u.InGroup(g) {
			return true
		}
	}
	return false
}

// coversMethod: m is upper case, "" for an unknown method (every rule).
func (r *Rule) coversMethod(m string) bool {
	if len(r.methods) == 0 || m == "" {
		return true
	}
	for _, rm := range r.methods {
		// GET covers HEAD (answered by the GET handler) and CONNECT (an
		// HTTP/2 or 3 WebSocket handshake, which reverse_proxy sends on
		// as a GET upgrade).
		if rm == m || (rm == http.MethodGet && (m == http.MethodHead || m == http.MethodConnect)) {
			return true
		}
	}
	return false
}

func (r *Rule) matchesPath(p string) bool {
	for i := range r.patterns {
		if r.patterns[i].match(p) {
			return true
		}
	}
	return false
}

// Allows reports whether u may make a request with this method (as sent,
// any case) to this URL, with these headers (for method overrides). The
// request's user must be logged in and active.
func (s *Set) Allows(u *users.User, method string, target *url.URL, h http.Header) bool {
	if s.Len() == 0 || u.IsSuperuser {
		return true
	}
	return s.allows(u, method, true, target, h)
}

// AllowsTarget is Allows for a request known only by what a proxy in front
// says of it (forward-auth): method "" is any method, a nil target any path.
func (s *Set) AllowsTarget(u *users.User, method string, target *url.URL, h http.Header) bool {
	if s.Len() == 0 || u.IsSuperuser {
		return true
	}
	return s.allows(u, method, method != "", target, h)
}

func (s *Set) allows(u *users.User, method string, knownMethod bool, target *url.URL, h http.Header) bool {
	m := ""
	if knownMethod {
		m = upper(method)
	}
	ok, methodRule := s.allowsMethod(u, m, target)
	if !ok {
		return false
	}
	// Another method asked for in an override matters only where a rule
	// that lists methods matches the path.
	if methodRule && knownMethod {
		for _, o := range overrides(target, h) {
			if o != m {
				if ok, _ := s.allowsMethod(u, o, target); !ok {
					return false
				}
			}
		}
	}
	return true
}

// allowsMethod holds the request to the deciding rule of every reading of
// its path; a path that cannot be read (unknown, or too long to read in
// every way) to every rule that covers the method. methodRule reports
// whether a rule that lists methods matches the path.
func (s *Set) allowsMethod(u *users.User, m string, target *url.URL) (ok, methodRule bool) {
	ok = true
	if target != nil && readings(target, func(p string) bool {
		decided := false
		for i := range s.rules {
			r := &s.rules[i]
			if decided && (len(r.methods) == 0 || methodRule) {
				continue
			}
			if !r.matchesPath(p) {
				continue
			}
			if len(r.methods) > 0 {
				methodRule = true
			}
			if !decided && r.coversMethod(m) {
				decided = true
				if !r.Matches(u) {
					ok = false
				}
			}
		}
		return ok
	}) {
		return ok, methodRule
	}
	for i := range s.rules {
		r := &s.rules[i]
		methodRule = methodRule || len(r.methods) > 0
		if r.coversMethod(m) && !r.Matches(u) {
			return false, methodRule
		}
	}
	return true, methodRule
}

// upper returns m in upper case, allocating only if it is not already.
func upper(m string) string {
	for i := 0; i < len(m); i++ {
		if c := m[i]; 'a' <= c && c <= 'z' {
			return strings.ToUpper(m)
		}
	}
	return m
}

// overrideHeaders are the method-override headers frameworks honour,
// normalised as names are compared (lower case, no '-', '_' or '.').
var overrideHeaders = []string{"xhttpmethodoverride", "xhttpmethod", "xmethodoverride"}

// overrides returns the methods the request asks for besides its own, in
// upper case.
func overrides(target *url.URL, h http.Header) []string {
	var out []string
	for key, vals := range h {
		if len(key) < len("X-Http-Method") || (key[0] != 'X' && key[0] != 'x') {
			continue
		}
		for _, name := range overrideHeaders {
			if normalisedIs(key, name) {
				for _, v := range vals {
					out = append(out, upper(strings.TrimSpace(v)))
				}
			}
		}
	}
	if target != nil && containsFold(target.RawQuery, "method") {
		q, _ := url.ParseQuery(target.RawQuery) // what parses is what a framework sees
		for key, vals := range q {
			if strings.EqualFold(key, "_method") {
				for _, v := range vals {
					out = append(out, upper(strings.TrimSpace(v)))
				}
			}
		}
	}
	return out
}

// normalisedIs compares a header name with a normalised one, ignoring case,
// '-', '_' and '.'.
func normalisedIs(key, normal string) bool {
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

// pattern is a compiled path pattern. Patterns and paths compare in
// lower case (and, for non-ASCII paths, case-folded: see readings).
type pattern struct {
	kind patternKind
	lit  string // the literal part, lower case (folded)
	glob string // for globs: the whole pattern, lower case (folded)
	raw  string
}

type patternKind uint8

const (
	exact patternKind = iota
	prefix
	suffix
	substring
	glob
)

func compilePattern(raw string) (pattern, error) {
	if !IsPattern(raw) {
		return pattern{}, fmt.Errorf("%q is not a path pattern (it must begin with / or *)", raw)
	}
	p := raw
	if strings.Contains(p, "%") {
		dec, err := url.PathUnescape(p)
		if err != nil {
			return pattern{}, fmt.Errorf("%q: %v", raw, err)
		}
		p = dec
	}
	if _, err := path.Match(p, ""); err != nil {
		return pattern{}, fmt.Errorf("%q: %v", raw, err)
	}
	p = users.UsernameKey(p) // lower case, and case-folded + NFKC for non-ASCII
	pat := pattern{raw: raw, glob: p}
	inner := strings.Trim(p, "*")
	switch {
	case !strings.Contains(p, "*"):
		pat.kind, pat.lit = exact, p
	case strings.Contains(inner, "*"):
		pat.kind = glob
	case strings.HasPrefix(p, "*") && strings.HasSuffix(p, "*"):
		pat.kind, pat.lit = substring, inner
	case strings.HasSuffix(p, "*"):
		pat.kind, pat.lit = prefix, inner
	default:
		pat.kind, pat.lit = suffix, inner
	}
	return pat, nil
}

// match compares p with the pattern regardless of ASCII case.
func (pt *pattern) match(p string) bool {
	switch pt.kind {
	case exact:
		return len(p) == len(pt.lit) && hasPrefixFold(p, pt.lit)
	case prefix:
		return hasPrefixFold(p, pt.lit)
	case suffix:
		return len(p) >= len(pt.lit) && hasPrefixFold(p[len(p)-len(pt.lit):], pt.lit)
	case substring:
		return containsFold(p, pt.lit)
	}
	ok, _ := path.Match(pt.glob, lowerASCII(p))
	return ok
}

// hasPrefixFold: p begins with lit, which is in lower case, regardless of
// the ASCII case of p.
func hasPrefixFold(p, lit string) bool {
	if len(p) < len(lit) {
		return false
	}
	for i := 0; i < len(lit); i++ {
		c := p[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lit[i] {
			return false
		}
	}
	return true
}

// containsFold: lit (lower case) occurs in s regardless of ASCII case.
func containsFold(s, lit string) bool {
	for i := 0; i+len(lit) <= len(s); i++ {
		if hasPrefixFold(s[i:], lit) {
			return true
		}
	}
	return false
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
