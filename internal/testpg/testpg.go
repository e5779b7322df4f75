// Package testpg gives tests a real PostgreSQL. It is for tests only.
//
// The server is, in this order: the one on 127.0.0.1:5432 if it answers
// (trust authentication as user postgres, as on the development machines
// and CI); else a private cluster made with initdb and run from a temporary
// directory, if the PostgreSQL binaries are installed
// (/usr/lib/postgresql/*/bin); else the one named by
// SESSION_AUTH_TEST_POSTGRES (a postgres:// URL); else the test is skipped,
// loudly, or fails if SESSION_AUTH_REQUIRE_POSTGRES=1.
//
// Each test binary gets a fresh database, session_auth_test_<time>_<random>,
// dropped when the tests end (testpg.Main or testpg.Run in TestMain), and
// each test a fresh schema in it (New), dropped at its cleanup: the URL New
// returns sets search_path to that schema, so the code under test sees an
// empty database of its own.
package testpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables read by New.
const (
	// EnvURL names an external PostgreSQL (a postgres:// URL whose user
	// may create databases, or at least schemas in its database), used
	// when none answers on 127.0.0.1:5432 and no binaries are installed.
	EnvURL = "SESSION_AUTH_TEST_POSTGRES"
	// EnvRequire, set to 1, turns "no PostgreSQL available" from a skip
	// into a failure, so CI cannot pass by silently skipping.
	EnvRequire = "SESSION_AUTH_REQUIRE_POSTGRES"
)

// localURL is the server this machine kind runs.
const localURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=5"

// run is the state of one test binary: the server and its database.
var run struct {
	mu      sync.Mutex
	main    bool   // Run was called
	done    bool   // setup was attempted
	err     error  // why there is no server (skip or fail)
	base    string // URL of the run's database
	source  string // where the server came from, for logs
	dbName  string // the run's database, to drop ("" if not ours)
	admin   string // URL to drop it from
	private *cluster
}

// Main is TestMain for a package whose tests use New:
//
//	func TestMain(m *testing.M) { testpg.Main(m) }
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run runs the tests and then drops the run's database and stops a private
// cluster. Use it in place of m.Run in a TestMain that does more.
func Run(m *testing.M) int {
	run.mu.Lock()
	run.main = true
	run.mu.Unlock()
	code := m.Run()
	if err := teardown(); err != nil {
		fmt.Fprintln(os.Stderr, "testpg:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// DB is a fresh, empty schema for one test.
type DB struct {
	// URL is a postgres:// URL for the run's database with search_path
	// set to Schema: tables the code under test creates land there.
	URL string
	// Schema is the schema's name.
	Schema string
	// Source says which server this is, e.g. "127.0.0.1:5432".
	Source string
}

// New returns a fresh schema for t, dropped at t.Cleanup, or skips t (fails
// it if SESSION_AUTH_REQUIRE_POSTGRES=1) when there is no PostgreSQL.
func New(t testing.TB) *DB {
	t.Helper()
	base, source, err := setup()
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("testpg: %s=1 but there is no PostgreSQL: %v", EnvRequire, err)
		}
		t.Skipf("SKIPPING: no PostgreSQL: %v (set %s=1 to make this a failure)", err, EnvRequire)
	}
	schema := schemaName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := execOn(ctx, base, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("testpg: creating schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := execOn(ctx, base, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("testpg: dropping schema %s: %v", schema, err)
		}
	})
	return &DB{URL: withParam(base, "search_path", schema), Schema: schema, Source: source}
}

