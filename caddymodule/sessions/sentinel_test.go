package sessions

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

func TestParseSentinelURL(t *testing.T) {
	for _, c := range []struct {
		url, master string
		sentinels   []string
		tls         bool
	}{
		{"redis+sentinel://127.0.0.1:26379/mymaster", "mymaster", []string{"127.0.0.1:26379"}, false},
		{"redis+sentinel://:pw@a:1,b:2,c/m/3", "m", []string{"a:1", "b:2", "c:26379"}, false},
		{"redis+sentinel://user:pw@[::1]:5000,10.0.0.2/m", "m", []string{"[::1]:5000", "10.0.0.2:26379"}, false},
		{"rediss+sentinel://s1:26379/m/0", "m", []string{"s1:26379"}, true},
	} {
		tg, err := parseRedisURL(c.url)
		if err != nil {
			t.Errorf("%s: %v", c.url, err)
			continue
		}
		if tg.master != c.master || strings.Join(tg.sentinels, " ") != strings.Join(c.sentinels, " ") || tg.tls != c.tls {
			t.Errorf("%s: master %q sentinels %q tls %v", c.url, tg.master, tg.sentinels, tg.tls)
		}
		if strings.Contains(tg.redacted, "pw") || !strings.Contains(tg.redacted, c.sentinels[0][:1]) {
			t.Errorf("%s: redacted as %q", c.url, tg.redacted)
		}
	}
	for raw, want := range map[string]string{
		"redis+sentinel:///m":                "missing Sentinel addresses",
		"redis+sentinel://:s3cret@/m":        "missing Sentinel addresses",
		"redis+sentinel://a:1":               "missing master name",
		"redis+sentinel://:s3cret@a:1/":      "missing master name",
		"redis+sentinel://a:1,,b:2/m":        "empty Sentinel address",
		"redis+sentinel://:s3cret@a:99999/m": "invalid Sentinel port",
		"redis+sentinel://a:x/m":             "invalid Sentinel port",
		"redis+sentinel://a:1/m/x":           "invalid database",
		"redis+sentinel://a:1/m/0/1":         "path must be",
		"redis+sentinel://a:1/m?db=1":        "unexpected query",
	} {
		_, err := OpenRedis(raw, RedisOptions{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("OpenRedis(%q) = %v, want an error with %q", raw, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("OpenRedis(%q) error shows the password: %v", raw, err)
		}
	}
	if _, err := OpenRedis("redis://a:1/0", RedisOptions{SentinelPassword: "x"}); err == nil {
		t.Error("a Sentinel password with a plain URL was accepted")
	}
	if _, err := NewRedisPool("redis+sentinel://a:1/m", PoolOptions{}); err == nil {
		t.Error("NewRedisPool took a Sentinel URL")
	}
}

// Through the Sentinels: the master is found, a failover (the master
// demoted, not killed: connections to it stay open) is followed without
// a restart, no write lands on (or is refused by) a replica once the
// Sentinels name the new master, and the session cache moves along.
func TestSentinelFailover(t *testing.T) {
	const password = "sentinel-s3cret"
	set := testredis.StartSentinels(t, password)
	prefix := "test:sentinel:"

	t.Run("wrong sentinel password", func(t *testing.T) {
		c := openClient(t, set.URL(""), RedisOptions{SentinelPassword: "wrong-s3cret"})
		err := NewRedisStore(c, prefix, 0).Commit("x", []byte("x"), time.Now().Add(hour))
		if err == nil {
			t.Fatal("Commit succeeded with a wrong Sentinel password")
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error shows a password: %v", err)
		}
		t.Logf("wrong Sentinel password: %v", err)
	})

	var logs logRecorder
	c := openClient(t, set.URL(""), RedisOptions{SentinelPassword: password, Logger: slog.New(&logs)})
	store := cachedStore(t, c, prefix, 100)
	exp := time.Now().Add(hour)
	if err := store.Commit("before", session(t, exp, "one"), exp); err != nil {
		t.Fatal(err)
	}
	if d, found, err := store.Find("before"); err != nil || !found || valueOf(t, d) != "one" {
		t.Fatalf("Find = %v, %v", found, err)
	}
	first := set.Servers[0]
	if n := keyExists(t, first.URL(), prefix+"before"); !n {
		t.Fatal("the session is not on the master")
	}

	// Stop the +switch-master watcher of a second client: it must find the
	// new master through the READONLY replies of the demoted one.
	blind := openClient(t, set.URL(""), RedisOptions{SentinelPassword: password})
	blindStore := NewRedisStore(blind, prefix, 0)
	t.Cleanup(blindStore.Close)
	if err := blindStore.Commit("blind", session(t, exp, "one"), exp); err != nil {
		t.Fatal(err)
	}
	blind.sentinel.close()

	set.WaitReplicated(first.Addr)
	start := time.Now()
	newMaster := set.Failover()
	t.Logf("Sentinels named %s the master %v after SENTINEL FAILOVER", newMaster, time.Since(start).Round(time.Millisecond))

	// The watcher follows at once; the blind client on its first write.
	var errs []error
	took := waitUntil(t, 5*time.Second, func() bool {
		err := store.Commit("after", session(t, exp, "two"), exp)
		if err != nil {
			errs = append(errs, err)
		}
		return err == nil
	})
	t.Logf("writes through the watching client back %v after the Sentinels switched (%d failed: %v)", took, len(errs), errors.Join(errs...))
	if err := blindStore.Commit("blind", session(t, exp, "two"), exp); err != nil {
		t.Errorf("first write of the client that did not watch, after the switch: %v (READONLY should have made it ask)", err)
	}
	for _, k := range []string{"after", "blind"} {
		if !keyExists(t, "redis://"+newMaster+"/0", prefix+k) {
			t.Errorf("%s is not on the new master", k)
		}
	}
	for i := range 20 { // and they keep working
		tok := fmt.Sprint("n", i)
		if err := store.Commit(tok, session(t, exp, tok), exp); err != nil {
			t.Fatalf("Commit after the failover: %v", err)
		}
		if d, found, err := store.Find(tok); err != nil || !found || valueOf(t, d) != tok {
			t.Fatalf("Find after the failover: %v, %v", found, err)
		}
	}
	if d, found, err := store.Find("before"); err != nil || !found || valueOf(t, d) != "one" {
		t.Fatalf("a session from before the failover: %v, %v", found, err)
	}
	// The cache is back on the new master: a change there is seen.
	waitStatus(t, store, "active")
	other := NewRedisStore(openClient(t, "redis://"+newMaster+"/0", RedisOptions{}), prefix, 0)
	if err := other.Delete("before"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 50*time.Millisecond, func() bool {
		_, found, err := store.Find("before")
		return err == nil && !found
	})
	if logs.count("redis master changed") == 0 {
		t.Errorf("no log line about the master change: %q", logs.all())
	}
}

func keyExists(t *testing.T, url, key string) bool {
	t.Helper()
	c, err := redis.DialURL(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n, err := redis.Int(c.Do("EXISTS", key))
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}
