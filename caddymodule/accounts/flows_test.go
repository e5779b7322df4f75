package accounts_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

func TestUID(t *testing.T) {
	for _, id := range []int64{1, 42, 1 << 40, 9223372036854775807} {
		got, ok := accounts.DecodeUID(accounts.EncodeUID(id))
		if !ok || got != id {
			t.Errorf("round trip of %d: %d %v", id, got, ok)
		}
	}
	// Django's urlsafe_base64_encode(b"42") is "NDI".
	if got := accounts.EncodeUID(42); got != "NDI" {
		t.Errorf("EncodeUID(42) = %q, want Django's NDI", got)
	}
	for _, bad := range []string{"", "!!", "MA", "LTE", "MDQy", "YWJj", "OTIyMzM3MjAzNjg1NDc3NTgwOA"} { // "", 0, -1, 042, abc, overflow
		if id, ok := accounts.DecodeUID(bad); ok {
			t.Errorf("DecodeUID(%q) = %d, want refused", bad, id)
		}
	}
}

// Reset tokens die with time, with the password, last login or e-mail,
// under another key, and when tampered with.
func TestResetTokens(t *testing.T) {
	tok := accounts.NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	u := &users.User{ID: 7, Username: "ann", Email: "Ann@example.com", PasswordHash: "argon2id$x", LastLogin: now.Add(-time.Hour)}
	token := tok.ResetToken(u, now)
	if !tok.CheckResetToken(u, token, time.Hour, now.Add(59*time.Minute)) {
		t.Fatal("fresh token refused")
	}
	if tok.CheckResetToken(u, token, time.Hour, now.Add(61*time.Minute)) {
		t.Error("expired token accepted")
	}
	if tok.CheckResetToken(u, token, time.Hour, now.Add(-2*time.Minute)) {
		t.Error("token from the future accepted")
	}
	changed := []func(v *users.User){
		func(v *users.User) { v.PasswordHash = "argon2id$y" },
		func(v *users.User) { v.LastLogin = now },
		func(v *users.User) { v.Email = "other@example.com" },
		func(v *users.User) { v.ID = 8 },
	}
	for i, change := range changed {
		v := *u
		change(&v)
		if tok.CheckResetToken(&v, token, time.Hour, now) {
			t.Errorf("change %d: token still valid", i)
		}
	}
	v := *u
	v.Email = "ANN@EXAMPLE.COM"
	if !tok.CheckResetToken(&v, token, time.Hour, now) {
		t.Error("the address's case killed the token")
	}
	other := accounts.NewTokens([]byte("another key, 32 bytes long......"))
	if other.CheckResetToken(u, token, time.Hour, now) {
		t.Error("token checked under another key")
	}
	for _, bad := range []string{"", "-", token + "0", token[:len(token)-1], "zz" + token, "0" + token, token[:3] + "-" + token[4:]} {
		if tok.CheckResetToken(u, bad, time.Hour, now) {
			t.Errorf("tampered token %q accepted", bad)
		}
	}
}

func TestVerifyKeys(t *testing.T) {
	tok := accounts.NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	now := time.Now()
	u := &users.User{ID: 9, Email: "bob@example.com"}
	key := tok.VerifyKey(u, now)
	if id, ok := accounts.KeyUser(key); !ok || id != 9 {
		t.Fatalf("KeyUser(%q) = %d %v", key, id, ok)
	}
	if !tok.CheckVerifyKey(u, key, now.Add(time.Hour)) {
		t.Fatal("fresh key refused")
	}
	if tok.CheckVerifyKey(u, key, now.Add(accounts.KeyMaxAge+time.Minute)) {
		t.Error("expired key accepted")
	}
	v := *u
	v.Email = "bob@elsewhere.example"
	if tok.CheckVerifyKey(&v, key, now) {
		t.Error("key verified an address it was not made for")
	}
	if tok.CheckVerifyKey(u, key+"0", now) || tok.CheckVerifyKey(&users.User{ID: 10, Email: u.Email}, key, now) {
		t.Error("tampered key accepted")
	}
}

