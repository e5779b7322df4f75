//go:build unix

package caddymodule_test

import (
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// A Redis that hangs (SIGSTOP: connections accepted, nothing answered) is
// refused within the pool's timeouts (2 s per command, not retried), not
// waited on; when it resumes, so does service.
func TestRedisHangs(t *testing.T) {
	srv := testredis.Start(t)
	if !srv.Private() {
		t.Skip("external Redis: cannot freeze it")
	}
	s := startCustomSite(t, siteConfig{redisURL: srv.URL()})
	sess := s.newUser(t, "patient")

	srv.Freeze()
	for _, c := range []struct {
		name string
		q    req
	}{
		{"gated GET", req{method: "GET", path: "/app/page", session: sess}},
		{"login", req{method: "POST", path: "/api/login/", body: credsJSON("patient", strongPassword)}},
	} {
		var r *response
		took := timed(func() { r = s.do(t, c.q) })
		assertUnavailable(t, c.name+" with Redis hung", r, took)
		t.Logf("%s with Redis hung: %d in %v", c.name, r.StatusCode, took.Round(time.Millisecond))
	}
	srv.Thaw()
	if r := s.do(t, req{method: "GET", path: "/app/page", session: sess}); r.StatusCode != 200 {
		t.Errorf("first request after Redis resumed: %d %s", r.StatusCode, r.body)
	}
}
