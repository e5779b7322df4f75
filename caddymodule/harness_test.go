package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// TestMain keeps Caddy's config and data out of $HOME.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "session-auth-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	os.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	// Caddy computed its autosave path from $HOME before this ran: a config
	// loaded without persist_config off must not write there.
	caddy.ConfigAutosavePath = filepath.Join(dir, "config", "caddy", "autosave.json")
	caddymodule.UseCheapHashes() // argon2id at 1 MiB, t=1: see its doc
	code := testpg.Run(m)        // m.Run, then drops the run's PostgreSQL database
	os.RemoveAll(dir)
	os.Exit(code)
}

// site is a real Caddy, running the session_auth module in front of an
// upstream that echoes what it received.
type site struct {
	t        testing.TB
	port     int
	base     string // http://127.0.0.1:port
	dbPath   string
	upstream *httptest.Server
	client   *http.Client
}

// storeKinds runs fn once with sessions in bbolt and once in a real Redis.
func storeKinds(t *testing.T, fn func(t *testing.T, redisURL string)) {
	t.Run("bolt", func(t *testing.T) { fn(t, "") })
	t.Run("redis", func(t *testing.T) {
		srv := testredis.Start(t)
		fn(t, srv.URL())
	})
}

// echo is what the upstream saw.
type echo struct {
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Headers map[string][]string `json:"headers"`
}

func echoUpstream(t testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Test-Upstream-CORS") != "" {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			w.Header().Set("Access-Control-Allow-Credentials", "true")
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echo{r.Method, r.URL.Path, r.Header})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startSite adapts a Caddyfile with the given session_auth block body and
// loads it into this process's Caddy (replacing any running config).
func startSite(t testing.TB, redisURL string, extra string) *site {
	t.Helper()
	return startCustomSite(t, siteConfig{redisURL: redisURL, extra: throttlesOff + extra})
}

// throttlesOff: tests send many requests from one IP; throttle tests load
// their own figures.
const throttlesOff = "login_throttle off\nregister_throttle off\n"

// reloadWith loads the site's config (again) with the given extra
// session_auth lines, as `caddy reload` would.
func (s *site) reloadWith(redisURL, extra string) {
	s.t.Helper()
	s.loadCustom(siteConfig{redisURL: redisURL, extra: throttlesOff + extra})
}

// siteConfig is a site with more control than startSite gives: global
// options, and the throttles at their defaults unless extra sets them.
type siteConfig struct {
	redisURL string
	global   string // lines for the global options block
	extra    string // lines for the session_auth block
	usersDB  string // users_db: a PostgreSQL URL (default: a bbolt file in a temp dir)
	anyHost  bool   // the site answers any Host (http://:port), not only 127.0.0.1
}

