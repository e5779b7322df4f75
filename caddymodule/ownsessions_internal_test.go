package caddymodule

import (
	"testing"
	"time"
)

// seenSet lets a session's last-seen time be written at most once per
// touchEvery: due says yes for a session not marked in the current or the
// previous generation, and marks it.
func TestSeenSetDue(t *testing.T) {
	var s seenSet
	t0 := time.Unix(1_000_000, 0)
	steps := []struct {
		token string
		at    time.Duration
		due   bool
	}{
		{"a", 0, true},                         // first use
		{"a", time.Second, false},              // within the minute
		{"b", time.Second, true},               // another session
		{"a", touchEvery - time.Second, false}, // still the same generation
		{"a", touchEvery, false},               // swapped: a is in the previous generation
		{"a", 2 * touchEvery, true},            // a full generation untouched
		{"a", 2*touchEvery + time.Second, false},
		{"b", 3 * touchEvery, true}, // b was marked two swaps ago (last at 1s)
	}
	for i, st := range steps {
		if got := s.due(st.token, t0.Add(st.at)); got != st.due {
			t.Errorf("step %d: due(%q) at +%v = %v, want %v", i, st.token, st.at, got, st.due)
		}
	}
}
