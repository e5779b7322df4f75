package idtoken_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/idtoken"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
	userbolt "github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/bolt"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/postgres"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
)

func TestMain(m *testing.M) { testpg.Main(m) }

var bg = context.Background()

func openSecrets(t testing.TB) users.Secrets {
	t.Helper()
	db, err := userbolt.OpenDB(filepath.Join(t.TempDir(), "users.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := userbolt.NewStore(db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// verifyJWKS checks tok against jwks as an upstream would, with go-jose, and
// returns its claims.
func verifyJWKS(t *testing.T, tok string, jwks []byte) map[string]any {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatalf("JWKS: %v: %s", err, jwks)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	keys := set.Key(parsed.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d keys in the JWKS", parsed.Headers[0].KeyID, len(keys))
	}
	var out map[string]any
	if err := parsed.Claims(keys[0].Key, &out); err != nil {
		t.Fatalf("signature: %v", err)
	}
	return out
}

func TestEnsureOnceAndShared(t *testing.T) {
	sec := openSecrets(t)
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			ks, err := idtoken.Ensure(bg, sec)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = ks.Signing().ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("concurrent Ensure gave different keys: %q", ids)
		}
	}
	ks, err := idtoken.Load(bg, sec)
	if err != nil || ks.Signing().ID != ids[0] || len(ks.Keys) != 1 {
		t.Fatalf("Load: %+v %v", ks, err)
	}
	// The kid is the RFC 7638 thumbprint.
	if len(ids[0]) != 43 {
		t.Errorf("kid %q is not a base64url SHA-256", ids[0])
	}
}

func TestRotate(t *testing.T) {
	sec := openSecrets(t)
	first, err := idtoken.Ensure(bg, sec)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	ks, err := idtoken.Rotate(bg, sec, t0)
	if err != nil {
		t.Fatal(err)
	}
	old, cur := first.Signing().ID, ks.Signing().ID
	if old == cur || len(ks.Keys) != 2 {
		t.Fatalf("after rotate: %d keys, signing %q (was %q)", len(ks.Keys), cur, old)
	}
	pub := func(ks *idtoken.KeySet, at time.Time) []string {
		var ids []string
		for _, k := range ks.Published(at) {
			ids = append(ids, k.ID)
		}
		return ids
	}
	if got := pub(ks, t0.Add(idtoken.RetiredKeep-time.Second)); !slices.Equal(got, []string{cur, old}) {
		t.Errorf("published before RetiredKeep: %q", got)
	}
	if got := pub(ks, t0.Add(idtoken.RetiredKeep+time.Second)); !slices.Equal(got, []string{cur}) {
		t.Errorf("published after RetiredKeep: %q", got)
	}
	// The JWKS is what an upstream reads.
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(ks.JWKS(t0), &set); err != nil || len(set.Keys) != 2 || set.Keys[0].KeyID != cur ||
		set.Keys[0].Algorithm != "EdDSA" || set.Keys[0].Use != "sig" || !set.Keys[0].IsPublic() {
		t.Errorf("JWKS %s (%v)", ks.JWKS(t0), err)
	}
	if strings.Contains(string(ks.JWKS(t0)), `"d"`) {
		t.Error("the JWKS holds a private key")
	}
	// A later rotation drops keys retired long ago.
	later := t0.Add(idtoken.RetiredKeep + time.Minute)
	ks2, err := idtoken.Rotate(bg, sec, later)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, k := range ks2.Keys {
		kept = append(kept, k.ID)
	}
	if len(kept) != 2 || kept[0] != cur || slices.Contains(kept, old) {
		t.Errorf("after a second rotation keys %q (old %q, then %q)", kept, old, cur)
	}
	if loaded, _ := idtoken.Load(bg, sec); loaded.Signing().ID != ks2.Signing().ID {
		t.Error("Load does not see the rotation")
	}
}

func TestCorruptSetIsKept(t *testing.T) {
	sec := openSecrets(t)
	for _, bad := range []string{"not json", `{"version":2,"keys":[]}`, `{"version":1,"keys":[]}`, `{"version":1,"keys":[{"seed":"AAAA"}]}`} {
		if _, err := sec.UpdateSecret(bg, idtoken.SecretName, func([]byte) ([]byte, error) { return []byte(bad), nil }); err != nil {
			t.Fatal(err)
		}
		for name, fn := range map[string]func() error{
			"Ensure": func() error { _, err := idtoken.Ensure(bg, sec); return err },
			"Rotate": func() error { _, err := idtoken.Rotate(bg, sec, time.Now()); return err },
			"Load":   func() error { _, err := idtoken.Load(bg, sec); return err },
		} {
			if err := fn(); !errors.Is(err, idtoken.ErrCorrupt) {
				t.Errorf("%s over %q: %v, want ErrCorrupt", name, bad, err)
			}
		}
		if v, _ := sec.Secret(bg, idtoken.SecretName); string(v) != bad {
			t.Errorf("corrupt set overwritten with %q", v)
		}
	}
}

func writePEM(t *testing.T, key any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFromFiles(t *testing.T) {
	_, a, _ := ed25519.GenerateKey(rand.Reader)
	_, b, _ := ed25519.GenerateKey(rand.Reader)
	pa, pb := writePEM(t, a), writePEM(t, b)
	ks, err := idtoken.FromFiles([]string{pa, pb})
	if err != nil {
		t.Fatal(err)
	}
	if !ks.Signing().Private.Equal(a) || len(ks.Published(time.Now().Add(time.Hour))) != 2 {
		t.Errorf("first file must sign, both stay published: %+v", ks)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	notPEM := filepath.Join(t.TempDir(), "x")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	for name, paths := range map[string][]string{
		"missing": {filepath.Join(t.TempDir(), "none.pem")}, "ecdsa": {writePEM(t, ec)}, "not PEM": {notPEM}, "none": nil,
	} {
		if _, err := idtoken.FromFiles(paths); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestSignerClaimsAndCache(t *testing.T) {
	ks := &idtoken.KeySet{}
	k, _ := idtoken.NewKey(time.Now())
	ks.Keys = append(ks.Keys, k)
	clk := &clock{t: time.Now()}
	s := &idtoken.Signer{Audience: "app", Now: clk.now}
	u := &users.User{ID: 7, Username: "ann", Email: "ann@example.com", IsStaff: true, Groups: []string{"a b", "editors"}}
	origin := idtoken.Origin{HTTPS: true, Host: "App.Example.com:8443"}
	if _, err := s.Token(u, origin); !errors.Is(err, idtoken.ErrNoKey) {
		t.Fatalf("without a key: %v", err)
	}
	if err := s.SetKey(ks.Signing()); err != nil {
		t.Fatal(err)
	}
	tok, err := s.Token(u, origin)
	if err != nil {
		t.Fatal(err)
	}
	cl := verifyJWKS(t, tok, ks.JWKS(clk.now()))
	iat := clk.now().Unix()
	want := map[string]any{"iss": "https://app.example.com:8443", "sub": "7", "aud": "app", "username": "ann", "email": "ann@example.com",
		"email_verified": false, "groups": []any{"a b", "editors"}, "is_staff": true, "is_superuser": false, "iat": float64(iat), "exp": float64(iat + 60)}
	if b1, b2 := mustJSON(cl), mustJSON(want); b1 != b2 {
		t.Errorf("claims\n got  %s\n want %s", b1, b2)
	}
	// Reused while it has more than RefreshBefore to live...
	clk.add(idtoken.Lifetime - idtoken.RefreshBefore - time.Second)
	if again, _ := s.Token(u, origin); again != tok {
		t.Error("token not reused")
	}
	// ...then signed anew.
	clk.add(2 * time.Second)
	fresh, _ := s.Token(u, origin)
	if fresh == tok {
		t.Error("token reused past its refresh time")
	}
	tok = fresh
	// Any change in what it says makes a new one.
	changes := []func(u *users.User){
		func(u *users.User) { u.Groups = []string{"a b"} },
		func(u *users.User) { u.Groups = nil },
		func(u *users.User) { u.Email = "new@example.com" },
		func(u *users.User) { u.Username = "anne" },
		func(u *users.User) { u.IsSuperuser = true },
		func(u *users.User) { u.IsStaff = false },
		func(u *users.User) { u.EmailVerified = true },
	}
	for i, change := range changes {
		change(u)
		next, _ := s.Token(u, origin)
		if next == tok {
			t.Errorf("change %d: token not re-signed", i)
		}
		cl := verifyJWKS(t, next, ks.JWKS(clk.now()))
		if cl["username"] != u.Username || cl["email"] != u.Email || cl["email_verified"] != u.EmailVerified || cl["is_superuser"] != u.IsSuperuser ||
			cl["is_staff"] != u.IsStaff || len(cl["groups"].([]any)) != len(u.Groups) {
			t.Errorf("change %d: claims %v for %+v", i, cl, u)
		}
		tok = next
	}
	// Another origin is another issuer.
	other, _ := s.Token(u, idtoken.Origin{Host: "other.example"})
	if cl := verifyJWKS(t, other, ks.JWKS(clk.now())); cl["iss"] != "http://other.example" {
		t.Errorf("iss %v", cl["iss"])
	}
	// A new signing key re-signs.
	k2, _ := idtoken.NewKey(clk.now())
	ks.Keys[0].Retired = clk.now()
	ks.Keys = append(ks.Keys, k2)
	s.SetKey(ks.Signing())
	rotated, _ := s.Token(u, idtoken.Origin{Host: "other.example"})
	if rotated == other {
		t.Error("token not re-signed with the new key")
	}
	verifyJWKS(t, rotated, ks.JWKS(clk.now()))
	verifyJWKS(t, other, ks.JWKS(clk.now())) // the old key's token still verifies
}

func TestSignerFixedIssuerAndPrefix(t *testing.T) {
	k, _ := idtoken.NewKey(time.Now())
	s := &idtoken.Signer{Issuer: "https://auth.example.com", Prefix: "Bearer "}
	s.SetKey(&k)
	u := &users.User{ID: 1, Username: "a"}
	a, _ := s.Token(u, idtoken.Origin{Host: "x"})
	b, _ := s.Token(u, idtoken.Origin{Host: "y"})
	if a != b || !strings.HasPrefix(a, "Bearer ey") {
		t.Fatalf("fixed issuer: %q %q", a, b)
	}
	ks := &idtoken.KeySet{Keys: []idtoken.Key{k}}
	if cl := verifyJWKS(t, strings.TrimPrefix(a, "Bearer "), ks.JWKS(time.Now())); cl["iss"] != "https://auth.example.com" || cl["aud"] != nil {
		t.Errorf("claims %v", cl)
	}
}

func TestSignerCacheBound(t *testing.T) {
	k, _ := idtoken.NewKey(time.Now())
	s := &idtoken.Signer{CacheSize: 10}
	s.SetKey(&k)
	for i := range 100 {
		if _, err := s.Token(&users.User{ID: int64(i + 1), Username: "u"}, idtoken.Origin{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := idtoken.CachedTokens(s); n > 10 {
		t.Errorf("%d cached tokens, bound 10", n)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Instances on one PostgreSQL database agree on one key set, made once,
// and see each other's rotations.
func TestKeySetSharedOnPostgres(t *testing.T) {
	db := testpg.New(t)
	open := func() users.Secrets {
		s, err := postgres.Open(bg, db.URL, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	a, b := open(), open()
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			sec := a
			if i%2 == 1 {
				sec = b
			}
			ks, err := idtoken.Ensure(bg, sec)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = ks.Signing().ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("instances made different keys: %q", ids)
		}
	}
	rotated, err := idtoken.Rotate(bg, a, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	seen, err := idtoken.Load(bg, b)
	if err != nil || seen.Signing().ID != rotated.Signing().ID || len(seen.Published(time.Now())) != 2 {
		t.Fatalf("the other instance reads %+v (%v) after a rotation to %s", seen, err, rotated.Signing().ID)
	}
}
