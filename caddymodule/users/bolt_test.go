package users

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// newTestStore opens a fresh store in a temporary directory.
func newTestStore(t testing.TB) (*BoltStore, *bbolt.DB) {
	t.Helper()
	db, err := OpenDB(filepath.Join(t.TempDir(), "users.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := NewBoltStore(db)
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

func mustCreate(t testing.TB, s Store, u *User) *User {
	t.Helper()
	if err := s.Create(u); err != nil {
		t.Fatalf("Create(%q): %v", u.Username, err)
	}
	return u
}

func TestCreateAndLookup(t *testing.T) {
	s, _ := newTestStore(t)
	before := time.Now()
	u := mustCreate(t, s, &User{Username: "Alice", Email: "a@example.com", PasswordHash: "h", IsActive: true})
	if u.ID != 1 {
		t.Errorf("first id = %d, want 1", u.ID)
	}
	if u.DateJoined.Before(before) || u.DateJoined.After(time.Now()) {
		t.Errorf("DateJoined = %v, want about now", u.DateJoined)
	}

	got, err := s.ByID(u.ID)
	if err != nil {
		t.Fatal(err)
	}
	assertSameUser(t, got, u)

	for _, name := range []string{"Alice", "alice", "ALICE", "ａｌｉｃｅ"} {
		got, err := s.ByUsername(name)
		if err != nil {
			t.Fatalf("ByUsername(%q): %v", name, err)
		}
		assertSameUser(t, got, u)
	}

	if _, err := s.ByID(999); !errors.Is(err, ErrNotFound) {
		t.Errorf("ByID(999) err = %v, want ErrNotFound", err)
	}
	if _, err := s.ByID(0); !errors.Is(err, ErrNotFound) {
		t.Errorf("ByID(0) err = %v, want ErrNotFound", err)
	}
	if _, err := s.ByUsername("nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ByUsername(nobody) err = %v, want ErrNotFound", err)
	}
}

func TestCreateUsernameUniqueCaseInsensitive(t *testing.T) {
	s, _ := newTestStore(t)
	mustCreate(t, s, &User{Username: "Alice"})
	for _, name := range []string{"Alice", "alice", "ALICE", "ａｌｉｃｅ", "Ａｌｉｃｅ"} {
		u := &User{Username: name}
		if err := s.Create(u); !errors.Is(err, ErrUsernameTaken) {
			t.Errorf("Create(%q) err = %v, want ErrUsernameTaken", name, err)
		}
		if u.ID != 0 || !u.DateJoined.IsZero() {
			t.Errorf("failed Create modified its argument: %+v", u)
		}
	}
	// The failed attempts rolled back, so they consumed no ids.
	if u := mustCreate(t, s, &User{Username: "bob"}); u.ID != 2 {
		t.Errorf("id after failed creates = %d, want 2", u.ID)
	}
}

func TestCreateExplicitID(t *testing.T) {
	s, _ := newTestStore(t)
	mustCreate(t, s, &User{ID: 10, Username: "ten"})
	if err := s.Create(&User{ID: 10, Username: "other"}); !errors.Is(err, ErrIDTaken) {
		t.Errorf("Create with used id: err = %v, want ErrIDTaken", err)
	}
	if u := mustCreate(t, s, &User{Username: "next"}); u.ID != 11 {
		t.Errorf("id after explicit 10 = %d, want 11", u.ID)
	}
	// A lower explicit id is fine and does not move the sequence back.
	mustCreate(t, s, &User{ID: 3, Username: "three"})
	if u := mustCreate(t, s, &User{Username: "twelve"}); u.ID != 12 {
		t.Errorf("id = %d, want 12", u.ID)
	}
	joined := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	u := mustCreate(t, s, &User{Username: "old", DateJoined: joined})
	if !u.DateJoined.Equal(joined) {
		t.Errorf("explicit DateJoined overwritten: %v", u.DateJoined)
	}
}

func TestCreateInvalid(t *testing.T) {
	s, _ := newTestStore(t)
	for _, u := range []*User{{Username: ""}, {ID: -1, Username: "neg"}} {
		if err := s.Create(u); !errors.Is(err, ErrInvalidUser) {
			t.Errorf("Create(%+v) err = %v, want ErrInvalidUser", u, err)
		}
	}
}

func TestCreateConcurrentSameName(t *testing.T) {
	s, _ := newTestStore(t)
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Vary the spelling: all are the same account name.
			name := []string{"carol", "Carol", "CAROL", "ｃａｒｏｌ"}[i%4]
			errs[i] = s.Create(&User{Username: name})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrUsernameTaken):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent creates succeeded, want exactly 1", ok)
	}
	if all, _ := s.List(); len(all) != 1 {
		t.Fatalf("List has %d users, want 1", len(all))
	}
}

