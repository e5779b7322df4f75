package users

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

func createUser(t *testing.T, s *BoltStore, name string) *User {
	t.Helper()
	u := &User{Username: name, Email: name + "@example.com", PasswordHash: "x", IsActive: true}
	if err := s.Create(u); err != nil {
		t.Fatal(err)
	}
	return u
}

func mustByID(t *testing.T, s *BoltStore, id int64) *User {
	t.Helper()
	u, err := s.ByID(id)
	if err != nil {
		t.Fatalf("ByID(%d): %v", id, err)
	}
	return u
}

// Every write through the store is seen by the next ByID, cached or not.
func TestByIDCacheFollowsWrites(t *testing.T) {
	s, _ := newTestStore(t)
	u := createUser(t, s, "alice")
	mustByID(t, s, u.ID) // cached now
	if _, ok := s.cache.m[u.ID]; !ok {
		t.Fatal("ByID did not fill the cache")
	}

	if _, err := s.Update(u.ID, func(u *User) error { u.SessionEpoch++; u.IsActive = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := mustByID(t, s, u.ID); got.SessionEpoch != 1 || got.IsActive {
		t.Fatalf("after Update, ByID = epoch %d active %v", got.SessionEpoch, got.IsActive)
	}
	// A failed Update leaves the stored (and cached) user as it was.
	boom := errors.New("boom")
	if _, err := s.Update(u.ID, func(u *User) error { u.Email = "changed"; return boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if got := mustByID(t, s, u.ID); got.Email != "alice@example.com" {
		t.Fatalf("after failed Update, email = %q", got.Email)
	}
	if err := s.Delete(u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ByID(u.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ByID after Delete: %v", err)
	}
	// An id reused by an explicit Create is read afresh.
	again := &User{ID: u.ID, Username: "bob", Email: "bob@example.com", PasswordHash: "y", IsActive: true}
	if err := s.Create(again); err != nil {
		t.Fatal(err)
	}
	if got := mustByID(t, s, u.ID); got.Username != "bob" {
		t.Fatalf("ByID of re-created id = %q", got.Username)
	}
}

func TestByIDReturnsCopies(t *testing.T) {
	s, _ := newTestStore(t)
	u := createUser(t, s, "carol")
	a := mustByID(t, s, u.ID)
	a.Username, a.SessionEpoch = "mallory", 99
	if b := mustByID(t, s, u.ID); b.Username != "carol" || b.SessionEpoch != 0 || b == a {
		t.Fatalf("a caller's change reached the cache: %+v", b)
	}
}

func TestUserCacheBounded(t *testing.T) {
	s, _ := newTestStore(t)
	s.cache = newUserCache(3)
	var ids []int64
	for i := range 10 {
		ids = append(ids, createUser(t, s, fmt.Sprint("user", i)).ID)
	}
	for _, id := range ids {
		if got := mustByID(t, s, id); got.ID != id {
			t.Fatalf("ByID(%d) = user %d", id, got.ID)
		}
	}
	if n := len(s.cache.m); n != 3 {
		t.Fatalf("%d cached users, want the bound 3", n)
	}
	s.cache = newUserCache(0) // disabled
	mustByID(t, s, ids[0])
	if n := len(s.cache.m); n != 0 {
		t.Fatalf("disabled cache holds %d users", n)
	}
}

// A fill that read its value before a write ended must not land after the
// write's invalidation: it would bring the old value back for good.
func TestUserCacheFillRacingWrite(t *testing.T) {
	c := newUserCache(10)
	_, gen := c.get(1) // a ByID misses, reads the old record...
	c.invalidate(1)    // ...while an Update commits and invalidates
	c.put(&User{ID: 1, SessionEpoch: 0}, gen)
	if u, _ := c.get(1); u != nil {
		t.Fatal("stale fill landed after the invalidation")
	}
	_, gen = c.get(1)
	c.put(&User{ID: 1, SessionEpoch: 1}, gen)
	if u, _ := c.get(1); u == nil || u.SessionEpoch != 1 {
		t.Fatalf("fill without a racing write: %+v", u)
	}
}

// Run with -race: readers fill the cache while a writer bumps the epoch;
// a ByID that starts after an Update returned always sees that Update.
func TestByIDCacheConcurrent(t *testing.T) {
	s, _ := newTestStore(t)
	u := createUser(t, s, "dave")
	const writes = 200
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if got, err := s.ByID(u.ID); err != nil || got.SessionEpoch < 0 || got.SessionEpoch > writes {
					t.Errorf("ByID = %+v, %v", got, err)
					return
				}
			}
		}()
	}
	for i := range writes {
		if _, err := s.Update(u.ID, func(u *User) error { u.SessionEpoch++; return nil }); err != nil {
			t.Fatal(err)
		}
		if got := mustByID(t, s, u.ID); got.SessionEpoch != int64(i+1) {
			t.Fatalf("ByID after Update %d: epoch %d", i+1, got.SessionEpoch)
		}
	}
	close(stop)
	wg.Wait()
}

// BenchmarkByIDUncached is ByID's bbolt path (a cache miss).
func BenchmarkByIDUncached(b *testing.B) {
	s, _ := newTestStore(b)
	s.cache = newUserCache(0)
	u := &User{Username: "bench", Email: "bench@example.com", PasswordHash: "x", IsActive: true}
	if err := s.Create(u); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ByID(u.ID); err != nil {
			b.Fatal(err)
		}
	}
}
