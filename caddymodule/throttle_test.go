package caddymodule_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// assertThrottled checks DRF's 429: Retry-After in whole seconds within
// (max-slack, max], and the detail naming the same figure.
func assertThrottled(t *testing.T, what string, r *response, max int) {
	t.Helper()
	assertThrottledSlack(t, what, r, max, 15)
}

// assertThrottledSince is assertThrottled for a window that opened at
// since: on a busy machine the requests before this one may have taken
// longer than assertThrottled's 15 s of slack.
func assertThrottledSince(t *testing.T, what string, r *response, max int, since time.Time) {
	t.Helper()
	assertThrottledSlack(t, what, r, max, 15+int(time.Since(since)/time.Second))
}

func assertThrottledSlack(t *testing.T, what string, r *response, max, slack int) {
	t.Helper()
	if r.StatusCode != 429 {
		t.Fatalf("%s: %d %s, want 429", what, r.StatusCode, r.body)
	}
	ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || ra > max || ra < max-slack {
		t.Errorf("%s: Retry-After %q, want %d to %d", what, r.Header.Get("Retry-After"), max-slack, max)
	}
	want := fmt.Sprintf(`{"detail":"Request was throttled. Expected available in %d seconds."}`, ra)
	if string(r.body) != want {
		t.Errorf("%s: body %s, want %s", what, r.body, want)
	}
	if r.Header.Get("Content-Type") != "application/json" || len(r.Header["Set-Cookie"]) != 0 {
		t.Errorf("%s: headers %v", what, r.Header)
	}
}

func (s *site) loginAs(t *testing.T, username, password string, headers map[string]string) *response {
	t.Helper()
	return s.do(t, req{method: "POST", path: "/api/login/", body: credsJSON(username, password), headers: headers})
}

func wantStatus(t *testing.T, what string, r *response, status int) {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s: %d %s, want %d", what, r.StatusCode, r.body, status)
	}
}

// The defaults: 5 failures for a username, 20 from an IP, within 2 minutes,
// ban for 5 minutes; 20 registrations per IP per 10 minutes.
func TestThrottleDefaults(t *testing.T) {
	s := startCustomSite(t, siteConfig{})
	registrationWindow := time.Now() // the registration throttle's window opens here
	wantStatus(t, "register victim", s.register(t, "victim", "v@example.com", strongPassword), 201)
	wantStatus(t, "register bystander", s.register(t, "bystander", "b@example.com", strongPassword), 201)
	for i := range 5 {
		wantStatus(t, fmt.Sprintf("failure %d", i+1), s.loginAs(t, "victim", "wrong-password", nil), 400)
	}
	hashes := caddymodule.CountHashes()
	// Banned, even with the right password, and refused before any hash.
	assertThrottled(t, "right password while banned", s.loginAs(t, "victim", strongPassword, nil), 300)
	assertThrottled(t, "look-alike spelling", s.loginAs(t, "ＶＩＣＴＩＭ", strongPassword, nil), 300)
	if n := hashes(); n != 0 {
		t.Errorf("%d password hashes ran for throttled logins", n)
	}
	// Another user from the same IP is not banned: 5 of 20 IP failures.
	wantStatus(t, "bystander", s.loginAs(t, "bystander", strongPassword, nil), 200)
	for i := range 15 {
		wantStatus(t, "unknown user", s.loginAs(t, fmt.Sprintf("ghost%d", i), "wrong-password", nil), 400)
	}
	assertThrottled(t, "bystander after 20 failures from the IP", s.loginAs(t, "bystander", strongPassword, nil), 300)

	// Registration: 2 done, 18 more attempts (even invalid ones) are
	// allowed, then 429 for the rest of the 10 minutes.
	for range 18 {
		wantStatus(t, "registration attempt", s.do(t, req{method: "POST", path: "/api/register/", body: `{}`}), 400)
	}
	assertThrottledSince(t, "21st registration", s.register(t, "late", "l@example.com", strongPassword), 600, registrationWindow)
}

