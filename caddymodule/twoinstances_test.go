//go:build linux

package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// Two sidecars (two caddy processes, each its own Redis client and session
// cache) share one Redis for sessions. 1,000 times: a user logs in on one,
// the other serves that session (from its cache), and while it is being
// hammered there with gated requests, the user logs out on the first. No
// request that starts 50 ms after the logout's response may be let
// through. Half the rounds go each way. The same for a password change:
// the token the change replaced is refused on the other instance.
//
// Each instance has its own users_db (bbolt takes an exclusive lock), made
// as copies of one file, so that both know the same users; what lives in
// the users DB (logout-all and password change ending the user's other
// sessions, deactivation: the session epoch) is not shared between them
// and is not tested here.
func TestSessionCacheTwoInstances(t *testing.T) {
	bin := caddyBinary(t)
	srv := testredis.Start(t)
	dir := t.TempDir()
	const nUsers = 8
	inst := func(name string, port int) string {
		return fmt.Sprintf(`{
	admin off
	persist_config off
}

http://127.0.0.1:%d {
	session_auth {
		users_db %s
		redis %s
		redis_key_prefix %ssession:
		hash_concurrency 2
		login_throttle off
		register_throttle off
	}
	respond "hello {http.auth.user.username}" 200
}
`, port, filepath.Join(dir, name+".db"), srv.URL(), srv.Prefix)
	}
	portA, portB := freePort(t), freePort(t)

	// The users, registered once, then the file copied for B.
	setupDir := filepath.Join(dir, "setup")
	os.MkdirAll(setupDir, 0o700)
	setup := startCaddyProc(t, bin, setupDir, inst("a", portA), portA)
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	for i := range nUsers {
		name := fmt.Sprint("twin", i)
		if st, body := postJSON(t, client, setup.base+"/api/register/", map[string]string{
			"username": name, "email": name + "@example.com", "password": strongPassword, "password2": strongPassword}, nil); st != 201 {
			t.Fatalf("register: %d %s", st, body)
		}
	}
	setup.kill()
	b, err := os.ReadFile(filepath.Join(dir, "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.db"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	dirA, dirB := filepath.Join(dir, "A"), filepath.Join(dir, "B")
	os.MkdirAll(dirA, 0o700)
	os.MkdirAll(dirB, 0o700)
	a := startCaddyProc(t, bin, dirA, inst("a", portA), portA)
	bb := startCaddyProc(t, bin, dirB, inst("b", portB), portB)
	for _, p := range []*caddyProc{a, bb} { // both caches subscribed
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, body := get(t, client, p.base+"/api/health/", "")
			if st == 200 && strings.Contains(body, `"session_cache":"active"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("health: %d %s", st, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	const rounds, parallel, grace = 1000, 4, 50 * time.Millisecond
	var (
		stale    atomic.Int64
		accepted atomic.Int64 // gated requests let through, in all
		mu       sync.Mutex
		lags     []time.Duration // per round: last accepted start − logout response
	)
	round := func(i int) {
		from, to := a, bb
		if i%2 == 1 {
			from, to = bb, a
		}
		user := fmt.Sprint("twin", i%nUsers)
		cookie, csrfToken := login(t, client, from.base, user)
		if st, body := get(t, client, to.base+"/app", cookie); st != 200 || body != "hello "+user {
			t.Errorf("round %d: the other instance refused a live session: %d %q", i, st, body)
			return
		}
		var loggedOut atomic.Int64 // unix ns of the logout's response
		var last atomic.Int64      // latest start of an accepted request
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					start := time.Now()
					st, _ := get(t, client, to.base+"/app", cookie)
					switch st {
					case 200:
						accepted.Add(1)
						for {
							l := last.Load()
							if start.UnixNano() <= l || last.CompareAndSwap(l, start.UnixNano()) {
								break
							}
						}
						if lo := loggedOut.Load(); lo != 0 && start.UnixNano() > lo+int64(grace) {
							stale.Add(1)
						}
					case 403:
					default:
						t.Errorf("round %d: gated request on the other instance: %d", i, st)
					}
				}
			})
		}
		time.Sleep(2 * time.Millisecond)
		if st, body := postJSON(t, client, from.base+"/api/logout/", nil, map[string]string{"Cookie": cookie, "X-CSRFToken": csrfToken}); st != 200 {
			t.Errorf("round %d: logout: %d %s", i, st, body)
		}
		done := time.Now()
		loggedOut.Store(done.UnixNano())
		time.Sleep(grace + 30*time.Millisecond)
		close(stop)
		wg.Wait()
		if st, _ := get(t, client, to.base+"/app", cookie); st != 403 {
			t.Errorf("round %d: session still accepted on the other instance after the logout: %d", i, st)
		}
		mu.Lock()
		lags = append(lags, time.Duration(last.Load()-done.UnixNano()))
		mu.Unlock()
	}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= rounds || t.Failed() {
					return
				}
				round(i)
			}
		})
	}
	wg.Wait()
	slices.Sort(lags)
	if len(lags) > 0 {
		t.Logf("%d logouts in %v, %d gated requests accepted on the other instance; last acceptance after the logout's response: p50 %v, p99 %v, max %v (negative: refused before the response arrived)",
			len(lags), time.Since(start).Round(time.Second), accepted.Load(), lags[len(lags)/2], lags[len(lags)*99/100], lags[len(lags)-1])
	}
	if n := stale.Load(); n != 0 {
		t.Errorf("%d stale acceptances more than %v after a logout's response", n, grace)
	}

	// A password change ends the session it replaced (a new token): the
	// old one is refused on the other instance at once.
	cookie, csrfToken := login(t, client, a.base, "twin0")
	if st, _ := get(t, client, bb.base+"/app", cookie); st != 200 {
		t.Fatal("the other instance refused a live session")
	}
	pw := map[string]string{"old_password": strongPassword, "new_password": "N3w-Horse-Battery", "new_password2": "N3w-Horse-Battery"}
	if st, body := postJSON(t, client, a.base+"/api/password/", pw, map[string]string{"Cookie": cookie, "X-CSRFToken": csrfToken}); st != 200 {
		t.Fatalf("password change: %d %s", st, body)
	}
	time.Sleep(grace)
	if st, _ := get(t, client, bb.base+"/app", cookie); st != 403 {
		t.Errorf("the token a password change replaced is still accepted on the other instance: %d", st)
	}
}

func get(t *testing.T, c *http.Client, url, cookie string) (int, string) {
	hr, _ := http.NewRequest("GET", url, nil)
	if cookie != "" {
		hr.Header.Set("Cookie", cookie)
	}
	resp, err := c.Do(hr)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return 0, ""
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

func postJSON(t *testing.T, c *http.Client, url string, v any, headers map[string]string) (int, string) {
	var body io.Reader = http.NoBody
	if v != nil {
		b, _ := json.Marshal(v)
		body = bytes.NewReader(b)
	}
	hr, _ := http.NewRequest("POST", url, body)
	hr.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		hr.Header.Set(k, v)
	}
	resp, err := c.Do(hr)
	if err != nil {
		t.Errorf("POST %s: %v", url, err)
		return 0, ""
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

// login logs in on base and returns the Cookie header value and the CSRF
// token.
func login(t *testing.T, c *http.Client, base, user string) (string, string) {
	return loginWith(t, c, base, user, strongPassword)
}

// loginWith is login with another password than strongPassword.
func loginWith(t *testing.T, c *http.Client, base, user, password string) (string, string) {
	b, _ := json.Marshal(map[string]string{"username": user, "password": password})
	resp, err := c.Post(base+"/api/login/", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("login %s: %d %s", user, resp.StatusCode, body)
	}
	var v struct {
		CSRFToken string `json:"csrf_token"`
	}
	json.Unmarshal(body, &v)
	var parts []string
	for _, ck := range resp.Cookies() {
		parts = append(parts, ck.Name+"="+ck.Value)
	}
	return strings.Join(parts, "; "), v.CSRFToken
}
