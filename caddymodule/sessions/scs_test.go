package sessions

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

// TestSCSRoundTrip drives scs.SessionManager with each store and codec, the
// way the HTTP layer will: Load (new) / Put / Commit / Load (existing).
func TestSCSRoundTrip(t *testing.T) {
	stores := map[string]func(t *testing.T) scs.Store{
		"bolt": func(t *testing.T) scs.Store {
			s, _ := newBoltStore(t, 0)
			return s
		},
		"redis": func(t *testing.T) scs.Store {
			srv := testredis.Start(t)
			return redisstore.NewWithPrefix(newRedisPool(t, srv.URL(), PoolOptions{}), srv.Prefix)
		},
	}
	codecs := map[string]scs.Codec{"compact": Codec{}, "gob": scs.GobCodec{}}
	for storeName, newStore := range stores {
		for codecName, codec := range codecs {
			t.Run(storeName+"/"+codecName, func(t *testing.T) {
				store := newStore(t)
				sm := scs.New()
				sm.Store, sm.Codec, sm.HashTokenInStore = store, codec, true
				sm.Lifetime = time.Hour
				testSCSRoundTrip(t, sm, store)
			})
		}
	}
}

func testSCSRoundTrip(t *testing.T, sm *scs.SessionManager, store scs.Store) {
	ctx, err := sm.Load(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	sm.Put(ctx, "_auth_user_id", int64(42))
	sm.Put(ctx, "name", "alice")
	sm.Put(ctx, "remember", true)
	token, expiry, err := sm.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(expiry); d <= 0 || d > time.Hour {
		t.Errorf("expiry in %v, want within the 1h lifetime", d)
	}

	// With HashTokenInStore the raw token never reaches the store.
	hash := sha256.Sum256([]byte(token))
	stored := base64.RawURLEncoding.EncodeToString(hash[:])
	if _, found, _ := store.Find(token); found {
		t.Error("store holds the raw token")
	}
	if _, found, err := store.Find(stored); err != nil || !found {
		t.Fatalf("store lacks the hashed token: %v, %v", found, err)
	}

	ctx2, err := sm.Load(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	if id := sm.GetInt64(ctx2, "_auth_user_id"); id != 42 {
		t.Errorf("_auth_user_id = %d, want 42", id)
	}
	if name := sm.GetString(ctx2, "name"); name != "alice" {
		t.Errorf("name = %q", name)
	}
	if !sm.GetBool(ctx2, "remember") {
		t.Error("remember = false")
	}

	if err := sm.Destroy(ctx2); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := store.Find(stored); found {
		t.Error("session still stored after Destroy")
	}
	ctx3, err := sm.Load(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	if sm.Exists(ctx3, "_auth_user_id") {
		t.Error("destroyed session loaded again")
	}
}
