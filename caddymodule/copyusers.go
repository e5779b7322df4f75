package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/idtoken"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/mfa"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// cliPGCheck bounds the CLI's first contact with PostgreSQL (connect and
// schema migration): a server that does not answer is an error, not a hang.
const cliPGCheck = 15 * time.Second

// openCLIUsersDB opens the users database the CLI's --db (or copy-users'
// --from/--to) names, through openUsersDB like Caddy: a bbolt file (which a
// running Caddy holds locked) or a PostgreSQL URL, which is connected to
// and migrated here, so that an unreachable server fails the command at
// once with a clear message. mustExist refuses a missing bbolt file.
func openCLIUsersDB(ctx context.Context, spec string, mustExist bool) (*sharedDB, error) {
	key, err := usersDBKey(spec)
	if err != nil {
		return nil, err
	}
	if !isUsersURL(key) {
		key = spec // keep the path as given, for messages
	}
	d, err := openUsersDB(key, usersDBOptions{lockTimeout: dbOpenTimeout, mustExist: mustExist})
	if err != nil {
		return nil, err
	}
	if d.pg != nil {
		cctx, cancel := context.WithTimeout(ctx, cliPGCheck)
		err := d.pg.Migrate(cctx)
		cancel()
		if err != nil {
			d.Destruct()
			return nil, fmt.Errorf("users db %s: %v", d.name, err)
		}
	}
	return d, nil
}

// isLockTimeout tells a bbolt file held by another process (a running Caddy).
func isLockTimeout(err error) bool { return errors.Is(err, bolterrors.ErrTimeout) }

// copiedSecrets are the named secrets (users.Secrets) that copy-users
// carries over with the users, so tokens signed before the move still
// verify after it, and the copied TOTP secrets (encrypted under a key
// derived from mfa.KeySecret) can still be read.
var copiedSecrets = []string{idtoken.SecretName, mfa.KeySecret}

func copyUsersCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "copy-users --from SRC --to DST",
		Short: "Copies all users from one users database to another (bbolt file or PostgreSQL)",
		Long: `
Copies every user from SRC to DST, each a bbolt file path or a PostgreSQL URL
(postgres://... or postgresql://...), keeping ids, usernames, emails,
password hashes, is_active/is_superuser/is_staff, date_joined, last_login,
session epochs and groups, second factors (authenticator apps, recovery
codes, passkeys) with the key that encrypts them, and the identity token's
keys. Users log in with their passwords and second factors as before; sessions are not copied (they live in
Redis or in the bbolt file), so users log in again unless Redis stays the
same. New users in DST get ids after the largest copied one.

The copy is atomic: all users are written or none. DST must have no users
(copy-users refuses to merge: an id or username could clash); an empty
PostgreSQL database gets its tables created. A bbolt file must not be open
in a running Caddy (stop it first: it holds the file's lock). This is how a
single-instance install moves to PostgreSQL (README "Scaling out").
`,
		Example: `  caddy session-auth copy-users --from ./data/users.db --to postgres://auth:secret@db:5432/auth?sslmode=require
  caddy session-auth copy-users --from postgres://auth@db/auth --to ./backup/users.db`,
		Args: cobra.NoArgs,
	}
	c.Flags().String("from", "", "Users database to copy from: a bbolt file or a postgres:// URL")
	c.Flags().String("to", "", "Users database to copy to (must have no users): a bbolt file or a postgres:// URL")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		from, to := flagString(cmd, "from"), flagString(cmd, "to")
		if from == "" || to == "" {
			return errors.New("copy-users needs --from SRC and --to DST (each a bbolt file or a postgres:// URL)")
		}
		for _, f := range []string{"db", "config", "address", "users-db", "adapter"} {
			if flagString(cmd, f) != "" {
				return fmt.Errorf("copy-users opens --from and --to directly; --%s does not apply", f)
			}
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		res, err := copyUsers(ctx, from, to)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "copied %d users from %s to %s", res.users, res.from, res.to)
		var also []string
		if res.tokenKeys {
			also = append(also, "the identity token's keys")
		}
		if res.factors > 0 {
			also = append(also, fmt.Sprintf("the second factors of %d user(s)", res.factors))
		}
		if len(also) > 0 {
			fmt.Fprintf(cmd.OutOrStdout(), " (and %s)", strings.Join(also, ", "))
		}
		fmt.Fprintln(cmd.OutOrStdout())
		return nil
	}
	return c
}

type copyResult struct {
	users, factors int
	tokenKeys      bool // the identity token's keys were among the secrets
	from, to       string
}

