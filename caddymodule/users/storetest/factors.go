package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// factors returns s as a users.Factors, which every backend implements.
func factors(t *testing.T, s users.Store) users.Factors {
	t.Helper()
	f, ok := s.(users.Factors)
	if !ok {
		t.Fatalf("%T does not implement users.Factors", s)
	}
	return f
}

func mustFactors(t *testing.T, f users.Factors, id int64) []byte {
	t.Helper()
	v, err := f.Factors(bg, id)
	if err != nil {
		t.Fatalf("Factors(%d): %v", id, err)
	}
	return v
}

func mustUpdateFactors(t *testing.T, f users.Factors, id int64, fn func(cur []byte) []byte) []byte {
	t.Helper()
	v, err := f.UpdateFactors(bg, id, func(cur []byte) ([]byte, error) { return fn(cur), nil })
	if err != nil {
		t.Fatalf("UpdateFactors(%d): %v", id, err)
	}
	return v
}

// allFactorsAre fails unless AllFactors lists exactly want.
func allFactorsAre(t *testing.T, f users.Factors, want map[int64][]byte) {
	t.Helper()
	got, err := f.AllFactors(bg)
	if err != nil {
		t.Fatalf("AllFactors: %v", err)
	}
	if !maps.EqualFunc(got, want, bytes.Equal) {
		t.Errorf("AllFactors = %s, want %s", fmtFactors(got), fmtFactors(want))
	}
}

func testFactors(t *testing.T, s users.Store) {
	f := factors(t, s)
	allFactorsAre(t, f, map[int64][]byte{})
	a := mustCreate(t, s, &users.User{Username: "alice", Email: "a@x", IsActive: true})
	b := mustCreate(t, s, &users.User{Username: "bob"})
	if v := mustFactors(t, f, a.ID); v != nil {
		t.Fatalf("Factors of a user without any = %q, want nil", v)
	}
	allFactorsAre(t, f, map[int64][]byte{})

	// A missing user: ErrNotFound, and fn is not called.
	for _, id := range []int64{b.ID + 1000, 0, -1} {
		if v, err := f.Factors(bg, id); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("Factors(%d) of no user = %q, %v; want ErrNotFound", id, v, err)
		}
		called := false
		_, err := f.UpdateFactors(bg, id, func([]byte) ([]byte, error) { called = true; return []byte("x"), nil })
		if !errors.Is(err, users.ErrNotFound) {
			t.Errorf("UpdateFactors(%d) of no user: %v, want ErrNotFound", id, err)
		}
		if called {
			t.Errorf("UpdateFactors(%d) of no user called fn", id)
		}
	}
	allFactorsAre(t, f, map[int64][]byte{})

	v := mustUpdateFactors(t, f, a.ID, func(cur []byte) []byte {
		if cur != nil {
			t.Errorf("first UpdateFactors saw %q, want nil", cur)
		}
		return []byte("one")
	})
	if string(v) != "one" || string(mustFactors(t, f, a.ID)) != "one" {
		t.Fatalf("after the first UpdateFactors: returned %q, stored %q", v, mustFactors(t, f, a.ID))
	}
	if v := mustFactors(t, f, b.ID); v != nil {
		t.Errorf("another user's value showed up: %q", v)
	}

	// fn's error writes nothing, even after fn scribbled on cur.
	boom := errors.New("boom")
	_, err := f.UpdateFactors(bg, a.ID, func(cur []byte) ([]byte, error) {
		if len(cur) > 0 {
			cur[0] = 'X'
		}
		return []byte("two"), boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateFactors whose fn fails: %v, want fn's error", err)
	}
	if v := mustFactors(t, f, a.ID); string(v) != "one" {
		t.Fatalf("after a failed UpdateFactors: %q, want %q", v, "one")
	}

	// Read-modify-write; binary values; returned slices are copies.
	v = mustUpdateFactors(t, f, a.ID, func(cur []byte) []byte { return append(cur, "+two"...) })
	if string(v) != "one+two" {
		t.Fatalf("read-modify-write: %q", v)
	}
	v[0] = 'X'
	if got := mustFactors(t, f, a.ID); string(got) != "one+two" {
		t.Errorf("changing UpdateFactors' result changed the stored value: %q", got)
	}
	got := mustFactors(t, f, a.ID)
	got[0] = 'Y'
	if got := mustFactors(t, f, a.ID); string(got) != "one+two" {
		t.Errorf("changing Factors' result changed the stored value: %q", got)
	}
	bin := []byte{0, 1, 2, 255, 0}
	mustUpdateFactors(t, f, b.ID, func([]byte) []byte { return bytes.Clone(bin) })
	if got := mustFactors(t, f, b.ID); !bytes.Equal(got, bin) {
		t.Errorf("binary value: %v, want %v", got, bin)
	}
	all, err := f.AllFactors(bg)
	if err != nil {
		t.Fatal(err)
	}
	all[a.ID][0] = 'Z'
	allFactorsAre(t, f, map[int64][]byte{a.ID: []byte("one+two"), b.ID: bin})

	// The user record and the value are kept apart: writes of either leave
	// the other as it was.
	mustUpdate(t, s, a.ID, func(u *users.User) { u.Email = "new@x"; u.SessionEpoch++ })
	if got := mustFactors(t, f, a.ID); string(got) != "one+two" {
		t.Errorf("Update of the user changed its factors: %q", got)
	}
	before := mustByID(t, s, a.ID)
	mustUpdateFactors(t, f, a.ID, func(cur []byte) []byte { return append(cur, "+three"...) })
	same(t, mustByID(t, s, a.ID), before)

	// An empty or nil result deletes the value.
	if v := mustUpdateFactors(t, f, b.ID, func([]byte) []byte { return []byte{} }); v != nil {
		t.Errorf("UpdateFactors returning an empty value returned %q, want nil", v)
	}
	if v := mustFactors(t, f, b.ID); v != nil {
		t.Errorf("after an empty value: %q, want nil", v)
	}
	allFactorsAre(t, f, map[int64][]byte{a.ID: []byte("one+two+three")})
	if v := mustUpdateFactors(t, f, a.ID, func([]byte) []byte { return nil }); v != nil {
		t.Errorf("UpdateFactors returning nil returned %q, want nil", v)
	}
	if v := mustFactors(t, f, a.ID); v != nil {
		t.Errorf("after a nil value: %q, want nil", v)
	}
	allFactorsAre(t, f, map[int64][]byte{})
	// Deleting what is not there is no error, and a value can come back.
	mustUpdateFactors(t, f, a.ID, func(cur []byte) []byte {
		if cur != nil {
			t.Errorf("UpdateFactors after a delete saw %q", cur)
		}
		return nil
	})
	mustUpdateFactors(t, f, a.ID, func([]byte) []byte { return []byte("back") })
	allFactorsAre(t, f, map[int64][]byte{a.ID: []byte("back")})
}

