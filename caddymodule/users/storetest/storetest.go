// Package storetest is the conformance suite for users.Store: every contract
// written on the interface, errors, context handling and concurrency. Each
// backend's tests call Run with a function that opens a new, empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) users.Store { return openEmpty(t) })
//	}
//
// It is for tests only.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// Run runs the suite. open must return a new, empty store for each call,
// released by t.Cleanup; subtests do not run in parallel with each other.
func Run(t *testing.T, open func(t *testing.T) users.Store) {
	RunWith(t, open, Options{})
}

// Options describe a backend's documented limits, for RunWith.
type Options struct {
	// MaxPasswordHash is the longest password hash the backend keeps
	// (Django's auth_user: 128); 0 means no limit.
	MaxPasswordHash int

	// SetGroups, if set, says the backend's groups are read-only (Django's
	// auth_user_groups): the group tests put users in groups with it, and
	// check that writes changing Groups are refused with ErrInvalidUser
	// and change nothing.
	SetGroups func(t *testing.T, s users.Store, id int64, groups []string)
}

// RunWith runs the suite for a backend with the limits o describes.
func RunWith(t *testing.T, open func(t *testing.T) users.Store, o Options) {
	opts = o
	t.Cleanup(func() { opts = Options{} })
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s users.Store)
	}{
		{"CreateAssignsIDAndDateJoined", testCreateAssigns},
		{"CreateExplicitID", testCreateExplicitID},
		{"CreateInvalid", testCreateInvalid},
		{"UsernameUniqueRegardlessOfCaseAndLookAlikes", testUsernameUnique},
		{"Lookups", testLookups},
		{"Update", testUpdate},
		{"UpdateFnErrorWritesNothing", testUpdateFnError},
		{"UpdateRename", testUpdateRename},
		{"UpdateRefusesIDChangeAndEmptyName", testUpdateRefuses},
		{"Delete", testDelete},
		{"IDsNeverHandedOutTwice", testIDsNotReused},
		{"ListOrderedByID", testList},
		{"CreateManyAllOrNothing", testCreateManyAtomic},
		{"CreateManySkipExisting", testCreateManySkipExisting},
		{"CreateManySequenceContinuesAfterLargestID", testCreateManySequence},
		{"CreateManyEmpty", testCreateManyEmpty},
		{"TimesEpochAndStringsRoundTrip", testRoundTrip},
		{"ReturnsCopies", testReturnsCopies},
		{"ReadsSeeEveryWrite", testReadsSeeWrites},
		{"ContextDone", testContextDone},
		{"ContextEndsInsideUpdate", testContextEndsInsideUpdate},
		{"ConcurrentCreatesOfOneName", testConcurrentCreate},
		{"ConcurrentUpdatesLoseNothing", testConcurrentUpdate},
		{"ConcurrentReadersAndWriter", testConcurrentReaders},
		{"Groups", pick(opts.SetGroups == nil, testGroups, testGroupsReadOnly)},
		{"GroupsAreCopies", testGroupsCopies},
		{"EmailVerifiedAndByEmail", testEmailVerified},
		{"Secrets", testSecrets},
		{"SecretsAgreeUnderConcurrency", testSecretsConcurrent},
		{"Factors", testFactors},
		{"FactorsDeletedWithTheUser", testFactorsDeletedWithUser},
		{"FactorsContextDone", testFactorsContextDone},
		{"FactorsConcurrentUpdatesLoseNothing", testFactorsConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var bg = context.Background()

// opts are RunWith's options for the suite being run (subtests do not run
// in parallel).
var opts Options

func mustCreate(t *testing.T, s users.Store, u *users.User) *users.User {
	t.Helper()
	if err := s.Create(bg, u); err != nil {
		t.Fatalf("Create(%q): %v", u.Username, err)
	}
	return u
}

func mustByID(t *testing.T, s users.Store, id int64) *users.User {
	t.Helper()
	u, err := s.ByID(bg, id)
	if err != nil {
		t.Fatalf("ByID(%d): %v", id, err)
	}
	return u
}

func mustUpdate(t *testing.T, s users.Store, id int64, fn func(u *users.User)) *users.User {
	t.Helper()
	u, err := s.Update(bg, id, func(u *users.User) error { fn(u); return nil })
	if err != nil {
		t.Fatalf("Update(%d): %v", id, err)
	}
	return u
}

// same fails unless got == want, field by field and times exactly (so both
// must be in UTC, to the microsecond, without a monotonic reading).
func same(t *testing.T, got, want *users.User) {
	t.Helper()
	if !users.Equal(got, want) {
		t.Errorf("user differs\n got  %+v\n want %+v", *got, *want)
	}
}

func count(t *testing.T, s users.Store) int {
	t.Helper()
	all, err := s.List(bg)
	if err != nil {
		t.Fatal(err)
	}
	return len(all)
}

func testCreateAssigns(t *testing.T, s users.Store) {
	before := users.StoredTime(time.Now())
	u := mustCreate(t, s, &users.User{Username: "Alice", Email: "a@example.com", PasswordHash: "h", IsActive: true})
	after := time.Now()
	if u.ID != 1 {
		t.Errorf("first id = %d, want 1", u.ID)
	}
	if u.DateJoined.Before(before) || u.DateJoined.After(after) {
		t.Errorf("DateJoined = %v, want between %v and %v", u.DateJoined, before, after)
	}
	if u.DateJoined != users.StoredTime(u.DateJoined) {
		t.Errorf("DateJoined %v is not as stored (UTC, microseconds)", u.DateJoined)
	}
	if !u.LastLogin.IsZero() {
		t.Errorf("LastLogin = %v, want zero", u.LastLogin)
	}
	same(t, mustByID(t, s, u.ID), u)
	if u2 := mustCreate(t, s, &users.User{Username: "bob"}); u2.ID != 2 {
		t.Errorf("second id = %d, want 2", u2.ID)
	}
}

func testCreateExplicitID(t *testing.T, s users.Store) {
	mustCreate(t, s, &users.User{ID: 10, Username: "ten"})
	u := &users.User{ID: 10, Username: "other"}
	if err := s.Create(bg, u); !errors.Is(err, users.ErrIDTaken) {
		t.Errorf("Create with a used id: err = %v, want ErrIDTaken", err)
	}
	if u.ID != 10 || !u.DateJoined.IsZero() {
		t.Errorf("failed Create modified its argument: %+v", u)
	}
	if _, err := s.ByUsername(bg, "other"); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("failed Create left a user behind: %v", err)
	}
	if u := mustCreate(t, s, &users.User{Username: "next"}); u.ID <= 10 {
		t.Errorf("id after explicit 10 = %d, want > 10", u.ID)
	}
	// A lower explicit id is fine and does not move the sequence back.
	mustCreate(t, s, &users.User{ID: 3, Username: "three"})
	if u := mustCreate(t, s, &users.User{Username: "twelve"}); u.ID <= 11 {
		t.Errorf("id after explicit 3 = %d, want > 11", u.ID)
	}
	joined := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	u = mustCreate(t, s, &users.User{Username: "old", DateJoined: joined})
	if u.DateJoined != joined {
		t.Errorf("explicit DateJoined overwritten: %v", u.DateJoined)
	}
}

func testCreateInvalid(t *testing.T, s users.Store) {
	for _, u := range []*users.User{{Username: ""}, {ID: -1, Username: "neg"}} {
		if err := s.Create(bg, u); !errors.Is(err, users.ErrInvalidUser) {
			t.Errorf("Create(%+v) err = %v, want ErrInvalidUser", u, err)
		}
	}
	if n := count(t, s); n != 0 {
		t.Errorf("invalid creates stored %d users", n)
	}
}

func testUsernameUnique(t *testing.T, s users.Store) {
	alice := mustCreate(t, s, &users.User{Username: "Alice"})
	mustCreate(t, s, &users.User{Username: "Straße"})
	for _, name := range []string{"Alice", "alice", "ALICE", "ａｌｉｃｅ", "Ａｌｉｃｅ", "STRASSE", "strasse"} {
		u := &users.User{Username: name}
		if err := s.Create(bg, u); !errors.Is(err, users.ErrUsernameTaken) {
			t.Errorf("Create(%q) err = %v, want ErrUsernameTaken", name, err)
		}
		if u.ID != 0 || !u.DateJoined.IsZero() {
			t.Errorf("failed Create modified its argument: %+v", u)
		}
	}
	if n := count(t, s); n != 2 {
		t.Errorf("%d users after refused creates, want 2", n)
	}
	// Different names are different users.
	for _, name := range []string{"alicia", "alice ", "a1ice"} {
		mustCreate(t, s, &users.User{Username: name})
	}
	if got := mustByID(t, s, alice.ID); got.Username != "Alice" {
		t.Errorf("Alice became %q", got.Username)
	}
}

func testLookups(t *testing.T, s users.Store) {
	u := mustCreate(t, s, &users.User{Username: "Alice", Email: "a@example.com", PasswordHash: "h", IsActive: true})
	mustCreate(t, s, &users.User{Username: "bob"})
	same(t, mustByID(t, s, u.ID), u)
	for _, name := range []string{"Alice", "alice", "ALICE", "ａｌｉｃｅ"} {
		got, err := s.ByUsername(bg, name)
		if err != nil {
			t.Fatalf("ByUsername(%q): %v", name, err)
		}
		same(t, got, u)
	}
	for _, id := range []int64{999, 0, -1} {
		if _, err := s.ByID(bg, id); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("ByID(%d) err = %v, want ErrNotFound", id, err)
		}
	}
	for _, name := range []string{"nobody", ""} {
		if _, err := s.ByUsername(bg, name); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("ByUsername(%q) err = %v, want ErrNotFound", name, err)
		}
	}
}

