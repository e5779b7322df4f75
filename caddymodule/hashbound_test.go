package caddymodule_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
)

// adminSite is a site of a real Caddy whose admin endpoint listens on a
// free port (admin is the endpoint's base URL).
type adminSite struct {
	*site
	admin string
}

// startAdminCaddy loads a config with the admin endpoint on a free port and
// one site per session_auth block body in blocks (each with its own
// users_db, in front of one echo upstream).
func startAdminCaddy(t *testing.T, global string, blocks ...string) []*adminSite {
	t.Helper()
	dir := t.TempDir()
	upstream := echoUpstream(t)
	client := &http.Client{
		Timeout:       time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	adminPort := freePort(t)
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "{\n\tadmin 127.0.0.1:%d\n\tpersist_config off\n\tstorage file_system %s\n%s}\n",
		adminPort, filepath.Join(os.Getenv("XDG_DATA_HOME"), "caddy"), global)
	var sites []*adminSite
	for i, block := range blocks {
		s := &site{t: t, dbPath: filepath.Join(dir, fmt.Sprintf("users-%d.db", i)), upstream: upstream, port: freePort(t), client: client}
		s.base = fmt.Sprintf("http://127.0.0.1:%d", s.port)
		fmt.Fprintf(&cfg, "http://127.0.0.1:%d {\n\tsession_auth {\n\t\tusers_db %s\n", s.port, s.dbPath)
		for line := range strings.SplitSeq(strings.TrimSpace(block), "\n") {
			fmt.Fprintf(&cfg, "\t\t%s\n", strings.TrimSpace(line))
		}
		fmt.Fprintf(&cfg, "\t}\n\treverse_proxy %s\n}\n", strings.TrimPrefix(upstream.URL, "http://"))
		sites = append(sites, &adminSite{s, admin})
	}
	sites[0].load(cfg.String())
	t.Cleanup(func() {
		if err := caddy.Load([]byte(`{"admin":{"disabled":true}}`), true); err != nil {
			t.Errorf("stopping caddy's admin endpoint: %v", err)
		}
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})
	return sites
}

// adminPost posts a JSON body to the admin API.
func (a *adminSite) adminPost(t testing.TB, path, body string) *response {
	t.Helper()
	hr, err := http.NewRequest("POST", a.admin+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(hr)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &response{resp, b}
}

// One bound on argon2 for the whole process: two handlers with different
// hash_concurrency and the admin API's user management share it, so that
// what runs at once never exceeds the smallest configured figure.
func TestHashConcurrencyIsProcessWide(t *testing.T) {
	sites := startAdminCaddy(t, "",
		"hash_concurrency 1\nlogin_throttle off\nregister_throttle off",
		"hash_concurrency 3\nlogin_throttle off\nregister_throttle off")
	a, b := sites[0], sites[1]

	// One at a time, argon2 under -race on a small machine may take a
	// second or two: let the requests wait for their turn.
	defer caddymodule.SetHashWait(time.Minute)()
	peak := caddymodule.TrackHashPeak()
	began := time.Now()
	var wg sync.WaitGroup
	for i := range 2 {
		for _, s := range []*adminSite{a, b} {
			wg.Go(func() {
				r, err := s.try(t, req{method: "POST", path: "/api/login/", body: credsJSON(fmt.Sprintf("nobody%d", i), "wrong-guess")})
				if err != nil {
					t.Errorf("login: %v", err)
				} else if r.StatusCode != 400 {
					t.Errorf("login: %d %s", r.StatusCode, r.body)
				}
			})
		}
		wg.Go(func() {
			r := a.adminPost(t, "/session-auth/create-user?users_db="+b.dbPath,
				fmt.Sprintf(`{"username":"made%d","email":"m%d@example.com","password":%q}`, i, i, strongPassword))
			if r.StatusCode != 200 {
				t.Errorf("admin create-user: %d %s", r.StatusCode, r.body)
			}
		})
	}
	wg.Wait()
	t.Logf("6 hashes in %v", time.Since(began).Round(time.Millisecond))
	if n := peak(); n != 1 {
		t.Errorf("%d password hashes ran at once, want 1 (the smallest hash_concurrency) for the whole process", n)
	}
}

// The bound follows the config: a reload that changes hash_concurrency
// applies it once the old config is gone.
func TestHashConcurrencyFollowsReloads(t *testing.T) {
	s := startSite(t, "", "hash_concurrency 1")
	if n := caddymodule.HashLimit(); n != 1 {
		t.Errorf("bound %d with hash_concurrency 1", n)
	}
	s.reloadWith("", "hash_concurrency 3")
	if n := caddymodule.HashLimit(); n != 3 {
		t.Errorf("bound %d after a reload to hash_concurrency 3", n)
	}
	s.reloadWith("", "hash_concurrency 2")
	if n := caddymodule.HashLimit(); n != 2 {
		t.Errorf("bound %d after a reload to hash_concurrency 2", n)
	}
	wantStatus(t, "register", s.register(t, "hasher", "h@example.com", strongPassword), 201)
}
