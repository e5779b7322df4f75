package idtoken

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// SecretName is the users.Secrets entry that holds the key set.
const SecretName = "identity_token_keys"

// Lifetime is how long a token is valid (its exp is iat + Lifetime).
const Lifetime = 60 * time.Second

// RetiredKeep is how long a key retired by Rotate stays published: longer
// than an instance takes to notice the rotation (seconds) plus the
// lifetime of the last token it signs with the old key.
const RetiredKeep = 5 * time.Minute

// ErrCorrupt is wrapped by the errors of a stored key set that does not
// decode. It is never overwritten: other instances may be using it.
var ErrCorrupt = errors.New("idtoken: the stored key set is corrupt")

// Key is one Ed25519 key.
type Key struct {
	// ID is the key's kid: its RFC 7638 JWK thumbprint (SHA-256, base64url).
	ID      string
	Private ed25519.PrivateKey
	Created time.Time
	// Retired is when Rotate replaced the key as the signing key; zero for
	// the signing key (and for keys read from files).
	Retired time.Time
}

// Public returns the key's public half.
func (k *Key) Public() ed25519.PublicKey { return k.Private.Public().(ed25519.PublicKey) }

// KeySet is the signing key and the keys it replaced.
type KeySet struct {
	// Keys are oldest first; the last one signs.
	Keys []Key
}

// Signing returns the key that signs new tokens.
func (ks *KeySet) Signing() *Key { return &ks.Keys[len(ks.Keys)-1] }

// Published returns the keys a verifier must know at now: the signing key
// and those retired less than RetiredKeep ago, newest first.
func (ks *KeySet) Published(now time.Time) []Key {
	var out []Key
	for i := len(ks.Keys) - 1; i >= 0; i-- {
		k := ks.Keys[i]
		if k.Retired.IsZero() || now.Sub(k.Retired) < RetiredKeep {
			out = append(out, k)
		}
	}
	return out
}

// JWKS returns the published keys as a JSON Web Key Set.
func (ks *KeySet) JWKS(now time.Time) []byte {
	var set jose.JSONWebKeySet
	for _, k := range ks.Published(now) {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Public(), KeyID: k.ID, Algorithm: string(jose.EdDSA), Use: "sig"})
	}
	if set.Keys == nil {
		set.Keys = []jose.JSONWebKey{}
	}
	b, err := json.Marshal(set)
	if err != nil { // Ed25519 public keys always marshal
		panic(fmt.Sprintf("idtoken: marshalling the JWKS: %v", err))
	}
	return b
}

// NewKey generates a key.
func NewKey(now time.Time) (Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, err
	}
	return keyOf(priv, now)
}

func keyOf(priv ed25519.PrivateKey, created time.Time) (Key, error) {
	jwk := jose.JSONWebKey{Key: priv.Public()}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return Key{}, err
	}
	return Key{ID: b64(tp), Private: priv, Created: created.UTC().Truncate(time.Second)}, nil
}

// stored is the key set as kept in users.Secrets.
type stored struct {
	Version int         `json:"version"`
	Keys    []storedKey `json:"keys"`
}

type storedKey struct {
	Seed    []byte    `json:"seed"` // the 32-byte Ed25519 seed (JSON: base64)
	Created time.Time `json:"created"`
	Retired time.Time `json:"retired,omitzero"`
}

// Marshal encodes the set for users.Secrets.
func (ks *KeySet) Marshal() []byte {
	st := stored{Version: 1}
	for _, k := range ks.Keys {
		st.Keys = append(st.Keys, storedKey{Seed: k.Private.Seed(), Created: k.Created, Retired: k.Retired})
	}
	b, err := json.Marshal(st)
	if err != nil {
		panic(fmt.Sprintf("idtoken: marshalling the key set: %v", err))
	}
	return b
}