func testUpdate(t *testing.T, s users.Store) {
	alice := mustCreate(t, s, &users.User{Username: "alice", Email: "a@x", PasswordHash: "old", IsActive: true})
	bob := mustCreate(t, s, &users.User{Username: "bob", Email: "b@x"})
	login := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.FixedZone("CEST", 2*3600))
	var seen users.User
	got := mustUpdate(t, s, alice.ID, func(u *users.User) {
		seen = *u
		u.Email, u.PasswordHash, u.IsStaff, u.IsSuperuser, u.IsActive = "new@x", "new", true, true, false
		u.LastLogin, u.SessionEpoch = login, u.SessionEpoch+1
	})
	same(t, &seen, alice) // fn saw the stored user
	want := *alice
	want.Email, want.PasswordHash, want.IsStaff, want.IsSuperuser, want.IsActive = "new@x", "new", true, true, false
	want.LastLogin, want.SessionEpoch = users.StoredTime(login), 1
	same(t, got, &want)
	same(t, mustByID(t, s, alice.ID), &want)
	same(t, mustByID(t, s, bob.ID), bob) // the other user is untouched
	if _, err := s.Update(bg, 999, func(*users.User) error { return nil }); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("Update(missing) err = %v, want ErrNotFound", err)
	}
}

func testUpdateFnError(t *testing.T, s users.Store) {
	u := mustCreate(t, s, &users.User{Username: "carol", Email: "c@x"})
	mustByID(t, s, u.ID) // cached, where the backend caches
	boom := errors.New("boom")
	_, err := s.Update(bg, u.ID, func(u *users.User) error {
		u.Email, u.SessionEpoch, u.Username = "lost", 42, "carola"
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("fn error: got %v, want it returned", err)
	}
	same(t, mustByID(t, s, u.ID), u)
	if _, err := s.ByUsername(bg, "carola"); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("aborted rename is visible: %v", err)
	}
}

