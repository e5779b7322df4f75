package postgres

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
)

// seen polls s.ByID until it returns a user with the given epoch and
// returns how long that took, failing after limit.
func seen(t *testing.T, s *Store, id, epoch int64, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		u, err := s.ByID(bg, id)
		if err == nil && u.SessionEpoch == epoch {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("after %v ByID still gives epoch %d (err %v), want %d", limit, u.SessionEpoch, err, epoch)
		}
		runtime.Gosched()
	}
}

func bump(t *testing.T, s users.Store, id int64) int64 {
	t.Helper()
	u, err := s.Update(bg, id, func(u *users.User) error { u.SessionEpoch++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return u.SessionEpoch
}

// cache fills a's cache with the user and checks that it is cached, so that
// only an invalidation can make a see a later change.
func cache(t testing.TB, a *Store, id int64) {
	t.Helper()
	// The NOTIFY of a's own last write may still be on its way and drop
	// the entry again: fill until it stays.
	waitFor(t, "the user to be cached", func() bool {
		mustByID(t, a, id)
		return a.cache.Has(id)
	})
}

// A write through one instance (B) is seen by another (A) that had the user
// cached, within milliseconds: the issue asks for < 1 s.
func TestCrossInstanceInvalidation(t *testing.T) {
	db := testpg.New(t)
	a, b := openOn(t, db.URL, Options{}), openOn(t, db.URL, Options{})
	u := mustCreate(t, b, &users.User{Username: "alice", IsActive: true})
	const rounds = 30
	var delays []time.Duration
	for range rounds {
		cache(t, a, u.ID)
		epoch := bump(t, b, u.ID) // committed when it returns
		delays = append(delays, seen(t, a, u.ID, epoch, time.Second))
	}
	// Deactivation too (what ends access).
	cache(t, a, u.ID)
	if _, err := b.Update(bg, u.ID, func(u *users.User) error { u.IsActive = false; return nil }); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for mustByID(t, a, u.ID).IsActive {
		if time.Since(start) > time.Second {
			t.Fatal("deactivation not seen within 1s")
		}
		runtime.Gosched()
	}
	// And deletion.
	cache(t, a, u.ID)
	if err := b.Delete(bg, u.ID); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	for {
		if _, err := a.ByID(bg, u.ID); errors.Is(err, users.ErrNotFound) {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatal("deletion not seen within 1s")
		}
		runtime.Gosched()
	}
	slices.Sort(delays)
	t.Logf("cross-instance invalidation delay over %d updates: median %v, p90 %v, max %v",
		rounds, delays[rounds/2], delays[rounds*9/10], delays[rounds-1])
}

// A write by plain SQL (another tool, an operator) is seen too: the NOTIFY
// comes from a trigger, not from this package's code.
func TestPlainSQLWriteSeen(t *testing.T) {
	db := testpg.New(t)
	a := openOn(t, db.URL, Options{})
	u := mustCreate(t, a, &users.User{Username: "bob", IsActive: true})
	cache(t, a, u.ID)
	if _, err := db.Conn(t).Exec(bg, "UPDATE session_auth_users SET session_epoch = 9 WHERE id = $1", u.ID); err != nil {
		t.Fatal(err)
	}
	t.Logf("plain SQL UPDATE seen after %v", seen(t, a, u.ID, 9, time.Second))
	cache(t, a, u.ID)
	// CASCADE: session_auth_user_factors refers to the users.
	if _, err := db.Conn(t).Exec(bg, "TRUNCATE session_auth_users CASCADE"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		if _, err := a.ByID(bg, u.ID); errors.Is(err, users.ErrNotFound) {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatal("TRUNCATE not seen within 1s")
		}
		runtime.Gosched()
	}
}

func eventOf(t *testing.T, events <-chan ListenerEvent) ListenerEvent {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no listener event within 10s")
		return ListenerEvent{}
	}
}

// Killing the listener's connection (pg_terminate_backend) flushes the
// cache: a change made while nobody listened is not missed, and after the
// listener is back, invalidation works again.
func TestListenerKilledNoStaleRead(t *testing.T) {
	db := testpg.New(t)
	events := make(chan ListenerEvent, 16)
	a := openOn(t, db.URL, Options{OnListener: func(ev ListenerEvent) { events <- ev }})
	if ev := eventOf(t, events); !ev.Listening {
		t.Fatalf("first event %+v, want listening", ev)
	}
	b := openOn(t, db.URL, Options{})
	u := mustCreate(t, b, &users.User{Username: "carol", IsActive: true})
	admin := db.Conn(t)
	for round := range 3 {
		cache(t, a, u.ID)
		pid := a.listenerPID.Load()
		if _, err := admin.Exec(bg, "SELECT pg_terminate_backend($1)", int32(pid)); err != nil {
			t.Fatal(err)
		}
		ev := eventOf(t, events)
		if ev.Listening || ev.Err == nil {
			t.Fatalf("round %d: event %+v, want lost with an error", round, ev)
		}
		t.Logf("listener lost: %v", ev.Err)
		if a.cache.Len() != 0 {
			t.Fatalf("round %d: %d users still cached after the listener was lost", round, a.cache.Len())
		}
		// A change nobody hears about, made right away: A's next read
		// must see it, whether or not its listener is back yet.
		epoch := bump(t, b, u.ID)
		if got := mustByID(t, a, u.ID); got.SessionEpoch != epoch {
			t.Fatalf("round %d: stale read after the listener was lost: epoch %d, want %d", round, got.SessionEpoch, epoch)
		}
		ev = eventOf(t, events)
		if !ev.Listening || ev.Down <= 0 {
			t.Fatalf("round %d: event %+v, want listening again", round, ev)
		}
		t.Logf("listener back after %v", ev.Down)
		// Invalidation works again.
		cache(t, a, u.ID)
		epoch = bump(t, b, u.ID)
		seen(t, a, u.ID, epoch, time.Second)
	}
}

// PostgreSQL down: A (through the proxy) does not answer from its cache
// what it can no longer vouch for; its reads fail (fail closed) within the
// timeouts, and the first read after the server is back succeeds and sees
// the change made meanwhile.
func TestDatabaseDownFailsClosed(t *testing.T) {
	db := testpg.New(t)
	p, via := testpg.Through(t, db.URL)
	events := make(chan ListenerEvent, 16)
	opts := Options{ConnectTimeout: time.Second, QueryTimeout: time.Second, OnListener: func(ev ListenerEvent) { events <- ev }}
	a := openOn(t, via, opts)
	eventOf(t, events)
	b := openOn(t, db.URL, Options{})
	u := mustCreate(t, b, &users.User{Username: "dave", IsActive: true})
	cache(t, a, u.ID)

	p.Cut()
	if ev := eventOf(t, events); ev.Listening {
		t.Fatalf("event %+v, want lost", ev)
	}
	epoch := bump(t, b, u.ID) // made while A cannot hear of it
	start := time.Now()
	got, err := a.ByID(bg, u.ID)
	took := time.Since(start)
	if err == nil {
		t.Fatalf("ByID while the database is unreachable answered %+v from the cache, want an error", got)
	}
	if took > 3*time.Second {
		t.Errorf("ByID took %v to fail, want about the connect timeout (1s)", took)
	}
	t.Logf("ByID with the database down failed after %v: %v", took, err)

	p.Restore()
	if got := seen(t, a, u.ID, epoch, 5*time.Second); got > 0 {
		t.Logf("first successful read %v after the database came back", got)
	}
	if ev := eventOf(t, events); !ev.Listening {
		t.Fatalf("event %+v, want listening again", ev)
	}
}

// PostgreSQL hung (connections open, nothing answers): calls fail after
// QueryTimeout instead of hanging, and the cache stops being used within
// three heartbeats, so a change made meanwhile is never served stale for
// longer than that.
func TestDatabaseHungFailsClosed(t *testing.T) {
	db := testpg.New(t)
	p, via := testpg.Through(t, db.URL)
	opts := Options{ConnectTimeout: time.Second, QueryTimeout: 500 * time.Millisecond, Heartbeat: 100 * time.Millisecond}
	a := openOn(t, via, opts)
	b := openOn(t, db.URL, Options{})
	u := mustCreate(t, b, &users.User{Username: "erin", IsActive: true})
	cache(t, a, u.ID)

	p.Freeze()
	epoch := bump(t, b, u.ID)
	changed := time.Now()
	// Until the lease runs out A may answer the old epoch from its
	// cache; after it, every read goes to the (hung) database and fails.
	var staleFor time.Duration
	for {
		start := time.Now()
		got, err := a.ByID(bg, u.ID)
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("ByID hung for %v", took)
		}
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("ByID through a hung server: %v, want a timeout", err)
			}
			break
		}
		if got.SessionEpoch == epoch {
			t.Fatal("the frozen proxy let a read through")
		}
		staleFor = time.Since(changed)
		if staleFor > time.Second {
			t.Fatalf("A served the stale user for %v with its listener hung", staleFor)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("with the server hung, the cache served the old user for %v at most (lease %v)", staleFor, 3*opts.Heartbeat)
	start := time.Now()
	if _, err := a.Update(bg, u.ID, func(*users.User) error { return nil }); err == nil {
		t.Fatal("Update through a hung server succeeded")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Update through a hung server took %v to fail", took)
	}
	p.Thaw()
	seen(t, a, u.ID, epoch, 10*time.Second)
}