// Conn returns a connection to d (search_path set to its schema) for
// setting up or inspecting data, closed at t.Cleanup.
func (d *DB) Conn(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, d.URL)
	if err != nil {
		t.Fatalf("testpg: connecting: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// setup finds a server and creates the run's database, once.
func setup() (base, source string, err error) {
	run.mu.Lock()
	defer run.mu.Unlock()
	if !run.main {
		return "", "", fmt.Errorf("testpg.New needs testpg.Main(m) (or testpg.Run) in the package's TestMain, which drops the test database at the end")
	}
	if run.done {
		return run.base, run.source, run.err
	}
	run.done = true
	run.err = findServer()
	return run.base, run.source, run.err
}

func findServer() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var tried []string

	// 1. The machine's own server.
	if answers("127.0.0.1:5432") {
		err := createRunDB(ctx, localURL)
		if err == nil {
			run.source = "127.0.0.1:5432"
			return nil
		}
		tried = append(tried, fmt.Sprintf("127.0.0.1:5432 answers but: %v", err))
	} else {
		tried = append(tried, "nothing answers on 127.0.0.1:5432")
	}

	// 2. A private cluster.
	if bin := binDir(); bin != "" {
		c, err := startCluster(bin)
		if err == nil {
			run.private = c
			if err = createRunDB(ctx, c.url); err == nil {
				run.source = "private cluster (" + bin + ")"
				return nil
			}
		}
		tried = append(tried, fmt.Sprintf("private cluster from %s: %v", bin, err))
	} else {
		tried = append(tried, "no PostgreSQL binaries in /usr/lib/postgresql/*/bin (Debian package postgresql)")
	}

	// 3. The one named by the environment.
	if raw := os.Getenv(EnvURL); raw != "" {
		err := createRunDB(ctx, raw)
		if err == nil {
			run.source = EnvURL
			return nil
		}
		// No right to create databases: use the URL's own, one schema a
		// test as always.
		if err2 := execOn(ctx, raw, "SELECT 1"); err2 == nil {
			run.base, run.source = raw, EnvURL
			return nil
		}
		tried = append(tried, fmt.Sprintf("%s: %v", EnvURL, err))
	} else {
		tried = append(tried, EnvURL+" is not set")
	}
	return fmt.Errorf("%s", strings.Join(tried, "; "))
}

// createRunDB creates session_auth_test_<unix time>_<random> on the server
// at admin, after dropping those that runs killed before their cleanup left
// behind (a day old, no longer in use).
func createRunDB(ctx context.Context, admin string) error {
	dropStale(ctx, admin)
	name := fmt.Sprintf("session_auth_test_%d_%s", time.Now().Unix(), randomHex(4))
	if err := execOn(ctx, admin, "CREATE DATABASE "+name); err != nil {
		return err
	}
	run.dbName, run.admin = name, admin
	u, err := url.Parse(admin)
	if err != nil {
		return err
	}
	u.Path = "/" + name
	run.base = u.String()
	return nil
}

var runDBName = regexp.MustCompile(`^session_auth_test_([0-9]+)_[0-9a-f]+$`)

func dropStale(ctx context.Context, admin string) {
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		return
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE 'session_auth_test_%'")
	if err != nil {
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		m := runDBName.FindStringSubmatch(n)
		if m == nil {
			continue
		}
		if created, _ := strconv.ParseInt(m[1], 10, 64); time.Since(time.Unix(created, 0)) > 24*time.Hour {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+n) // fails if in use: fine
		}
	}
}

// teardown drops the run's database and stops a private cluster.
func teardown() error {
	run.mu.Lock()
	defer run.mu.Unlock()
	var errs []string
	if run.dbName != "" && run.private == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE ends connections a test may have leaked (PostgreSQL 13+).
		if err := execOn(ctx, run.admin, "DROP DATABASE IF EXISTS "+run.dbName+" WITH (FORCE)"); err != nil {
			errs = append(errs, fmt.Sprintf("dropping database %s: %v", run.dbName, err))
		}
	}
	if run.private != nil {
		if err := run.private.stop(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func execOn(ctx context.Context, rawURL, sql string) error {
	c, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, sql)
	return err
}

func answers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// schemaName is t_<test name>_<random>, within PostgreSQL's 63 bytes.
func schemaName(t testing.TB) string {
	name := unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return "t_" + strings.Trim(name, "_") + "_" + randomHex(4)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// withParam returns rawURL with the query parameter k set to v.
func withParam(rawURL, k, v string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}
