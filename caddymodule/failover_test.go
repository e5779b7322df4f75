package caddymodule_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// A real failover under load: a Redis master, its replica and three
// Sentinels; a real Caddy with the sidecar finds the master through them
// (redis+sentinel://, sentinel_password, the throttles at their defaults,
// so in Redis too). Under steady load, the master is killed with SIGKILL.
//
//   - No request gets a 500, none is logged out (403, or a cookie
//     expired): while there is no master, requests that need Redis get the
//     usual 503 JSON.
//   - Service is back within the Sentinels' failover time + 2 s, with no
//     reload or restart of Caddy.
//   - Sessions created more than 1 s before the kill (and replicated: the
//     test waits for the replica's offset, as Redis replication is
//     asynchronous) are still valid after it; logins and registrations
//     work again.
func TestRedisSentinelFailover(t *testing.T) {
	const sentinelPassword = "sentinel-s3cret"
	set := testredis.StartSentinels(t, sentinelPassword)
	s := startCustomSite(t, siteConfig{
		redisURL: set.URL(""),
		extra:    "sentinel_password " + sentinelPassword,
	})
	const users = 6
	sessions := make([]*session, users)
	for i := range sessions {
		sessions[i] = s.newUser(t, fmt.Sprint("fo", i))
	}
	oldMaster, err := set.MasterAddr()
	if err != nil {
		t.Fatal(err)
	}
	set.WaitReplicated(oldMaster)
	time.Sleep(1100 * time.Millisecond) // "created more than 1 s before the kill"

	// Steady load: each worker sends gated GETs with its session.
	type result struct {
		at     time.Time
		status int
		body   string
		cookie string
	}
	var (
		mu      sync.Mutex
		results []result
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range 4 {
		sess := sessions[w%users]
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				hr := s.newRequest(t, req{method: "GET", path: "/app/page", session: sess})
				start := time.Now()
				resp, err := client.Do(hr)
				r := result{at: start}
				if err != nil {
					r.status, r.body = -1, err.Error()
				} else {
					var b strings.Builder
					buf := make([]byte, 512)
					n, _ := resp.Body.Read(buf)
					b.Write(buf[:n])
					resp.Body.Close()
					r.status, r.body, r.cookie = resp.StatusCode, b.String(), strings.Join(resp.Header["Set-Cookie"], "; ")
				}
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	time.Sleep(500 * time.Millisecond)

	killed := time.Now()
	set.Server(oldMaster).Stop() // SIGKILL
	var newMaster string
	var switched time.Time
	for {
		if a, err := set.MasterAddr(); err == nil && a != oldMaster {
			newMaster, switched = a, time.Now()
			break
		}
		if time.Since(killed) > 60*time.Second {
			close(stop)
			wg.Wait()
			t.Fatal("the Sentinels named no new master within 60 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	failover := switched.Sub(killed)
	t.Logf("Sentinels named %s the master %v after the kill (down-after %v)", newMaster, failover.Round(time.Millisecond), testredis.DownAfter)
	time.Sleep(3 * time.Second) // well past failover + 2 s
	close(stop)
	wg.Wait()

	// Every answer: 200 or the usual 503, nothing else; no cookie touched.
	var firstFail, lastFail, backAt time.Time
	var n503, n200 int
	for _, r := range results {
		switch r.status {
		case 200:
			n200++
		case 503:
			n503++
			if !strings.Contains(r.body, `"detail":"Service temporarily unavailable, try again later."`) {
				t.Errorf("503 body %q", r.body)
			}
			if firstFail.IsZero() || r.at.Before(firstFail) {
				firstFail = r.at
			}
			if r.at.After(lastFail) {
				lastFail = r.at
			}
		default:
			t.Errorf("at kill%+v: status %d %q", r.at.Sub(killed).Round(time.Millisecond), r.status, r.body)
		}
		if r.cookie != "" {
			t.Errorf("at kill%+v: a response set cookies: %s", r.at.Sub(killed).Round(time.Millisecond), r.cookie)
		}
	}
	for _, r := range results {
		if r.status == 200 && r.at.After(lastFail) && (backAt.IsZero() || r.at.Before(backAt)) {
			backAt = r.at
		}
	}
	if backAt.IsZero() {
		t.Fatalf("service never came back (%d answers, %d 503)", len(results), n503)
	}
	t.Logf("%d requests: %d 200, %d 503; 503s from kill%+v to kill%+v; service back at kill%+v, %v after the Sentinels switched",
		len(results), n200, n503, firstFail.Sub(killed).Round(time.Millisecond), lastFail.Sub(killed).Round(time.Millisecond),
		backAt.Sub(killed).Round(time.Millisecond), backAt.Sub(switched).Round(time.Millisecond))
	if back := backAt.Sub(killed); back > failover+2*time.Second {
		t.Errorf("service back %v after the kill: more than the failover's %v + 2 s", back, failover)
	}

	// Sessions from before the kill are valid; logins and registrations work.
	for i, sess := range sessions {
		if r := s.do(t, req{method: "GET", path: "/api/user/", session: sess}); r.StatusCode != 200 {
			t.Errorf("session %d from before the kill: %d %s", i, r.StatusCode, r.body)
		}
	}
	fresh := s.newUser(t, "afterfailover")
	if r := s.do(t, req{method: "GET", path: "/app/page", session: fresh}); r.StatusCode != 200 {
		t.Errorf("new session after the failover: %d %s", r.StatusCode, r.body)
	}
	again := s.login(t, "fo0", strongPassword)
	if r := s.do(t, req{method: "POST", path: "/api/logout/", session: again, csrf: true}); r.StatusCode != 200 {
		t.Errorf("logout after the failover: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, req{method: "GET", path: "/app/page", session: again}); r.StatusCode != 403 {
		t.Errorf("after logout: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, req{method: "GET", path: "/api/health/"}); r.StatusCode != 200 {
		t.Errorf("health after the failover: %d %s", r.StatusCode, r.body)
	}
}
