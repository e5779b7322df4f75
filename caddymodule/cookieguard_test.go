package caddymodule_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// appCookies are the Set-Cookie lines the cookie-setting upstream sends on
// every answer. Each value names the line, so that a test can say which
// ones reached the client.
var appCookies = []string{
	"sessionid=app-session; Path=/; HttpOnly",                 // Django's own session cookie
	"csrftoken=app-csrf; Path=/; SameSite=Lax",                // Django's CSRF rotation at login
	"sessionid=no-path",                                       // default path: "/" below one segment
	"csrftoken=relative-path; path=relative",                  // a Path not starting with "/" is the default path
	"sessionid=empty-domain; Domain=; Path=/",                 // an empty Domain is ignored: host-only
	"csrftoken=last-path-wins; Path=/app; path=/",             // the last Path counts
	"csrftoken=other-path; Path=/app",                         // another cookie (path /app)
	"sessionid=other-domain; Domain=example.com; Path=/",      // another cookie (domain cookie)
	"sessionid=dotted-domain; Domain=.Example.COM; Path=/",    // the same domain cookie, spelled otherwise
	"SessionID=other-case; Path=/",                            // another name: names are case-sensitive
	"xsessionid=other-name; Path=/",                           // another name
	"theme=dark; Path=/; Max-Age=3600",                        // the app's own cookie
	"csrftoken=last-path-other; Path=/; Path=/somewhere-else", // the last Path counts
}

// cookieUpstream answers every request with appCookies; /early sends them
// in a 103 Early Hints too, /stream flushes before its body, /ws switches
// protocols (and echoes what the client sends).
func cookieUpstream(t testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("upstream hijack: %v", err)
				return
			}
			defer conn.Close()
			head := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			for _, c := range appCookies {
				head += "Set-Cookie: " + c + "\r\n"
			}
			brw.WriteString(head + "\r\n")
			brw.Flush()
			line, _ := brw.ReadString('\n')
			conn.Write([]byte("echo: " + line))
			return
		}
		if r.URL.Path == "/early" {
			for _, c := range appCookies {
				w.Header().Add("Set-Cookie", c)
			}
			w.Header().Set("Link", "</style.css>; rel=preload; as=style")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			w.Header().Del("Set-Cookie")
		}
		for _, c := range appCookies {
			w.Header().Add("Set-Cookie", c)
		}
		w.Header().Set("Content-Type", "text/plain")
		if r.URL.Path == "/stream" {
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
			io.WriteString(w, "first ")
			http.NewResponseController(w).Flush()
		}
		io.WriteString(w, "app says hi")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// cookieValues are the values of the Set-Cookie lines (the part after the
// first "=", up to ";"), in order: each names its line in appCookies.
func cookieValues(lines []string) []string {
	var out []string
	for _, l := range lines {
		nv, _, _ := strings.Cut(l, ";")
		_, v, _ := strings.Cut(nv, "=")
		out = append(out, strings.TrimSpace(v))
	}
	return out
}

// without is appCookies' values less the dropped ones.
func without(dropped ...string) []string {
	var out []string
	for _, v := range cookieValues(appCookies) {
		if !slices.Contains(dropped, v) {
			out = append(out, v)
		}
	}
	return out
}

// cookieSite runs the sidecar in front of cookieUpstream with extra
// session_auth lines and a JSON log file.
func cookieSite(t *testing.T, extra string) (*site, string) {
	s := &site{t: t, port: freePort(t), dbPath: filepath.Join(t.TempDir(), "users.db"),
		client: &http.Client{Timeout: 15 * time.Second}}
	s.base = fmt.Sprintf("http://127.0.0.1:%d", s.port)
	up := cookieUpstream(t)
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	cfg := fmt.Sprintf(`{
	admin off
	persist_config off
	storage file_system %s
	log {
		output file %s
		format json
	}
}
http://127.0.0.1:%d, http://app.example.com:%[3]d {
	session_auth {
		users_db %s
		login_throttle off
		register_throttle off
		public /pub/*
		cors_origins https://spa.example
		%s
	}
	reverse_proxy %s {
		flush_interval -1
	}
}
`, filepath.Join(os.Getenv("XDG_DATA_HOME"), "caddy"), logPath, s.port, s.dbPath, extra, strings.TrimPrefix(up.URL, "http://"))
	loadCaddy(t, strings.ReplaceAll(cfg, "\t\t\n", ""))
	return s, logPath
}

