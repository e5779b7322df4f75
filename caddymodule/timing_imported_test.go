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
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// Users with imported hashes (Django's pbkdf2_sha256 and bcrypt, dearer
// than argon2 near Django's defaults) must not be told apart by timing from
// unknown users or argon2 users: every password check lasts as long as the
// dearest kind this process has checked. Through the real HTTP API, one at
// a time, the kinds interleaved; medians must be within 20%.
func TestLoginTimingImportedHashes(t *testing.T) {
	s := startSite(t, "", "login_lockout off")
	t.Cleanup(caddymodule.ForgetHashCosts)
	const password = "Imported-Secret-42"
	salt := "c2VjZml4c2FsdA"
	key, err := pbkdf2.Key(sha256.New, password, []byte(salt), 600_000, 32)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := bcrypt.GenerateFromPassword([]byte(password), 11)
	if err != nil {
		t.Fatal(err)
	}
	hashes := map[string]string{
		"pbkdf2user": fmt.Sprintf("pbkdf2_sha256$600000$%s$%s", salt, base64.StdEncoding.EncodeToString(key)),
		"bcryptuser": "bcrypt$" + string(bc),
	}
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
	measure := func(username string) time.Duration {
		var status int
		d := timed(func() { status = s.loginAs(t, username, "Wrong-Guess-123", nil).StatusCode })
		if status != 400 {
			t.Fatalf("login %s: %d", username, status)
		}
		return d
	}
	names := []string{"pbkdf2user", "bcryptuser", "argon2user", "nobody-by-this-name"}
	for _, n := range names { // warm up: connections, and each kind's first check
		measure(n)
	}
	const rounds = 10
	got := map[string][]time.Duration{}
	for i := range rounds {
		for j := range names {
			n := names[(i+j)%len(names)] // each kind goes first in turn
			got[n] = append(got[n], measure(n))
		}
	}
	unknown := median(got["nobody-by-this-name"])
	for _, n := range names[:3] {
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
