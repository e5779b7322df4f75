package sessions

import (
	"strings"
	"testing"
)

// No error about a Redis URL and no redacted form of it (the one logs
// show) may hold its password, or a piece of it, however the URL is
// malformed: a password with characters URLs reserve (unescaped, as
// people paste them), bad ports, bad hosts, bad databases, over every
// scheme, Sentinel's included.
func TestRedisURLPasswordNeverShown(t *testing.T) {
	passwords := []string{"Pa55wOrdX", "Pa55/wOrdX", "Pa55#wOrdX", "Pa55?wOrdX", "Pa55@wOrdX", "Pa55:wOrdX",
		"Pa55,wOrdX", "Pa55 wOrdX", "Pa55%zzwOrdX", "Pa55[wOrdX", "Pa55]wOrdX", "Pa55%40wOrdX"}
	templates := []string{
		"redis+sentinel://user:%s@s1:26379,s2:26379/mymaster",
		"redis+sentinel://:%s@s1:26379,s2:26379/mymaster/0",
		"redis+sentinel://%s@s1,s2/mymaster",
		"redis+sentinel://user:%s@s1:99999,s2/mymaster",
		"redis+sentinel://user:%s@s1:26379,,s2/mymaster",
		"redis+sentinel://user:%s@s1:26379/",
		"redis+sentinel://user:%s@s1:26379/m/x",
		"redis+sentinel://user:%s@/mymaster",
		"redis+sentinel://user:%s@[::1]:26379,[::2]:26379/mymaster",
		"redis+sentinel://user:%s@s1:26379/mymaster?x=1",
		"rediss+sentinel://user:%s@s1:26379/mymaster#frag",
		"redis://user:%s@host:6379/0",
		"redis://:%s@host:99999/0",
		"redis://:%s@host/abc",
		"redis://%s@/0",
		"rediss://user:%s@host:6379/0/1",
		"unix://:%s@/run/redis.sock?db=x",
		"redis://user:%s@host:6379/0?password=%s",
		"http://user:%s@host:6379/0",
	}
	for _, tpl := range templates {
		for _, pw := range passwords {
			raw := strings.ReplaceAll(tpl, "%s", pw)
			if strings.Contains(tpl, "://%s@") && strings.Contains(pw, ":") {
				continue // "Pa55:wOrdX@" is a user and a password: the user is shown
			}
			texts := map[string]string{"RedactURL": RedactURL(raw)}
			if _, err := OpenRedis(raw, RedisOptions{}); err != nil {
				texts["OpenRedis error"] = err.Error()
			} else if t, err := parseRedisURL(raw); err == nil {
				texts["redacted"] = t.redacted
			}
			if _, err := NewRedisPool(raw, PoolOptions{}); err != nil {
				texts["NewRedisPool error"] = err.Error()
			}
			for what, text := range texts {
				if strings.Contains(text, "Pa55") || strings.Contains(text, "wOrd") {
					t.Errorf("%s of %q shows (part of) the password: %s", what, raw, text)
				}
			}
		}
	}
}
