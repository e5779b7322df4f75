package accounts_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/passwords"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
	userbolt "github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/bolt"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/postgres"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
)

func TestMain(m *testing.M) { testpg.Main(m) }

// cheap argon2 parameters: the rules are under test, not the cost.
var testParams = passwords.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// backends runs fn on a service over a fresh bbolt file and a fresh
// PostgreSQL schema: the rules must not depend on the backend.
func backends(t *testing.T, fn func(t *testing.T, s *accounts.Service)) {
	hasher := passwords.NewHasher(testParams, 4)
	t.Run("bolt", func(t *testing.T) {
		db, err := userbolt.OpenDB(filepath.Join(t.TempDir(), "users.db"), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		store, err := userbolt.NewStore(db)
		if err != nil {
			t.Fatal(err)
		}
		fn(t, &accounts.Service{Store: store, Hasher: hasher})
	})
	t.Run("postgres", func(t *testing.T) {
		store, err := postgres.Open(context.Background(), testpg.New(t).URL, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(store.Close)
		fn(t, &accounts.Service{Store: store, Hasher: hasher})
	})
}

const strong = "Corr3ct-Horse-Battery"

func mustCreate(t *testing.T, s *accounts.Service, name string) *users.User {
	t.Helper()
	u, _, err := s.Create(context.Background(), accounts.NewUser{Username: name, Email: "someone@Example.COM", Password: strong})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return u
}

func fieldErrs(t *testing.T, err error) *accounts.FieldErrors {
	t.Helper()
	fe, ok := errors.AsType[*accounts.FieldErrors](err)
	if !ok {
		t.Fatalf("want *FieldErrors, got %T %v", err, err)
	}
	return fe
}

func TestCreate(t *testing.T) {
	backends(t, func(t *testing.T, s *accounts.Service) {
		ctx := context.Background()
		u := mustCreate(t, s, " ａｌｉｃｅ ")
		if u.ID == 0 || u.Username != "alice" || u.Email != "someone@example.com" || !u.IsActive || u.IsStaff {
			t.Fatalf("created %+v", u)
		}
		if !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
			t.Errorf("hash %q", u.PasswordHash)
		}
		// Every refusal of the form, by field, in order.
		_, _, err := s.Create(ctx, accounts.NewUser{Username: "ALICE", Email: "nope", Password: "alice123"})
		fe := fieldErrs(t, err)
		if got := fe.Fields(); !slices.Equal(got, []string{"username", "email", "password"}) {
			t.Fatalf("fields %v: %v", got, fe)
		}
		if got := fe.Messages("username"); !slices.Equal(got, []string{accounts.MsgUsernameTaken}) {
			t.Errorf("username: %v", got)
		}
		if got := strings.Join(fe.Messages("password"), " "); !strings.Contains(got, "too common") {
			t.Errorf("password: %v", got)
		}
		if fe := fieldErrs(t, second(s.Create(ctx, accounts.NewUser{Username: "bad name", Email: "x@example.com", Password: strong}))); !strings.Contains(fe.Error(), "Enter a valid username") {
			t.Errorf("bad name: %v", fe)
		}
		if fe := fieldErrs(t, second(s.Create(ctx, accounts.NewUser{Username: "bob", Email: "bob@example.com", Password: " " + strong}))); !fe.Has("password") {
			t.Errorf("whitespace password: %v", fe)
		}
		// Force: a weak password with warnings; a superuser is staff.
		u, warnings, err := s.Create(ctx, accounts.NewUser{Username: "weak", Email: "weak@example.com", Password: "password", Force: true, IsSuperuser: true})
		if err != nil || len(warnings) == 0 || !u.IsStaff || !u.IsSuperuser {
			t.Fatalf("forced: %+v %v %v", u, warnings, err)
		}
	})
}

func second[A, B any](_ A, _ B, err error) error { return err }

// Concurrent registrations of case variants of one name: one user, every
// other attempt a field error (never a store error).
func TestCreateRace(t *testing.T) {
	backends(t, func(t *testing.T, s *accounts.Service) {
		var created, taken atomic.Int32
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				name := "Racer"
				if i%2 == 1 {
					name = "rAcEr"
				}
				_, _, err := s.Create(context.Background(), accounts.NewUser{Username: name, Email: "r@example.com", Password: strong})
				switch fe, ok := errors.AsType[*accounts.FieldErrors](err); {
				case err == nil:
					created.Add(1)
				case ok && fe.Messages("username")[0] == accounts.MsgUsernameTaken:
					taken.Add(1)
				default:
					t.Errorf("unexpected: %v", err)
				}
			})
		}
		wg.Wait()
		if created.Load() != 1 || taken.Load() != 19 {
			t.Fatalf("created %d, taken %d", created.Load(), taken.Load())
		}
	})
}