// The flows on both backends: recipients, single use under concurrency,
// verification, the key shared through users.Secrets.
func TestResetAndVerifyFlows(t *testing.T) {
	backends(t, func(t *testing.T, s *accounts.Service) {
		ctx := context.Background()
		sec := s.Store.(users.Secrets)
		tok, err := accounts.LoadTokens(ctx, sec)
		if err != nil {
			t.Fatal(err)
		}
		again, err := accounts.LoadTokens(ctx, sec)
		if err != nil {
			t.Fatal(err)
		}
		a := mustCreate(t, s, "ann")
		b := mustCreate(t, s, "bea")
		if _, _, err := s.SetActive(ctx, b.ID, false); err != nil {
			t.Fatal(err)
		}
		got, err := s.ResetRecipients(ctx, "SOMEONE@example.com")
		if err != nil || len(got) != 1 || got[0].ID != a.ID {
			t.Fatalf("ResetRecipients = %+v, %v; want only the active ann", got, err)
		}
		now := time.Now()
		token := tok.ResetToken(a, now)
		// Another instance's Tokens (same secret) accepts it.
		u, err := s.ResetUser(ctx, again, accounts.EncodeUID(a.ID), token, time.Hour, now)
		if err != nil {
			t.Fatalf("ResetUser: %v", err)
		}
		if _, err := s.ResetUser(ctx, tok, accounts.EncodeUID(9999), token, time.Hour, now); !errors.Is(err, accounts.ErrNotFound) {
			t.Errorf("unknown uid: %v", err)
		}
		if _, err := s.ResetUser(ctx, tok, accounts.EncodeUID(b.ID), tok.ResetToken(b, now), time.Hour, now); !errors.Is(err, accounts.ErrTokenInvalid) {
			t.Errorf("inactive user's token: %v", err)
		}
		// Two uses at once: exactly one wins.
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.ResetPassword(ctx, u, "N3w-Secret-Words")
			}()
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, accounts.ErrTokenInvalid):
				t.Errorf("ResetPassword: %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d concurrent uses of one token succeeded", wins)
		}
		after, _ := s.Store.ByID(ctx, a.ID)
		if after.SessionEpoch == a.SessionEpoch || !after.EmailVerified {
			t.Errorf("reset left epoch %d (was %d), verified %v", after.SessionEpoch, a.SessionEpoch, after.EmailVerified)
		}
		if _, err := s.ResetUser(ctx, tok, accounts.EncodeUID(a.ID), token, time.Hour, time.Now()); !errors.Is(err, accounts.ErrTokenInvalid) {
			t.Errorf("used token: %v", err)
		}

		c := mustCreate(t, s, "cy")
		key := tok.VerifyKey(c, now)
		if got, err := s.UnverifiedRecipients(ctx, c.Email); err != nil || len(got) != 1 || got[0].ID != c.ID {
			t.Fatalf("UnverifiedRecipients = %+v %v", got, err)
		}
		if _, _, err := s.VerifyEmail(ctx, tok, key+"x", now); !errors.Is(err, accounts.ErrInvalidKey) {
			t.Errorf("bad key: %v", err)
		}
		v, changed, err := s.VerifyEmail(ctx, again, key, now)
		if err != nil || !changed || !v.EmailVerified {
			t.Fatalf("VerifyEmail: %+v %v %v", v, changed, err)
		}
		if _, changed, err := s.VerifyEmail(ctx, tok, key, now); err != nil || changed {
			t.Errorf("second VerifyEmail: changed %v, %v", changed, err)
		}
		if u, changed, err := s.SetEmailVerified(ctx, c.ID, false); err != nil || !changed || u.EmailVerified {
			t.Errorf("SetEmailVerified false: %v %v", changed, err)
		}
	})
}

// Imported (Django) users with an address count as verified.
func TestImportedUsersAreVerified(t *testing.T) {
	backends(t, func(t *testing.T, s *accounts.Service) {
		ctx := context.Background()
		in := []*users.User{{ID: 5, Username: "dj", Email: "dj@example.com", IsActive: true}, {ID: 6, Username: "noaddr", IsActive: true}}
		if _, _, err := s.Import(ctx, in, false); err != nil {
			t.Fatal(err)
		}
		if u, _ := s.Store.ByID(ctx, 5); !u.EmailVerified {
			t.Error("imported user with an address is not verified")
		}
		if u, _ := s.Store.ByID(ctx, 6); u.EmailVerified {
			t.Error("imported user without an address is verified")
		}
	})
}