func TestLoginThrottle(t *testing.T) {
	storeKinds(t, func(t *testing.T, redisURL string) {
		s := startCustomSite(t, siteConfig{redisURL: redisURL, extra: "login_throttle 3 7 1m 2m\nregister_throttle off"})
		s.register(t, "victim", "v@example.com", strongPassword)
		s.register(t, "bystander", "b@example.com", strongPassword)
		s.register(t, "typo", "t@example.com", strongPassword)

		// A success clears the username's count (not the IP's: 3 of 7).
		for range 2 {
			wantStatus(t, "typo failure", s.loginAs(t, "typo", "wrong-password", nil), 400)
		}
		wantStatus(t, "typo success", s.loginAs(t, "typo", strongPassword, nil), 200)
		wantStatus(t, "typo failure after success", s.loginAs(t, "typo", "wrong-password", nil), 400)
		wantStatus(t, "typo success again", s.loginAs(t, "typo", strongPassword, nil), 200)

		// 3 failures ban victim (6 IP failures so far, of 7).
		for i := range 3 {
			wantStatus(t, fmt.Sprintf("victim failure %d", i), s.loginAs(t, "victim", "wrong-password", nil), 400)
		}
		assertThrottled(t, "victim banned", s.loginAs(t, "Victim", strongPassword, nil), 120)
		wantStatus(t, "bystander", s.loginAs(t, "bystander", strongPassword, nil), 200)
		// The 7th failure from this IP bans the IP.
		wantStatus(t, "ghost", s.loginAs(t, "ghost", "wrong-password", nil), 400)
		assertThrottled(t, "IP banned", s.loginAs(t, "bystander", strongPassword, nil), 120)
	})
}

func TestRegisterThrottle(t *testing.T) {
	storeKinds(t, func(t *testing.T, redisURL string) {
		s := startCustomSite(t, siteConfig{redisURL: redisURL, extra: "register_throttle 3 1m"})
		wantStatus(t, "first", s.register(t, "one", "1@example.com", strongPassword), 201)
		wantStatus(t, "invalid", s.do(t, req{method: "POST", path: "/api/register/", body: `{}`}), 400)
		wantStatus(t, "third", s.register(t, "two", "2@example.com", strongPassword), 201)
		assertThrottled(t, "fourth", s.register(t, "three", "3@example.com", strongPassword), 60)
		// Other methods are not counted: 405 as before.
		wantStatus(t, "GET", s.do(t, req{method: "GET", path: "/api/register/"}), 405)
	})
}

// The client IP is Caddy's: X-Forwarded-For counts only from a trusted
// proxy; IPv6 clients are counted per /64.
func TestThrottleClientIP(t *testing.T) {
	xff := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip} }
	t.Run("untrusted peer", func(t *testing.T) {
		s := startCustomSite(t, siteConfig{extra: "login_throttle 100 2 1m 1m\nregister_throttle off"})
		s.register(t, "bystander", "b@example.com", strongPassword)
		s.loginAs(t, "ghost1", "wrong-password", xff("10.0.0.1"))
		s.loginAs(t, "ghost2", "wrong-password", xff("10.0.0.2"))
		// A forged header from an untrusted peer changes nothing: both
		// failures were 127.0.0.1's.
		assertThrottled(t, "spoofed X-Forwarded-For", s.loginAs(t, "bystander", strongPassword, xff("10.0.0.3")), 60)
	})
	t.Run("trusted proxy", func(t *testing.T) {
		s := startCustomSite(t, siteConfig{
			global: "servers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}",
			extra:  "login_throttle 100 2 1m 1m\nregister_throttle off",
		})
		s.register(t, "bystander", "b@example.com", strongPassword)
		s.loginAs(t, "ghost1", "wrong-password", xff("10.0.0.1"))
		s.loginAs(t, "ghost2", "wrong-password", xff("10.0.0.1"))
		assertThrottled(t, "banned client", s.loginAs(t, "bystander", strongPassword, xff("10.0.0.1")), 60)
		wantStatus(t, "other client", s.loginAs(t, "bystander", strongPassword, xff("10.0.0.2")), 200)
		wantStatus(t, "the proxy itself", s.loginAs(t, "bystander", strongPassword, nil), 200)

		s.loginAs(t, "ghost1", "wrong-password", xff("2001:db8:1:2::1"))
		s.loginAs(t, "ghost2", "wrong-password", xff("2001:db8:1:2:ffff::7"))
		assertThrottled(t, "same IPv6 /64", s.loginAs(t, "bystander", strongPassword, xff("2001:db8:1:2::99")), 60)
		wantStatus(t, "other IPv6 /64", s.loginAs(t, "bystander", strongPassword, xff("2001:db8:1:3::1")), 200)
	})
}

