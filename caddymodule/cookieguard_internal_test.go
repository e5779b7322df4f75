package caddymodule

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
)

// A handler may write the header implicitly (Write, ReadFrom, Flush before
// WriteHeader); the guard must filter then too. reverse_proxy always calls
// WriteHeader first, so these paths are checked here, on the writer itself.
func TestCookieGuardImplicitHeader(t *testing.T) {
	s := &SessionAuth{SessionCookie: "sessionid", CSRFCookie: "csrftoken", logger: zap.NewNop(), cookieWarned: new(atomic.Bool)}
	ways := map[string]func(w http.ResponseWriter){
		"Write":    func(w http.ResponseWriter) { io.WriteString(w, "x") },
		"ReadFrom": func(w http.ResponseWriter) { w.(io.ReaderFrom).ReadFrom(strings.NewReader("x")) },
		"Flush":    func(w http.ResponseWriter) { http.NewResponseController(w).Flush() },
		"Flusher":  func(w http.ResponseWriter) { w.(http.Flusher).Flush() },
		"WriteHeader": func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusCreated)
		},
	}
	for name, write := range ways {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/page", nil)
		w := s.guardCookies(rec, r)
		w.Header().Add("Set-Cookie", "sessionid=app; Path=/")
		w.Header().Add("Set-Cookie", "theme=dark; Path=/")
		w.Header().Add("Set-Cookie", "csrftoken=app; Path=/")
		write(w)
		// Later changes to the map do not reach the client.
		if got := rec.Result().Header["Set-Cookie"]; !slices.Equal(got, []string{"theme=dark; Path=/"}) {
			t.Errorf("%s: client got Set-Cookie %q", name, got)
		}
		if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); !ok || u.Unwrap() != rec {
			t.Errorf("%s: the guard does not unwrap to the writer it wraps", name)
		}
	}
	if !s.cookieWarned.Load() {
		t.Error("the drop was not logged")
	}
}

// isOwnCookie follows RFC 6265's parsing of names, Domain and Path.
func TestIsOwnCookie(t *testing.T) {
	s := &SessionAuth{SessionCookie: "sessionid", CSRFCookie: "csrftoken"}
	d := &SessionAuth{SessionCookie: "sessionid", CSRFCookie: "csrftoken", CookieDomain: ".Example.com"}
	d.setDefaults()
	cases := []struct {
		line, path string
		own, ownD  bool
	}{
		{"sessionid=x; Path=/", "/a", true, false},
		{" sessionid = x ;path = / ", "/a", true, false},
		{"csrftoken=x", "/a", true, false},
		{"csrftoken=x", "/", true, false},
		{"csrftoken=x", "/a/b", false, false},
		{"csrftoken=x; Path=", "/a/b", false, false},
		{"csrftoken=x; Path=", "/a", true, false},
		{"csrftoken=x; Path=/; Path=/a", "/", false, false},
		{"csrftoken=x; Path=/a; Path=/", "/a/b", true, false},
		{"sessionid=x; Path=/; Domain=example.com", "/", false, true},
		{"sessionid=x; Path=/; domain=.EXAMPLE.com", "/", false, true},
		{"sessionid=x; Path=/; Domain=a.example.com", "/", false, false},
		{"sessionid=x; Path=/; Domain=example.com; Domain=", "/", false, true},
		{"sessionid=x; Path=/x", "/", false, false},
		{"sessionid=x; Path=//", "/", false, false},
		{"Sessionid=x; Path=/", "/", false, false},
		{"sessionid; Path=/", "/", false, false}, // a cookie with no name
		{"=sessionid; Path=/", "/", false, false},
		{"sessionidx=1; Path=/", "/", false, false},
		{"", "/", false, false},
		{";;;", "/", false, false},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", c.path, nil)
		if got := s.isOwnCookie(c.line, r); got != c.own {
			t.Errorf("host-only: %q at %s: own = %v", c.line, c.path, got)
		}
		if got := d.isOwnCookie(c.line, r); got != c.ownD {
			t.Errorf("cookie_domain .example.com: %q at %s: own = %v", c.line, c.path, got)
		}
		// On a host outside cookie_domain, the sidecar's cookies are
		// host-only (a browser refuses the domain): the guard protects those.
		r.Host = "app.other.org:8443"
		if got := d.isOwnCookie(c.line, r); got != c.own {
			t.Errorf("cookie_domain .example.com, host app.other.org: %q at %s: own = %v", c.line, c.path, got)
		}
		r.Host = "App.Example.COM."
		if got := d.isOwnCookie(c.line, r); got != c.ownD {
			t.Errorf("cookie_domain .example.com, host App.Example.COM.: %q at %s: own = %v", c.line, c.path, got)
		}
	}
}

// cookie_domain is within the request's host, or not: the sidecar's
// cookie gets the Domain, or is host-only.
func TestCookieDomainFor(t *testing.T) {
	d := &SessionAuth{CookieDomain: ".example.com"}
	d.setDefaults()
	for host, want := range map[string]string{
		"example.com": "example.com", "EXAMPLE.com:443": "example.com", "a.b.example.com": "example.com",
		"example.com.": "example.com", "badexample.com": "", "example.com.evil.org": "", "127.0.0.1:8080": "", "[::1]:80": "",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = host
		if got := d.cookieDomainFor(r); got != want {
			t.Errorf("host %q: domain %q, want %q", host, got, want)
		}
	}
}

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkCookieGuard is the guard alone: wrapping the writer and checking
// three Set-Cookie lines of an app, none of them the sidecar's.
func BenchmarkCookieGuard(b *testing.B) {
	s := &SessionAuth{SessionCookie: "sessionid", CSRFCookie: "csrftoken", logger: zap.NewNop(), cookieWarned: new(atomic.Bool)}
	lines := []string{"theme=dark; Path=/", "app_sessionid=abc; Path=/; HttpOnly", "csrftoken=x; Path=/app"}
	w := &nopWriter{h: http.Header{}}
	r := httptest.NewRequest("GET", "/app/page", nil)
	b.ReportAllocs()
	for b.Loop() {
		w.h["Set-Cookie"] = lines
		s.guardCookies(w, r).WriteHeader(http.StatusOK)
	}
}
