package caddymodule_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"go.etcd.io/bbolt"
)

func adapt(src string) ([]byte, error) {
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	return cfg, err
}

func TestCaddyfile(t *testing.T) {
	// No `order` option, no route block: the directive has its place.
	cfg, err := adapt(`:8000 {
	session_auth {
		users_db ./data/users.db
		redis redis://127.0.0.1:6379/0
		redis_key_prefix app:
		api_prefix /auth
		session_cookie sid 1d
		csrf_cookie xsrf 2d
		cors_origins http://localhost:3000 https://app.example
		csrf_trusted_origins https://admin.example
		max_body_size 32KiB
		hash_concurrency 2
		db_lock_timeout 5s
		identity_headers Remote-User-Id Remote-User Remote-Email
	}
	reverse_proxy 127.0.0.1:9000
}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"handler":"session_auth"`, `"users_db":"./data/users.db"`, `"redis":"redis://127.0.0.1:6379/0"`,
		`"redis_key_prefix":"app:"`, `"api_prefix":"/auth"`, `"session_cookie":"sid"`, `"session_max_age":86400000000000`,
		`"csrf_cookie":"xsrf"`, `"cors_origins":["http://localhost:3000","https://app.example"]`,
		`"csrf_trusted_origins":["https://admin.example"]`, `"max_body_bytes":32768`, `"hash_concurrency":2`,
		`"identity_headers":{"email":"Remote-Email","user_id":"Remote-User-Id","username":"Remote-User"}`,
	} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("adapted config lacks %s:\n%s", want, cfg)
		}
	}
	// session_auth comes before reverse_proxy in the route.
	if i, j := strings.Index(string(cfg), "session_auth"), strings.Index(string(cfg), "reverse_proxy"); i < 0 || j < i {
		t.Error("session_auth not ordered before reverse_proxy")
	}

	bad := []struct{ body, want string }{
		{"bogus 1", `unknown session_auth subdirective "bogus"`},
		{"users_db", "wrong argument count"},
		{"max_body_size lots", "invalid size"},
		{"hash_concurrency 0", "positive integer"},
		{"session_cookie sid forever", "invalid max age"},
		{"redis a b", "wrong argument count"},
	}
	for _, b := range bad {
		_, err := adapt(":8000 {\n\tsession_auth {\n\t\t" + b.body + "\n\t}\n}")
		if err == nil || !strings.Contains(err.Error(), b.want) || !strings.Contains(err.Error(), "Caddyfile:3") {
			t.Errorf("%q: error %v, want %q naming Caddyfile:3", b.body, err, b.want)
		}
	}
}

func TestInvalidJSONConfig(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ field, want string }{
		{`"cors_origins":["localhost:3000"]`, "not an origin"},
		{`"session_cookie":"bad name"`, "invalid cookie name"},
		{`"login_page":"login"`, "already one of the API's endpoints"},
		{`"health_path":"/api/user/"`, "already one of the API's endpoints"},
		{`"login_redirect":"//evil.example/"`, "login_redirect"},
		{`"login_redirect":"javascript:alert(1)"`, "login_redirect"},
	} {
		cfg := fmt.Sprintf(`{"admin":{"disabled":true},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:%d"],"routes":[{"handle":[{"handler":"session_auth","users_db":%q,%s}]}]}}}}}`,
			freePort(t), filepath.Join(dir, "u.db"), c.field)
		err := caddy.Load([]byte(cfg), true)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.field, err)
		}
	}
}

// Another process holding the bbolt file: start-up fails fast and says why.
func TestUsersDBLockedElsewhere(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	// flock is per open file, so a second open in this process conflicts
	// as another process's would.
	other, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	cfg, err := adapt(fmt.Sprintf("{\n\tadmin off\n}\nhttp://127.0.0.1:%d {\n\tsession_auth {\n\t\tusers_db %s\n\t\tdb_lock_timeout 300ms\n\t}\n}", freePort(t), path))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = caddy.Load(cfg, true)
	if err == nil {
		caddy.Stop()
		t.Fatal("config loaded although the DB is locked")
	}
	if !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("error does not say the file is in use: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v to fail", d)
	}
}

// Reloads provision the new config before cleaning up the old one: the
// shared DB must not deadlock on its own lock, and sessions survive.
func TestReloadKeepsDBAndSessions(t *testing.T) {
	storeKinds(t, func(t *testing.T, redisURL string) {
		s := startSite(t, redisURL, "")
		sess := s.newUser(t, "reloader")
		for i := range 3 {
			done := make(chan struct{})
			go func() {
				defer close(done)
				s.reloadWith(redisURL, fmt.Sprintf("cors_origins http://r%d.example", i))
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("reload hung")
			}
			if r := s.do(t, req{method: "GET", path: "/api/user/", session: sess}); r.StatusCode != 200 {
				t.Fatalf("after reload %d: %d %s", i, r.StatusCode, r.body)
			}
		}
		// Moving to another users_db in a reload works too.
		s.dbPath = filepath.Join(t.TempDir(), "other.db")
		s.reloadWith(redisURL, "")
		if r := s.register(t, "reloader", "r@example.com", strongPassword); r.StatusCode != 201 {
			t.Errorf("register in the new DB: %d %s", r.StatusCode, r.body)
		}
	})
}
