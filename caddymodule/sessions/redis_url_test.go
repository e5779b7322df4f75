package sessions

import (
	"strings"
	"testing"
)

func TestParseRedisURLValid(t *testing.T) {
	cases := []struct{ url, network, address string }{
		{"redis://127.0.0.1:6379/0", "tcp", "127.0.0.1:6379"},
		{"redis://localhost", "tcp", "localhost:6379"},
		{"redis://localhost/", "tcp", "localhost:6379"},
		{"redis://:pw@cache.internal:6380/2", "tcp", "cache.internal:6380"},
		{"redis://user:pw@cache.internal/15", "tcp", "cache.internal:6379"},
		{"rediss://pw@cache.internal:6380", "tcp", "cache.internal:6380"},
		{"redis://[::1]:7000/1", "tcp", "[::1]:7000"},
		{"unix:///run/redis/redis.sock", "unix", "/run/redis/redis.sock"},
		{"unix://:pw@/run/redis.sock?db=3", "unix", "/run/redis.sock"},
	}
	for _, c := range cases {
		target, err := parseRedisURL(c.url)
		if err != nil {
			t.Errorf("parseRedisURL(%q): %v", c.url, err)
			continue
		}
		if target.network != c.network || target.address != c.address {
			t.Errorf("parseRedisURL(%q) = %s %s, want %s %s", c.url, target.network, target.address, c.network, c.address)
		}
		if strings.Contains(target.redacted, "pw") {
			t.Errorf("redacted form %q of %q shows the password", target.redacted, c.url)
		}
	}
}

func TestParseRedisURLInvalid(t *testing.T) {
	cases := map[string]string{ // URL -> expected fragment of the error
		"":                                "missing scheme",
		"localhost:6379":                  "scheme://host",
		"http://localhost:6379":           "unsupported scheme",
		"redis://":                        "missing host",
		"redis:///0":                      "missing host",
		"redis://s3cret@/0":               "missing host",
		"redis://host:0":                  "invalid port",
		"redis://:s3cret@host:99999":      "invalid port",
		"redis://:s3cret@host:port/0":     "not parseable",
		"redis://host:port/0":             "invalid port",
		"redis://u:s3cret@host/abc":       "invalid database",
		"redis://host/-1":                 "invalid database",
		"redis://host/1/2":                "path must be",
		"redis://host/0?password=s3cret":  "unexpected query",
		"redis://host/0#s3cret":           "fragment",
		"unix://host/redis.sock":          "absolute socket path",
		"unix://":                         "missing socket path",
		"unix:///redis.sock?password=x":   "unexpected query parameter",
		"unix://:s3cret@/r.sock?db=x":     "invalid database",
		"redis://:s3cret@host:6379/0 bad": "invalid database",
	}
	for raw, want := range cases {
		_, err := NewRedisPool(raw, PoolOptions{})
		if err == nil {
			t.Errorf("NewRedisPool(%q) succeeded", raw)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("NewRedisPool(%q) error %q does not contain %q", raw, err, want)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("NewRedisPool(%q) error shows the password: %q", raw, err)
		}
	}
}

func TestPoolOptionsDefaults(t *testing.T) {
	p, err := NewRedisPool("redis://localhost:6379/0", PoolOptions{MaxActive: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.MaxIdle != DefaultMaxIdle || p.IdleTimeout != DefaultIdleTimeout || p.MaxActive != 10 || p.Wait {
		t.Errorf("pool = MaxIdle %d IdleTimeout %v MaxActive %d Wait %v", p.MaxIdle, p.IdleTimeout, p.MaxActive, p.Wait)
	}
}