func testUpdateRename(t *testing.T, s users.Store) {
	alice := mustCreate(t, s, &users.User{Username: "alice", Email: "a@x"})
	mustCreate(t, s, &users.User{Username: "bob"})
	// A case-only rename keeps the same key and is allowed.
	if got := mustUpdate(t, s, alice.ID, func(u *users.User) { u.Username = "Alice" }); got.Username != "Alice" {
		t.Errorf("case-only rename: %q", got.Username)
	}
	// Renaming onto another user's name (in any spelling) fails and changes
	// nothing.
	for _, name := range []string{"bob", "BOB", "ｂｏｂ"} {
		_, err := s.Update(bg, alice.ID, func(u *users.User) error { u.Username, u.Email = name, "x"; return nil })
		if !errors.Is(err, users.ErrUsernameTaken) {
			t.Errorf("rename onto %q: err = %v, want ErrUsernameTaken", name, err)
		}
	}
	if u := mustByID(t, s, alice.ID); u.Username != "Alice" || u.Email != "a@x" {
		t.Errorf("failed rename changed the user: %+v", u)
	}
	// A real rename re-indexes and frees the old name.
	mustUpdate(t, s, alice.ID, func(u *users.User) { u.Username = "alicia" })
	if _, err := s.ByUsername(bg, "alice"); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("old name still found: %v", err)
	}
	if u, err := s.ByUsername(bg, "ALICIA"); err != nil || u.ID != alice.ID {
		t.Errorf("new name: %+v, %v", u, err)
	}
	mustCreate(t, s, &users.User{Username: "alice"})
}

func testUpdateRefuses(t *testing.T, s users.Store) {
	u := mustCreate(t, s, &users.User{Username: "dave", Email: "d@x"})
	for name, fn := range map[string]func(*users.User){
		"id change":  func(u *users.User) { u.ID, u.Email = 99, "x" },
		"empty name": func(u *users.User) { u.Username, u.Email = "", "x" },
	} {
		if _, err := s.Update(bg, u.ID, func(u *users.User) error { fn(u); return nil }); !errors.Is(err, users.ErrInvalidUser) {
			t.Errorf("%s: err = %v, want ErrInvalidUser", name, err)
		}
	}
	same(t, mustByID(t, s, u.ID), u)
	if _, err := s.ByID(bg, 99); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("refused id change created user 99: %v", err)
	}
}

func testDelete(t *testing.T, s users.Store) {
	u := mustCreate(t, s, &users.User{Username: "Dave"})
	other := mustCreate(t, s, &users.User{Username: "erin"})
	mustByID(t, s, u.ID)
	if err := s.Delete(bg, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ByID(bg, u.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("ByID after Delete: %v", err)
	}
	if _, err := s.ByUsername(bg, "dave"); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("ByUsername after Delete: %v", err)
	}
	if err := s.Delete(bg, u.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(bg, 12345); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("Delete(missing): %v, want ErrNotFound", err)
	}
	same(t, mustByID(t, s, other.ID), other)
	mustCreate(t, s, &users.User{Username: "DAVE"}) // the name is free again
}

func testIDsNotReused(t *testing.T, s users.Store) {
	var last int64
	for i := range 3 {
		u := mustCreate(t, s, &users.User{Username: fmt.Sprint("u", i)})
		if u.ID <= last {
			t.Fatalf("id %d after %d", u.ID, last)
		}
		last = u.ID
	}
	if err := s.Delete(bg, last); err != nil {
		t.Fatal(err)
	}
	if u := mustCreate(t, s, &users.User{Username: "after"}); u.ID <= last {
		t.Errorf("deleted id %d handed out again (got %d)", last, u.ID)
	}
	// An explicit id may be that of a deleted user.
	u := mustCreate(t, s, &users.User{ID: last, Username: "explicit"})
	same(t, mustByID(t, s, last), u)
}

func testList(t *testing.T, s users.Store) {
	if all, err := s.List(bg); err != nil || len(all) != 0 {
		t.Errorf("empty List = %v, %v", all, err)
	}
	// 256 and 1000 check numeric order (not byte or string order).
	want := map[int64]*users.User{}
	for _, id := range []int64{1000, 2, 256, 7, 10} {
		want[id] = mustCreate(t, s, &users.User{ID: id, Username: fmt.Sprint("u", id), Email: fmt.Sprint(id, "@x")})
	}
	all, err := s.List(bg)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for i := range all {
		ids = append(ids, all[i].ID)
		if w := want[all[i].ID]; w != nil {
			same(t, &all[i], w)
		}
	}
	if fmt.Sprint(ids) != fmt.Sprint([]int64{2, 7, 10, 256, 1000}) {
		t.Errorf("List ids = %v, want [2 7 10 256 1000]", ids)
	}
}

