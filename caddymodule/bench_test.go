package caddymodule_test

// Benchmarks of the module's own cost, without Caddy's server or a network:
// a provisioned SessionAuth is called directly with a reusable request and
// a discarding ResponseWriter, and a no-op next handler. See BENCHMARKS.md.
//
//	go test -run '^$' -bench . -benchmem ./caddymodule/

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/rules"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

const benchPassword = "Corr3ct-Horse-Battery"

// benchSite is a provisioned handler with one registered, logged-in user.
type benchSite struct {
	h          *caddymodule.SessionAuth
	sessionID  string
	csrfCookie string
	csrfToken  string
}

// newBenchSite provisions a SessionAuth over a temp users_db, with sessions
// in Redis when redisURL is set, then registers and logs in one user.
func newBenchSite(b *testing.B, redisURL string) *benchSite {
	b.Helper()
	return newBenchSiteWith(b, redisURL, 0, nil)
}

// newBenchSiteCache is newBenchSite with session_cache set (0: default,
// -1: off). With the cache on, it waits until the cache serves.
func newBenchSiteCache(b *testing.B, redisURL string, cache caddymodule.SessionCache) *benchSite {
	b.Helper()
	return newBenchSiteWith(b, redisURL, cache, nil)
}

// newBenchSiteWith is newBenchSiteCache with more settings (set before
// Provision).
func newBenchSiteWith(b *testing.B, redisURL string, cache caddymodule.SessionCache, configure func(h *caddymodule.SessionAuth)) *benchSite {
	b.Helper()
	h := &caddymodule.SessionAuth{
		UsersDB:         filepath.Join(b.TempDir(), "users.db"),
		Redis:           redisURL,
		HashConcurrency: 2,
		SessionCache:    cache,
	}
	if configure != nil {
		configure(h)
	}
	if redisURL != "" {
		h.RedisKeyPrefix = "bench:" + filepath.Base(b.TempDir()) + ":"
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	// Without a Caddy config, ctx.Logger() is zap's development logger on
	// stderr, bound at Provision: point it at /dev/null so that per-request
	// log lines (login) neither clutter the output nor cost a terminal write.
	if devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
		stderr := os.Stderr
		os.Stderr = devnull
		defer func() { os.Stderr = stderr }()
		b.Cleanup(func() { devnull.Close() })
	}
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		h.Cleanup()
		cancel()
	})
	s := &benchSite{h: h}

	body, _ := json.Marshal(map[string]string{"username": "bench", "email": "bench@example.com",
		"password": benchPassword, "password2": benchPassword})
	if w := s.call(b, "POST", "/api/register/", string(body), ""); w.Code != http.StatusCreated {
		b.Fatalf("register: %d %s", w.Code, w.Body)
	}
	w := s.call(b, "POST", "/api/login/", loginBody, "")
	if w.Code != http.StatusOK {
		b.Fatalf("login: %d %s", w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		switch c.Name {
		case "sessionid":
			s.sessionID = c.Value
		case "csrftoken":
			s.csrfCookie = c.Value
		}
	}
	var v struct {
		CSRFToken string `json:"csrf_token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil || s.sessionID == "" || s.csrfCookie == "" {
		b.Fatalf("login response: %v %v %s", err, w.Result().Cookies(), w.Body)
	}
	s.csrfToken = v.CSRFToken
	if redisURL != "" && cache >= 0 {
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(s.call(b, "GET", "/api/health/", "", "").Body.String(), `"session_cache":"active"`) {
			if time.Now().After(deadline) {
				b.Fatal("session cache not active")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return s
}

var loginBody = `{"username":"bench","password":"` + benchPassword + `"}`

// call sends one request through the handler (setup only: it allocates).
func (s *benchSite) call(b *testing.B, method, path, body, cookie string) *httptest.ResponseRecorder {
	b.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	w := httptest.NewRecorder()
	if err := s.h.ServeHTTP(w, r, nopNext); err != nil {
		b.Fatal(err)
	}
	return w
}

var nopNext = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })

// discardWriter is an http.ResponseWriter that keeps only the status and
// reuses its header map, so that the harness allocates nothing per request.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
func (w *discardWriter) reset()                      { clear(w.h); w.status = http.StatusOK }

// caddyRequest is a request whose context is set up as Caddy's server does
// (replacer, vars, original request...), built once and reused.
func caddyRequest(method, target string) (*http.Request, *discardWriter) {
	w := &discardWriter{h: http.Header{}}
	r := httptest.NewRequest(method, target, nil)
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
	return r, w
}

// serveLoop runs the request r through the handler b.N times, restoring
// what the handler changes in the request (Cookie header) between runs.
func (s *benchSite) serveLoop(b *testing.B, r *http.Request, w *discardWriter, want int) {
	b.Helper()
	cookie := r.Header["Cookie"]
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.Header["Cookie"] = cookie
		w.reset()
		if err := s.h.ServeHTTP(w, r, nopNext); err != nil {
			b.Fatal(err)
		}
		if w.status != want {
			b.Fatalf("status %d, want %d", w.status, want)
		}
	}
}

// stores runs fn with sessions in bbolt, then in a real Redis with the
// session cache (the default) and without it (session_cache off), then
// with users in PostgreSQL and sessions in Redis.
func stores(b *testing.B, fn func(b *testing.B, s *benchSite)) {
	b.Run("store=bolt", func(b *testing.B) { fn(b, newBenchSite(b, "")) })
	b.Run("store=redis", func(b *testing.B) {
		srv := testredis.Start(b)
		fn(b, newBenchSite(b, srv.URL()))
	})
	b.Run("store=redis-nocache", func(b *testing.B) {
		srv := testredis.Start(b)
		fn(b, newBenchSiteCache(b, srv.URL(), -1))
	})
	// Users in PostgreSQL (the scale-out setup), sessions in Redis with
	// its cache: the user read is served from the PostgreSQL store's
	// cache, which NOTIFY keeps exact.
	b.Run("store=redis+postgres", func(b *testing.B) {
		srv, pg := testredis.Start(b), testpg.New(b)
		fn(b, newBenchSiteWith(b, srv.URL(), 0, func(h *caddymodule.SessionAuth) { h.UsersDB = pg.URL }))
	})
}

// BenchmarkGate is the hot path: a GET with a live session, through to the
// (no-op) next handler with identity headers set and the cookie dropped.
func BenchmarkGate(b *testing.B) {
	stores(b, func(b *testing.B, s *benchSite) {
		r, w := caddyRequest("GET", "/app/page?q=1")
		r.Header.Set("Cookie", "sessionid="+s.sessionID+"; csrftoken="+s.csrfCookie)
		r.Header.Set("Accept", "text/html")
		s.serveLoop(b, r, w, http.StatusOK)
	})
}

// BenchmarkGateParallel is BenchmarkGate from 16×GOMAXPROCS goroutines, as
// many requests in flight as bench/run's 32 connections on 2 CPUs: store
// and lock contention, and Redis pipelining, show here.
func BenchmarkGateParallel(b *testing.B) {
	stores(b, func(b *testing.B, s *benchSite) {
		b.ReportAllocs()
		b.SetParallelism(16)
		b.ResetTimer() // not the site's set-up (a PostgreSQL schema takes a second)
		b.RunParallel(func(pb *testing.PB) {
			r, w := caddyRequest("GET", "/app/page?q=1")
			cookie := []string{"sessionid=" + s.sessionID + "; csrftoken=" + s.csrfCookie}
			for pb.Next() {
				r.Header["Cookie"] = cookie
				w.reset()
				if err := s.h.ServeHTTP(w, r, nopNext); err != nil || w.status != http.StatusOK {
					b.Fatal(w.status, err)
				}
			}
		})
	})
}

// BenchmarkGateCSRF is an unsafe request with a live session: the gate
// plus Django's CSRF checks (Origin, cookie, masked token).
func BenchmarkGateCSRF(b *testing.B) {
	stores(b, func(b *testing.B, s *benchSite) {
		r, w := caddyRequest("POST", "http://example.com/app/form")
		r.Header.Set("Cookie", "sessionid="+s.sessionID+"; csrftoken="+s.csrfCookie)
		r.Header.Set("Origin", "http://example.com")
		r.Header.Set("X-CSRFToken", s.csrfToken)
		s.serveLoop(b, r, w, http.StatusOK)
	})
}

// BenchmarkUserEndpoint is GET /api/user/ with a live session.
func BenchmarkUserEndpoint(b *testing.B) {
	stores(b, func(b *testing.B, s *benchSite) {
		r, w := caddyRequest("GET", "/api/user/")
		r.Header.Set("Cookie", "sessionid="+s.sessionID+"; csrftoken="+s.csrfCookie)
		s.serveLoop(b, r, w, http.StatusOK)
	})
}

// BenchmarkDenyAnonymous is a gated request without a session cookie: no
// store is read.
func BenchmarkDenyAnonymous(b *testing.B) {
	s := newBenchSite(b, "")
	r, w := caddyRequest("GET", "/app/page")
	r.Header.Set("Cookie", "theme=dark")
	s.serveLoop(b, r, w, http.StatusForbidden)
}

// BenchmarkDenyUnknownSession is a gated request with a well-formed cookie
// that names no session: one store miss, and the cookie is expired.
func BenchmarkDenyUnknownSession(b *testing.B) {
	stores(b, func(b *testing.B, s *benchSite) {
		r, w := caddyRequest("GET", "/app/page")
		r.Header.Set("Cookie", "sessionid="+strings.Repeat("A", 43))
		s.serveLoop(b, r, w, http.StatusForbidden)
	})
}

// BenchmarkLogin is POST /api/login/: one argon2id verification (19 MiB, 2
// passes), a user update (last_login) and a new session committed.
func BenchmarkLogin(b *testing.B) {
	stores(b, func(b *testing.B, s *benchSite) {
		b.ReportAllocs()
		for b.Loop() {
			r := httptest.NewRequest("POST", "/api/login/", strings.NewReader(loginBody))
			r.Header.Set("Content-Type", "application/json")
			w := &discardWriter{h: http.Header{}, status: http.StatusOK}
			if err := s.h.ServeHTTP(w, r, nopNext); err != nil || w.status != http.StatusOK {
				b.Fatal(w.status, err)
			}
		}
	})
}

// benchRules are the three example rules.
var benchRules = []rules.Spec{
	{Who: []string{"staff"}, Paths: []string{"/admin/*"}},
	{Who: []string{"group:analysts", "group:managers"}, Paths: []string{"/reports/*"}},
	{Who: []string{"group:editors"}, Methods: []string{"POST", "PUT", "PATCH", "DELETE"}, Paths: []string{"/articles/*"}},
}

// BenchmarkGatePermissions is BenchmarkGate with the three rules and the
// identity token on, for a user in two groups: a request that no rule
// matches and one that the second rule decides (the user passes), each
// getting the groups header and the cached token.
func BenchmarkGatePermissions(b *testing.B) {
	for _, redis := range []bool{false, true} {
		name := "store=bolt"
		if redis {
			name = "store=redis"
		}
		b.Run(name, func(b *testing.B) {
			url := ""
			if redis {
				url = testredis.Start(b).URL()
			}
			s := newBenchSiteWith(b, url, 0, func(h *caddymodule.SessionAuth) {
				h.Rules = benchRules
				h.IdentityToken = &caddymodule.IdentityToken{}
			})
			acc := &accounts.Service{Store: caddymodule.UsersOf(s.h.UsersDB)}
			for _, g := range []string{"analysts", "editors"} {
				if _, _, err := acc.AddToGroup(context.Background(), 1, g); err != nil {
					b.Fatal(err)
				}
			}
			for _, path := range []string{"/app/page?q=1", "/reports/q4"} {
				b.Run("path="+strings.Split(path, "/")[1], func(b *testing.B) {
					r, w := caddyRequest("GET", path)
					r.Header.Set("Cookie", "sessionid="+s.sessionID+"; csrftoken="+s.csrfCookie)
					r.Header.Set("Accept", "text/html")
					s.serveLoop(b, r, w, http.StatusOK)
					if r.Header.Get("X-Auth-Token") == "" || r.Header.Get("X-Auth-Groups") != "analysts,editors" {
						b.Fatalf("no token or groups: %v", r.Header)
					}
				})
			}
		})
	}
}

// BenchmarkGateTwoFactorPolicy is BenchmarkGate under `two_factor required
// group:ops` for a user outside ops: the policy's cost on every request
// (the user's groups, no store read; a session flag only for named users).
func BenchmarkGateTwoFactorPolicy(b *testing.B) {
	s := newBenchSiteWith(b, "", 0, func(h *caddymodule.SessionAuth) {
		h.TwoFactor = &caddymodule.TwoFactor{Policy: "required", Who: []string{"group:ops"}}
	})
	r, w := caddyRequest("GET", "/app/page?q=1")
	r.Header.Set("Cookie", "sessionid="+s.sessionID+"; csrftoken="+s.csrfCookie)
	r.Header.Set("Accept", "text/html")
	s.serveLoop(b, r, w, http.StatusOK)
}
