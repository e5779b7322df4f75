//go:build linux

package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// The example this test runs: examples/scale-out/Caddyfile.sidecar and
// Caddyfile.balancer, as they are, configured through their environment
// variables.
func scaleOutExample(t *testing.T, name string) string {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(here)), "examples", "scale-out", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// scaleOut is N sidecar processes sharing one PostgreSQL (a fresh schema)
// and one Redis, each in front of its own echo upstream (which says which
// sidecar it is behind), optionally behind a balancer process.
type scaleOut struct {
	pgURL     string
	sidecars  []*caddyProc
	adminAddr []string
	lb        *caddyProc
	client    *http.Client
}

func startScaleOut(t *testing.T, n int, balancer bool) *scaleOut {
	t.Helper()
	bin := caddyBinary(t)
	pg := testpg.New(t)
	rd := testredis.Start(t)
	sidecarFile := scaleOutExample(t, "Caddyfile.sidecar")
	c := &scaleOut{pgURL: pg.URL, client: &http.Client{
		Timeout:       20 * time.Second,
		Transport:     &http.Transport{MaxIdleConnsPerHost: 64},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	var addrs []string
	for i := range n {
		name := fmt.Sprintf("sidecar%d", i+1)
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]string{
				"instance": name, "username": r.Header.Get("X-Auth-Username"), "user_id": r.Header.Get("X-Auth-User-Id"),
			})
		}))
		t.Cleanup(up.Close)
		port, admin := freePort(t), fmt.Sprintf("127.0.0.1:%d", freePort(t))
		dir := filepath.Join(t.TempDir(), name)
		os.MkdirAll(dir, 0o700)
		p := startCaddyProc(t, bin, dir, sidecarFile, port,
			"USERS_DB="+pg.URL, "REDIS_URL="+rd.URL(), fmt.Sprintf("SIDECAR_PORT=%d", port),
			"APP_UPSTREAM="+strings.TrimPrefix(up.URL, "http://"), "ADMIN_ADDR="+admin)
		c.sidecars = append(c.sidecars, p)
		c.adminAddr = append(c.adminAddr, admin)
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	for _, p := range c.sidecars {
		c.waitHealthy(t, p)
	}
	if balancer {
		port := freePort(t)
		dir := filepath.Join(t.TempDir(), "balancer")
		os.MkdirAll(dir, 0o700)
		env := []string{fmt.Sprintf("SITE_ADDRESS=http://127.0.0.1:%d", port), fmt.Sprintf("ADMIN_ADDR=127.0.0.1:%d", freePort(t))}
		for i, a := range addrs {
			env = append(env, fmt.Sprintf("SIDECAR_%d=%s", i+1, a))
		}
		c.lb = startCaddyProc(t, bin, dir, scaleOutExample(t, "Caddyfile.balancer"), port, env...)
	}
	return c
}

