package caddymodule_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// siteConfig is a site with more control than startSite gives: global
// options, and the throttles at their defaults unless extra sets them.
type siteConfig struct {
	redisURL string
	global   string // lines for the global options block
	extra    string // lines for the session_auth block
}

// startCustomSite loads a site like startSite's, from c.
func startCustomSite(t testing.TB, c siteConfig) *site {
	t.Helper()
	s := &site{t: t, dbPath: filepath.Join(t.TempDir(), "users.db"), upstream: echoUpstream(t)}
	s.port = freePort(t)
	s.base = fmt.Sprintf("http://127.0.0.1:%d", s.port)
	s.loadCustom(c)
	s.client = &http.Client{
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})
	return s
}

// loadCustom (re)loads the site's config from c, as `caddy reload` would.
func (s *site) loadCustom(c siteConfig) {
	s.t.Helper()
	redisLine := ""
	if c.redisURL != "" {
		redisLine = "redis " + c.redisURL
	}
	cfg := fmt.Sprintf(`{
	admin off
	persist_config off
	storage file_system %s
	%s
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
		%s
		hash_concurrency 4
		%s
	}
	reverse_proxy %s
}
`, filepath.Join(os.Getenv("XDG_DATA_HOME"), "caddy"), c.global, s.port, s.dbPath, redisLine, c.extra,
		strings.TrimPrefix(s.upstream.URL, "http://"))
	// Drop the blank lines that empty parts leave, so adapting does not
	// warn about formatting.
	var lines []string
	for line := range strings.SplitSeq(cfg, "\n") {
		if strings.TrimSpace(line) != "" {
			lines = append(lines, line)
		}
	}
	s.load(strings.Join(lines, "\n") + "\n")
}

// try sends one request and reports transport errors instead of failing
// the test, so it may run on any goroutine.
func (s *site) try(t testing.TB, q req) (*response, error) {
	resp, err := s.client.Do(s.newRequest(t, q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{resp, b}, nil
}

// timed runs fn and returns how long it took.
func timed(fn func()) time.Duration {
	start := time.Now()
	fn()
	return time.Since(start)
}

func credsJSON(username, password string) string {
	return fmt.Sprintf(`{"username":%q,"password":%q}`, username, password)
}
