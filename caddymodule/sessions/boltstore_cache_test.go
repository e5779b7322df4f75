package sessions

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Find answers from the cache exactly as from bbolt, across every write.
func TestBoltStoreFindCacheFollowsWrites(t *testing.T) {
	s, _ := newBoltStore(t, 0)
	if err := s.Commit("tok", []byte("one"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if b, found := mustFind(t, s, "tok"); !found || string(b) != "one" {
		t.Fatalf("Find = %q, %v", b, found)
	}
	if _, ok, _ := s.cache.get("tok"); !ok {
		t.Fatal("Find did not fill the cache")
	}
	// The caller owns what Find returns.
	b, _ := mustFind(t, s, "tok")
	b[0] = 'X'
	if b, _ := mustFind(t, s, "tok"); string(b) != "one" {
		t.Fatalf("a caller's change reached the cache: %q", b)
	}
	if err := s.Commit("tok", []byte("two"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if b, _ := mustFind(t, s, "tok"); string(b) != "two" {
		t.Fatalf("Find after overwrite = %q", b)
	}
	if err := s.Delete("tok"); err != nil {
		t.Fatal(err)
	}
	if _, found := mustFind(t, s, "tok"); found {
		t.Fatal("found after Delete")
	}
	// Unknown tokens are not cached.
	if n := len(s.cache.m); n != 0 {
		t.Fatalf("%d cached sessions after Delete", n)
	}
}

func TestBoltStoreFindCacheExpiry(t *testing.T) {
	s, _ := newBoltStore(t, 0)
	s.Commit("short", []byte("x"), time.Now().Add(50*time.Millisecond))
	if _, found := mustFind(t, s, "short"); !found {
		t.Fatal("not found before expiry")
	}
	time.Sleep(80 * time.Millisecond)
	if _, found := mustFind(t, s, "short"); found {
		t.Fatal("cached session found after its expiry")
	}
	// Cleanup drops expired sessions from the cache too.
	if n, err := s.DeleteExpired(); err != nil || n != 1 {
		t.Fatalf("DeleteExpired = %d, %v", n, err)
	}
	if _, ok, _ := s.cache.get("short"); ok {
		t.Fatal("expired session still cached after cleanup")
	}
}

func TestFindCacheFillRacingWrite(t *testing.T) {
	c := newFindCache(10)
	_, _, gen := c.get("t") // a Find misses and reads the old value...
	c.invalidate("t")       // ...while a Delete commits and invalidates
	c.put("t", time.Now().Add(time.Hour).UnixNano(), []byte("old"), gen)
	if _, ok, _ := c.get("t"); ok {
		t.Fatal("stale fill landed after the invalidation")
	}
}

func TestFindCacheBounded(t *testing.T) {
	s, _ := newBoltStore(t, 0)
	s.cache = newFindCache(3)
	for i := range 10 {
		tok := fmt.Sprint("t", i)
		s.Commit(tok, []byte(tok), time.Now().Add(time.Hour))
		if b, found := mustFind(t, s, tok); !found || string(b) != tok {
			t.Fatalf("Find(%s) = %q, %v", tok, b, found)
		}
	}
	if n := len(s.cache.m); n != 3 {
		t.Fatalf("%d cached sessions, want the bound 3", n)
	}
}

// Run with -race: after Delete returns, no Find sees the session, however
// many readers keep filling the cache meanwhile.
func TestBoltStoreFindCacheConcurrent(t *testing.T) {
	s, _ := newBoltStore(t, 0)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := s.Find(fmt.Sprint("t", (g+i)%20)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := range 100 {
		tok := fmt.Sprint("t", i%20)
		if err := s.Commit(tok, []byte("v"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, found := mustFind(t, s, tok); !found {
			t.Fatalf("%s not found after Commit", tok)
		}
		if err := s.Delete(tok); err != nil {
			t.Fatal(err)
		}
		if _, found := mustFind(t, s, tok); found {
			t.Fatalf("%s found after Delete", tok)
		}
	}
	close(stop)
	wg.Wait()
}

// BenchmarkBoltStoreFindUncached is Find's bbolt path (a cache miss).
func BenchmarkBoltStoreFindUncached(b *testing.B) {
	s, _ := newBoltStore(b, 0)
	s.cache = newFindCache(0)
	data, _ := Codec{}.Encode(time.Now().Add(time.Hour), authSession())
	token := fmt.Sprintf("%043d", 1)
	if err := s.Commit(token, data, time.Now().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, found, err := s.Find(token); err != nil || !found {
			b.Fatal(found, err)
		}
	}
}
