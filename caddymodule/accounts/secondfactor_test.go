package accounts_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// storedFactors is a value as mfa stores it: a TOTP secret (sealed; its
// bytes do not matter here), two passkeys and recovery codes.
const storedFactors = `{"totp":{"secret":"c2VhbGVk","created":"2026-01-02T03:04:05Z"},` +
	`"recovery":["00","11"],"passkeys":[{"name":"a","rp_id":"example.com","created":"2026-01-02T03:04:05Z","credential":{"id":"AQ=="}},` +
	`{"name":"b","rp_id":"example.com","created":"2026-01-02T03:04:05Z","credential":{"id":"Ag=="}}]}`

func TestResetSecondFactor(t *testing.T) {
	backends(t, func(t *testing.T, s *accounts.Service) {
		ctx := context.Background()
		f := s.Store.(users.Factors)
		alice, bob := mustCreate(t, s, "alice"), mustCreate(t, s, "bob")
		if _, err := f.UpdateFactors(ctx, alice.ID, func([]byte) ([]byte, error) { return []byte(storedFactors), nil }); err != nil {
			t.Fatal(err)
		}

		all, err := s.SecondFactors(ctx)
		if err != nil || len(all) != 1 || !slices.Equal(all[alice.ID], []string{"totp", "2 passkeys"}) {
			t.Fatalf("SecondFactors before: %v %v", all, err)
		}

		had, u, err := s.ResetSecondFactor(ctx, alice.ID)
		if err != nil || !slices.Equal(had, []string{"totp", "2 passkeys"}) {
			t.Fatalf("reset: had %v, %v", had, err)
		}
		if u.ID != alice.ID || u.SessionEpoch != alice.SessionEpoch+1 {
			t.Errorf("sessions not ended: epoch %d -> %d", alice.SessionEpoch, u.SessionEpoch)
		}
		if b, err := f.Factors(ctx, alice.ID); err != nil || b != nil {
			t.Errorf("factors left after reset: %q %v", b, err)
		}
		if all, err := s.SecondFactors(ctx); err != nil || len(all) != 0 {
			t.Errorf("SecondFactors after: %v %v", all, err)
		}

		// A user without a factor: nothing to remove, the sessions end anyway.
		had, u, err = s.ResetSecondFactor(ctx, bob.ID)
		if err != nil || len(had) != 0 || u.SessionEpoch != bob.SessionEpoch+1 {
			t.Errorf("reset of a user without factors: had %v, epoch %d, %v", had, u.SessionEpoch, err)
		}

		if _, _, err := s.ResetSecondFactor(ctx, bob.ID+1000); !errors.Is(err, accounts.ErrNotFound) {
			t.Errorf("unknown id: %v", err)
		}
	})
}

// noFactors is a users.Store that cannot keep second factors.
type noFactors struct{ users.Store }

func TestResetSecondFactorWithoutFactorStore(t *testing.T) {
	backends(t, func(t *testing.T, s *accounts.Service) {
		u := mustCreate(t, s, "carol")
		plain := &accounts.Service{Store: noFactors{s.Store}, Hasher: s.Hasher}
		if _, _, err := plain.ResetSecondFactor(context.Background(), u.ID); !errors.Is(err, accounts.ErrNoFactors) {
			t.Errorf("reset: %v", err)
		}
		if _, err := plain.SecondFactors(context.Background()); !errors.Is(err, accounts.ErrNoFactors) {
			t.Errorf("SecondFactors: %v", err)
		}
	})
}
