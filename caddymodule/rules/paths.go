package rules

import (
	"net/url"
	"strings"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// Canonical reports whether u's path is one that no upstream can read as
// another: absolute, without `//`, backslashes, `;`, NULs, dot segments, or
// an encoded `/`, `.`, `\`, `;`, NUL, `?`, `#` or `%`. Only such a path can
// be public.
func Canonical(u *url.URL) bool {
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

// plain reports whether u's path has a single reading for rules: canonical,
// ASCII (no Unicode case or compatibility forms to fold), and no segment
// ending in a dot or a space (which Windows drops); and whether a segment
// before the last has a dot (see pathInfoCuts). One pass over the path:
// it runs on every gated request.
func plain(u *url.URL) (ok, dottedDir bool) {
	p := u.Path
	if p == "" || p[0] != '/' {
		return false, false
	}
	segStart, segDot := 1, false
	for i := 1; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			seg := p[segStart:i]
			if i < len(p) && seg == "" { // "//"
				return false, false
			}
			if n := len(seg); n > 0 && (seg[n-1] == '.' || seg[n-1] == ' ') { // also "." and ".."
				return false, false
			}
			if segDot && i < len(p) {
				dottedDir = true
			}
			segStart, segDot = i+1, false
			continue
		}
		switch c := p[i]; {
		case c < ' ' || c >= 0x7f, c == '\\', c == ';', c == '?', c == '#', c == '%':
			return false, false
		case c == '.':
			segDot = true
		}
	}
	if u.RawPath != "" && !rawCanonical(u.RawPath) {
		return false, false
	}
	return true, dottedDir
}

// rawCanonical: no encoded '/', '.', '\\', NUL or ';'.
func rawCanonical(raw string) bool {
	for i := 0; i+2 < len(raw); i++ {
		if raw[i] != '%' {
			continue
		}
		switch lowerASCII(raw[i+1 : i+3]) {
		case "2f", "2e", "5c", "00", "3b":
			return false
		}
	}
	return true
}

// maxLoose bounds the length of a path read in every way; a longer
// non-plain path is held to every rule.
const maxLoose = 4096

// readings calls yield with each way an upstream may read u's path, until
// yield returns false. It returns false, without calling yield, for a path
// too long to read in every way, which the caller must hold to every rule.
func readings(u *url.URL, yield func(p string) bool) bool {
	if ok, dottedDir := plain(u); ok {
		if yield(u.Path) && dottedDir {
			pathInfoCuts(u.Path, yield)
		}
		return true
	}
	all, ok := looseReadings(u)
	if !ok {
		return false
	}
	for _, p := range all {
		if !yield(p) || !pathInfoCuts(p, yield) {
			break
		}
	}
	return true
}

// pathInfoCuts yields p cut after each segment, before the last, that has a
// dot: PHP (cgi.fix_pathinfo), nginx's fastcgi_split_path_info and Apache
// run /admin/users.php for /admin/users.php/x.css.
func pathInfoCuts(p string, yield func(string) bool) bool {
	last := strings.LastIndexByte(p, '/')
	start := 1
	for start < last {
		end := start + strings.IndexByte(p[start:], '/')
		if strings.IndexByte(p[start:end], '.') >= 0 {
			if !yield(p[:end]) {
				return false
			}
		}
		start = end + 1
	}
	return true
}

// looseReadings lists the readings of a path that is not plain; false if
// it is too long to.
func looseReadings(u *url.URL) ([]string, bool) {
	raw := u.EscapedPath()
	if len(raw) > maxLoose || len(u.Path) > maxLoose {
		return nil, false
	}
	seen := make(map[string]struct{})
	var out []string
	add := func(p string) {
		if _, dup := seen[p]; !dup {
			seen[p] = struct{}{}
			out = append(out, p)
		}
	}
	bases := []string{raw, u.Path, decodeAll(raw)}
	for _, b := range bases[:3] {
		if !isASCII(b) {
			// Folding may make separators and dots (fullwidth ／ and ．),
			// which the transformations below must then see.
			bases = append(bases, users.UsernameKey(b))
		}
	}
	for _, base := range bases {
		for mask := range 16 {
			p := base
			if mask&1 != 0 {
				p = slashes(p)
			}
			if mask&2 != 0 {
				p = dropParams(p)
			}
			if mask&4 != 0 {
				p = trimSegmentEnds(p)
			}
			if mask&8 != 0 {
				p = resolveDots(p)
			}
			add(p)
			if !isASCII(p) {
				add(users.UsernameKey(p))
			}
		}
	}
	return out, true
}

// decodeAll percent-decodes p until nothing changes (double encoding), at
// most a few times; an invalid escape stops it.
func decodeAll(p string) string {
	for range 4 {
		if !strings.Contains(p, "%") {
			break
		}
		d, err := url.PathUnescape(p)
		if err != nil || d == p {
			break
		}
		p = d
	}
	return p
}

// slashes reads backslashes as slashes and runs of slashes as one.
func slashes(p string) string {
	p = strings.ReplaceAll(p, "\\", "/")
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	return p
}

// dropParams drops `;` parameters from each segment (Tomcat, Spring,
// Jetty) and everything from a `?` or `#` on (a decoded one, which a
// proxy or CGI gateway may take as the query's start) or a NUL (where C
// code ends the string).
func dropParams(p string) string {
	if i := strings.IndexAny(p, "?#\x00"); i >= 0 {
		p = p[:i]
	}
	if !strings.Contains(p, ";") {
		return p
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if j := strings.IndexByte(s, ';'); j >= 0 {
			segs[i] = s[:j]
		}
	}
	return strings.Join(segs, "/")
}

// trimSegmentEnds drops trailing dots and spaces from each segment other
// than `.` and `..`, as Windows does with file names, and NULs anywhere.
func trimSegmentEnds(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		s = strings.ReplaceAll(s, "\x00", "")
		if s != "." && s != ".." {
			s = strings.TrimRight(s, ". ")
		}
		segs[i] = s
	}
	return strings.Join(segs, "/")
}

// resolveDots resolves `.` and `..` segments; a `..` above the root stays
// at the root, as in a URL.
func resolveDots(p string) string {
	segs := strings.Split(p, "/")
	var out []string
	for i, s := range segs {
		switch {
		case s == ".":
			if i == len(segs)-1 {
				out = append(out, "")
			}
		case s == "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if i == len(segs)-1 {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	r := strings.Join(out, "/")
	if !strings.HasPrefix(r, "/") && strings.HasPrefix(p, "/") {
		r = "/" + r
	}
	return r
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
