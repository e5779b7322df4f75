package caddymodule_test

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
)

// The Origin rule's refusals (csrfcheck.go).
func originRefused(origin string) string {
	return `{"detail":"CSRF Failed: Origin checking failed - ` + origin + ` does not match any trusted origins."}`
}

const crossSiteRefused = `{"detail":"CSRF Failed: Origin checking failed - (cross-site, no Origin header) does not match any trusted origins."}`

// Login CSRF: a cross-site page must not be able to log the victim's
// browser in (as the attacker) or register through it, whatever the body's
// type; requests without Origin (curl, scripts) keep working.
func TestLoginCSRF(t *testing.T) {
	s := startSite(t, "", "cors_origins http://localhost:3000\ncsrf_trusted_origins https://trusted.example")
	if r := s.register(t, "attacker", "a@example.com", strongPassword); r.StatusCode != 201 {
		t.Fatalf("register: %d %s", r.StatusCode, r.body)
	}
	creds := credsJSON("attacker", strongPassword)
	form := url.Values{"username": {"attacker"}, "password": {strongPassword}}.Encode()
	var mp strings.Builder
	mw := multipart.NewWriter(&mp)
	mw.WriteField("username", "attacker")
	mw.WriteField("password", strongPassword)
	mw.Close()

	evil := map[string]string{"Origin": "https://evil.example"}
	refused := []struct {
		name    string
		body    string
		ctype   string
		headers map[string]string
		want    string
	}{
		{"json from evil", creds, "", evil, originRefused("https://evil.example")},
		{"form from evil", form, "application/x-www-form-urlencoded", evil, originRefused("https://evil.example")},
		{"multipart from evil", mp.String(), mw.FormDataContentType(), evil, originRefused("https://evil.example")},
		{"text/plain from evil", creds, "text/plain", evil, originRefused("https://evil.example")},
		{"Origin null (sandboxed frame)", form, "application/x-www-form-urlencoded", map[string]string{"Origin": "null"}, originRefused("null")},
		{"same host, other port", creds, "", map[string]string{"Origin": "http://127.0.0.1:1"}, originRefused("http://127.0.0.1:1")},
		{"same host, https", creds, "", map[string]string{"Origin": strings.Replace(s.base, "http:", "https:", 1)}, originRefused(strings.Replace(s.base, "http:", "https:", 1))},
		{"cross-site without Origin", form, "application/x-www-form-urlencoded", map[string]string{"Sec-Fetch-Site": "cross-site"}, crossSiteRefused},
		{"evil with cross-site", creds, "", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, originRefused("https://evil.example")},
	}
	for _, c := range refused {
		r := s.do(t, req{method: "POST", path: "/api/login/", body: c.body, ctype: c.ctype, headers: c.headers})
		if r.StatusCode != 403 || string(r.body) != c.want {
			t.Errorf("login, %s: %d %s", c.name, r.StatusCode, r.body)
		}
		if len(r.Header["Set-Cookie"]) != 0 {
			t.Errorf("login, %s: cookies set: %v", c.name, r.Header["Set-Cookie"])
		}
		if r.Header.Get("Allow") != "POST, OPTIONS" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("login, %s: headers %v", c.name, r.Header)
		}
	}

	// Registration and the other unsafe endpoints: the same rule.
	reg := `{"username":"planted","email":"p@example.com","password":"` + strongPassword + `","password2":"` + strongPassword + `"}`
	if r := s.do(t, req{method: "POST", path: "/api/register/", body: reg, headers: evil}); r.StatusCode != 403 || string(r.body) != originRefused("https://evil.example") {
		t.Errorf("register from evil: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, req{method: "POST", path: "/api/login/", body: credsJSON("planted", strongPassword)}); r.StatusCode != 400 {
		t.Errorf("a refused registration created the user: %d %s", r.StatusCode, r.body)
	}
	for _, path := range []string{"/api/logout/", "/api/logout/all/", "/api/password/"} {
		if r := s.do(t, req{method: "POST", path: path, headers: evil}); r.StatusCode != 403 || string(r.body) != originRefused("https://evil.example") {
			t.Errorf("%s from evil: %d %s", path, r.StatusCode, r.body)
		}
	}
	// A wrong method from a cross-site page is refused as cross-site; from
	// curl it is still a 405.
	if r := s.do(t, req{method: "PUT", path: "/api/login/", body: creds, headers: evil}); r.StatusCode != 403 || string(r.body) != originRefused("https://evil.example") {
		t.Errorf("PUT from evil: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, req{method: "PUT", path: "/api/login/", body: creds}); r.StatusCode != 405 || r.Header.Get("Allow") != "POST, OPTIONS" {
		t.Errorf("PUT: %d %s", r.StatusCode, r.body)
	}
	// Safe methods are not the Origin rule's business.
	if r := s.do(t, req{method: "OPTIONS", path: "/api/login/", headers: evil}); r.StatusCode != 200 {
		t.Errorf("OPTIONS from evil: %d %s", r.StatusCode, r.body)
	}

	allowed := []struct {
		name    string
		headers map[string]string
	}{
		{"no Origin (curl)", nil},
		{"own origin", map[string]string{"Origin": s.base}},
		{"own origin, upper case", map[string]string{"Origin": strings.ToUpper(s.base)}},
		{"CORS origin", map[string]string{"Origin": "http://localhost:3000"}},
		{"trusted origin", map[string]string{"Origin": "https://trusted.example"}},
		{"same-origin fetch without Origin", map[string]string{"Sec-Fetch-Site": "same-origin"}},
		{"typed into the address bar", map[string]string{"Sec-Fetch-Site": "none"}},
		{"trusted origin, cross-site", map[string]string{"Origin": "https://trusted.example", "Sec-Fetch-Site": "cross-site"}},
	}
	for _, c := range allowed {
		r := s.do(t, req{method: "POST", path: "/api/login/", body: creds, headers: c.headers})
		if r.StatusCode != 200 || r.cookie("sessionid") == nil {
			t.Errorf("login, %s: %d %s", c.name, r.StatusCode, r.body)
		}
	}
	// A form login from the own origin (a server-rendered page) works.
	if r := s.do(t, req{method: "POST", path: "/api/login/", body: form, ctype: "application/x-www-form-urlencoded", headers: map[string]string{"Origin": s.base}}); r.StatusCode != 200 {
		t.Errorf("same-origin form login: %d %s", r.StatusCode, r.body)
	}

	// The gate: anonymous unsafe requests are refused anyway; with a
	// session, a cross-site request without Origin fails before the token.
	sess := s.login(t, "attacker", strongPassword)
	if r := s.do(t, req{method: "POST", path: "/app/x", session: sess, csrf: true, headers: map[string]string{"Sec-Fetch-Site": "cross-site"}}); r.StatusCode != 403 || string(r.body) != crossSiteRefused {
		t.Errorf("gate, cross-site without Origin: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, req{method: "POST", path: "/app/x", session: sess, csrf: true, headers: map[string]string{"Origin": "null"}}); r.StatusCode != 403 || string(r.body) != originRefused("null") {
		t.Errorf("gate, Origin null: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, req{method: "POST", path: "/app/x", session: sess, csrf: true, headers: map[string]string{"Sec-Fetch-Site": "same-origin"}}); r.StatusCode != 200 {
		t.Errorf("gate, same-origin: %d %s", r.StatusCode, r.body)
	}
}

// wsUpstream accepts WebSocket upgrades (golang.org/x/net/websocket) and
// greets the client with the identity the sidecar forwarded.
func wsUpstream(t testing.TB) (*httptest.Server, chan string) {
	seen := make(chan string, 16)
	srv := httptest.NewServer(websocket.Server{
		Handshake: func(*websocket.Config, *http.Request) error { return nil }, // the sidecar's job
		Handler: func(ws *websocket.Conn) {
			who := ws.Request().Header.Get("X-Auth-Username")
			seen <- who
			websocket.Message.Send(ws, "hello "+who)
		},
	})
	t.Cleanup(srv.Close)
	return srv, seen
}

// wsResult is the answer to a WebSocket handshake: the status, and the
// body (an error) or the first text message (after a 101).
type wsResult struct {
	status  int
	body    string
	message string
}

// wsUpgrade opens a TCP connection to base and sends a real WebSocket
// handshake for path, with the session's cookie and the given headers.
func wsUpgrade(t *testing.T, base, path string, sess *session, headers map[string]string) wsResult {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	rawKey := make([]byte, 16)
	rand.Read(rawKey)
	key := base64.StdEncoding.EncodeToString(rawKey)
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n", path, u.Host)
	fmt.Fprintf(&b, "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n", key)
	if sess != nil {
		fmt.Fprintf(&b, "Cookie: sessionid=%s; csrftoken=%s\r\n", sess.id, sess.csrfCookie)
	}
	for k, v := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatalf("reading the handshake's answer: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		return wsResult{status: resp.StatusCode, body: string(body)}
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("Sec-WebSocket-Accept = %q", got)
	}
	// One unmasked text frame from the server, shorter than 126 bytes.
	head := make([]byte, 2)
	if _, err := io.ReadFull(br, head); err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	if head[0] != 0x81 || head[1] >= 126 {
		t.Fatalf("unexpected frame header % x", head)
	}
	payload := make([]byte, head[1])
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatal(err)
	}
	return wsResult{status: 101, message: string(payload)}
}

// Cross-site WebSocket hijacking: an upgrade to a gated path (through
// reverse_proxy, and through forward_auth) carries the session cookie
// like any request, so it must pass the Origin rule. The third front is a
// forward-auth proxy that drops the hop-by-hop Upgrade and Connection from
// the auth request, as Traefik's ForwardAuth and nginx's auth_request do.
func TestWebSocketOrigin(t *testing.T) {
	s := startSite(t, "", "")
	ws, seen := wsUpstream(t)
	appPort, strippedPort := freePort(t), freePort(t)
	s.load(fmt.Sprintf(`{
	admin off
	persist_config off
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
		cors_origins http://localhost:3000
		csrf_trusted_origins https://trusted.example
	}
	reverse_proxy %s
}
http://127.0.0.1:%d {
	forward_auth 127.0.0.1:%d {
		uri /api/auth/
		copy_headers X-Auth-User-Id X-Auth-Username X-Auth-Email
	}
	reverse_proxy %s
}
http://127.0.0.1:%d {
	forward_auth 127.0.0.1:%d {
		uri /api/auth/
		header_up -Upgrade
		header_up -Connection
		copy_headers X-Auth-User-Id X-Auth-Username X-Auth-Email
	}
	reverse_proxy %s
}
`, s.port, s.dbPath, strings.TrimPrefix(ws.URL, "http://"), appPort, s.port, strings.TrimPrefix(ws.URL, "http://"),
		strippedPort, s.port, strings.TrimPrefix(ws.URL, "http://")))
	sess := s.newUser(t, "wsuser")
	app := fmt.Sprintf("http://127.0.0.1:%d", appPort)
	stripped := fmt.Sprintf("http://127.0.0.1:%d", strippedPort)

	for _, front := range []struct{ name, base string }{{"reverse_proxy", s.base}, {"forward_auth", app}, {"forward_auth without Upgrade", stripped}} {
		refused := []struct {
			name    string
			headers map[string]string
			want    string
		}{
			{"evil origin", map[string]string{"Origin": "https://evil.example"}, originRefused("https://evil.example")},
			{"Origin null", map[string]string{"Origin": "null"}, originRefused("null")},
			{"other port", map[string]string{"Origin": "http://127.0.0.1:1"}, originRefused("http://127.0.0.1:1")},
			{"cross-site without Origin", map[string]string{"Sec-Fetch-Site": "cross-site"}, crossSiteRefused},
		}
		for _, c := range refused {
			r := wsUpgrade(t, front.base, "/socket", sess, c.headers)
			if r.status != 403 || r.body != c.want {
				t.Errorf("%s, %s: %d %q %q", front.name, c.name, r.status, r.body, r.message)
			}
		}
		allowed := []struct {
			name    string
			headers map[string]string
		}{
			{"own origin", map[string]string{"Origin": front.base}},
			{"CORS origin", map[string]string{"Origin": "http://localhost:3000"}},
			{"trusted origin", map[string]string{"Origin": "https://trusted.example"}},
			{"no Origin (not a browser)", nil},
		}
		for _, c := range allowed {
			r := wsUpgrade(t, front.base, "/socket", sess, c.headers)
			if r.status != 101 || r.message != "hello wsuser" {
				t.Errorf("%s, %s: %d %q %q", front.name, c.name, r.status, r.body, r.message)
			}
		}
		// Anonymous upgrades are refused as any request is.
		if r := wsUpgrade(t, front.base, "/socket", nil, map[string]string{"Origin": front.base}); r.status != 403 ||
			r.body != `{"detail":"Authentication credentials were not provided."}` {
			t.Errorf("%s, anonymous: %d %q", front.name, r.status, r.body)
		}
	}
	// Only the allowed handshakes reached the upstream, each with the user.
	close(seen)
	n := 0
	for who := range seen {
		n++
		if who != "wsuser" {
			t.Errorf("upstream saw user %q", who)
		}
	}
	if n != 12 {
		t.Errorf("upstream accepted %d handshakes, want 12", n)
	}
}

// A proxy that does not send X-Forwarded-Method (a hand-written nginx
// auth_request, say): the sidecar cannot tell a POST from a GET, so it
// applies the Origin rule to every request, using X-Forwarded-Host and
// -Proto for the original origin.
func TestForwardAuthWithoutMethod(t *testing.T) {
	s := startSite(t, "", "")
	appPort := freePort(t)
	s.load(fmt.Sprintf(`{
	admin off
	persist_config off
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
		csrf_trusted_origins https://trusted.example
	}
}
http://127.0.0.1:%d {
	forward_auth 127.0.0.1:%d {
		uri /api/auth/
		# What a proxy without the header sends: forward_auth sets it, and
		# header deletions run after the sets.
		header_up -X-Forwarded-Method
		copy_headers X-Auth-User-Id X-Auth-Username X-Auth-Email
	}
	reverse_proxy %s
}
`, s.port, s.dbPath, appPort, s.port, strings.TrimPrefix(s.upstream.URL, "http://")))
	sess := s.newUser(t, "nomethod")
	app := &site{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", appPort), client: s.client}

	// The proxy really sends no X-Forwarded-Method: a POST without a CSRF
	// token passes (the token rule needs the method), as it did before.
	if r := app.do(t, req{method: "POST", path: "/form", session: sess}); r.StatusCode != 200 || r.echo(t).Method != "POST" {
		t.Fatalf("same-site POST through the proxy: %d %s", r.StatusCode, r.body)
	}
	for _, method := range []string{"POST", "GET", "DELETE"} {
		for _, c := range []struct {
			name    string
			headers map[string]string
			want    string
		}{
			{"evil origin", map[string]string{"Origin": "https://evil.example"}, originRefused("https://evil.example")},
			{"Origin null", map[string]string{"Origin": "null"}, originRefused("null")},
			{"the sidecar's own origin", map[string]string{"Origin": s.base}, originRefused(s.base)},
			{"cross-site without Origin", map[string]string{"Sec-Fetch-Site": "cross-site"}, crossSiteRefused},
		} {
			r := app.do(t, req{method: method, path: "/form", session: sess, csrf: true, headers: c.headers})
			if r.StatusCode != 403 || string(r.body) != c.want {
				t.Errorf("%s, %s: %d %s", method, c.name, r.StatusCode, r.body)
			}
		}
		for _, c := range []struct {
			name    string
			headers map[string]string
		}{
			{"app's origin (X-Forwarded-Host)", map[string]string{"Origin": app.base}},
			{"trusted origin", map[string]string{"Origin": "https://trusted.example"}},
			{"no Origin", nil},
			{"same-origin", map[string]string{"Sec-Fetch-Site": "same-origin"}},
		} {
			r := app.do(t, req{method: method, path: "/form", session: sess, csrf: true, headers: c.headers})
			if r.StatusCode != 200 || r.echo(t).Method != method {
				t.Errorf("%s, %s: %d %s", method, c.name, r.StatusCode, r.body)
			}
		}
	}
}

// With X-Forwarded-Method (Caddy's forward_auth sends it), safe requests
// are not held to the Origin rule: a link from another site still opens
// the page. Unsafe ones are, with the original origin from X-Forwarded-Host.
func TestForwardAuthOriginWithMethod(t *testing.T) {
	s := startSite(t, "", "")
	appPort := freePort(t)
	s.load(fmt.Sprintf(`{
	admin off
	persist_config off
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
	}
}
http://127.0.0.1:%d {
	forward_auth 127.0.0.1:%d {
		uri /api/auth/
		copy_headers X-Auth-User-Id X-Auth-Username X-Auth-Email
	}
	reverse_proxy %s
}
`, s.port, s.dbPath, appPort, s.port, strings.TrimPrefix(s.upstream.URL, "http://")))
	sess := s.newUser(t, "withmethod")
	app := &site{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", appPort), client: s.client}
	link := map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
	if r := app.do(t, req{method: "GET", path: "/page", session: sess, headers: link}); r.StatusCode != 200 {
		t.Errorf("cross-site link: %d %s", r.StatusCode, r.body)
	}
	if r := app.do(t, req{method: "POST", path: "/page", session: sess, csrf: true, headers: link}); r.StatusCode != 403 || string(r.body) != crossSiteRefused {
		t.Errorf("cross-site POST without Origin: %d %s", r.StatusCode, r.body)
	}
	if r := app.do(t, req{method: "POST", path: "/page", session: sess, csrf: true, headers: map[string]string{"Origin": "null"}}); r.StatusCode != 403 || string(r.body) != originRefused("null") {
		t.Errorf("POST from Origin null: %d %s", r.StatusCode, r.body)
	}
	if r := app.do(t, req{method: "POST", path: "/page", session: sess, csrf: true, headers: map[string]string{"Origin": app.base}}); r.StatusCode != 200 {
		t.Errorf("same-origin POST: %d %s", r.StatusCode, r.body)
	}
}

// The rules for what the harness cannot send through Caddy: WebSocket
// handshakes over HTTP/2 and HTTP/3 (extended CONNECT, which Caddy's
// reverse_proxy turns into an upgrade), and the token rule's exceptions.
func TestCrossSiteRules(t *testing.T) {
	newReq := func(method, proto string, major int, headers map[string]string) *http.Request {
		r := httptest.NewRequest(method, "http://app.example/socket", nil)
		r.Proto, r.ProtoMajor, r.Host = proto, major, "app.example"
		for k, v := range headers {
			r.Header.Set(k, v)
		}
		return r
	}
	wsCases := []struct {
		name string
		r    *http.Request
		want bool
	}{
		{"HTTP/1.1 upgrade", newReq("GET", "HTTP/1.1", 1, map[string]string{"Connection": "Upgrade", "Upgrade": "websocket"}), true},
		{"upgrade, other case and list", newReq("GET", "HTTP/1.1", 1, map[string]string{"Connection": "keep-alive, Upgrade", "Upgrade": "WebSocket"}), true},
		{"auth subrequest (Upgrade only)", newReq("GET", "HTTP/1.1", 1, map[string]string{"Upgrade": "websocket"}), true},
		{"auth subrequest (hop-by-hop headers dropped)", newReq("GET", "HTTP/1.1", 1, map[string]string{"Sec-WebSocket-Version": "13"}), true},
		{"HTTP/2 extended CONNECT", newReq("CONNECT", "HTTP/2.0", 2, map[string]string{":protocol": "websocket"}), true},
		{"HTTP/3 extended CONNECT", newReq("CONNECT", "websocket", 3, nil), true},
		{"h2c upgrade", newReq("GET", "HTTP/1.1", 1, map[string]string{"Connection": "Upgrade", "Upgrade": "h2c"}), false},
		{"plain CONNECT", newReq("CONNECT", "HTTP/1.1", 1, nil), false},
		{"HTTP/2 CONNECT without :protocol", newReq("CONNECT", "HTTP/2.0", 2, nil), false},
		{"GET", newReq("GET", "HTTP/1.1", 1, nil), false},
	}
	for _, c := range wsCases {
		if got := caddymodule.IsWebSocket(c.r); got != c.want {
			t.Errorf("%s: IsWebSocket = %v", c.name, got)
		}
	}

	h2ws := func(headers map[string]string) *http.Request {
		headers[":protocol"] = "websocket"
		return newReq("CONNECT", "HTTP/2.0", 2, headers)
	}
	trusted := []string{"https://trusted.example"}
	checks := []struct {
		name    string
		r       *http.Request
		method  string
		session bool
		want    string
	}{
		{"h2 WebSocket, own origin, no token", h2ws(map[string]string{"Origin": "http://app.example"}), "CONNECT", true, ""},
		{"h2 WebSocket, trusted origin", h2ws(map[string]string{"Origin": "https://trusted.example"}), "CONNECT", true, ""},
		{"h2 WebSocket, evil origin", h2ws(map[string]string{"Origin": "https://evil.example"}), "CONNECT", true, originRefused("https://evil.example")},
		{"h2 WebSocket, cross-site", h2ws(map[string]string{"Sec-Fetch-Site": "cross-site"}), "CONNECT", true, crossSiteRefused},
		// A POST claiming to be an upgrade still needs its token.
		{"POST with Upgrade", newReq("POST", "HTTP/1.1", 1, map[string]string{"Upgrade": "websocket", "Origin": "http://app.example"}), "POST", true, `{"detail":"CSRF Failed: CSRF cookie not set."}`},
		{"plain CONNECT needs the token", newReq("CONNECT", "HTTP/1.1", 1, nil), "CONNECT", true, `{"detail":"CSRF Failed: CSRF cookie not set."}`},
		{"POST, no session, own origin", newReq("POST", "HTTP/1.1", 1, map[string]string{"Origin": "http://APP.example"}), "POST", false, ""},
		{"POST, no session, https origin for http", newReq("POST", "HTTP/1.1", 1, map[string]string{"Origin": "https://app.example"}), "POST", false, originRefused("https://app.example")},
		{"POST, no session, origin with path", newReq("POST", "HTTP/1.1", 1, map[string]string{"Origin": "http://app.example/"}), "POST", false, originRefused("http://app.example/")},
		{"GET cross-site link", newReq("GET", "HTTP/1.1", 1, map[string]string{"Sec-Fetch-Site": "cross-site"}), "GET", true, ""},
		{"unknown method, own origin, no token", newReq("GET", "HTTP/1.1", 1, map[string]string{"Origin": "http://app.example"}), "", true, ""},
		{"unknown method, evil", newReq("GET", "HTTP/1.1", 1, map[string]string{"Origin": "https://evil.example"}), "", true, originRefused("https://evil.example")},
	}
	for _, c := range checks {
		if got := caddymodule.CrossSiteCheck(trusted, c.r, c.method, c.session); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	// With the cookie and a good token, the token rule passes.
	r := newReq("DELETE", "HTTP/1.1", 1, map[string]string{"Origin": "https://trusted.example", "X-CSRFToken": "valid", "Cookie": "csrftoken=x"})
	if got := caddymodule.CrossSiteCheck(trusted, r, "DELETE", true); got != "" {
		t.Errorf("trusted DELETE with token: %s", got)
	}
}