func testCreateManyAtomic(t *testing.T, s users.Store) {
	carol := mustCreate(t, s, &users.User{ID: 5, Username: "carol"})

	batch := []*users.User{{Username: "a"}, {ID: 20, Username: "b"}, {Username: "Carol"}, {Username: "d"}}
	n, err := s.CreateMany(bg, batch, false)
	if !errors.Is(err, users.ErrUsernameTaken) || !strings.Contains(err.Error(), `"Carol"`) {
		t.Fatalf("CreateMany with a name clash: n=%d err=%v; want ErrUsernameTaken naming Carol", n, err)
	}
	if n != 0 || batch[0].ID != 0 || batch[1].ID != 20 || !batch[0].DateJoined.IsZero() {
		t.Errorf("failed CreateMany reported n=%d or changed the batch: %+v %+v", n, *batch[0], *batch[1])
	}
	for _, tc := range []struct {
		name  string
		batch []*users.User
		want  error
	}{
		{"id in store", []*users.User{{Username: "x"}, {ID: 5, Username: "y"}}, users.ErrIDTaken},
		{"id in batch", []*users.User{{ID: 30, Username: "x"}, {ID: 30, Username: "y"}}, users.ErrIDTaken},
		{"name in batch", []*users.User{{Username: "x"}, {Username: "X"}}, users.ErrUsernameTaken},
		{"look-alike in batch", []*users.User{{Username: "zed"}, {Username: "ＺＥＤ"}}, users.ErrUsernameTaken},
		{"empty name", []*users.User{{Username: "x"}, {Username: ""}}, users.ErrInvalidUser},
		{"negative id", []*users.User{{Username: "x"}, {ID: -4, Username: "y"}}, users.ErrInvalidUser},
	} {
		if n, err := s.CreateMany(bg, tc.batch, false); !errors.Is(err, tc.want) || n != 0 {
			t.Errorf("%s: n=%d err=%v, want %v", tc.name, n, err, tc.want)
		}
		if c := count(t, s); c != 1 {
			t.Fatalf("%s: %d users after a failed batch, want 1", tc.name, c)
		}
	}
	same(t, mustByID(t, s, carol.ID), carol)
	// A failed batch wrote nothing; the names are free.
	if n, err := s.CreateMany(bg, []*users.User{{Username: "a"}, {Username: "x"}}, false); n != 2 || err != nil {
		t.Errorf("batch after failures: n=%d err=%v", n, err)
	}
}

func testCreateManySkipExisting(t *testing.T, s users.Store) {
	carol := mustCreate(t, s, &users.User{Username: "carol"})
	batch := func() []*users.User {
		return []*users.User{{ID: 50, Username: "x"}, {Username: "CAROL"}, {Username: "y"}, {ID: 100, Username: "z"}, {ID: carol.ID, Username: "other"}}
	}
	b := batch()
	n, err := s.CreateMany(bg, b, true)
	if err != nil || n != 3 {
		t.Fatalf("first import: n=%d err=%v, want 3", n, err)
	}
	if b[1].ID != 0 || b[4].Username != "other" || !b[1].DateJoined.IsZero() {
		t.Errorf("skipped users were modified: %+v %+v", *b[1], *b[4])
	}
	for _, i := range []int{0, 2, 3} {
		same(t, mustByID(t, s, b[i].ID), b[i])
	}
	same(t, mustByID(t, s, carol.ID), carol)
	n, err = s.CreateMany(bg, batch(), true)
	if err != nil || n != 0 {
		t.Fatalf("second import: n=%d err=%v, want 0", n, err)
	}
	if c := count(t, s); c != 4 {
		t.Errorf("%d users, want 4", c)
	}
}

func testCreateManySequence(t *testing.T, s users.Store) {
	mustCreate(t, s, &users.User{Username: "first"}) // id 1
	// The id-less user comes first in the batch, yet gets an id after the
	// batch's largest: the sequence moves before ids are assigned.
	b := []*users.User{{Username: "y"}, {ID: 50, Username: "x"}, {ID: 100, Username: "z"}, {Username: "w"}}
	if n, err := s.CreateMany(bg, b, false); err != nil || n != 4 {
		t.Fatalf("CreateMany: n=%d err=%v", n, err)
	}
	if b[0].ID != 101 || b[3].ID != 102 {
		t.Errorf("ids = %d, %d; want 101, 102", b[0].ID, b[3].ID)
	}
	if u := mustCreate(t, s, &users.User{Username: "later"}); u.ID != 103 {
		t.Errorf("Create after the import: id %d, want 103", u.ID)
	}
	// A batch of only lower explicit ids leaves the sequence alone.
	if _, err := s.CreateMany(bg, []*users.User{{ID: 60, Username: "sixty"}}, false); err != nil {
		t.Fatal(err)
	}
	if u := mustCreate(t, s, &users.User{Username: "later2"}); u.ID != 104 {
		t.Errorf("Create after a low import: id %d, want 104", u.ID)
	}
}

func testCreateManyEmpty(t *testing.T, s users.Store) {
	for _, b := range [][]*users.User{nil, {}} {
		if n, err := s.CreateMany(bg, b, false); n != 0 || err != nil {
			t.Errorf("CreateMany(%v) = %d, %v", b, n, err)
		}
	}
	if u := mustCreate(t, s, &users.User{Username: "a"}); u.ID != 1 {
		t.Errorf("id after empty batches = %d, want 1", u.ID)
	}
}

