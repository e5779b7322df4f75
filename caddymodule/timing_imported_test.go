package caddymodule_test

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/passwords"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// raceEnabled is set by race_test.go when built with -race.
var raceEnabled bool

// Users with imported hashes (Django's pbkdf2_sha256 and bcrypt, dearer
// than argon2 at Django's defaults: here calibrated to about twice its
// time) must not be told apart by timing from
// unknown users or argon2 users: every password check lasts as long as the
// dearest kind this process has checked. Through the real HTTP API, one at
// a time, the kinds interleaved; medians must be within 20%.
func TestLoginTimingImportedHashes(t *testing.T) {
	s := startSite(t, "", "login_lockout off")
	t.Cleanup(caddymodule.ForgetHashCosts)
	defer caddymodule.SetHashWait(time.Minute)() // dear hashes under -race on a small machine
	const password = "Imported-Secret-42"
	salt := "c2VjZml4c2FsdA"
	// Imported hashes dearer than argon2 here and now (about twice its
	// time, at most 1 s, below the 3 s cap on padding): calibrated, since
	// the race detector and the machine's load change each differently.
	medianOf3 := func(fn func()) time.Duration {
		fn() // warm up
		return median([]time.Duration{timed(fn), timed(fn), timed(fn)})
	}
	h := passwords.NewHasher(passwords.DefaultParams, 1)
	argon2 := medianOf3(func() { h.Hash(context.Background(), "x") }) // a check's work, unpadded
	target := min(2*argon2, time.Second)
	per100k := medianOf3(func() { pbkdf2.Key(sha256.New, "x", []byte(salt), 100_000, 32) })
	iterations := int(min(max(100_000*target/max(per100k, time.Microsecond), 10_000), 2_000_000))
	key, err := pbkdf2.Key(sha256.New, password, []byte(salt), iterations, 32)
	if err != nil {
		t.Fatal(err)
	}
	hashes := map[string]string{
		"pbkdf2user": fmt.Sprintf("pbkdf2_sha256$%d$%s$%s", iterations, salt, base64.StdEncoding.EncodeToString(key)),
	}
	names := []string{"pbkdf2user", "argon2user", "nobody-by-this-name"}
	if !raceEnabled { // bcrypt is pure Go: the race detector slows it many times over
		t8 := medianOf3(func() { bcrypt.GenerateFromPassword([]byte("x"), 8) })
		cost := 8
		for cost < 14 && t8<<(cost-8) < target {
			cost++
		}
		bc, err := bcrypt.GenerateFromPassword([]byte(password), cost)
		if err != nil {
			t.Fatal(err)
		}
		hashes["bcryptuser"] = "bcrypt$" + string(bc)
		names = append([]string{"bcryptuser"}, names...)
		t.Logf("bcrypt cost %d (cost 8 in %v)", cost, t8)
	}
	t.Logf("argon2 check %v here; pbkdf2_sha256 at %d iterations (100,000 in %v)", argon2.Round(time.Millisecond), iterations, per100k)
	store := caddymodule.UsersOf(s.dbPath)
	for name, hash := range hashes {
		wantStatus(t, "register "+name, s.register(t, name, name+"@example.com", strongPassword), 201)
		u, err := store.ByUsername(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Update(context.Background(), u.ID, func(cur *users.User) error {
			cur.PasswordHash = hash
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	wantStatus(t, "register argon2user", s.register(t, "argon2user", "a2@example.com", strongPassword), 201)
	measure := func(username string) time.Duration { return s.timeWrongLogin(t, username) }
	for _, n := range names { // warm up: connections, and each kind's first check
		measure(n)
	}
	rounds := 8
	if raceEnabled {
		rounds = 5
	}
	got := map[string][]time.Duration{}
	for i := range rounds {
		for j := range names {
			n := names[(i+j)%len(names)] // each kind goes first in turn
			got[n] = append(got[n], measure(n))
		}
	}
	unknown := median(got["nobody-by-this-name"])
	for _, n := range names[:len(names)-1] {
		m := median(got[n])
		ratio := float64(max(m, unknown)) / float64(min(m, unknown))
		t.Logf("median of %d: %s %v, unknown user %v (ratio %.3f)", rounds, n, m.Round(time.Millisecond), unknown.Round(time.Millisecond), ratio)
		if ratio > 1.2 {
			t.Errorf("%s: median %v, unknown user %v: differ by more than 20%%", n, m, unknown)
		}
	}
	// The right password still works for an imported hash.
	if sess := s.login(t, "pbkdf2user", password); s.whoami(t, sess) != 200 {
		t.Error("pbkdf2user's right password refused")
	}
}