// A sidecar can start while PostgreSQL is down: New does not connect,
// calls fail until the server is back, then work without a restart (the
// schema is made on first use). Open, for the CLI, fails with a clear error.
func TestStartWhileDown(t *testing.T) {
	db := testpg.New(t)
	p, via := testpg.Through(t, db.URL)
	p.Cut()
	events := make(chan ListenerEvent, 16)
	opts := Options{ConnectTimeout: time.Second, QueryTimeout: time.Second, OnListener: func(ev ListenerEvent) { events <- ev }}
	if _, err := Open(bg, via, Options{ConnectTimeout: time.Second}); err == nil {
		t.Fatal("Open with the database down succeeded")
	} else {
		t.Logf("Open with the database down: %v", err)
	}
	s, err := New(via, opts)
	if err != nil {
		t.Fatalf("New with the database down: %v", err)
	}
	defer s.Close()
	if ev := eventOf(t, events); ev.Listening || ev.Err == nil {
		t.Fatalf("first event %+v, want not listening, with the error", ev)
	}
	if err := s.Ping(bg); err == nil {
		t.Fatal("Ping with the database down succeeded")
	}
	if err := s.Create(bg, &users.User{Username: "early"}); err == nil {
		t.Fatal("Create with the database down succeeded")
	}
	p.Restore()
	if ev := eventOf(t, events); !ev.Listening {
		t.Fatalf("event %+v, want listening", ev)
	}
	if err := s.Ping(bg); err != nil {
		t.Fatalf("Ping after the database came back: %v", err)
	}
	u := mustCreate(t, s, &users.User{Username: "late"})
	if got := mustByID(t, s, u.ID); got.Username != "late" {
		t.Fatalf("ByID = %+v", got)
	}
}