// With Redis the counts are in Redis, under the configured prefix: another
// instance (here, a reload onto another users DB, which gets fresh memory)
// sees the ban.
func TestThrottleSharedThroughRedis(t *testing.T) {
	srv := testredis.Start(t)
	s := startCustomSite(t, siteConfig{redisURL: srv.URL(), extra: "login_throttle 2 50 1m 1m\nthrottle_key_prefix " + srv.Prefix + "thr:"})
	s.register(t, "victim", "v@example.com", strongPassword)
	s.loginAs(t, "victim", "wrong-password", nil)
	s.loginAs(t, "victim", "wrong-password", nil)
	assertThrottled(t, "banned", s.loginAs(t, "victim", strongPassword, nil), 60)

	s.dbPath = s.dbPath + ".other"
	s.loadCustom(siteConfig{redisURL: srv.URL(), extra: "login_throttle 2 50 1m 1m\nthrottle_key_prefix " + srv.Prefix + "thr:"})
	s.client.CloseIdleConnections()
	assertThrottled(t, "banned on the other instance", s.loginAs(t, "victim", strongPassword, nil), 60)

	c, err := redis.DialURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	keys, err := redis.Strings(c.Do("KEYS", srv.Prefix+"thr:*"))
	if err != nil || len(keys) == 0 {
		t.Fatalf("no throttle keys under the prefix: %v %v", keys, err)
	}
	for _, k := range keys {
		if strings.Contains(k, "victim") {
			t.Errorf("key %q holds the username in clear", k)
		}
		if ttl, _ := redis.Int64(c.Do("PTTL", k)); ttl <= 0 {
			t.Errorf("key %q has no expiry", k)
		}
	}
}