// startCustomSite loads a site like startSite's, from c.
func startCustomSite(t testing.TB, c siteConfig) *site {
	t.Helper()
	// Each test's checks are padded to the dearest hash kind it checks
	// itself, not to an imported hash an earlier test verified (the
	// process's hasher remembers every kind).
	caddymodule.ForgetHashCosts()
	s := &site{t: t, dbPath: filepath.Join(t.TempDir(), "users.db"), upstream: echoUpstream(t)}
	if c.usersDB != "" {
		s.dbPath = c.usersDB
	}
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
// siteHost is the host part of the site's address.
func siteHost(c siteConfig) string {
	if c.anyHost {
		return ""
	}
	return "127.0.0.1"
}

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
http://%s:%d {
	session_auth {
		users_db %s
		%s
		hash_concurrency 4
		%s
	}
	reverse_proxy %s
}
`, filepath.Join(os.Getenv("XDG_DATA_HOME"), "caddy"), c.global, siteHost(c), s.port, s.dbPath, redisLine, c.extra,
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
	if s.client != nil {
		// A reload may close idle keep-alive connections; don't send a POST
		// into one (Go's client retries only idempotent requests).
		s.client.CloseIdleConnections()
	}
}

func (s *site) load(caddyfile string) {
	s.t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	cfg, warnings, err := adapter.Adapt([]byte(caddyfile), nil)
	if err != nil {
		s.t.Fatalf("adapting Caddyfile: %v\n%s", err, caddyfile)
	}
	for _, w := range warnings {
		s.t.Logf("adapt warning: %s", w)
	}
	if err := caddy.Load(cfg, true); err != nil {
		s.t.Fatalf("loading config: %v", err)
	}
}

// response is a finished exchange, body read.
type response struct {
	*http.Response
	body []byte
}

func (r *response) json(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body is not a JSON object: %v: %q", err, r.body)
	}
	return v
}

func (r *response) cookie(name string) *http.Cookie {
	for _, c := range r.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// req describes one request.
type req struct {
	method  string
	path    string
	body    string
	ctype   string
	headers map[string]string
	session *session // sends its cookies (and CSRF token when csrf is set)
	csrf    bool
}

// session is a logged-in client's state.
type session struct {
	id, csrfCookie, token string
	userID                float64
}

func (s *site) do(t testing.TB, q req) *response {
	t.Helper()
	// A reload can close a connection before any response (stock Caddy
	// shuts the old server down while the new one takes over); like
	// browsers, retry what the server never answered.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		resp, err := s.client.Do(s.newRequest(t, q))
		if err != nil {
			lastErr = err
			if isConnectionLost(err) {
				s.client.CloseIdleConnections()
				continue
			}
			break
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return &response{resp, b}
	}
	t.Fatalf("%s %s: %v", q.method, q.path, lastErr)
	return nil
}

func isConnectionLost(err error) bool {
	msg := err.Error()
	return strings.HasSuffix(msg, ": EOF") || strings.Contains(msg, "connection reset by peer") ||
		strings.Contains(msg, "server closed idle connection")
}

func (s *site) newRequest(t testing.TB, q req) *http.Request {
	t.Helper()
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	hr, err := http.NewRequest(q.method, s.base+q.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if q.ctype != "" {
		hr.Header.Set("Content-Type", q.ctype)
	} else if q.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if q.session != nil {
		if q.session.id != "" {
			hr.AddCookie(&http.Cookie{Name: "sessionid", Value: q.session.id})
		}
		if q.session.csrfCookie != "" {
			hr.AddCookie(&http.Cookie{Name: "csrftoken", Value: q.session.csrfCookie})
		}
		if q.csrf {
			hr.Header.Set("X-CSRFToken", q.session.token)
		}
	}
	for k, v := range q.headers {
		if strings.EqualFold(k, "Host") {
			hr.Host = v
			continue
		}
		hr.Header[k] = append(hr.Header[k], v) // keep the spelling as given
	}
	return hr
}

func (s *site) register(t testing.TB, username, email, password string) *response {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": username, "email": email, "password": password, "password2": password})
	return s.do(t, req{method: "POST", path: "/api/register/", body: string(b)})
}

// login logs in and returns the client's session state.
func (s *site) login(t testing.TB, username, password string) *session {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": username, "password": password})
	r := s.do(t, req{method: "POST", path: "/api/login/", body: string(b)})
	if r.StatusCode != 200 {
		t.Fatalf("login %s: %d %s", username, r.StatusCode, r.body)
	}
	v := r.json(t)
	sid, ct := r.cookie("sessionid"), r.cookie("csrftoken")
	if sid == nil || ct == nil {
		t.Fatalf("login set no cookies: %v", r.Header["Set-Cookie"])
	}
	return &session{id: sid.Value, csrfCookie: ct.Value, token: v["csrf_token"].(string),
		userID: v["user"].(map[string]any)["id"].(float64)}
}

// newUser registers and logs in a user with a strong password.
func (s *site) newUser(t testing.TB, username string) *session {
	t.Helper()
	if r := s.register(t, username, username+"@example.com", "Corr3ct-Horse-Battery"); r.StatusCode != 201 {
		t.Fatalf("register %s: %d %s", username, r.StatusCode, r.body)
	}
	return s.login(t, username, "Corr3ct-Horse-Battery")
}

func (r *response) echo(t testing.TB) echo {
	t.Helper()
	var e echo
	if err := json.Unmarshal(r.body, &e); err != nil || e.Method == "" {
		t.Fatalf("not an upstream echo (status %d): %q", r.StatusCode, r.body)
	}
	return e
}
