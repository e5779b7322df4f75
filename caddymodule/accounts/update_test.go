package accounts_test

import (
	"context"
	"errors"
	"testing"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"
)

func TestUpdate(t *testing.T) {
	backends(t, func(t *testing.T, s *accounts.Service) {
		ctx := context.Background()
		u := mustCreate(t, s, "dora")
		yes, no := true, false
		email := " Dora@EXAMPLE.org "
		got, changed, err := s.Update(ctx, u.ID, accounts.Changes{Email: &email, IsStaff: &yes})
		if err != nil || !changed {
			t.Fatalf("update: %v changed=%v", err, changed)
		}
		if got.Email != "Dora@example.org" || !got.IsStaff || got.IsSuperuser || got.SessionEpoch != u.SessionEpoch {
			t.Errorf("after update: %+v", got)
		}
		if _, changed, err = s.Update(ctx, u.ID, accounts.Changes{IsStaff: &yes}); err != nil || changed {
			t.Errorf("same value again: %v changed=%v", err, changed)
		}
		got, changed, err = s.Update(ctx, u.ID, accounts.Changes{IsStaff: &no, IsSuperuser: &yes})
		if err != nil || !changed || got.IsStaff || !got.IsSuperuser || got.Email != "Dora@example.org" {
			t.Errorf("flags: %+v %v %v", got, changed, err)
		}
		// A new address is not verified; the same one in another case is.
		if _, _, err := s.SetEmailVerified(ctx, u.ID, true); err != nil {
			t.Fatal(err)
		}
		same := "DORA@example.org"
		if got, _, err := s.Update(ctx, u.ID, accounts.Changes{Email: &same}); err != nil || !got.EmailVerified {
			t.Errorf("address changed only in case: %+v %v, want it still verified", got, err)
		}
		other := "dora@elsewhere.example"
		if got, _, err := s.Update(ctx, u.ID, accounts.Changes{Email: &other}); err != nil || got.EmailVerified || got.Email != other {
			t.Errorf("new address: %+v %v, want it unverified", got, err)
		}
		for _, bad := range []string{"", "not-an-email"} {
			_, _, err := s.Update(ctx, u.ID, accounts.Changes{Email: &bad})
			if fe, ok := errors.AsType[*accounts.FieldErrors](err); !ok || !fe.Has("email") {
				t.Errorf("email %q: %v", bad, err)
			}
		}
		if _, _, err := s.Update(ctx, u.ID+1000, accounts.Changes{IsStaff: &yes}); !errors.Is(err, accounts.ErrNotFound) {
			t.Errorf("unknown id: %v", err)
		}
	})
}
