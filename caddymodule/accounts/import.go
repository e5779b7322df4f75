package accounts

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// Import writes all the given users (ids, hashes, flags, dates and groups
// kept) or none. Usernames are normalised and must be valid, group names
// acceptable (GroupNameProblems) and ids positive, else *InvalidError. A user whose id or username (regardless of case) is
// already taken is a conflict that aborts the import (*ConflictError);
// with skipExisting, a user already present with the same id and username
// is skipped instead (so re-running an import is a no-op), but any other
// clash still aborts: it would be a different account. Imported users get
// a fresh random session epoch: an imported id may be that of a deleted
// user whose session records linger until they expire. Imported users
// with an address count as having verified it.
func (s *Service) Import(ctx context.Context, in []*users.User, skipExisting bool) (imported, skipped int, err error) {
	var problems []string
	for _, u := range in {
		u.Username = NormalizeUsername(u.Username)
		if u.ID <= 0 {
			problems = append(problems, fmt.Sprintf("id %d of %q is not positive", u.ID, u.Username))
		}
		if u.Username == "" {
			problems = append(problems, fmt.Sprintf("id %d: empty username", u.ID))
		} else if msgs := UsernameProblems(u.Username); len(msgs) > 0 {
			problems = append(problems, fmt.Sprintf("id %d: username %q: %s", u.ID, u.Username, strings.Join(msgs, " ")))
		}
		for _, g := range u.Groups {
			if msgs := GroupNameProblems(g); len(msgs) > 0 {
				problems = append(problems, fmt.Sprintf("id %d (%q): group %q: %s", u.ID, u.Username, g, strings.Join(msgs, " ")))
			}
		}
	}
	if len(problems) > 0 {
		return 0, 0, &InvalidError{ConflictError{Summary: "import refused, nothing written", Items: problems}}
	}
	create, skipped, err := s.sortOut(ctx, in, skipExisting, "import aborted, nothing written",
		"users already imported with the same id and username are skipped with --skip-existing")
	if err != nil {
		return 0, 0, err
	}
	for _, u := range create {
		u.SessionEpoch = rand.Int64N(1<<53) + 1
		// Django has no e-mail verification of its own: an imported
		// address counts as verified (issue 14).
		u.EmailVerified = u.Email != ""
	}
	n, err := s.Store.CreateMany(ctx, create, false)
	if err != nil {
		if errors.Is(err, users.ErrIDTaken) || errors.Is(err, users.ErrUsernameTaken) {
			// Lost a race with a registration; the transaction wrote nothing.
			return 0, 0, &ConflictError{Summary: "import aborted, nothing written", Items: []string{err.Error()}}
		}
		return 0, 0, err
	}
	return n, skipped, nil
}

// sortOut splits in into the users to create and the number skipped
// (present with the same id and username, with skipExisting), or returns a
// *ConflictError listing every clash with the store.
func (s *Service) sortOut(ctx context.Context, in []*users.User, skipExisting bool, summary, sameHint string) ([]*users.User, int, error) {
	existing, err := s.Store.List(ctx)
	if err != nil {
		return nil, 0, err
	}
	nameOfID := make(map[int64]string, len(existing))
	idOfKey := make(map[string]int64, len(existing))
	for _, u := range existing {
		nameOfID[u.ID] = u.Username
		idOfKey[users.UsernameKey(u.Username)] = u.ID
	}
	var conflicts []string
	var create []*users.User
	sameUser, skipped := 0, 0
	for _, u := range in {
		holder, idTaken := nameOfID[u.ID]
		owner, nameTaken := idOfKey[users.UsernameKey(u.Username)]
		switch {
		case !idTaken && !nameTaken:
			create = append(create, u)
		case idTaken && nameTaken && owner == u.ID:
			if skipExisting {
				skipped++
				continue
			}
			sameUser++
			conflicts = append(conflicts, fmt.Sprintf("id %d %q is already there", u.ID, u.Username))
		case idTaken:
			conflicts = append(conflicts, fmt.Sprintf("id %d %q: id %d is user %q here", u.ID, u.Username, u.ID, holder))
		default:
			conflicts = append(conflicts, fmt.Sprintf("id %d %q: the username is taken (regardless of case) by user %d %q",
				u.ID, u.Username, owner, nameOfID[owner]))
		}
	}
	if len(conflicts) > 0 {
		e := &ConflictError{Summary: fmt.Sprintf("%s: %d conflict(s) with existing users", summary, len(conflicts)), Items: conflicts}
		if sameUser > 0 {
			e.Hint = sameHint
		}
		return nil, 0, e
	}
	return create, skipped, nil
}
