package caddymodule_test

import (
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// getCalls is how many GETs the Redis of conn has served.
func getCalls(t *testing.T, conn redis.Conn) int64 {
	t.Helper()
	info, err := redis.String(conn.Do("INFO", "commandstats"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_get:calls="); ok {
			n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
			return n
		}
	}
	return 0
}

// sessionKey is the Redis key of a session token (scs hashes tokens).
func sessionKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "session_auth:session:" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// A session ended in Redis by someone else (another instance, an operator)
// is refused by this one within 50 ms, although it served it from its
// cache a moment before; with session_cache off, at once.
func TestSessionCacheSeesOtherWriters(t *testing.T) {
	srv := testredis.Start(t)
	for _, c := range []struct{ extra, status string }{{"", "active"}, {"session_cache off", "off"}} {
		t.Run("session_cache="+c.status, func(t *testing.T) {
			s := startSite(t, srv.URL(), c.extra)
			deadline := time.Now().Add(10 * time.Second)
			for {
				r := s.do(t, req{method: "GET", path: "/api/health/"})
				if strings.Contains(string(r.body), `"session_cache":"`+c.status+`"`) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("health: %s", r.body)
				}
				time.Sleep(20 * time.Millisecond)
			}
			sess := s.newUser(t, "cached"+c.status)
			conn, err := redis.DialURL(srv.URL())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// With the cache, a gated request soon costs Redis no GET (the
			// first fill may be spoiled by the login's own notification);
			// without it, every one costs one.
			fromMemory := false
			for range 20 {
				before := getCalls(t, conn)
				if r := s.do(t, req{method: "GET", path: "/app/page", session: sess}); r.StatusCode != 200 {
					t.Fatalf("gated GET: %d %s", r.StatusCode, r.body)
				}
				n := getCalls(t, conn) - before
				if n == 0 {
					fromMemory = true
					break
				}
				if n != 1 {
					t.Fatalf("a gated request cost %d GETs", n)
				}
			}
			if fromMemory != (c.status == "active") {
				t.Fatalf("session_cache %s: served from memory = %v", c.status, fromMemory)
			}
			if n, err := redis.Int(conn.Do("DEL", sessionKey(sess.id))); err != nil || n != 1 {
				t.Fatalf("DEL the session key: %d, %v", n, err)
			}
			deleted := time.Now()
			for {
				r := s.do(t, req{method: "GET", path: "/app/page", session: sess})
				if r.StatusCode == 403 {
					t.Logf("refused %v after the key was deleted", time.Since(deleted).Round(time.Microsecond))
					break
				}
				if r.StatusCode != 200 {
					t.Fatalf("gated GET: %d %s", r.StatusCode, r.body)
				}
				if time.Since(deleted) > 50*time.Millisecond {
					t.Fatalf("still accepted %v after the key was deleted", time.Since(deleted))
				}
			}
		})
	}
}
