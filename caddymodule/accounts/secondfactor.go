package accounts

import (
	"context"
	"errors"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/mfa"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// ErrNoFactors: the users store cannot keep second factors (it does not
// implement users.Factors).
var ErrNoFactors = errors.New("accounts: this users database cannot keep second factors")

// factors returns the store as a users.Factors.
func (s *Service) factors() (users.Factors, error) {
	f, ok := s.Store.(users.Factors)
	if !ok {
		return nil, ErrNoFactors
	}
	return f, nil
}

// SecondFactors returns every user's second factors in short form (as
// mfa.Data.Summary: "totp", "2 passkeys"), by user id, read at once; users
// without any are left out. A value that does not decode is listed as
// "unreadable".
func (s *Service) SecondFactors(ctx context.Context) (map[int64][]string, error) {
	f, err := s.factors()
	if err != nil {
		return nil, err
	}
	all, err := f.AllFactors(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[int64][]string, len(all))
	for id, b := range all {
		d, err := mfa.Decode(b)
		if err != nil {
			out[id] = []string{"unreadable"}
			continue
		}
		if sum := d.Summary(); len(sum) > 0 {
			out[id] = sum
		}
	}
	return out, nil
}

// ResetSecondFactor removes all of the user's second factors and recovery
// codes (a pending TOTP setup too), then ends every session of the user:
// an operator's answer to a lost authenticator, or to one that fell into
// the wrong hands. had is what there was (mfa.Data.Summary; empty if the
// user had no factor); the sessions end either way. An unknown user is
// ErrNotFound.
func (s *Service) ResetSecondFactor(ctx context.Context, id int64) (had []string, u *users.User, err error) {
	f, err := s.factors()
	if err != nil {
		return nil, nil, err
	}
	had, err = (&mfa.Service{Store: f}).Reset(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	u, err = s.EndSessions(ctx, id)
	if err != nil {
		return had, nil, err
	}
	return had, u, nil
}
