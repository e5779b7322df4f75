package sessions

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// rediss:// with a CA and a client certificate generated for the test,
// logging in as a Redis 6 ACL user; and what fails, fails with a reason
// and without the password.
func TestRedisTLSAndACL(t *testing.T) {
	srv := testredis.StartTLS(t, true)
	srv.AddUser("app", "app-s3cret", "~session_auth:*", "&*", "+@all")
	good, err := TLSConfigFromFiles(srv.CAFile, srv.CertFile, srv.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	c := openClient(t, srv.URL("app:app-s3cret"), RedisOptions{TLS: good})
	store := cachedStore(t, c, "session_auth:session:", 100) // the cache's connection is TLS and ACL too
	exp := time.Now().Add(hour)
	if err := store.Commit("tok", session(t, exp, "one"), exp); err != nil {
		t.Fatal(err)
	}
	if d, found, err := store.Find("tok"); err != nil || !found || valueOf(t, d) != "one" {
		t.Fatalf("Find = %v, %v", found, err)
	}
	conn := c.Pool.Get()
	who, err := redis.String(conn.Do("ACL", "WHOAMI"))
	conn.Close()
	if err != nil || who != "app" {
		t.Errorf("ACL WHOAMI = %q, %v", who, err)
	}
	// The ACL user may touch only its keys: the store's are among them.
	if err := NewRedisStore(c, "elsewhere:", 0).Commit("tok", []byte("x"), exp); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("write outside the user's keys = %v, want NOPERM", err)
	}

	other, err := TLSConfigFromFiles(srv.OtherCAFile, srv.CertFile, srv.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	noClientCert, err := TLSConfigFromFiles(srv.CAFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		name, url string
		opts      RedisOptions
		want      string
	}{
		{"untrusted server certificate", srv.URL("app:app-s3cret"), RedisOptions{TLS: other}, "certificate"},
		{"system roots only", srv.URL("app:app-s3cret"), RedisOptions{}, "certificate"},
		{"no client certificate", srv.URL("app:app-s3cret"), RedisOptions{TLS: noClientCert}, ""},
		{"wrong password", srv.URL("app:wrong-s3cret"), RedisOptions{TLS: good}, "WRONGPASS"},
		{"plain redis:// to a TLS port", "redis://app:app-s3cret@" + srv.Addr + "/0", RedisOptions{}, ""},
	} {
		c, err := OpenRedis(bad.url, bad.opts)
		if err != nil {
			t.Fatalf("%s: %v", bad.name, err)
		}
		err = NewRedisStore(c, "session_auth:session:", 0).Commit("x", []byte("x"), exp)
		c.Close()
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: Commit = %v, want an error with %q", bad.name, err, bad.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error shows the password: %v", bad.name, err)
		}
		t.Logf("%s: %v", bad.name, err)
	}
}

func TestTLSConfigFromFiles(t *testing.T) {
	srv := testredis.StartTLS(t, false)
	for _, c := range []struct{ ca, cert, key, want string }{
		{"/nonexistent/ca.pem", "", "", "CA file"},
		{srv.CertFile + ".missing", "", "", "no such file"},
		{srv.KeyFile, "", "", "no PEM certificate"},
		{srv.CAFile, srv.CertFile, "", "needs its key"},
		{srv.CAFile, "", srv.KeyFile, "needs its certificate"},
		{srv.CAFile, srv.CertFile, srv.CAFile, "client certificate"},
	} {
		if _, err := TLSConfigFromFiles(c.ca, c.cert, c.key); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("TLSConfigFromFiles(%q, %q, %q) = %v, want %q", c.ca, c.cert, c.key, err, c.want)
		}
	}
	if _, err := OpenRedis("redis://127.0.0.1:1/0", RedisOptions{TLS: new(tls.Config)}); err == nil {
		t.Error("TLS settings with a plain redis:// URL were accepted")
	}
}