func testRoundTrip(t *testing.T, s users.Store) {
	zone := time.FixedZone("X", -7*3600-30*60)
	cases := []users.User{
		{Username: "Zoë", Email: "zoë@例え.jp", PasswordHash: "pbkdf2_sha256$870000$salt$hash=", IsActive: true, IsStaff: true,
			DateJoined: time.Date(2019, 3, 4, 5, 6, 7, 123456789, zone), LastLogin: time.Date(2025, 1, 2, 3, 4, 5, 999, time.UTC),
			SessionEpoch: -3},
		{Username: "max", SessionEpoch: math.MaxInt64, IsSuperuser: true, PasswordHash: strings.Repeat("h", longHash()),
			DateJoined: time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC), LastLogin: time.Date(2999, 12, 31, 23, 59, 59, 1000, zone)},
		{Username: "min", SessionEpoch: math.MinInt64, DateJoined: time.Date(1901, 1, 1, 0, 0, 0, 1, time.Local)},
		{Username: "emoji🙂", Email: ""},
	}
	for i := range cases {
		in := cases[i]
		u := in
		mustCreate(t, s, &u)
		want := in
		want.ID = u.ID
		want.DateJoined, want.LastLogin = users.StoredTime(in.DateJoined), users.StoredTime(in.LastLogin)
		if in.DateJoined.IsZero() {
			want.DateJoined = u.DateJoined
		}
		same(t, &u, &want)
		same(t, mustByID(t, s, u.ID), &want)
		got, err := s.ByUsername(bg, in.Username)
		if err != nil {
			t.Fatal(err)
		}
		same(t, got, &want)
		if got.DateJoined.Location() != time.UTC {
			t.Errorf("DateJoined in %v, want UTC", got.DateJoined.Location())
		}
	}
	// Update stores times the same way, and can clear LastLogin.
	u := mustByID(t, s, 1)
	t1 := time.Date(2030, 5, 6, 7, 8, 9, 987654321, zone)
	got := mustUpdate(t, s, u.ID, func(u *users.User) { u.LastLogin, u.DateJoined = t1, t1.Add(-time.Hour) })
	if got.LastLogin != users.StoredTime(t1) || got.DateJoined != users.StoredTime(t1.Add(-time.Hour)) {
		t.Errorf("Update returned times %v %v", got.LastLogin, got.DateJoined)
	}
	same(t, mustByID(t, s, u.ID), got)
	got = mustUpdate(t, s, u.ID, func(u *users.User) { u.LastLogin = time.Time{} })
	if !got.LastLogin.IsZero() || !mustByID(t, s, u.ID).LastLogin.IsZero() {
		t.Errorf("LastLogin not cleared: %v", got.LastLogin)
	}
	// CreateMany too.
	b := []*users.User{{Username: "batch", DateJoined: t1, LastLogin: t1}}
	if _, err := s.CreateMany(bg, b, false); err != nil {
		t.Fatal(err)
	}
	if b[0].DateJoined != users.StoredTime(t1) || b[0].LastLogin != users.StoredTime(t1) {
		t.Errorf("CreateMany reported times %v %v", b[0].DateJoined, b[0].LastLogin)
	}
	same(t, mustByID(t, s, b[0].ID), b[0])
}

func testReturnsCopies(t *testing.T, s users.Store) {
	u := mustCreate(t, s, &users.User{Username: "carol", Email: "c@x"})
	want := *u
	u.Email = "changed by caller"
	a := mustByID(t, s, want.ID)
	a.Username, a.SessionEpoch = "mallory", 99
	b := mustByID(t, s, want.ID)
	if b == a {
		t.Fatal("ByID returned the same pointer twice")
	}
	same(t, b, &want)
	got := mustUpdate(t, s, want.ID, func(*users.User) {})
	got.Email = "changed again"
	same(t, mustByID(t, s, want.ID), &want)
	all, _ := s.List(bg)
	all[0].Email = "and again"
	same(t, mustByID(t, s, want.ID), &want)
}

// Every write is seen by the next read, however the backend caches.
func testReadsSeeWrites(t *testing.T, s users.Store) {
	u := mustCreate(t, s, &users.User{Username: "alice", Email: "alice@x", IsActive: true})
	mustByID(t, s, u.ID)
	mustByID(t, s, u.ID)
	mustUpdate(t, s, u.ID, func(u *users.User) { u.SessionEpoch++; u.IsActive = false })
	if got := mustByID(t, s, u.ID); got.SessionEpoch != 1 || got.IsActive {
		t.Fatalf("after Update, ByID = epoch %d active %v", got.SessionEpoch, got.IsActive)
	}
	if err := s.Delete(bg, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ByID(bg, u.ID); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("ByID after Delete: %v", err)
	}
	// An id re-created explicitly is read afresh.
	mustCreate(t, s, &users.User{ID: u.ID, Username: "bob"})
	if got := mustByID(t, s, u.ID); got.Username != "bob" {
		t.Fatalf("ByID of the re-created id = %q", got.Username)
	}
	// And one re-created by CreateMany.
	if err := s.Delete(bg, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMany(bg, []*users.User{{ID: u.ID, Username: "carol"}}, false); err != nil {
		t.Fatal(err)
	}
	if got := mustByID(t, s, u.ID); got.Username != "carol" {
		t.Fatalf("ByID of the id re-created by CreateMany = %q", got.Username)
	}
}

func testContextDone(t *testing.T, s users.Store) {
	u := mustCreate(t, s, &users.User{Username: "alice", Email: "a@x"})
	mustByID(t, s, u.ID) // cached, where the backend caches
	canceled, cancel := context.WithCancel(bg)
	cancel()
	expired, cancel2 := context.WithDeadline(bg, time.Now().Add(-time.Second))
	defer cancel2()
	for _, c := range []struct {
		ctx  context.Context
		want error
	}{{canceled, context.Canceled}, {expired, context.DeadlineExceeded}} {
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, c.want) {
				t.Errorf("%s with a done context: err = %v, want %v", op, err, c.want)
			}
		}
		_, err := s.ByID(c.ctx, u.ID)
		check("ByID (cached)", err)
		_, err = s.ByID(c.ctx, 999)
		check("ByID (missing)", err)
		_, err = s.ByUsername(c.ctx, "alice")
		check("ByUsername", err)
		_, err = s.List(c.ctx)
		check("List", err)
		check("Create", s.Create(c.ctx, &users.User{Username: "bob"}))
		check("Create with id", s.Create(c.ctx, &users.User{ID: 77, Username: "bob"}))
		called := false
		_, err = s.Update(c.ctx, u.ID, func(u *users.User) error { called = true; u.Email = "lost"; return nil })
		check("Update", err)
		if called {
			t.Error("Update called fn with a done context")
		}
		check("Delete", s.Delete(c.ctx, u.ID))
		_, err = s.CreateMany(c.ctx, []*users.User{{Username: "carol"}}, false)
		check("CreateMany", err)
	}
	// Nothing was written.
	same(t, mustByID(t, s, u.ID), u)
	if n := count(t, s); n != 1 {
		t.Errorf("%d users after calls with done contexts, want 1", n)
	}
	if u2 := mustCreate(t, s, &users.User{Username: "bob"}); u2.ID == 77 {
		t.Error("Create with a done context took id 77")
	}
}