// Parse decodes a set written by Marshal.
func Parse(b []byte) (*KeySet, error) {
	var st stored
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if st.Version != 1 {
		return nil, fmt.Errorf("%w: unknown version %d (written by a newer caddy-session-auth?)", ErrCorrupt, st.Version)
	}
	if len(st.Keys) == 0 {
		return nil, fmt.Errorf("%w: no keys", ErrCorrupt)
	}
	ks := new(KeySet)
	for i, sk := range st.Keys {
		if len(sk.Seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("%w: key %d: seed of %d bytes, want %d", ErrCorrupt, i, len(sk.Seed), ed25519.SeedSize)
		}
		k, err := keyOf(ed25519.NewKeyFromSeed(sk.Seed), sk.Created)
		if err != nil {
			return nil, fmt.Errorf("%w: key %d: %v", ErrCorrupt, i, err)
		}
		k.Retired = sk.Retired
		ks.Keys = append(ks.Keys, k)
	}
	if !ks.Signing().Retired.IsZero() {
		return nil, fmt.Errorf("%w: the newest key is retired", ErrCorrupt)
	}
	return ks, nil
}

// Ensure returns the key set kept in sec, generating and storing one first
// if there is none. Instances starting at once agree on one set (the
// update holds the secret). A stored set that does not decode is an error
// wrapping ErrCorrupt, and is left as it is.
func Ensure(ctx context.Context, sec users.Secrets) (*KeySet, error) {
	var ks *KeySet
	_, err := sec.UpdateSecret(ctx, SecretName, func(cur []byte) ([]byte, error) {
		if cur != nil {
			var err error
			ks, err = Parse(cur)
			return cur, err
		}
		k, err := NewKey(time.Now())
		if err != nil {
			return nil, err
		}
		ks = &KeySet{Keys: []Key{k}}
		return ks.Marshal(), nil
	})
	if err != nil {
		return nil, err
	}
	return ks, nil
}

// Load reads the key set kept in sec: users.ErrNotFound if there is none.
func Load(ctx context.Context, sec users.Secrets) (*KeySet, error) {
	b, err := sec.Secret(ctx, SecretName)
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// Rotate retires the signing key kept in sec (generating a set first if
// there is none) and adds a new one, which signs from now on; keys retired
// more than RetiredKeep ago are dropped. It returns the new set.
func Rotate(ctx context.Context, sec users.Secrets, now time.Time) (*KeySet, error) {
	var ks *KeySet
	_, err := sec.UpdateSecret(ctx, SecretName, func(cur []byte) ([]byte, error) {
		ks = new(KeySet)
		if cur != nil {
			old, err := Parse(cur)
			if err != nil {
				return nil, err
			}
			for _, k := range old.Keys {
				if k.Retired.IsZero() {
					k.Retired = now.UTC()
				}
				if now.Sub(k.Retired) < RetiredKeep {
					ks.Keys = append(ks.Keys, k)
				}
			}
		}
		k, err := NewKey(now)
		if err != nil {
			return nil, err
		}
		ks.Keys = append(ks.Keys, k)
		return ks.Marshal(), nil
	})
	if err != nil {
		return nil, err
	}
	return ks, nil
}

// FromFiles reads PEM-encoded Ed25519 private keys (PKCS #8, as `openssl
// genpkey -algorithm ed25519` writes them). The first file's key signs; the
// others are only published (keys being rotated out by hand).
func FromFiles(paths []string) (*KeySet, error) {
	if len(paths) == 0 {
		return nil, errors.New("idtoken: no key file")
	}
	ks := new(KeySet)
	for _, p := range slices.Backward(paths) {
		k, err := readKeyFile(p)
		if err != nil {
			return nil, err
		}
		ks.Keys = append(ks.Keys, k) // not retired: published as long as the file is named
	}
	return ks, nil
}

func readKeyFile(path string) (Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("identity token key: %v", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return Key{}, fmt.Errorf("identity token key %s: not a PEM \"PRIVATE KEY\" (make one with: openssl genpkey -algorithm ed25519 -out %s)", path, path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return Key{}, fmt.Errorf("identity token key %s: %v", path, err)
	}
	priv, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return Key{}, fmt.Errorf("identity token key %s: a %T, want an Ed25519 key (openssl genpkey -algorithm ed25519)", path, parsed)
	}
	var created time.Time
	if fi, err := os.Stat(path); err == nil {
		created = fi.ModTime()
	}
	return keyOf(priv, created)
}
