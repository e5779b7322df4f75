package caddymodule_test

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Cookies are Secure when the request came over TLS.
func TestSecureCookiesOverTLS(t *testing.T) {
	s := startSite(t, "", "")
	tlsPort := freePort(t)
	s.load(fmt.Sprintf(`{
	admin off
	persist_config off
	skip_install_trust
	local_certs
}
https://127.0.0.1:%d {
	tls internal
	session_auth {
		users_db %s
	}
	reverse_proxy %s
}
`, tlsPort, s.dbPath, strings.TrimPrefix(s.upstream.URL, "http://")))
	s.base = fmt.Sprintf("https://127.0.0.1:%d", tlsPort)
	s.client = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // Caddy's internal CA, test only
	}}
	// The internal CA issues the certificate in the background: wait for it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := s.client.Get(s.base + "/api/health/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS handshake: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.register(t, "secure", "s@example.com", strongPassword)
	r := s.do(t, req{method: "POST", path: "/api/login/", body: `{"username":"secure","password":"` + strongPassword + `"}`})
	if r.StatusCode != 200 || len(r.Cookies()) != 2 {
		t.Fatalf("login over TLS: %d %v", r.StatusCode, r.Header["Set-Cookie"])
	}
	for _, c := range r.Cookies() {
		if !c.Secure {
			t.Errorf("cookie %s is not Secure over TLS", c.Name)
		}
	}
	// CSRF's own-origin check uses https:// for TLS requests.
	sess := &session{id: r.cookie("sessionid").Value, csrfCookie: r.cookie("csrftoken").Value, token: r.json(t)["csrf_token"].(string)}
	if r := s.do(t, req{method: "POST", path: "/app", session: sess, csrf: true, headers: map[string]string{"Origin": s.base}}); r.StatusCode != 200 {
		t.Errorf("same-origin POST over TLS: %d %s", r.StatusCode, r.body)
	}
}
