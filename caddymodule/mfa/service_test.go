package mfa

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/bolt"
)

var bg = context.Background()

// newService returns a Service over a fresh bbolt users file with one
// user, and that user's id. The clock is the returned pointer's value.
func newService(t testing.TB) (*Service, int64, *atomic.Int64) {
	t.Helper()
	db, err := bolt.OpenDB(filepath.Join(t.TempDir(), "users.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := bolt.NewStore(db)
	if err != nil {
		t.Fatal(err)
	}
	u := &users.User{Username: "alice", IsActive: true}
	if err := st.Create(bg, u); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadKeys(bg, st)
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64
	clock.Store(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).Unix())
	return &Service{Store: st, Keys: keys, Now: func() time.Time { return time.Unix(clock.Load(), 0) }}, u.ID, &clock
}

func code(t *testing.T, secret string, at int64) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, time.Unix(at, 0), totpOpts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTOTPEnrolVerifyOnceAndRecovery(t *testing.T) {
	s, id, clock := newService(t)
	secret, url, err := s.BeginTOTP(bg, id, "Example", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(url, "otpauth://totp/Example:alice?") || !strings.Contains(url, "secret="+secret) {
		t.Fatalf("url %q", url)
	}
	d, _ := s.Get(bg, id)
	if d.HasFactor() || d.PendingTOTP == nil || strings.Contains(string(d.PendingTOTP.Secret), secret) {
		t.Fatalf("pending: %+v", d)
	}
	if _, _, err := s.ConfirmTOTP(bg, id, "000000", false); !errors.Is(err, ErrBadCode) && code(t, secret, clock.Load()) != "000000" {
		t.Fatalf("wrong code confirmed: %v", err)
	}
	codes, first, err := s.ConfirmTOTP(bg, id, code(t, secret, clock.Load()), true)
	if err != nil || len(codes) != Recovery || !first {
		t.Fatalf("confirm: %v %v %v", codes, first, err)
	}
	if _, _, err := s.BeginTOTP(bg, id, "Example", "alice"); !errors.Is(err, ErrTOTPEnabled) {
		t.Fatalf("second setup: %v", err)
	}
	// The code used to confirm is spent; the next step's is good once.
	if _, err := s.Verify(bg, id, code(t, secret, clock.Load())); !errors.Is(err, ErrBadCode) {
		t.Fatalf("reused code: %v", err)
	}
	clock.Add(Period)
	c := code(t, secret, clock.Load())
	if m, err := s.Verify(bg, id, c[:3]+" "+c[3:]); err != nil || m != MethodTOTP {
		t.Fatalf("verify: %q %v", m, err)
	}
	if _, err := s.Verify(bg, id, c); !errors.Is(err, ErrBadCode) {
		t.Fatalf("same code twice: %v", err)
	}
	// A code two steps away is refused; one step ahead is accepted.
	if _, err := s.Verify(bg, id, code(t, secret, clock.Load()+2*Period)); !errors.Is(err, ErrBadCode) {
		t.Fatalf("code two steps ahead: %v", err)
	}
	if _, err := s.Verify(bg, id, code(t, secret, clock.Load()+Period)); err != nil {
		t.Fatalf("code one step ahead: %v", err)
	}
	// Recovery codes: any case and separators, each once.
	if m, err := s.Verify(bg, id, strings.ToUpper(codes[3])); err != nil || m != MethodRecoveryCode {
		t.Fatalf("recovery: %q %v", m, err)
	}
	if _, err := s.Verify(bg, id, codes[3]); !errors.Is(err, ErrBadCode) {
		t.Fatalf("recovery code twice: %v", err)
	}
	d, _ = s.Get(bg, id)
	if len(d.Recovery) != Recovery-1 || strings.Join(d.Methods(), ",") != "totp,recovery_code" {
		t.Fatalf("after use: %d %v", len(d.Recovery), d.Methods())
	}
	// Disable needs a right code; the policy hook can refuse.
	refuse := errors.New("required")
	if _, err := s.DisableTOTP(bg, id, codes[0], func(after *Data) error {
		if !after.HasFactor() {
			return refuse
		}
		return nil
	}); !errors.Is(err, refuse) {
		t.Fatalf("policy hook: %v", err)
	}
	if _, err := s.DisableTOTP(bg, id, "123", nil); !errors.Is(err, ErrBadCode) {
		t.Fatalf("bad code: %v", err)
	}
	if used, err := s.DisableTOTP(bg, id, codes[0], nil); err != nil || !used {
		t.Fatalf("disable: %v %v", used, err)
	}
	if b, _ := s.Store.Factors(bg, id); b != nil {
		t.Fatalf("nothing left should be stored, got %s", b)
	}
}

func TestConcurrentCodeAcceptedOnce(t *testing.T) {
	s, id, clock := newService(t)
	secret, _, _ := s.BeginTOTP(bg, id, "E", "alice")
	if _, _, err := s.ConfirmTOTP(bg, id, code(t, secret, clock.Load()), false); err != nil {
		t.Fatal(err)
	}
	clock.Add(Period)
	c := code(t, secret, clock.Load())
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := s.Verify(bg, id, c); err == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("code accepted %d times", ok.Load())
	}
}

func TestSecretUnreadableUnderAnotherKey(t *testing.T) {
	s, id, clock := newService(t)
	secret, _, _ := s.BeginTOTP(bg, id, "E", "alice")
	other, _ := newKeys([]byte(strings.Repeat("k", 32)))
	s2 := &Service{Store: s.Store, Keys: other, Now: s.Now}
	if _, _, err := s2.ConfirmTOTP(bg, id, code(t, secret, clock.Load()), false); !errors.Is(err, ErrBadCode) {
		t.Fatalf("confirm under another key: %v", err)
	}
}

func TestStateSealing(t *testing.T) {
	s, _, _ := newService(t)
	now := time.Now()
	v := s.Keys.SealState(&State{Purpose: PurposeLogin, UserID: 7, Epoch: 3, Expires: now.Add(time.Minute)})
	st, err := s.Keys.OpenState(v, PurposeLogin, now)
	if err != nil || st.UserID != 7 || st.Epoch != 3 {
		t.Fatalf("open: %+v %v", st, err)
	}
	if _, err := s.Keys.OpenState(v, PurposeRegister, now); !errors.Is(err, ErrStateInvalid) {
		t.Fatalf("other purpose: %v", err)
	}
	if _, err := s.Keys.OpenState(v, PurposeLogin, now.Add(time.Minute)); !errors.Is(err, ErrStateInvalid) {
		t.Fatalf("expired: %v", err)
	}
	tampered := []byte(v)
	tampered[10] ^= 1
	if _, err := s.Keys.OpenState(string(tampered), PurposeLogin, now); !errors.Is(err, ErrStateInvalid) {
		t.Fatalf("tampered: %v", err)
	}
	if _, err := s.Keys.OpenState("%%%", PurposeLogin, now); !errors.Is(err, ErrStateInvalid) {
		t.Fatalf("garbage: %v", err)
	}
}

func TestResetAndMissingUser(t *testing.T) {
	s, id, clock := newService(t)
	secret, _, _ := s.BeginTOTP(bg, id, "E", "alice")
	s.ConfirmTOTP(bg, id, code(t, secret, clock.Load()), false)
	had, err := s.Reset(bg, id)
	if err != nil || strings.Join(had, ",") != "totp" {
		t.Fatalf("reset: %v %v", had, err)
	}
	if d, _ := s.Get(bg, id); d.HasFactor() || len(d.Recovery) != 0 {
		t.Fatalf("after reset: %+v", d)
	}
	if _, err := s.Get(bg, id+100); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("missing user: %v", err)
	}
}
