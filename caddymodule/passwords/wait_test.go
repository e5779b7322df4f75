package passwords

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// The wait for a slot is observed for every computation, including one
// that gives up: a flood shows there, not in the hash time.
func TestWaitObserver(t *testing.T) {
	h := newTestHasher(t)
	h.Slots().SetLimit(1)
	var mu sync.Mutex
	var waits []time.Duration
	h.SetWaitObserver(func(d time.Duration) { mu.Lock(); waits = append(waits, d); mu.Unlock() })
	ctx := context.Background()

	if err := h.Slots().Acquire(ctx); err != nil { // the only slot is busy
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := h.Hash(ctx, "pw"); done <- err }()
	for h.Slots().Waiting() == 0 {
		time.Sleep(time.Millisecond)
	}
	held := time.Now()
	time.Sleep(20 * time.Millisecond)
	heldFor := time.Since(held)
	h.Slots().Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	if err := h.Slots().Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := h.Hash(short, "pw"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("gave up: %v", err)
	}
	h.Slots().Release()

	mu.Lock()
	defer mu.Unlock()
	if len(waits) != 2 {
		t.Fatalf("observed %d waits, want 2", len(waits))
	}
	if waits[0] < heldFor {
		t.Errorf("waited %v for a slot held %v", waits[0], heldFor)
	}
	if waits[1] <= 0 {
		t.Errorf("the wait of a computation that gave up: %v", waits[1])
	}
	h.SetWaitObserver(nil)
	if _, err := h.Hash(ctx, "pw"); err != nil || len(waits) != 2 {
		t.Errorf("observer removed, still called (%d) or %v", len(waits), err)
	}
}
