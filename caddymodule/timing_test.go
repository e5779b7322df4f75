package caddymodule_test

import (
	"slices"
	"testing"
	"time"
)

// A login for an unknown user costs what a wrong password for a known one
// does (the unknown one verifies against a dummy hash), so timing does not
// tell which usernames exist. Through the real HTTP API, one at a time,
// the two kinds interleaved (alternating which goes first) so that drift
// in machine load hits both alike; medians of 20 must be within 20%.
func TestLoginTimingUnknownVsWrongPassword(t *testing.T) {
	s := startSite(t, "", "") // throttles off: 40 failures from one IP
	if r := s.register(t, "known", "known@example.com", strongPassword); r.StatusCode != 201 {
		t.Fatalf("register: %d %s", r.StatusCode, r.body)
	}
	measure := func(username string) time.Duration { return s.timeWrongLogin(t, username) }
	for range 3 { // warm up connections, caches and the allocator
		measure("known")
		measure("nobody-by-this-name")
	}
	const n = 20
	var known, unknown []time.Duration
	for i := range n {
		if i%2 == 0 {
			known = append(known, measure("known"))
			unknown = append(unknown, measure("nobody-by-this-name"))
		} else {
			unknown = append(unknown, measure("nobody-by-this-name"))
			known = append(known, measure("known"))
		}
	}
	mk, mu := median(known), median(unknown)
	ratio := float64(max(mk, mu)) / float64(min(mk, mu))
	t.Logf("median of %d: wrong password %v, unknown user %v (ratio %.3f)", n,
		mk.Round(time.Microsecond), mu.Round(time.Microsecond), ratio)
	if ratio > 1.2 {
		t.Errorf("medians differ by more than 20%%: wrong password %v, unknown user %v", mk, mu)
	}
}

// timeWrongLogin is how long a login of username with a wrong password
// takes to be refused (400).
func (s *site) timeWrongLogin(t *testing.T, username string) time.Duration {
	t.Helper()
	var status int
	d := timed(func() { status = s.loginAs(t, username, "Wrong-Guess-123", nil).StatusCode })
	if status != 400 {
		t.Fatalf("login %s: %d", username, status)
	}
	return d
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
