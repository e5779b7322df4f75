package passwords

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestSlotsBoundAndOrder(t *testing.T) {
	s := NewSlots(2)
	ctx := context.Background()
	for range 2 {
		if err := s.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A third waits, and gives up when its context ends.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := s.Acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire on full slots = %v, want DeadlineExceeded", err)
	}
	if n := s.InUse(); n != 2 {
		t.Fatalf("InUse = %d after a timed-out wait, want 2", n)
	}
	// Waiters are served in order.
	order := make(chan int, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			if err := s.Acquire(ctx); err != nil {
				t.Error(err)
				return
			}
			order <- i
			s.Release()
		})
		for waiting(s) != i+1 { // queue them one by one
			time.Sleep(time.Millisecond)
		}
	}
	s.Release() // one slot goes round the waiters, in turn
	wg.Wait()
	s.Release()
	close(order)
	want := 0
	for i := range order {
		if i != want {
			t.Errorf("waiter %d served at turn %d", i, want)
		}
		want++
	}
	if n := s.InUse(); n != 0 {
		t.Errorf("InUse = %d after all released", n)
	}
}

func waiting(s *Slots) int { return s.Waiting() }

// SetLimit takes effect for computations that start afterwards: growing
// serves waiters at once, shrinking lets the running ones finish.
func TestSlotsSetLimit(t *testing.T) {
	s := NewSlots(1)
	ctx := context.Background()
	s.Acquire(ctx)
	got := make(chan struct{})
	go func() {
		s.Acquire(ctx)
		close(got)
	}()
	for waiting(s) != 1 {
		time.Sleep(time.Millisecond)
	}
	s.SetLimit(2)
	<-got
	if n := s.InUse(); n != 2 {
		t.Fatalf("InUse = %d after growing to 2, want 2", n)
	}
	s.SetLimit(1)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	s.Release()
	if err := s.Acquire(short); err == nil {
		t.Fatal("acquired a slot while 1 of 1 is in use")
	}
	s.Release()
	if err := s.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	s.Release()
	if NewSlots(0).Limit() != 1 {
		t.Error("NewSlots(0) has no slot")
	}
}

// A Hasher's limit can change under load, and the new bound holds.
func TestHasherBoundAcrossSetLimit(t *testing.T) {
	h := NewHasher(lowParams, 3)
	peak := trackPeak(h, 2*time.Millisecond)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() { h.VerifyDummy(context.Background(), "pw") })
		if i == 10 {
			// Shrink to 1 and let what runs under the old limit end.
			h.Slots().SetLimit(1)
			for h.Slots().InUse() > 1 {
				time.Sleep(time.Millisecond)
			}
			peak.Store(0)
		}
	}
	wg.Wait()
	if p := peak.Load(); p > 1 {
		t.Errorf("%d computations ran at once after SetLimit(1)", p)
	}
}

// The bound is weighted by memory: an argon2 hash with four times the
// hasher's memory takes four slots, so with four slots such checks run one
// at a time (argon2's memory × concurrency stays bounded), while pbkdf2
// checks (negligible memory) take one slot each.
func TestHasherBoundWeightedByMemory(t *testing.T) {
	h := NewHasher(lowParams, 4)
	big := lowParams
	big.Memory *= 4
	ctx := context.Background()
	bigHash, err := NewHasher(big, 1).Hash(ctx, "pw")
	if err != nil {
		t.Fatal(err)
	}
	peak := trackPeak(h, 5*time.Millisecond)
	run := func(encoded string) int32 {
		peak.Store(0)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if ok, _, err := h.Verify(ctx, "pw", encoded); !ok || err != nil {
					t.Errorf("verify: %v, %v", ok, err)
				}
			})
		}
		wg.Wait()
		return peak.Load()
	}
	if p := run(bigHash); p != 1 {
		t.Errorf("%d argon2 checks of 4× the hasher's memory ran at once with 4 slots, want 1", p)
	}
	if used := h.Slots().InUse(); used != 0 {
		t.Errorf("%d slots in use after all checks", used)
	}
	pbkdf2Hash := "pbkdf2_sha256$1000$salt$" + pbkdf2Key("pw", "salt", 1000)
	if p := run(pbkdf2Hash); p > 4 {
		t.Errorf("%d pbkdf2 checks ran at once with 4 slots", p)
	} else if p < 2 {
		t.Errorf("8 pbkdf2 checks with 4 slots ran one at a time: each took more than one slot")
	}
	// A hash dearer than the whole bound still runs (alone).
	huge := lowParams
	huge.Memory *= 16
	hugeHash, err := NewHasher(huge, 1).Hash(ctx, "pw")
	if err != nil {
		t.Fatal(err)
	}
	if p := run(hugeHash); p != 1 {
		t.Errorf("%d checks of 16× the memory ran at once, want 1", p)
	}
}

func pbkdf2Key(password, salt string, iterations int) string {
	key, err := pbkdf2.Key(sha256.New, password, []byte(salt), iterations, 32)
	if err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(key)
}
