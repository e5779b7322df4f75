package testpg

import (
	"context"
	"os"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// Two tests get two schemas; each URL's search_path is its schema.
func TestNewGivesFreshSchemas(t *testing.T) {
	a, b := New(t), New(t)
	if a.Schema == b.Schema || !strings.Contains(a.URL, "search_path="+a.Schema) {
		t.Fatalf("schemas %q %q, URL %s", a.Schema, b.Schema, a.URL)
	}
	ctx := context.Background()
	ca := a.Conn(t)
	if _, err := ca.Exec(ctx, "CREATE TABLE x (i int)"); err != nil {
		t.Fatal(err)
	}
	var schema string
	if err := ca.QueryRow(ctx, "SELECT table_schema FROM information_schema.tables WHERE table_name = 'x'").Scan(&schema); err != nil || schema != a.Schema {
		t.Fatalf("table x landed in %q (%v), want %q", schema, err, a.Schema)
	}
	var n int
	if err := b.Conn(t).QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()").Scan(&n); err != nil || n != 0 {
		t.Fatalf("second schema has %d tables (%v), want 0", n, err)
	}
	t.Logf("server: %s, database URL %s", a.Source, a.URL)
}

// The private-cluster fallback works here too (it is what a machine
// without a running server uses).
func TestPrivateCluster(t *testing.T) {
	bin := binDir()
	if bin == "" {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("no PostgreSQL binaries in /usr/lib/postgresql/*/bin and %s=1 (Debian package postgresql)", EnvRequire)
		}
		t.Skipf("SKIPPING: no PostgreSQL binaries in /usr/lib/postgresql/*/bin (set %s=1 to make this a failure)", EnvRequire)
	}
	c, err := startCluster(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer c.stop()
	if err := execOn(context.Background(), c.url, "CREATE DATABASE probe"); err != nil {
		t.Fatal(err)
	}
	dir := c.dir
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	if isFile(dir + "/data/PG_VERSION") {
		t.Errorf("cluster files left in %s", dir)
	}
}