func TestEpochRules(t *testing.T) {
	backends(t, func(t *testing.T, s *accounts.Service) {
		ctx := context.Background()
		u := mustCreate(t, s, "carol")
		epoch := u.SessionEpoch

		if _, _, err := s.SetPassword(ctx, u.ID, "short", false); !fieldErrs(t, err).Has("password") {
			t.Fatalf("weak password set: %v", err)
		}
		u2, _, err := s.SetPassword(ctx, u.ID, "An0ther-Str0ng-One", false)
		if err != nil || u2.SessionEpoch != epoch+1 || u2.PasswordHash == u.PasswordHash {
			t.Fatalf("set password: %+v %v", u2, err)
		}
		u3, changed, err := s.SetActive(ctx, u.ID, false)
		if err != nil || !changed || u3.IsActive || u3.SessionEpoch != epoch+2 {
			t.Fatalf("deactivate: %+v %v %v", u3, changed, err)
		}
		if _, changed, _ := s.SetActive(ctx, u.ID, false); changed {
			t.Error("deactivating an inactive user changed it")
		}
		u4, changed, err := s.SetActive(ctx, u.ID, true)
		if err != nil || !changed || !u4.IsActive || u4.SessionEpoch != u3.SessionEpoch+1 {
			// deactivating twice bumped once more; activating does not
			t.Logf("after activate: %+v", u4)
		}
		if u4.SessionEpoch < u3.SessionEpoch {
			t.Errorf("activate moved the epoch back: %d < %d", u4.SessionEpoch, u3.SessionEpoch)
		}
		u5, err := s.EndSessions(ctx, u.ID)
		if err != nil || u5.SessionEpoch != u4.SessionEpoch+1 {
			t.Fatalf("end sessions: %+v %v", u5, err)
		}
		if err := s.Delete(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.EndSessions(ctx, u.ID); !errors.Is(err, accounts.ErrNotFound) {
			t.Errorf("end sessions of a deleted user: %v", err)
		}
	})
}

func TestChangePassword(t *testing.T) {
	backends(t, func(t *testing.T, s *accounts.Service) {
		ctx := context.Background()
		u := mustCreate(t, s, "dave")
		var kept int64
		u2, err := s.ChangePassword(ctx, u, "New-Pass-w0rd!", func(epoch int64) error { kept = epoch; return nil })
		if err != nil || kept != u.SessionEpoch+1 || u2.SessionEpoch != kept {
			t.Fatalf("change: %+v kept %d %v", u2, kept, err)
		}
		if _, err := s.Authenticate(ctx, "dave", "New-Pass-w0rd!"); err != nil {
			t.Fatalf("new password: %v", err)
		}
		// A change that raced an "end all sessions" writes nothing.
		stale := u2
		if _, err := s.EndSessions(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ChangePassword(ctx, stale, "Third-Pass-w0rd!", nil); !errors.Is(err, accounts.ErrSessionsEnded) {
			t.Fatalf("stale change: %v", err)
		}
		if _, err := s.Authenticate(ctx, "dave", "New-Pass-w0rd!"); err != nil {
			t.Fatalf("the stale change was written: %v", err)
		}
		// keep failing aborts before anything is written.
		boom := errors.New("session store down")
		cur, _ := s.Store.ByID(ctx, u.ID)
		if _, err := s.ChangePassword(ctx, cur, "Fourth-Pass-w0rd!", func(int64) error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("keep error: %v", err)
		}
		if after, _ := s.Store.ByID(ctx, u.ID); after.SessionEpoch != cur.SessionEpoch || after.PasswordHash != cur.PasswordHash {
			t.Error("a failed keep still wrote")
		}
	})
}

func TestAuthenticate(t *testing.T) {
	backends(t, func(t *testing.T, s *accounts.Service) {
		ctx := context.Background()
		u := mustCreate(t, s, "erin")
		for _, c := range []struct{ name, pw string }{{"erin", "wrong-password"}, {"nobody", strong}} {
			if _, err := s.Authenticate(ctx, c.name, c.pw); !errors.Is(err, accounts.ErrBadCredentials) {
				t.Errorf("%s: %v", c.name, err)
			}
		}
		got, err := s.Authenticate(ctx, "ERIN", strong)
		if err != nil || got.ID != u.ID || got.LastLogin.IsZero() {
			t.Fatalf("login: %+v %v", got, err)
		}
		if _, _, err := s.SetActive(ctx, u.ID, false); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, "erin", strong); !errors.Is(err, accounts.ErrBadCredentials) {
			t.Errorf("inactive: %v", err)
		}
		// A cancelled wait is not a verdict on the password.
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Authenticate(canceled, "nobody", strong); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled: %v", err)
		}
		// An imported Django hash is upgraded at the first login.
		// (djangoimport/testdata: made by Django 3.2 for the password below)
		const djangoHash = "pbkdf2_sha256$260000$XwD5GBHTWAM8GW3RAo78Vy$rdQ2E6mLxYiexY2EBvH/nP/Pd5y86J5uwttBcP5dBQ8="
		if _, _, err := s.Import(ctx, []*users.User{{ID: 100, Username: "frank", Email: "f@example.com", PasswordHash: djangoHash, IsActive: true}}, false); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, "frank", "Alice-pbkdf2-2024"); err != nil {
			t.Fatalf("django hash: %v", err)
		}
		if f, _ := s.Store.ByID(ctx, 100); !strings.HasPrefix(f.PasswordHash, "$argon2id$") {
			t.Errorf("not upgraded: %q", f.PasswordHash)
		}
	})
}