// A context that ends while Update holds the user aborts the write.
func testContextEndsInsideUpdate(t *testing.T, s users.Store) {
	u := mustCreate(t, s, &users.User{Username: "alice", Email: "a@x"})
	ctx, cancel := context.WithCancel(bg)
	_, err := s.Update(ctx, u.ID, func(u *users.User) error {
		u.Email, u.SessionEpoch = "lost", 7
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update whose context ended inside fn: err = %v, want context.Canceled", err)
	}
	same(t, mustByID(t, s, u.ID), u)
}

func testConcurrentCreate(t *testing.T, s users.Store) {
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := []string{"carol", "Carol", "CAROL", "ｃａｒｏｌ", "ＣＡＲＯＬ"}[i%5]
			errs[i] = s.Create(bg, &users.User{Username: name})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, users.ErrUsernameTaken):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent creates of one name succeeded, want exactly 1", ok)
	}
	if c := count(t, s); c != 1 {
		t.Fatalf("List has %d users, want 1", c)
	}
}

func testConcurrentUpdate(t *testing.T, s users.Store) {
	u := mustCreate(t, s, &users.User{Username: "dave"})
	const n = 50
	var wg sync.WaitGroup
	epochs := make([]int64, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.Update(bg, u.ID, func(u *users.User) error { u.SessionEpoch++; return nil })
			if err != nil {
				t.Errorf("Update: %v", err)
				return
			}
			epochs[i] = got.SessionEpoch
		}()
	}
	wg.Wait()
	if got := mustByID(t, s, u.ID).SessionEpoch; got != n {
		t.Fatalf("epoch after %d concurrent increments = %d: updates were lost", n, got)
	}
	seen := map[int64]bool{}
	for _, e := range epochs {
		if e < 1 || e > n || seen[e] {
			t.Fatalf("Update results %v are not 1..%d once each", epochs, n)
		}
		seen[e] = true
	}
}

// Readers fill the cache while a writer bumps the epoch; a ByID that starts
// after an Update returned always sees that Update (run with -race).
func testConcurrentReaders(t *testing.T, s users.Store) {
	u := mustCreate(t, s, &users.User{Username: "erin"})
	const writes = 100
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
				if got, err := s.ByID(bg, u.ID); err != nil || got.SessionEpoch < 0 || got.SessionEpoch > writes {
					t.Errorf("ByID = %+v, %v", got, err)
					return
				}
				// Cache hits never block: let the writer's network
				// round trips get a CPU on a small machine.
				runtime.Gosched()
			}
		}()
	}
	for i := range writes {
		mustUpdate(t, s, u.ID, func(u *users.User) { u.SessionEpoch++ })
		if got := mustByID(t, s, u.ID); got.SessionEpoch != int64(i+1) {
			close(stop)
			wg.Wait()
			t.Fatalf("ByID after Update %d: epoch %d", i+1, got.SessionEpoch)
		}
	}
	close(stop)
	wg.Wait()
}

