package bolt

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/storetest"
)

var bg = context.Background()

// newTestStore opens a fresh store in a temporary directory.
func newTestStore(t testing.TB) (*Store, *bbolt.DB) {
	t.Helper()
	db, err := OpenDB(filepath.Join(t.TempDir(), "users.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := NewStore(db)
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) users.Store {
		s, _ := newTestStore(t)
		return s
	})
}

func mustCreate(t testing.TB, s users.Store, u *users.User) *users.User {
	t.Helper()
	if err := s.Create(bg, u); err != nil {
		t.Fatalf("Create(%q): %v", u.Username, err)
	}
	return u
}

// bbolt's sequence is transactional: failed creates and batches consume no
// ids (PostgreSQL's does not promise that).
func TestIDsHaveNoGaps(t *testing.T) {
	s, _ := newTestStore(t)
	mustCreate(t, s, &users.User{Username: "alice"})
	if err := s.Create(bg, &users.User{Username: "ALICE"}); !errors.Is(err, users.ErrUsernameTaken) {
		t.Fatal(err)
	}
	if _, err := s.CreateMany(bg, []*users.User{{Username: "x"}, {ID: 500, Username: "alice"}}, false); err == nil {
		t.Fatal("CreateMany with a clash succeeded")
	}
	if u := mustCreate(t, s, &users.User{Username: "bob"}); u.ID != 2 {
		t.Errorf("id after failed creates = %d, want 2", u.ID)
	}
}

func TestCorruptRecordIsError(t *testing.T) {
	s, db := newTestStore(t)
	u := mustCreate(t, s, &users.User{Username: "eve"})
	err := db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(usersBucket).Put(idKey(u.ID), []byte{recordVersion, 0, 200})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ByID(bg, u.ID); !errors.Is(err, errCorrupt) {
		t.Errorf("ByID of corrupt record: err = %v", err)
	}
	if _, err := s.ByUsername(bg, "eve"); !errors.Is(err, errCorrupt) {
		t.Errorf("ByUsername of corrupt record: err = %v", err)
	}
	if _, err := s.List(bg); !errors.Is(err, errCorrupt) {
		t.Errorf("List with corrupt record: err = %v", err)
	}
	if _, err := s.Update(bg, u.ID, func(*users.User) error { return nil }); !errors.Is(err, errCorrupt) {
		t.Errorf("Update of corrupt record: err = %v", err)
	}
	// Deleting it works and frees the name.
	if err := s.Delete(bg, u.ID); err != nil {
		t.Fatalf("Delete of corrupt record: %v", err)
	}
	mustCreate(t, s, &users.User{Username: "eve"})
}

func TestPersistsAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "users.db")
	db, err := OpenDB(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewStore(db)
	u := mustCreate(t, s, &users.User{Username: "frank", PasswordHash: "h", LastLogin: time.Now()})
	db.Close()

	db, err = OpenDB(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, _ = NewStore(db)
	got, err := s.ByUsername(bg, "Frank")
	if err != nil {
		t.Fatal(err)
	}
	if *got != *u {
		t.Errorf("after reopen got %+v, want %+v", *got, *u)
	}
	if u2 := mustCreate(t, s, &users.User{Username: "gina"}); u2.ID != 2 {
		t.Errorf("id after reopen = %d, want 2", u2.ID)
	}
}

func TestPing(t *testing.T) {
	s, db := newTestStore(t)
	if err := s.Ping(bg); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := s.Ping(bg); err == nil {
		t.Fatal("Ping of a closed database succeeded")
	}
}