// The app behind the sidecar must not replace the sidecar's session or CSRF
// cookie (same name, domain and path); its other cookies, and cookies that
// merely share a name but live at another path or domain, pass.
func TestUpstreamCannotSetSidecarCookies(t *testing.T) {
	s, logPath := cookieSite(t, "")
	sess := s.newUser(t, "cookies")
	own := []string{"app-session", "app-csrf", "no-path", "relative-path", "empty-domain", "last-path-wins"}
	check := func(what string, lines []string, want []string) {
		t.Helper()
		if got := cookieValues(lines); !slices.Equal(got, want) {
			t.Errorf("%s: Set-Cookie values\n got %q\nwant %q", what, got, want)
		}
	}

	for range 3 {
		r := s.do(t, req{method: "GET", path: "/page", session: sess})
		if r.StatusCode != 200 || string(r.body) != "app says hi" {
			t.Fatalf("GET /page: %d %q", r.StatusCode, r.body)
		}
		check("GET /page", r.Header["Set-Cookie"], without(own...))
	}
	// Below /app/, a cookie without Path lives at /app: not the sidecar's.
	r := s.do(t, req{method: "GET", path: "/app/page", session: sess})
	check("GET /app/page", r.Header["Set-Cookie"], without(slices.DeleteFunc(slices.Clone(own), func(v string) bool {
		return v == "no-path" || v == "relative-path"
	})...))
	// Unsafe requests and public paths go through the same filter.
	r = s.do(t, req{method: "POST", path: "/form", session: sess, csrf: true, body: "{}"})
	if r.StatusCode != 200 {
		t.Fatalf("POST /form: %d %s", r.StatusCode, r.body)
	}
	check("POST /form", r.Header["Set-Cookie"], without(own...))
	r = s.do(t, req{method: "GET", path: "/pub/x"})
	check("public /pub/x", r.Header["Set-Cookie"], without("app-session", "app-csrf", "empty-domain", "last-path-wins"))
	// With CORS: both writers compose.
	r = s.do(t, req{method: "GET", path: "/page", session: sess, headers: map[string]string{"Origin": "https://spa.example"}})
	check("GET /page from a CORS origin", r.Header["Set-Cookie"], without(own...))
	if r.Header.Get("Access-Control-Allow-Origin") != "https://spa.example" || r.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("CORS headers lost: %v", r.Header)
	}
	// Streaming (flushed before the body).
	r = s.do(t, req{method: "GET", path: "/stream", session: sess})
	if string(r.body) != "first app says hi" {
		t.Errorf("stream body %q", r.body)
	}
	check("GET /stream", r.Header["Set-Cookie"], without(own...))

	// 1xx: Early Hints carry headers to the client too.
	var early []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		if code == http.StatusEarlyHints {
			early = append(early, h.Values("Set-Cookie")...)
			early = append(early, "link:"+h.Get("Link"))
		}
		return nil
	}}
	hr := s.newRequest(t, req{method: "GET", path: "/early", session: sess})
	hr = hr.WithContext(httptrace.WithClientTrace(context.Background(), trace))
	resp, err := s.client.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	check("GET /early", resp.Header["Set-Cookie"], without(own...))
	if len(early) == 0 || early[len(early)-1] != "link:</style.css>; rel=preload; as=style" {
		t.Errorf("no 103 Early Hints came through: %q", early)
	} else {
		check("103 Early Hints", early[:len(early)-1], without(own...))
	}

	// WebSocket: the 101's headers are filtered and the tunnel still works
	// (Hijack goes through the writers).
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(s.base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"+
		"Cookie: sessionid=%s; csrftoken=%s\r\n\r\n", strings.TrimPrefix(s.base, "http://"), sess.id, sess.csrfCookie)
	br := bufio.NewReader(conn)
	wsResp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if wsResp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %d", wsResp.StatusCode)
	}
	check("101 Switching Protocols", wsResp.Header["Set-Cookie"], without(own...))
	fmt.Fprint(conn, "ping\n")
	if line, err := br.ReadString('\n'); err != nil || line != "echo: ping\n" {
		t.Errorf("through the tunnel: %q %v", line, err)
	}

	// The session still works: nothing the app sent replaced it.
	if r := s.do(t, req{method: "GET", path: "/api/user/", session: sess}); r.StatusCode != 200 {
		t.Errorf("session after the app's cookies: %d %s", r.StatusCode, r.body)
	}

	// Logged once for this handler, not per request.
	logged, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(logged), "dropped a Set-Cookie from the upstream"); n != 1 {
		t.Errorf("the drop was logged %d times, want once:\n%s", n, logged)
	}
	for _, secret := range []string{"app-session", "app-csrf", sess.id} {
		if strings.Contains(string(logged), secret) {
			t.Errorf("log holds a cookie value %q", secret)
		}
	}
}

// With cookie_domain, the sidecar's cookies are domain cookies on the hosts
// within it: the app's cookie of that domain is dropped, its host-only one
// passes.
func TestUpstreamCannotSetSidecarCookiesDomain(t *testing.T) {
	s, _ := cookieSite(t, "cookie_domain example.com")
	sess := s.newUser(t, "cookiedomain")
	r := s.do(t, req{method: "GET", path: "/page", session: sess, headers: map[string]string{"Host": fmt.Sprintf("app.example.com:%d", s.port)}})
	if r.StatusCode != 200 {
		t.Fatalf("GET /page: %d %s", r.StatusCode, r.body)
	}
	want := without("other-domain", "dotted-domain")
	if got := cookieValues(r.Header["Set-Cookie"]); !slices.Equal(got, want) {
		t.Errorf("Set-Cookie values\n got %q\nwant %q", got, want)
	}
}

// BenchmarkGateUpstreamCookies is BenchmarkGate with a next handler that
// answers with Set-Cookie lines, as an app does: the guard's cost is the
// scan of those lines (and a new slice when one is dropped).
func BenchmarkGateUpstreamCookies(b *testing.B) {
	for _, c := range []struct {
		name  string
		lines []string
	}{
		{"app-cookies", []string{"theme=dark; Path=/", "app_sessionid=abc; Path=/; HttpOnly", "csrftoken=x; Path=/app"}},
		{"drops-sessionid", []string{"theme=dark; Path=/", "sessionid=abc; Path=/; HttpOnly", "csrftoken=x; Path=/app"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := newBenchSite(b, "")
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
				w.Header()["Set-Cookie"] = c.lines
				w.WriteHeader(http.StatusOK)
				return nil
			})
			r, w := caddyRequest("GET", "/app/page?q=1")
			cookie := []string{"sessionid=" + s.sessionID + "; csrftoken=" + s.csrfCookie}
			b.ReportAllocs()
			for b.Loop() {
				r.Header["Cookie"] = cookie
				w.reset()
				if err := s.h.ServeHTTP(w, r, next); err != nil || w.status != http.StatusOK {
					b.Fatal(w.status, err)
				}
			}
		})
	}
}