// Deleting a user deletes its value; ids are not reused, so AllFactors
// must no longer list the old one.
func testFactorsDeletedWithUser(t *testing.T, s users.Store) {
	f := factors(t, s)
	a := mustCreate(t, s, &users.User{Username: "alice"})
	b := mustCreate(t, s, &users.User{Username: "bob"})
	mustUpdateFactors(t, f, a.ID, func([]byte) []byte { return []byte("alice's") })
	mustUpdateFactors(t, f, b.ID, func([]byte) []byte { return []byte("bob's") })
	if err := s.Delete(bg, a.ID); err != nil {
		t.Fatal(err)
	}
	if v, err := f.Factors(bg, a.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("Factors of a deleted user = %q, %v; want ErrNotFound", v, err)
	}
	allFactorsAre(t, f, map[int64][]byte{b.ID: []byte("bob's")})
	// A new user (with a new id, and with the old name) starts without.
	c := mustCreate(t, s, &users.User{Username: "alice"})
	if v := mustFactors(t, f, c.ID); v != nil {
		t.Errorf("a new user with a deleted user's name has factors %q", v)
	}
	allFactorsAre(t, f, map[int64][]byte{b.ID: []byte("bob's")})
	// CreateMany with the deleted id (explicit ids may be given again)
	// does not bring the old value back either.
	if _, err := s.CreateMany(bg, []*users.User{{ID: a.ID, Username: "again"}}, false); err != nil {
		t.Fatal(err)
	}
	if v := mustFactors(t, f, a.ID); v != nil {
		t.Errorf("a user re-created with a deleted id has its factors %q", v)
	}
	allFactorsAre(t, f, map[int64][]byte{b.ID: []byte("bob's")})
}