func (c *scaleOut) waitHealthy(t *testing.T, p *caddyProc) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, body := get(t, c.client, p.base+"/api/health/", "")
		if st == 200 && strings.Contains(body, `"users_backend":"postgres"`) && strings.Contains(body, `"session_cache":"active"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health of %s: %d %s\n%s", p.base, st, body, p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// send makes one request with an X-Forwarded-For (the client's IP as the
// balancer and the sidecars trust it), returning status and body; a
// transport error is status 0.
func (c *scaleOut) send(method, url, cookie, csrf, ip string, body any) (int, string) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	hr, _ := http.NewRequest(method, url, rd)
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if cookie != "" {
		hr.Header.Set("Cookie", cookie)
	}
	if csrf != "" {
		hr.Header.Set("X-CSRFToken", csrf)
	}
	if ip != "" {
		hr.Header.Set("X-Forwarded-For", ip)
	}
	resp, err := c.client.Do(hr)
	if err != nil {
		return 0, err.Error()
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

func registration(name string) map[string]string {
	return map[string]string{"username": name, "email": strings.ToLower(name) + "@example.com",
		"password": strongPassword, "password2": strongPassword}
}

// gatedAs reads the echo of a gated request: which sidecar served it, as
// whom.
func gatedAs(body string) (instance, username string) {
	var v map[string]string
	json.Unmarshal([]byte(body), &v)
	return v["instance"], v["username"]
}

// Three sidecar processes (the example's Caddyfile.sidecar) on one
// PostgreSQL and one Redis behind a Caddy balancer (Caddyfile.balancer,
// round robin): issue 10's multi-instance test.
func TestScaleOutThreeInstances(t *testing.T) {
	c := startScaleOut(t, 3, true)
	lb := c.lb.base

	// Register and log in through the balancer.
	if st, body := c.send("POST", lb+"/api/register/", "", "", "10.1.0.1", registration("carol")); st != 201 {
		t.Fatalf("register through the balancer: %d %s", st, body)
	}
	cookie, csrf := login(t, c.client, lb, "carol")

	// 300 gated requests through the balancer: all 200, as carol, served by
	// every sidecar.
	served := map[string]int{}
	for i := range 300 {
		st, body := c.send("GET", lb+"/app/page", cookie, "", "10.1.0.1", nil)
		inst, who := gatedAs(body)
		if st != 200 || who != "carol" {
			t.Fatalf("gated request %d: %d %s", i, st, body)
		}
		served[inst]++
	}
	if len(served) != 3 {
		t.Errorf("300 gated requests reached %d sidecars, want 3: %v", len(served), served)
	}
	t.Logf("300 gated requests through the balancer, all 200 as carol: %v", served)

	// Logout on one sidecar: the session is refused on all of them.
	if st, body := c.send("POST", c.sidecars[0].base+"/api/logout/", cookie, csrf, "", nil); st != 200 {
		t.Fatalf("logout on sidecar1: %d %s", st, body)
	}
	for i, p := range c.sidecars {
		if st, body := get(t, c.client, p.base+"/app/page", cookie); st != 403 {
			t.Errorf("sidecar%d after the logout on sidecar1: %d %s, want 403", i+1, st, body)
		}
	}

	// Deactivation through the CLI (on PostgreSQL directly): refused on all
	// within 1 s.
	cookie, _ = login(t, c.client, lb, "carol")
	for _, p := range c.sidecars {
		if st, _ := get(t, c.client, p.base+"/app/page", cookie); st != 200 {
			t.Fatalf("fresh session refused on %s: %d", p.base, st)
		}
	}
	l := &cliLog{t: t}
	l.ok("", "deactivate", "--username", "carol", "--db", c.pgURL)
	done := time.Now()
	for i, p := range c.sidecars {
		for {
			st, body := get(t, c.client, p.base+"/app/page", cookie)
			if st != 200 {
				if st != 403 {
					t.Fatalf("sidecar%d, the user deactivated: %d %s, want 403", i+1, st, body)
				}
				t.Logf("sidecar%d refuses the deactivated user %v after the CLI returned", i+1, time.Since(done).Round(time.Microsecond))
				break
			}
			if time.Since(done) > time.Second {
				t.Fatalf("sidecar%d still accepts a user deactivated %v ago", i+1, time.Since(done))
			}
		}
	}
	if st, body := c.send("POST", lb+"/api/login/", "", "", "10.1.0.1", map[string]string{"username": "carol", "password": strongPassword}); st == 200 {
		t.Errorf("a deactivated user logged in: %s", body)
	}
	l.ok("", "activate", "--username", "carol", "--db", c.pgURL)

	// The login throttle counts across sidecars: 5 wrong passwords for dave,
	// spread over the three, and dave is banned on every one.
	if st, body := c.send("POST", lb+"/api/register/", "", "", "10.1.0.2", registration("dave")); st != 201 {
		t.Fatalf("register dave: %d %s", st, body)
	}
	for i := range 5 {
		p := c.sidecars[i%3]
		if st, body := c.send("POST", p.base+"/api/login/", "", "", "10.2.0.9", map[string]string{"username": "dave", "password": "wrong-" + fmt.Sprint(i)}); st != 400 && st != 401 && st != 403 {
			t.Fatalf("wrong password %d on %s: %d %s", i+1, p.base, st, body)
		}
	}
	for i, p := range c.sidecars {
		if st, body := c.send("POST", p.base+"/api/login/", "", "", fmt.Sprintf("10.3.0.%d", i+1), map[string]string{"username": "dave", "password": strongPassword}); st != 429 {
			t.Errorf("dave after 5 wrong passwords over three sidecars, on sidecar%d: %d %s, want 429", i+1, st, body)
		}
	}

	// 50 concurrent registrations of case variants of one name, spread over
	// the sidecars: exactly one 201.
	var wg sync.WaitGroup
	codes := make([]int, 50)
	variants := []string{"zed", "Zed", "ZED", "zEd", "zeD", "ZeD", "ＺＥＤ", "ｚｅｄ"}
	start := make(chan struct{})
	for i := range 50 {
		wg.Go(func() {
			<-start
			codes[i], _ = c.send("POST", c.sidecars[i%3].base+"/api/register/", "", "", fmt.Sprintf("10.4.%d.%d", i/200, i%200+1),
				registration(variants[i%len(variants)]))
		})
	}
	close(start)
	wg.Wait()
	created := 0
	for i, code := range codes {
		switch code {
		case 201:
			created++
		case 400:
		default:
			t.Errorf("registration %d of a variant of zed: %d", i, code)
		}
	}
	if created != 1 {
		t.Errorf("50 concurrent case-variant registrations: %d got 201, want exactly 1 (%v)", created, codes)
	}
	var zeds int
	pgc := (&testpg.DB{URL: c.pgURL}).Conn(t)
	if err := pgc.QueryRow(context.Background(), "SELECT count(*) FROM session_auth_users WHERE lower(username) = 'zed'").Scan(&zeds); err != nil || zeds != 1 {
		t.Errorf("%d zed rows (%v)", zeds, err)
	}

	// kill -9 of one sidecar under load: every request that starts after it
	// is dead succeeds through the balancer's retries, and no acknowledged
	// registration is lost.
	cookie, _ = login(t, c.client, lb, "carol")
	type result struct {
		start  time.Time
		status int
		user   string
		body   string
	}
	var (
		mu      sync.Mutex
		results []result
		stop    atomic.Bool
		seq     atomic.Int64
	)
	for w := range 4 {
		wg.Go(func() {
			for !stop.Load() {
				var r result
				r.start = time.Now()
				if w == 0 { // one worker registers, three read
					n := seq.Add(1)
					r.user = fmt.Sprintf("load%d", n)
					r.status, r.body = c.send("POST", lb+"/api/register/", "", "", fmt.Sprintf("10.5.%d.%d", n/200, n%200+1), registration(r.user))
				} else {
					r.status, r.body = c.send("GET", lb+"/app/page", cookie, "", "10.1.0.1", nil)
				}
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	victim := c.sidecars[1]
	victim.kill()
	killed := time.Now()
	time.Sleep(3 * time.Second)
	stop.Store(true)
	wg.Wait()

	var before, after, failedAfter, regs int
	var acked []string
	for _, r := range results {
		ok := r.status == 200 || r.status == 201
		if r.user != "" && r.status == 201 {
			acked = append(acked, r.user)
		}
		if r.user != "" {
			regs++
		}
		if r.start.Before(killed) {
			before++
			continue
		}
		after++
		if !ok {
			failedAfter++
			if failedAfter <= 5 {
				t.Errorf("request started %v after the kill: %d %s", r.start.Sub(killed).Round(time.Millisecond), r.status, r.body)
			}
		}
	}
	t.Logf("under load: %d requests before the kill, %d after (%d failed), %d registrations (%d acknowledged)",
		before, after, failedAfter, regs, len(acked))
	if after < 20 || len(acked) < 3 {
		t.Errorf("too little load to show anything: %d requests after the kill, %d registrations", after, len(acked))
	}
	rows, err := pgc.Query(context.Background(), "SELECT username FROM session_auth_users")
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for rows.Next() {
		var u string
		rows.Scan(&u)
		stored = append(stored, u)
	}
	rows.Close()
	for _, u := range acked {
		if !slices.Contains(stored, u) {
			t.Errorf("acknowledged registration %q lost", u)
		}
	}
}
