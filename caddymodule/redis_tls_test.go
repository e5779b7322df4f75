package caddymodule_test

import (
	"strings"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// Sessions in a TLS-only Redis that asks for a client certificate, as a
// Redis 6 ACL user allowed only the sidecar's keys: register, log in, pass
// the gate, log out; the session cache works over the same TLS and ACL.
func TestRedisTLSACLSite(t *testing.T) {
	srv := testredis.StartTLS(t, true)
	srv.AddUser("sidecar", "sidecar-s3cret", "~session_auth:*", "&*", "+@all")
	s := startCustomSite(t, siteConfig{
		redisURL: srv.URL("sidecar:sidecar-s3cret"),
		extra: throttlesOff + "redis_tls_ca " + srv.CAFile + "\nredis_tls_cert " + srv.CertFile +
			"\nredis_tls_key " + srv.KeyFile,
	})
	sess := s.newUser(t, "tlsuser")
	if r := s.do(t, req{method: "GET", path: "/app/page", session: sess}); r.StatusCode != 200 || r.echo(t).Headers["X-Auth-Username"][0] != "tlsuser" {
		t.Fatalf("gated GET: %d %s", r.StatusCode, r.body)
	}
	// The session, and the user's session list (issue 14).
	keys, err := srv.Do("KEYS", "session_auth:session:*")
	if err != nil || len(keys.([]any)) != 2 {
		t.Fatalf("session keys in the TLS Redis: %v, %v", keys, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := s.do(t, req{method: "GET", path: "/api/health/"})
		if r.StatusCode == 200 && strings.Contains(string(r.body), `"session_cache":"active"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health: %d %s", r.StatusCode, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := s.do(t, req{method: "POST", path: "/api/logout/", session: sess, csrf: true}); r.StatusCode != 200 {
		t.Fatalf("logout: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, req{method: "GET", path: "/app/page", session: sess}); r.StatusCode != 403 {
		t.Fatalf("after logout: %d %s", r.StatusCode, r.body)
	}

	// A CA that did not sign the server's certificate: Caddy starts, the
	// health check and session requests say Redis is unreachable (503).
	s.loadCustom(siteConfig{
		redisURL: srv.URL("sidecar:sidecar-s3cret"),
		extra:    throttlesOff + "redis_tls_ca " + srv.OtherCAFile + "\nredis_tls_cert " + srv.CertFile + "\nredis_tls_key " + srv.KeyFile,
	})
	if r := s.do(t, req{method: "GET", path: "/api/health/"}); r.StatusCode != 503 || !strings.Contains(string(r.body), `"redis":"unreachable"`) {
		t.Errorf("untrusted Redis certificate: health %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, req{method: "POST", path: "/api/login/", body: credsJSON("tlsuser", strongPassword)}); r.StatusCode != 503 {
		t.Errorf("untrusted Redis certificate: login %d %s", r.StatusCode, r.body)
	}
}
