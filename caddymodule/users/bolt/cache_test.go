package bolt

import (
	"fmt"
	"testing"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/internal/usercache"
)

// ByID fills the cache and every write through the store drops the entry
// (storetest checks that reads see writes; this checks the cache is used).
func TestByIDCacheFilledAndInvalidated(t *testing.T) {
	s, _ := newTestStore(t)
	u := mustCreate(t, s, &users.User{Username: "alice"})
	if _, err := s.ByID(bg, u.ID); err != nil {
		t.Fatal(err)
	}
	if !s.cache.Has(u.ID) {
		t.Fatal("ByID did not fill the cache")
	}
	if _, err := s.Update(bg, u.ID, func(u *users.User) error { u.SessionEpoch++; return nil }); err != nil {
		t.Fatal(err)
	}
	if s.cache.Has(u.ID) {
		t.Fatal("Update left the user cached")
	}
}

func TestUserCacheBounded(t *testing.T) {
	s, db := newTestStore(t)
	s, _ = newStore(db, 3)
	var ids []int64
	for i := range 10 {
		ids = append(ids, mustCreate(t, s, &users.User{Username: fmt.Sprint("user", i)}).ID)
	}
	for _, id := range ids {
		if got, err := s.ByID(bg, id); err != nil || got.ID != id {
			t.Fatalf("ByID(%d) = %+v, %v", id, got, err)
		}
	}
	if n := s.cache.Len(); n != 3 {
		t.Fatalf("%d cached users, want the bound 3", n)
	}
	s.cache = usercache.New(0) // disabled
	if _, err := s.ByID(bg, ids[0]); err != nil {
		t.Fatal(err)
	}
	if n := s.cache.Len(); n != 0 {
		t.Fatalf("disabled cache holds %d users", n)
	}
}
