package sessions

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

func newBoltStore(t testing.TB, cleanupInterval time.Duration) (*BoltStore, *bbolt.DB) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "sessions.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewBoltStore(db, cleanupInterval)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		db.Close()
	})
	return s, db
}

func mustFind(t *testing.T, s *BoltStore, token string) ([]byte, bool) {
	t.Helper()
	b, found, err := s.Find(token)
	if err != nil {
		t.Fatalf("Find(%q): %v", token, err)
	}
	return b, found
}

func TestBoltStoreCommitFindDelete(t *testing.T) {
	s, _ := newBoltStore(t, 0)
	if _, found := mustFind(t, s, "missing"); found {
		t.Fatal("found a token never committed")
	}
	if err := s.Commit("tok", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	b, found := mustFind(t, s, "tok")
	if !found || string(b) != "data" {
		t.Fatalf("Find = %q, %v; want data, true", b, found)
	}
	// Overwrite replaces data and expiry.
	if err := s.Commit("tok", []byte("new"), time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if b, _ := mustFind(t, s, "tok"); string(b) != "new" {
		t.Fatalf("after overwrite Find = %q", b)
	}
	if err := s.Commit("tok", []byte("expired"), time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, found := mustFind(t, s, "tok"); found {
		t.Fatal("overwriting with a past expiry did not expire it")
	}
	// Empty data is a valid session.
	if err := s.Commit("empty", nil, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if b, found := mustFind(t, s, "empty"); !found || len(b) != 0 {
		t.Fatalf("empty session: %q, %v", b, found)
	}
	if err := s.Delete("empty"); err != nil {
		t.Fatal(err)
	}
	if _, found := mustFind(t, s, "empty"); found {
		t.Fatal("found after Delete")
	}
	if err := s.Delete("never-existed"); err != nil {
		t.Errorf("Delete of missing token: %v", err)
	}
}

func TestBoltStoreFindCopiesData(t *testing.T) {
	s, _ := newBoltStore(t, 0)
	s.Commit("a", []byte("first"), time.Now().Add(time.Hour))
	b, _ := mustFind(t, s, "a")
	// Writes may remap bbolt's pages; a slice into them would change.
	for i := range 200 {
		s.Commit(fmt.Sprint("pad", i), bytes.Repeat([]byte{'x'}, 4096), time.Now().Add(time.Hour))
	}
	s.Commit("a", []byte("SECOND"), time.Now().Add(time.Hour))
	if string(b) != "first" {
		t.Fatalf("data returned by Find changed to %q", b)
	}
}

func TestBoltStoreExpiry(t *testing.T) {
	s, _ := newBoltStore(t, 0)
	s.Commit("short", []byte("x"), time.Now().Add(50*time.Millisecond))
	s.Commit("zero", []byte("x"), time.Time{}) // zero expiry = already expired
	if _, found := mustFind(t, s, "short"); !found {
		t.Fatal("not found before expiry")
	}
	if _, found := mustFind(t, s, "zero"); found {
		t.Fatal("zero expiry found")
	}
	time.Sleep(80 * time.Millisecond)
	if _, found := mustFind(t, s, "short"); found {
		t.Fatal("found after expiry")
	}
}

func TestBoltStoreDeleteExpired(t *testing.T) {
	s, db := newBoltStore(t, 0)
	// More than one scan and delete batch of each kind.
	const live, dead = 2500, cleanupScanBatch + 500
	err := db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(sessionsBucket)
		// Every 5th of the first 5*live entries is live: live and expired
		// entries interleave across batch boundaries.
		for i := range live + dead {
			exp := time.Now().Add(-time.Hour)
			if i%5 == 0 && i < 5*live {
				exp = time.Now().Add(time.Hour)
			}
			v := make([]byte, expiryLen+1)
			binary.BigEndian.PutUint64(v, uint64(unixNanos(exp)))
			if err := b.Put(fmt.Appendf(nil, "t%06d", i), v); err != nil {
				return err
			}
		}
		// A corrupt value is cleaned up too.
		return b.Put([]byte("corrupt"), []byte{1})
	})
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteExpired()
	if err != nil {
		t.Fatal(err)
	}
	if n != dead+1 {
		t.Errorf("DeleteExpired deleted %d, want %d", n, dead+1)
	}
	if got := countSessions(t, db); got != live {
		t.Errorf("%d sessions left, want %d", got, live)
	}
	if n, _ := s.DeleteExpired(); n != 0 {
		t.Errorf("second DeleteExpired deleted %d", n)
	}
}

func TestBoltStoreCleanupGoroutine(t *testing.T) {
	s, db := newBoltStore(t, 20*time.Millisecond)
	s.Commit("dead", []byte("x"), time.Now().Add(10*time.Millisecond))
	s.Commit("live", []byte("x"), time.Now().Add(time.Hour))
	deadline := time.Now().Add(5 * time.Second)
	for countSessions(t, db) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("cleanup goroutine did not delete the expired session")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, found := mustFind(t, s, "live"); !found {
		t.Fatal("cleanup deleted a live session")
	}
	s.Close()
	s.Close() // idempotent
}

func TestBoltStoreCloseWithoutCleanup(t *testing.T) {
	s, _ := newBoltStore(t, 0)
	s.Close()
	s.Close()
}

func TestBoltStoreCtxVariants(t *testing.T) {
	s, _ := newBoltStore(t, 0)
	ctx := context.Background()
	if err := s.CommitCtx(ctx, "t", []byte("v"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if b, found, err := s.FindCtx(ctx, "t"); err != nil || !found || string(b) != "v" {
		t.Fatalf("FindCtx = %q, %v, %v", b, found, err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.FindCtx(canceled, "t"); !errors.Is(err, context.Canceled) {
		t.Errorf("FindCtx(canceled) err = %v", err)
	}
	if err := s.CommitCtx(canceled, "t", nil, time.Now()); !errors.Is(err, context.Canceled) {
		t.Errorf("CommitCtx(canceled) err = %v", err)
	}
	if err := s.DeleteCtx(canceled, "t"); !errors.Is(err, context.Canceled) {
		t.Errorf("DeleteCtx(canceled) err = %v", err)
	}
	if err := s.DeleteCtx(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := s.FindCtx(ctx, "t"); found {
		t.Fatal("found after DeleteCtx")
	}
}

// A stored value too short to hold its expiry is reported as corrupt
// (ErrCorrupt, which callers treat as no session), not as a store failure.
func TestBoltStoreCorruptValueIsError(t *testing.T) {
	s, db := newBoltStore(t, 0)
	db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(sessionsBucket).Put([]byte("bad"), []byte{1, 2}) })
	if _, _, err := s.Find("bad"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Find of a corrupt value: err = %v, want ErrCorrupt", err)
	}
	if _, _, err := s.FindCtx(context.Background(), "bad"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("FindCtx of a corrupt value: err = %v, want ErrCorrupt", err)
	}
}

// Run with -race: concurrent Find/Commit/Delete with cleanup running.
func TestBoltStoreConcurrentUse(t *testing.T) {
	s, _ := newBoltStore(t, time.Millisecond)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				tok := fmt.Sprintf("g%d-%d", g, i%5)
				val := fmt.Appendf(nil, "v%d", i)
				if err := s.Commit(tok, val, time.Now().Add(time.Hour)); err != nil {
					t.Error(err)
					return
				}
				b, found, err := s.Find(tok)
				if err != nil || !found || !bytes.Equal(b, val) {
					t.Errorf("Find(%s) = %q, %v, %v; want %q", tok, b, found, err, val)
					return
				}
				if i%7 == 0 {
					if err := s.Delete(tok); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

func countSessions(t *testing.T, db *bbolt.DB) int {
	t.Helper()
	n := 0
	db.View(func(tx *bbolt.Tx) error {
		n = tx.Bucket(sessionsBucket).Stats().KeyN
		return nil
	})
	return n
}