// A done context: an error wrapping ctx.Err(), fn not called, nothing
// written; a context that ends inside fn writes nothing either.
func testFactorsContextDone(t *testing.T, s users.Store) {
	f := factors(t, s)
	u := mustCreate(t, s, &users.User{Username: "alice"})
	mustUpdateFactors(t, f, u.ID, func([]byte) []byte { return []byte("kept") })
	canceled, cancel := context.WithCancel(bg)
	cancel()
	if _, err := f.Factors(canceled, u.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("Factors with a done context: %v", err)
	}
	if _, err := f.AllFactors(canceled); !errors.Is(err, context.Canceled) {
		t.Errorf("AllFactors with a done context: %v", err)
	}
	for _, next := range [][]byte{[]byte("lost"), nil} {
		called := false
		_, err := f.UpdateFactors(canceled, u.ID, func([]byte) ([]byte, error) { called = true; return next, nil })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("UpdateFactors with a done context: %v", err)
		}
		if called {
			t.Error("UpdateFactors called fn with a done context")
		}
	}
	ctx, cancel := context.WithCancel(bg)
	_, err := f.UpdateFactors(ctx, u.ID, func([]byte) ([]byte, error) { cancel(); return []byte("lost"), nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("UpdateFactors whose context ended inside fn: %v", err)
	}
	if v := mustFactors(t, f, u.ID); string(v) != "kept" {
		t.Errorf("value after calls with done contexts: %q, want %q", v, "kept")
	}
}

// Concurrent UpdateFactors of one user queue: each appends a byte, none is
// lost, and each sees the value with all earlier appends. Updates of the
// user record run alongside (they must neither block for good nor be lost).
func testFactorsConcurrent(t *testing.T, s users.Store) {
	f := factors(t, s)
	u := mustCreate(t, s, &users.User{Username: "dave"})
	other := mustCreate(t, s, &users.User{Username: "erin"})
	const n, writers = 40, 8
	var wg sync.WaitGroup
	lens := make([]int, n)
	for i := range n {
		wg.Go(func() {
			v, err := f.UpdateFactors(bg, u.ID, func(cur []byte) ([]byte, error) {
				return append(cur, byte(i)), nil
			})
			if err != nil {
				t.Errorf("UpdateFactors: %v", err)
				return
			}
			lens[i] = len(v)
		})
	}
	for range writers {
		wg.Go(func() {
			if _, err := s.Update(bg, u.ID, func(u *users.User) error { u.SessionEpoch++; return nil }); err != nil {
				t.Errorf("Update: %v", err)
			}
			if _, err := f.UpdateFactors(bg, other.ID, func(cur []byte) ([]byte, error) { return append(cur, 'o'), nil }); err != nil {
				t.Errorf("UpdateFactors of another user: %v", err)
			}
		})
	}
	wg.Wait()
	v := mustFactors(t, f, u.ID)
	if len(v) != n {
		t.Fatalf("after %d concurrent appends the value has %d bytes: updates were lost", n, len(v))
	}
	got := slices.Clone(v)
	slices.Sort(got)
	for i, c := range got {
		if int(c) != i {
			t.Fatalf("value %v does not hold 0..%d once each", v, n-1)
		}
	}
	slices.Sort(lens)
	for i, l := range lens {
		if l != i+1 {
			t.Fatalf("UpdateFactors results have lengths %v, want 1..%d once each", lens, n)
		}
	}
	if got := mustByID(t, s, u.ID).SessionEpoch; got != writers {
		t.Errorf("epoch after %d concurrent Updates = %d", writers, got)
	}
	if got := mustFactors(t, f, other.ID); string(got) != string(bytes.Repeat([]byte{'o'}, writers)) {
		t.Errorf("other user's value %q", got)
	}
}

func fmtFactors(m map[int64][]byte) string {
	var b strings.Builder
	b.WriteString("{")
	for i, id := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d: %q", id, m[id])
	}
	b.WriteString("}")
	return b.String()
}