// Groups are stored sorted, without repeats, exactly as spelled (case
// and spaces kept), with the user, through every write.
func testGroups(t *testing.T, s users.Store) {
	in := []string{"editors", "Editors", "Content Editors", "editors", "東京", "a,b"}
	want := []string{"Content Editors", "Editors", "a,b", "editors", "東京"}
	u := mustCreate(t, s, &users.User{Username: "gina", Groups: in})
	if !slices.Equal(u.Groups, want) {
		t.Fatalf("Create returned groups %q, want %q", u.Groups, want)
	}
	mustByID(t, s, u.ID) // cached, where the backend caches
	check := func(what string, want []string) {
		t.Helper()
		if got := mustByID(t, s, u.ID).Groups; !slices.Equal(got, want) {
			t.Errorf("%s: ByID groups %q, want %q", what, got, want)
		}
		got, err := s.ByUsername(bg, "gina")
		if err != nil || !slices.Equal(got.Groups, want) {
			t.Errorf("%s: ByUsername groups %q (%v), want %q", what, got.Groups, err, want)
		}
		all, err := s.List(bg)
		if err != nil || len(all) != 1 || !slices.Equal(all[0].Groups, want) {
			t.Errorf("%s: List = %+v (%v), want groups %q", what, all, err, want)
		}
	}
	check("after Create", want)
	got := mustUpdate(t, s, u.ID, func(u *users.User) { u.Groups = append(u.Groups, "analysts", "analysts") })
	want = append([]string{"Content Editors", "Editors", "a,b", "analysts"}, "editors", "東京")
	if !slices.Equal(got.Groups, want) {
		t.Errorf("Update returned groups %q, want %q", got.Groups, want)
	}
	check("after adding one", want)
	got = mustUpdate(t, s, u.ID, func(u *users.User) { u.Groups = []string{} })
	if got.Groups != nil {
		t.Errorf("Update to no groups returned %q, want nil", got.Groups)
	}
	check("after removing all", nil)
	if g := mustByID(t, s, u.ID).Groups; g != nil {
		t.Errorf("no groups read back as %#v, want nil", g)
	}
	// Without groups at all, and through CreateMany.
	if v := mustCreate(t, s, &users.User{Username: "hal"}); v.Groups != nil {
		t.Errorf("user created without groups has %#v", v.Groups)
	}
	b := []*users.User{{Username: "ivy", Groups: []string{"z", "a", "z"}}, {ID: 40, Username: "jon", Groups: []string{"solo"}}}
	if _, err := s.CreateMany(bg, b, false); err != nil {
		t.Fatal(err)
	}
	for _, u := range b {
		same(t, mustByID(t, s, u.ID), u)
	}
	if !slices.Equal(b[0].Groups, []string{"a", "z"}) {
		t.Errorf("CreateMany reported groups %q", b[0].Groups)
	}
}

// What a caller does to the Groups it passed in or got back never changes
// the stored user.
func testGroupsCopies(t *testing.T, s users.Store) {
	in := []string{"b", "a"}
	u := mustCreateInGroups(t, s, &users.User{Username: "kim"}, in)
	in[0] = "changed"
	u.Groups[0] = "changed too"
	want := []string{"a", "b"}
	for range 2 { // a miss, then a cache hit where the backend caches
		a := mustByID(t, s, u.ID)
		if !slices.Equal(a.Groups, want) {
			t.Fatalf("ByID groups %q, want %q", a.Groups, want)
		}
		a.Groups[0] = "mallory"
	}
	got := mustUpdate(t, s, u.ID, func(*users.User) {})
	got.Groups[1] = "changed again"
	all, _ := s.List(bg)
	all[0].Groups[0] = "and again"
	if g := mustByID(t, s, u.ID).Groups; !slices.Equal(g, want) {
		t.Errorf("groups became %q, want %q", g, want)
	}
}

// secrets returns s as a users.Secrets, which every backend implements.
func secrets(t *testing.T, s users.Store) users.Secrets {
	t.Helper()
	sec, ok := s.(users.Secrets)
	if !ok {
		t.Fatalf("%T does not implement users.Secrets", s)
	}
	return sec
}

func testSecrets(t *testing.T, s users.Store) {
	sec := secrets(t, s)
	if _, err := sec.Secret(bg, "k"); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("Secret of nothing: %v", err)
	}
	v, err := sec.UpdateSecret(bg, "k", func(cur []byte) ([]byte, error) {
		if cur != nil {
			t.Errorf("first UpdateSecret saw %q", cur)
		}
		return []byte("one"), nil
	})
	if err != nil || string(v) != "one" {
		t.Fatalf("UpdateSecret: %q %v", v, err)
	}
	boom := errors.New("boom")
	if _, err := sec.UpdateSecret(bg, "k", func([]byte) ([]byte, error) { return []byte("two"), boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error: %v", err)
	}
	if v, err := sec.Secret(bg, "k"); err != nil || string(v) != "one" {
		t.Fatalf("after a failed update: %q %v", v, err)
	}
	v, err = sec.UpdateSecret(bg, "k", func(cur []byte) ([]byte, error) { return append(cur, "+two"...), nil })
	if err != nil || string(v) != "one+two" {
		t.Fatalf("read-modify-write: %q %v", v, err)
	}
	if _, err := sec.UpdateSecret(bg, "other", func([]byte) ([]byte, error) { return []byte{0, 1, 2, 255}, nil }); err != nil {
		t.Fatal(err)
	}
	if v, _ := sec.Secret(bg, "other"); !bytes.Equal(v, []byte{0, 1, 2, 255}) {
		t.Errorf("binary value: %v", v)
	}
	if _, err := sec.UpdateSecret(bg, "k", func([]byte) ([]byte, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := sec.Secret(bg, "k"); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("deleted secret: %v", err)
	}
	done, cancel := context.WithCancel(bg)
	cancel()
	if _, err := sec.UpdateSecret(done, "k", func([]byte) ([]byte, error) { return []byte("x"), nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("done ctx: %v", err)
	}
	if _, err := sec.Secret(bg, "k"); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("a done ctx wrote: %v", err)
	}
}

// Concurrent first-time callers agree on one value: the first writer's.
func testSecretsConcurrent(t *testing.T, s users.Store) {
	sec := secrets(t, s)
	const n = 16
	got := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			v, err := sec.UpdateSecret(bg, "shared", func(cur []byte) ([]byte, error) {
				if cur != nil {
					return cur, nil
				}
				return []byte(fmt.Sprintf("value-%d", i)), nil
			})
			if err != nil {
				t.Error(err)
			}
			got[i] = string(v)
		})
	}
	wg.Wait()
	for _, v := range got {
		if v != got[0] || v == "" {
			t.Fatalf("callers disagree: %q", got)
		}
	}
}