// copyUsers copies every user (and copiedSecrets) from src to dst, which
// must have no users.
func copyUsers(ctx context.Context, from, to string) (*copyResult, error) {
	fk, err := usersDBKey(from)
	if err != nil {
		return nil, err
	}
	tk, err := usersDBKey(to)
	if err != nil {
		return nil, err
	}
	if fk == tk {
		return nil, fmt.Errorf("--from and --to are the same database (%s)", displayDBKey(fk))
	}
	src, err := openCLIUsersDB(ctx, from, true)
	if err != nil {
		return nil, explainLocked("--from", err)
	}
	defer src.Destruct()
	dst, err := openCLIUsersDB(ctx, to, false)
	if err != nil {
		return nil, explainLocked("--to", err)
	}
	defer dst.Destruct()
	res := &copyResult{from: src.name, to: dst.name}

	lctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	existing, err := dst.users.List(lctx)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %v", dst.name, err)
	}
	if n := len(existing); n > 0 {
		return nil, fmt.Errorf("%s already has %d user(s) (the first: id %d %q): copy-users copies into an empty database "+
			"only, so that no id or username can clash; use an empty database (or delete its users) and run it again",
			dst.name, n, existing[0].ID, existing[0].Username)
	}
	list, err := src.users.List(lctx)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %v", src.name, err)
	}
	ptrs := make([]*users.User, len(list))
	for i := range list {
		ptrs[i] = &list[i]
	}
	// Second factors are read before anything is written, so that a
	// source that cannot give them fails the copy with DST untouched.
	factors, err := readFactors(lctx, src, dst, list)
	if err != nil {
		return nil, err
	}
	// Secrets first: harmless if the users fail (run again after fixing),
	// and a copy that succeeded has them.
	ss, sok := src.users.(users.Secrets)
	ds, dok := dst.users.(users.Secrets)
	if sok && dok {
		for _, name := range copiedSecrets {
			v, err := ss.Secret(lctx, name)
			if errors.Is(err, users.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("reading secret %q of %s: %v", name, src.name, err)
			}
			if _, err := ds.UpdateSecret(lctx, name, func([]byte) ([]byte, error) { return v, nil }); err != nil {
				return nil, fmt.Errorf("writing secret %q to %s: %v", name, dst.name, err)
			}
			res.tokenKeys = res.tokenKeys || name == idtoken.SecretName
		}
	}
	n, err := dst.users.CreateMany(lctx, ptrs, false)
	if err != nil {
		return nil, fmt.Errorf("copying to %s: %v (no user was written)", dst.name, err)
	}
	if n != len(list) {
		return nil, fmt.Errorf("copying to %s: %d of %d users written", dst.name, n, len(list))
	}
	res.users = n
	// CreateMany and UpdateFactors are separate transactions (the Store
	// interface has no way to write both in one): if a value cannot be
	// written, the users just created are deleted again, so that DST is
	// left empty and the command can simply be run again.
	if err := writeFactors(lctx, dst, factors); err != nil {
		if derr := deleteCopied(ctx, dst, list); derr != nil {
			return nil, fmt.Errorf("copying second factors to %s: %v; removing the %d copied users again failed too: %v "+
				"(delete the users of %s before running copy-users again)", dst.name, err, n, derr, dst.name)
		}
		return nil, fmt.Errorf("copying second factors to %s: %v (the copied users were removed again: no user was written)", dst.name, err)
	}
	res.factors = len(factors)
	return res, nil
}

// readFactors returns the second-factor values (users.Factors) of the
// listed users in src, failing if dst cannot store them.
func readFactors(ctx context.Context, src, dst *sharedDB, list []users.User) (map[int64][]byte, error) {
	sf, ok := src.users.(users.Factors)
	if !ok {
		return nil, nil
	}
	all, err := sf.AllFactors(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the second factors of %s: %v", src.name, err)
	}
	listed := make(map[int64]bool, len(list))
	for _, u := range list {
		listed[u.ID] = true
	}
	for id := range all {
		if !listed[id] { // a user deleted since List
			delete(all, id)
		}
	}
	if _, ok := dst.users.(users.Factors); !ok && len(all) > 0 {
		return nil, fmt.Errorf("%s cannot store second factors, which %d user(s) of %s have", dst.name, len(all), src.name)
	}
	return all, nil
}

// writeFactors stores the values read by readFactors in dst, in the order
// of the ids (for reproducible errors).
func writeFactors(ctx context.Context, dst *sharedDB, values map[int64][]byte) error {
	if len(values) == 0 {
		return nil
	}
	df := dst.users.(users.Factors)
	for _, id := range slices.Sorted(maps.Keys(values)) {
		v := values[id]
		if _, err := df.UpdateFactors(ctx, id, func([]byte) ([]byte, error) { return v, nil }); err != nil {
			return fmt.Errorf("user id %d: %v", id, err)
		}
	}
	return nil
}

// deleteCopied removes the copied users from dst after a failed copy of
// their second factors (dst had no users before). It has its own time
// limit: the copy's may be what ran out.
func deleteCopied(ctx context.Context, dst *sharedDB, list []users.User) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	for _, u := range list {
		if err := dst.users.Delete(ctx, u.ID); err != nil && !errors.Is(err, users.ErrNotFound) {
			return fmt.Errorf("user id %d: %v", u.ID, err)
		}
	}
	return nil
}

// explainLocked adds what to do about a bbolt file a running Caddy holds.
func explainLocked(flag string, err error) error {
	if isLockTimeout(err) {
		return fmt.Errorf("%s: %w\nStop the Caddy that uses this users_db first (copy-users reads and writes the files directly)", flag, err)
	}
	return fmt.Errorf("%s: %w", flag, err)
}
