package sessions

import (
	"slices"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// Both stores keep the index alike: add, list (expired entries hidden),
// touch only what is there, remove, users apart.
func TestUserIndex(t *testing.T) {
	run := func(t *testing.T, idx UserIndex) {
		now := time.Now().UTC().Truncate(time.Second)
		a := SessionInfo{Key: "keyA", Created: now, LastSeen: now, Expiry: now.Add(time.Hour), IP: "192.0.2.1", UserAgent: "UA a"}
		b := SessionInfo{Key: "keyB", Created: now, LastSeen: now, Expiry: now.Add(time.Hour), IP: "192.0.2.2", UserAgent: "UA b"}
		old := SessionInfo{Key: "keyOld", Created: now.Add(-2 * time.Hour), Expiry: now.Add(-time.Minute)}
		for _, info := range []SessionInfo{a, b, old} {
			if err := idx.AddUserSession(7, info); err != nil {
				t.Fatal(err)
			}
		}
		if err := idx.AddUserSession(8, SessionInfo{Key: "keyC", Expiry: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		keys := func(user int64) []string {
			got, err := idx.UserSessions(user)
			if err != nil {
				t.Fatal(err)
			}
			var ks []string
			for _, g := range got {
				ks = append(ks, g.Key)
			}
			slices.Sort(ks)
			return ks
		}
		if got := keys(7); !slices.Equal(got, []string{"keyA", "keyB"}) {
			t.Fatalf("user 7 sessions %q", got)
		}
		later := now.Add(5 * time.Minute)
		if err := idx.TouchUserSession(7, "keyA", later); err != nil {
			t.Fatal(err)
		}
		if err := idx.TouchUserSession(7, "nope", later); err != nil {
			t.Fatal(err)
		}
		got, _ := idx.UserSessions(7)
		for _, g := range got {
			want := now
			if g.Key == "keyA" {
				want = later
			}
			if !g.LastSeen.Equal(want) || g.IP == "" || g.UserAgent == "" || !g.Created.Equal(now) {
				t.Errorf("%s: %+v, want last seen %v", g.Key, g, want)
			}
		}
		if err := idx.RemoveUserSessions(7, "keyA"); err != nil {
			t.Fatal(err)
		}
		if got := keys(7); !slices.Equal(got, []string{"keyB"}) {
			t.Fatalf("after remove: %q", got)
		}
		if err := idx.TouchUserSession(7, "keyA", later); err != nil {
			t.Fatal(err)
		}
		if got := keys(7); !slices.Equal(got, []string{"keyB"}) {
			t.Fatalf("touch brought a removed session back: %q", got)
		}
		if err := idx.RemoveUserSessions(7, "keyB"); err != nil {
			t.Fatal(err)
		}
		if got := keys(7); len(got) != 0 {
			t.Fatalf("after removing all: %q", got)
		}
		if got := keys(8); !slices.Equal(got, []string{"keyC"}) {
			t.Fatalf("user 8: %q", got)
		}
	}
	t.Run("bolt", func(t *testing.T) {
		s, _ := newBoltStore(t, 0)
		run(t, s)
	})
	t.Run("redis", func(t *testing.T) {
		srv := testredis.Start(t)
		run(t, NewRedisStore(openClient(t, srv.URL(), RedisOptions{}), srv.Prefix, 0))
	})
}

// The bbolt cleanup drops index entries of sessions that expired, for
// users who never come back.
func TestBoltPruneUserIndex(t *testing.T) {
	s, _ := newBoltStore(t, 0)
	now := time.Now()
	s.AddUserSession(1, SessionInfo{Key: "live", Expiry: now.Add(time.Hour)})
	s.AddUserSession(1, SessionInfo{Key: "gone", Expiry: now.Add(10 * time.Millisecond)})
	s.AddUserSession(2, SessionInfo{Key: "gone2", Expiry: now.Add(10 * time.Millisecond)})
	time.Sleep(20 * time.Millisecond)
	n, err := s.PruneUserIndex()
	if err != nil || n != 2 {
		t.Fatalf("PruneUserIndex = %d, %v; want 2 users pruned", n, err)
	}
	var users, entries int
	s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(userSessionsBucket).ForEach(func(k, _ []byte) error {
			users++
			return tx.Bucket(userSessionsBucket).Bucket(k).ForEach(func(_, _ []byte) error { entries++; return nil })
		})
	})
	if users != 1 || entries != 1 {
		t.Fatalf("%d user buckets with %d entries left, want 1 with 1", users, entries)
	}
}