// EmailVerified round-trips through every write, and ByEmail finds users
// by address regardless of case (every backend is an EmailFinder).
func testEmailVerified(t *testing.T, s users.Store) {
	f, ok := s.(users.EmailFinder)
	if !ok {
		t.Fatalf("%T is not a users.EmailFinder", s)
	}
	a := mustCreate(t, s, &users.User{Username: "vera", Email: "Vera@Example.com", EmailVerified: true, IsActive: true})
	if !a.EmailVerified || !mustByID(t, s, a.ID).EmailVerified {
		t.Fatal("EmailVerified not kept by Create")
	}
	b := mustCreate(t, s, &users.User{Username: "vic", Email: "vera@example.COM"})
	if mustByID(t, s, b.ID).EmailVerified {
		t.Fatal("EmailVerified set on a user created without it")
	}
	mustCreate(t, s, &users.User{Username: "other", Email: "someone@example.com"})
	got := mustUpdate(t, s, b.ID, func(u *users.User) { u.EmailVerified = true })
	if !got.EmailVerified || !mustByID(t, s, b.ID).EmailVerified {
		t.Fatal("EmailVerified not kept by Update")
	}
	got = mustUpdate(t, s, a.ID, func(u *users.User) { u.EmailVerified = false })
	if got.EmailVerified || mustByID(t, s, a.ID).EmailVerified {
		t.Fatal("EmailVerified not cleared by Update")
	}
	batch := []*users.User{{Username: "bulk", Email: "bulk@example.com", EmailVerified: true}}
	if _, err := s.CreateMany(bg, batch, false); err != nil {
		t.Fatal(err)
	}
	if !mustByID(t, s, batch[0].ID).EmailVerified {
		t.Fatal("EmailVerified not kept by CreateMany")
	}
	found, err := f.ByEmail(bg, "VERA@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || found[0].ID != a.ID || found[1].ID != b.ID {
		t.Fatalf("ByEmail found %+v, want users %d and %d", found, a.ID, b.ID)
	}
	for _, email := range []string{"", "nobody@example.com", "vera@example"} {
		if found, err := f.ByEmail(bg, email); err != nil || len(found) != 0 {
			t.Errorf("ByEmail(%q) = %+v, %v; want none", email, found, err)
		}
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := f.ByEmail(ctx, "vera@example.com"); !errors.Is(err, context.Canceled) {
		t.Errorf("ByEmail with a done ctx: %v", err)
	}
}

func pick(cond bool, a, b func(*testing.T, users.Store)) func(*testing.T, users.Store) {
	if cond {
		return a
	}
	return b
}

// longHash is the length of the longest hash the round trip stores.
func longHash() int {
	if opts.MaxPasswordHash > 0 {
		return opts.MaxPasswordHash
	}
	return 2000
}

// mustCreateInGroups creates u and puts it in groups, by Create where the
// backend writes groups, else with opts.SetGroups.
func mustCreateInGroups(t *testing.T, s users.Store, u *users.User, groups []string) *users.User {
	t.Helper()
	if opts.SetGroups == nil {
		u.Groups = groups
		return mustCreate(t, s, u)
	}
	mustCreate(t, s, u)
	opts.SetGroups(t, s, u.ID, groups)
	return mustByID(t, s, u.ID)
}

// testGroupsReadOnly: groups set outside the store are read sorted and
// exactly; a write that changes them is refused and changes nothing; a
// write that keeps them works.
func testGroupsReadOnly(t *testing.T, s users.Store) {
	u := mustCreateInGroups(t, s, &users.User{Username: "gina", IsActive: true}, []string{"editors", "Editors", "Content Editors", "東京", "a,b"})
	want := []string{"Content Editors", "Editors", "a,b", "editors", "東京"}
	if !slices.Equal(u.Groups, want) {
		t.Fatalf("groups %q, want %q", u.Groups, want)
	}
	if got, err := s.ByUsername(bg, "GINA"); err != nil || !slices.Equal(got.Groups, want) {
		t.Errorf("ByUsername groups %q (%v)", got.Groups, err)
	}
	if all, err := s.List(bg); err != nil || len(all) != 1 || !slices.Equal(all[0].Groups, want) {
		t.Errorf("List %+v (%v)", all, err)
	}
	_, err := s.Update(bg, u.ID, func(u *users.User) error {
		u.Groups = append(u.Groups, "analysts")
		u.Email = "changed@example.com"
		return nil
	})
	if !errors.Is(err, users.ErrInvalidUser) {
		t.Errorf("Update changing read-only groups: %v, want ErrInvalidUser", err)
	}
	if got := mustByID(t, s, u.ID); !slices.Equal(got.Groups, want) || got.Email != "" {
		t.Errorf("refused Update changed the user: %+v", got)
	}
	got := mustUpdate(t, s, u.ID, func(u *users.User) { u.Email = "g@example.com" })
	if !slices.Equal(got.Groups, want) || got.Email != "g@example.com" {
		t.Errorf("Update keeping the groups: %+v", got)
	}
	if err := s.Create(bg, &users.User{Username: "hal", Groups: []string{"x"}}); !errors.Is(err, users.ErrInvalidUser) {
		t.Errorf("Create with read-only groups: %v, want ErrInvalidUser", err)
	}
	if v := mustCreate(t, s, &users.User{Username: "ivy"}); v.Groups != nil {
		t.Errorf("user without groups has %#v", v.Groups)
	}
}