func TestImport(t *testing.T) {
	backends(t, func(t *testing.T, s *accounts.Service) {
		ctx := context.Background()
		mustCreate(t, s, "gina") // id 1
		batch := func() []*users.User {
			return []*users.User{
				{ID: 10, Username: "Hal", Email: "h@example.com", PasswordHash: "!", IsActive: true},
				{ID: 11, Username: "ivy", Email: "i@example.com", PasswordHash: "!", IsActive: true},
			}
		}
		if _, _, err := s.Import(ctx, []*users.User{{ID: 0, Username: "has space"}}, false); !isType[*accounts.InvalidError](err) ||
			!strings.Contains(err.Error(), "not positive") || !strings.Contains(err.Error(), "Enter a valid username") {
			t.Fatalf("invalid: %v", err)
		}
		n, skipped, err := s.Import(ctx, batch(), false)
		if err != nil || n != 2 || skipped != 0 {
			t.Fatalf("import: %d %d %v", n, skipped, err)
		}
		_, _, err = s.Import(ctx, batch(), false)
		if ce, ok := errors.AsType[*accounts.ConflictError](err); !ok || len(ce.Items) != 2 || ce.Hint == "" {
			t.Fatalf("again: %v", err)
		}
		if n, skipped, err := s.Import(ctx, batch(), true); err != nil || n != 0 || skipped != 2 {
			t.Fatalf("skip existing: %d %d %v", n, skipped, err)
		}
		clash := []*users.User{{ID: 12, Username: "GINA", Email: "g@example.com", PasswordHash: "!"}, {ID: 13, Username: "jo", PasswordHash: "!"}}
		if _, _, err := s.Import(ctx, clash, true); !isType[*accounts.ConflictError](err) || !strings.Contains(err.Error(), "taken (regardless of case)") {
			t.Fatalf("clash: %v", err)
		}
		if _, err := s.Store.ByID(ctx, 13); !errors.Is(err, users.ErrNotFound) {
			t.Error("an aborted import wrote a user")
		}
		h, _ := s.Store.ByID(ctx, 10)
		i, _ := s.Store.ByID(ctx, 11)
		if h.SessionEpoch == 0 || h.SessionEpoch == i.SessionEpoch {
			t.Errorf("imported epochs not fresh: %d %d", h.SessionEpoch, i.SessionEpoch)
		}
		// Ids continue after the imported ones.
		if u := mustCreate(t, s, "kim"); u.ID <= 11 {
			t.Errorf("new id %d", u.ID)
		}
	})
}

func isType[T error](err error) bool {
	_, ok := errors.AsType[T](err)
	return ok
}
