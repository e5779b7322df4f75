package usercache

import (
	"testing"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// A fill that read its value before a write ended must not land after the
// write's invalidation: it would bring the old value back for good.
func TestFillRacingInvalidation(t *testing.T) {
	c := New(10)
	_, gen := c.Get(1) // a ByID misses, reads the old record...
	c.Invalidate(1)    // ...while an Update commits and invalidates
	c.Put(&users.User{ID: 1, SessionEpoch: 0}, gen)
	if u, _ := c.Get(1); u != nil {
		t.Fatal("stale fill landed after the invalidation")
	}
	_, gen = c.Get(1)
	c.Invalidate() // a flush counts too
	c.Put(&users.User{ID: 1}, gen)
	if c.Has(1) {
		t.Fatal("stale fill landed after a flush")
	}
	_, gen = c.Get(1)
	c.Put(&users.User{ID: 1, SessionEpoch: 1}, gen)
	if u, _ := c.Get(1); u == nil || u.SessionEpoch != 1 {
		t.Fatalf("fill without a racing write: %+v", u)
	}
}

func TestGetReturnsCopies(t *testing.T) {
	c := New(10)
	_, gen := c.Get(1)
	in := &users.User{ID: 1, Username: "a"}
	c.Put(in, gen)
	in.Username = "changed after Put"
	a, _ := c.Get(1)
	a.Username = "changed by caller"
	if b, _ := c.Get(1); b.Username != "a" {
		t.Fatalf("cached user changed: %q", b.Username)
	}
}

func TestBoundedAndDisabled(t *testing.T) {
	c := New(2)
	for id := int64(1); id <= 5; id++ {
		_, gen := c.Get(id)
		c.Put(&users.User{ID: id}, gen)
	}
	if c.Len() != 2 {
		t.Fatalf("Len = %d, want 2", c.Len())
	}
	c.Invalidate()
	if c.Len() != 0 {
		t.Fatalf("Len after flush = %d", c.Len())
	}
	d := New(0)
	_, gen := d.Get(1)
	d.Put(&users.User{ID: 1}, gen)
	if d.Len() != 0 {
		t.Fatal("disabled cache stored a user")
	}
}
