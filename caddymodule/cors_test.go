package caddymodule_test

import (
	"testing"
)

func TestCORS(t *testing.T) {
	s := startSite(t, "", "cors_origins http://localhost:3000")
	const allowed, other = "http://localhost:3000", "http://evil.example"

	t.Run("preflight", func(t *testing.T) {
		for _, path := range []string{"/api/login/", "/app/anything", "/api/user/"} {
			r := s.do(t, req{method: "OPTIONS", path: path, headers: map[string]string{"Origin": allowed, "Access-Control-Request-Method": "POST"}})
			want := map[string]string{
				"Access-Control-Allow-Origin":      allowed,
				"Access-Control-Allow-Credentials": "true",
				"Access-Control-Allow-Headers":     "accept, accept-encoding, authorization, content-type, dnt, origin, user-agent, x-csrftoken, x-requested-with",
				"Access-Control-Allow-Methods":     "DELETE, GET, OPTIONS, PATCH, POST, PUT",
				"Access-Control-Max-Age":           "86400",
				"Vary":                             "Origin",
			}
			if r.StatusCode != 200 || len(r.body) != 0 {
				t.Errorf("%s: %d %q", path, r.StatusCode, r.body)
			}
			for k, v := range want {
				if got := r.Header.Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("%s: %s = %v, want %q", path, k, got, v)
				}
			}
			o := s.do(t, req{method: "OPTIONS", path: path, headers: map[string]string{"Origin": other, "Access-Control-Request-Method": "POST"}})
			if o.StatusCode != 200 {
				t.Errorf("%s other origin: %d", path, o.StatusCode)
			}
			for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Headers", "Access-Control-Allow-Methods"} {
				if o.Header.Get(k) != "" {
					t.Errorf("%s: other origin got %s", path, k)
				}
			}
		}
	})

	sess := s.newUser(t, "corsuser")
	cases := []struct {
		name   string
		q      req
		status int
	}{
		{"api error", req{method: "POST", path: "/api/login/", body: `{}`}, 400},
		{"api success", req{method: "GET", path: "/api/user/", session: sess}, 200},
		{"gate denial", req{method: "GET", path: "/app/x"}, 403},
		{"upstream", req{method: "GET", path: "/app/x", session: sess}, 200},
		{"upstream sets its own", req{method: "GET", path: "/app/x", session: sess, headers: map[string]string{"X-Test-Upstream-CORS": "1"}}, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := c.q
			q.headers = map[string]string{"Origin": allowed}
			for k, v := range c.q.headers {
				q.headers[k] = v
			}
			r := s.do(t, q)
			if r.StatusCode != c.status {
				t.Fatalf("status %d: %s", r.StatusCode, r.body)
			}
			if got := r.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != allowed {
				t.Errorf("Allow-Origin = %v", got)
			}
			if got := r.Header.Values("Access-Control-Allow-Credentials"); len(got) != 1 || got[0] != "true" {
				t.Errorf("Allow-Credentials = %v", got)
			}
			if !varyHasOrigin(r.Header.Values("Vary")) {
				t.Errorf("Vary = %v", r.Header.Values("Vary"))
			}
			q.headers["Origin"] = other
			if r := s.do(t, q); r.Header.Get("Access-Control-Allow-Origin") == other {
				t.Error("other origin allowed")
			}
		})
	}
}

func varyHasOrigin(vals []string) bool {
	for _, v := range vals {
		for _, p := range splitComma(v) {
			if p == "Origin" {
				return true
			}
		}
	}
	return false
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			p := s[start:i]
			for len(p) > 0 && p[0] == ' ' {
				p = p[1:]
			}
			out = append(out, p)
			start = i + 1
		}
	}
	return out
}

// Caddy's own error responses (502 from an unreachable upstream) carry the
// CORS headers too.
func TestCORSOnCaddyErrors(t *testing.T) {
	s := startSite(t, "", "cors_origins http://localhost:3000")
	sess := s.newUser(t, "corserr")
	s.upstream.Close()
	r := s.do(t, req{method: "GET", path: "/app", session: sess, headers: map[string]string{"Origin": "http://localhost:3000"}})
	if r.StatusCode != 502 {
		t.Fatalf("status %d", r.StatusCode)
	}
	if got := r.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != "http://localhost:3000" {
		t.Errorf("Allow-Origin on 502 = %v", got)
	}
	if got := r.Header.Values("Access-Control-Allow-Credentials"); len(got) != 1 {
		t.Errorf("Allow-Credentials on 502 = %v", got)
	}
}