func TestThrottleCaddyfile(t *testing.T) {
	cfg, err := adapt(":8000 {\n\tsession_auth {\n\t\tlogin_throttle 7 30 3m 10m\n\t\tregister_throttle 5 1h\n\t\tthrottle_key_prefix app:thr:\n\t}\n}")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"login_throttle":{"ban":600000000000,"ip_failures":30,"user_failures":7,"window":180000000000}`,
		`"register_throttle":{"count":5,"window":3600000000000}`,
		`"throttle_key_prefix":"app:thr:"`,
	} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("adapted config lacks %s:\n%s", want, cfg)
		}
	}
	cfg, err = adapt(":8000 {\n\tsession_auth {\n\t\tlogin_throttle off\n\t\tregister_throttle off\n\t}\n}")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), `"login_throttle":{"off":true}`) || !strings.Contains(string(cfg), `"register_throttle":{"off":true}`) {
		t.Errorf("off not adapted:\n%s", cfg)
	}
	for _, b := range []struct{ body, want string }{
		{"login_throttle 5", "want `off` or <user_failures> <ip_failures> <window> <ban>"},
		{"login_throttle 0 20 2m 5m", "user_failures: want a positive integer"},
		{"login_throttle 5 x 2m 5m", "ip_failures: want a positive integer"},
		{"login_throttle 5 20 soon 5m", "window: invalid duration"},
		{"login_throttle 5 20 2m -1s", "ban: invalid duration"},
		{"register_throttle on", "want `off` or <count> <window>"},
		{"register_throttle 20 0s", "window: invalid duration"},
		{"throttle_key_prefix", "wrong argument count"},
	} {
		_, err := adapt(":8000 {\n\tsession_auth {\n\t\t" + b.body + "\n\t}\n}")
		if err == nil || !strings.Contains(err.Error(), b.want) || !strings.Contains(err.Error(), "Caddyfile:3") {
			t.Errorf("%q: error %v, want %q naming Caddyfile:3", b.body, err, b.want)
		}
	}
}

// parallel sends n requests at once and counts the answers by status; a
// 429 must be DRF's, for at most max seconds.
func parallel(t *testing.T, s *site, n, max int, q func(i int) req) map[int]int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for i := range n {
		wg.Go(func() {
			r, err := s.try(t, q(i))
			if err != nil {
				t.Error(err)
				return
			}
			if r.StatusCode == 429 {
				ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
				if err != nil || ra > max || ra < max-15 || !strings.Contains(string(r.body), "Request was throttled. Expected available in") {
					t.Errorf("429 with Retry-After %q and %s, want about %d", r.Header.Get("Retry-After"), r.body, max)
				}
			}
			mu.Lock()
			statuses[r.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return statuses
}

// Parallel requests get no more password checks than the throttle allows:
// each is counted before its password is checked, not after it failed.
func TestLoginThrottleParallel(t *testing.T) {
	// A request that gives up waiting for a hashing slot (503 on a busy
	// machine) is not a failure and would leave the count short of the ban.
	defer caddymodule.SetHashWait(time.Minute)()
	storeKinds(t, func(t *testing.T, redisURL string) {
		s := startCustomSite(t, siteConfig{redisURL: redisURL}) // defaults: 5 20 2m 5m
		wantStatus(t, "register victim", s.register(t, "victim", "v@example.com", strongPassword), 201)
		wantStatus(t, "register bystander", s.register(t, "bystander", "b@example.com", strongPassword), 201)

		hashes := caddymodule.CountHashes()
		got := parallel(t, s, 40, 300, func(int) req {
			return req{method: "POST", path: "/api/login/", body: credsJSON("victim", "wrong-password")}
		})
		t.Logf("40 parallel wrong passwords for one username: %v", got)
		if got[400] == 0 || got[400] > 5 || got[400]+got[429] != 40 {
			t.Errorf("answers %v, want at most 5 400s and the rest 429", got)
		}
		if n := hashes(); n > 5 {
			t.Errorf("%d passwords checked for one username, limit 5", n)
		}
		assertThrottled(t, "right password after the flood", s.loginAs(t, "victim", strongPassword, nil), 300)

		// The client IP's 20: what is left of them after the flood above.
		ipLeft := 20 - got[400]
		hashes = caddymodule.CountHashes()
		got = parallel(t, s, 40, 300, func(i int) req {
			return req{method: "POST", path: "/api/login/", body: credsJSON(fmt.Sprintf("ghost%d", i), "wrong-password")}
		})
		t.Logf("40 parallel wrong logins from one IP: %v", got)
		if got[400] == 0 || got[400] > ipLeft || got[400]+got[429] != 40 {
			t.Errorf("answers %v, want at most %d 400s and the rest 429", got, ipLeft)
		}
		if n := hashes(); n > int64(ipLeft) {
			t.Errorf("%d passwords checked from one IP, %d left of its limit", n, ipLeft)
		}
		assertThrottled(t, "bystander from the banned IP", s.loginAs(t, "bystander", strongPassword, nil), 300)
	})
}

// Parallel right passwords from one IP all get in: a success gives its
// place back, and refusals ban nothing.
func TestLoginThrottleParallelSuccesses(t *testing.T) {
	s := startCustomSite(t, siteConfig{extra: "login_throttle 5 3 1m 1m\nregister_throttle off"})
	for i := range 6 {
		s.register(t, fmt.Sprintf("user%d", i), fmt.Sprintf("u%d@example.com", i), strongPassword)
	}
	got := parallel(t, s, 6, 60, func(i int) req {
		return req{method: "POST", path: "/api/login/", body: credsJSON(fmt.Sprintf("user%d", i), strongPassword)}
	})
	if got[200] == 0 || got[200]+got[429] != 6 {
		t.Errorf("answers %v, want 200s, and 429s for the rest", got)
	}
	// Whatever was refused while places were taken may come back at once.
	for i := range 6 {
		wantStatus(t, "serial login", s.loginAs(t, fmt.Sprintf("user%d", i), strongPassword, nil), 200)
	}
}

// Wrong old passwords on password/ are throttled alike.
func TestPasswordChangeThrottleParallel(t *testing.T) {
	storeKinds(t, func(t *testing.T, redisURL string) {
		s := startCustomSite(t, siteConfig{redisURL: redisURL, extra: "login_throttle 3 100 1m 1m\nregister_throttle off"})
		sess := s.newUser(t, "changer")
		hashes := caddymodule.CountHashes()
		got := parallel(t, s, 20, 60, func(int) req {
			return req{method: "POST", path: "/api/password/", session: sess, csrf: true,
				body: passwordBody("guess", "Another-0ne-Here", "Another-0ne-Here")}
		})
		t.Logf("20 parallel wrong old passwords: %v", got)
		if got[400] == 0 || got[400] > 3 || got[400]+got[429] != 20 {
			t.Errorf("answers %v, want at most 3 400s and the rest 429", got)
		}
		if n := hashes(); n > 3 {
			t.Errorf("%d old passwords checked, limit 3", n)
		}
	})
}