func TestIDsAreSequential(t *testing.T) {
	s, _ := newTestStore(t)
	for want := int64(1); want <= 5; want++ {
		u := mustCreate(t, s, &User{Username: "u" + string(rune('a'+want))})
		if u.ID != want {
			t.Fatalf("id = %d, want %d", u.ID, want)
		}
	}
}

func TestUpdate(t *testing.T) {
	s, _ := newTestStore(t)
	alice := mustCreate(t, s, &User{Username: "alice", Email: "a@x"})
	mustCreate(t, s, &User{Username: "bob"})

	login := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	got, err := s.Update(alice.ID, func(u *User) error {
		u.Email, u.IsStaff, u.LastLogin, u.SessionEpoch = "new@x", true, login, u.SessionEpoch+1
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := s.ByID(alice.ID)
	assertSameUser(t, stored, got)
	if stored.Email != "new@x" || !stored.IsStaff || !stored.LastLogin.Equal(login) || stored.SessionEpoch != 1 {
		t.Errorf("update not stored: %+v", stored)
	}

	// Case-only rename keeps the same key and is allowed.
	if _, err := s.Update(alice.ID, func(u *User) error { u.Username = "Alice"; return nil }); err != nil {
		t.Fatalf("case-only rename: %v", err)
	}
	// Renaming onto another user's name fails and changes nothing.
	if _, err := s.Update(alice.ID, func(u *User) error { u.Username = "BOB"; u.Email = "x"; return nil }); !errors.Is(err, ErrUsernameTaken) {
		t.Errorf("rename onto bob: err = %v, want ErrUsernameTaken", err)
	}
	if u, _ := s.ByID(alice.ID); u.Username != "Alice" || u.Email != "new@x" {
		t.Errorf("failed rename changed the user: %+v", u)
	}
	// A real rename re-indexes.
	if _, err := s.Update(alice.ID, func(u *User) error { u.Username = "alicia"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ByUsername("alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old name still found: %v", err)
	}
	if u, err := s.ByUsername("ALICIA"); err != nil || u.ID != alice.ID {
		t.Errorf("new name: %+v, %v", u, err)
	}
	mustCreate(t, s, &User{Username: "alice"}) // old name is free again

	// fn's error aborts; so do id changes and empty names.
	boom := errors.New("boom")
	if _, err := s.Update(alice.ID, func(u *User) error { u.Email = "lost"; return boom }); !errors.Is(err, boom) {
		t.Errorf("fn error: got %v", err)
	}
	if _, err := s.Update(alice.ID, func(u *User) error { u.ID = 99; return nil }); !errors.Is(err, ErrInvalidUser) {
		t.Errorf("id change: got %v", err)
	}
	if _, err := s.Update(alice.ID, func(u *User) error { u.Username = ""; return nil }); !errors.Is(err, ErrInvalidUser) {
		t.Errorf("empty name: got %v", err)
	}
	if u, _ := s.ByID(alice.ID); u.Email != "new@x" || u.Username != "alicia" {
		t.Errorf("aborted updates changed the user: %+v", u)
	}
	if _, err := s.Update(999, func(*User) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update(missing) err = %v", err)
	}
}

func TestDelete(t *testing.T) {
	s, _ := newTestStore(t)
	u := mustCreate(t, s, &User{Username: "Dave"})
	if err := s.Delete(u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ByID(u.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("ByID after delete: %v", err)
	}
	if _, err := s.ByUsername("dave"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ByUsername after delete: %v", err)
	}
	if err := s.Delete(u.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete: %v", err)
	}
	if u2 := mustCreate(t, s, &User{Username: "dave"}); u2.ID == u.ID {
		t.Errorf("deleted id %d was reused", u.ID)
	}
}

func TestListOrderedByID(t *testing.T) {
	s, _ := newTestStore(t)
	// 256 and 1000 check big-endian key order (little-endian would misorder).
	for _, id := range []int64{1000, 2, 256, 7} {
		mustCreate(t, s, &User{ID: id, Username: "u" + time.Duration(id).String()})
	}
	all, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, u := range all {
		ids = append(ids, u.ID)
	}
	if want := []int64{2, 7, 256, 1000}; !equalIDs(ids, want) {
		t.Errorf("List ids = %v, want %v", ids, want)
	}
	empty, _ := newTestStore(t)
	if all, err := empty.List(); err != nil || len(all) != 0 {
		t.Errorf("empty List = %v, %v", all, err)
	}
}

func TestCreateManyAtomic(t *testing.T) {
	s, _ := newTestStore(t)
	mustCreate(t, s, &User{ID: 5, Username: "carol"})

	batch := []*User{{Username: "a"}, {ID: 20, Username: "b"}, {Username: "Carol"}, {Username: "d"}}
	n, err := s.CreateMany(batch, false)
	if !errors.Is(err, ErrUsernameTaken) || !strings.Contains(err.Error(), `"Carol"`) {
		t.Fatalf("CreateMany with name conflict: n=%d err=%v; want ErrUsernameTaken naming Carol", n, err)
	}
	if n != 0 || batch[0].ID != 0 {
		t.Errorf("failed CreateMany reported n=%d, batch[0].ID=%d", n, batch[0].ID)
	}
	assertUserCount(t, s, 1)

	// Conflicts on id, and duplicates inside the batch, are errors too.
	for name, batch := range map[string][]*User{
		"id in store":   {{Username: "x"}, {ID: 5, Username: "y"}},
		"id in batch":   {{ID: 30, Username: "x"}, {ID: 30, Username: "y"}},
		"name in batch": {{Username: "x"}, {Username: "X"}},
	} {
		if _, err := s.CreateMany(batch, false); err == nil {
			t.Errorf("%s: no error", name)
		}
		assertUserCount(t, s, 1)
	}
	// The failed batches rolled the sequence back too.
	if u := mustCreate(t, s, &User{Username: "next"}); u.ID != 6 {
		t.Errorf("id after failed batches = %d, want 6", u.ID)
	}
}

func TestCreateManySkipExistingIsIdempotent(t *testing.T) {
	s, _ := newTestStore(t)
	mustCreate(t, s, &User{Username: "carol"})
	batch := func() []*User {
		return []*User{{ID: 50, Username: "x"}, {Username: "CAROL"}, {Username: "y"}, {ID: 100, Username: "z"}}
	}
	b := batch()
	n, err := s.CreateMany(b, true)
	if err != nil || n != 3 {
		t.Fatalf("first import: n=%d err=%v, want 3", n, err)
	}
	// The id-less user gets an id after the batch's largest.
	if b[2].ID != 101 || b[1].ID != 0 {
		t.Errorf("ids = %d, %d; want 101 for y and 0 for the skipped carol", b[2].ID, b[1].ID)
	}
	n, err = s.CreateMany(batch(), true)
	if err != nil || n != 0 {
		t.Fatalf("second import: n=%d err=%v, want 0", n, err)
	}
	assertUserCount(t, s, 4)
	if u := mustCreate(t, s, &User{Username: "later"}); u.ID != 102 {
		t.Errorf("sequence after import = %d, want 102", u.ID)
	}
}

func TestCorruptRecordIsError(t *testing.T) {
	s, db := newTestStore(t)
	u := mustCreate(t, s, &User{Username: "eve"})
	err := db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(usersBucket).Put(idKey(u.ID), []byte{recordVersion, 0, 200})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ByID(u.ID); !errors.Is(err, errCorrupt) {
		t.Errorf("ByID of corrupt record: err = %v", err)
	}
	if _, err := s.ByUsername("eve"); !errors.Is(err, errCorrupt) {
		t.Errorf("ByUsername of corrupt record: err = %v", err)
	}
	if _, err := s.List(); !errors.Is(err, errCorrupt) {
		t.Errorf("List with corrupt record: err = %v", err)
	}
	if _, err := s.Update(u.ID, func(*User) error { return nil }); !errors.Is(err, errCorrupt) {
		t.Errorf("Update of corrupt record: err = %v", err)
	}
	// Deleting it works and frees the name.
	if err := s.Delete(u.ID); err != nil {
		t.Fatalf("Delete of corrupt record: %v", err)
	}
	mustCreate(t, s, &User{Username: "eve"})
}

func TestPersistsAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "users.db")
	db, err := OpenDB(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewBoltStore(db)
	u := mustCreate(t, s, &User{Username: "frank", PasswordHash: "h"})
	db.Close()

	db, err = OpenDB(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, _ = NewBoltStore(db)
	got, err := s.ByUsername("Frank")
	if err != nil {
		t.Fatal(err)
	}
	assertSameUser(t, got, u)
	if u2 := mustCreate(t, s, &User{Username: "gina"}); u2.ID != 2 {
		t.Errorf("id after reopen = %d, want 2", u2.ID)
	}
}

func assertUserCount(t *testing.T, s Store, want int) {
	t.Helper()
	all, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != want {
		t.Fatalf("store has %d users, want %d", len(all), want)
	}
}

func equalIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
