package bolt

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolterrors "go.etcd.io/bbolt/errors"
)

func TestOpenDBCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "auth")
	db, err := OpenDB(filepath.Join(dir, "users.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("dir mode = %v, want 0700", perm)
	}
}

// bbolt's flock is per open file description, so a second open in the same
// process contends exactly like a second Caddy would.
func TestOpenDBLockedByOtherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	db, err := OpenDB(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	start := time.Now()
	db2, err := OpenDB(path, 100*time.Millisecond)
	if err == nil {
		db2.Close()
		t.Fatal("second OpenDB succeeded while the file was locked")
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("second OpenDB took %v, want fail-fast", elapsed)
	}
	msg := err.Error()
	for _, want := range []string{path, "in use by another process", "100ms", "stop the other Caddy"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if !errors.Is(err, bolterrors.ErrTimeout) {
		t.Errorf("error does not wrap bbolt's ErrTimeout: %v", err)
	}
}
