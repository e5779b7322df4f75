package caddymodule_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// adminErr checks an admin API refusal: the status, a JSON {"error": …}
// that says want and shows no Go internals.
func adminErr(t *testing.T, what string, r *response, status int, want string) {
	t.Helper()
	var body struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.Error == "" {
		t.Errorf("%s: %d %s: not a JSON error", what, r.StatusCode, r.body)
		return
	}
	if r.StatusCode != status {
		t.Errorf("%s: %d %s, want %d", what, r.StatusCode, r.body, status)
	}
	if !strings.Contains(body.Error, want) {
		t.Errorf("%s: error %q does not say %q", what, body.Error, want)
	}
	for _, internal := range []string{"json:", "Go struct", "context deadline", "dial tcp", "connection refused", "EOF", "bbolt", "*"} {
		if strings.Contains(body.Error, internal) {
			t.Errorf("%s: error %q shows internals (%q)", what, body.Error, internal)
		}
	}
}

// Bad input gets a 4xx that says what is wrong in the request's terms;
// a busy server (no hashing slot in time) 503, never a 500 with a Go error.
func TestAdminAPIErrorsAreClear(t *testing.T) {
	a := startAdminCaddy(t, "", "login_throttle off\nregister_throttle off")[0]
	adminErr(t, "a number for a string", a.adminPost(t, "/session-auth/create-user", `{"username":5,"email":"a@example.com","password":"x"}`),
		400, `"username" must be a string`)
	adminErr(t, "an unknown field", a.adminPost(t, "/session-auth/create-user", `{"username":"a","bogus":1}`), 400, `unknown field "bogus"`)
	adminErr(t, "broken JSON", a.adminPost(t, "/session-auth/set-password", `{"username":`), 400, "request body")
	adminErr(t, "not an object", a.adminPost(t, "/session-auth/deactivate", `[1,2]`), 400, "want a JSON object")
	adminErr(t, "two objects", a.adminPost(t, "/session-auth/deactivate", `{"username":"a"} {"username":"b"}`), 400, "one JSON object")
	adminErr(t, "a stray bracket after the object", a.adminPost(t, "/session-auth/deactivate", `{"username":"a"}]`), 400, "one JSON object")

	r := func() *response {
		defer caddymodule.HoldHashSlots()() // released even if the request fails the test
		defer caddymodule.SetAdminWait(200 * time.Millisecond)()
		return a.adminPost(t, "/session-auth/create-user", `{"username":"busy","email":"busy@example.com","password":"Corr3ct-Horse-Battery"}`)
	}()
	adminErr(t, "no hashing slot in time", r, 503, "busy")
	if r := a.adminPost(t, "/session-auth/create-user", `{"username":"busy","email":"busy@example.com","password":"Corr3ct-Horse-Battery"}`); r.StatusCode != 200 {
		t.Errorf("create-user once the slots are free: %d %s", r.StatusCode, r.body)
	}
}

// unban with the throttle's Redis down: 503 that says so, without the
// Redis client's error.
func TestAdminAPIUnbanRedisDown(t *testing.T) {
	srv := testredis.Start(t)
	proxy := testredis.NewProxy(t, srv.Addr)
	a := startAdminCaddy(t, "", "redis redis://"+proxy.Addr+"/0\nredis_key_prefix "+srv.Prefix+"\nthrottle_key_prefix "+srv.Prefix+"t:")[0]
	if r := a.adminPost(t, "/session-auth/create-user", `{"username":"banned","email":"b@example.com","password":"Corr3ct-Horse-Battery"}`); r.StatusCode != 200 {
		t.Fatalf("create-user: %d %s", r.StatusCode, r.body)
	}
	proxy.Cut()
	defer proxy.Resume()
	adminErr(t, "unban with Redis down", a.adminPost(t, "/session-auth/unban", `{"username":"banned"}`), 503, "did not answer")
}
