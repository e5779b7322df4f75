package passwords

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Scheme is the format new hashes are written in, and so which stored
// hashes are current (not rehashed at the next login). The zero Scheme is
// the sidecar's own: argon2id PHC strings with the Hasher's params.
//
// With Django's users table the sidecar writes what Django verifies:
// SchemeDjangoPBKDF2 (Django's default hasher,
// "pbkdf2_sha256$<iterations>$<salt>$<base64 key>") or SchemeDjangoArgon2
// (Django's Argon2PasswordHasher, "argon2$argon2id$v=19$m=…,t=…,p=…$<salt>$<key>",
// verified by Django when argon2-cffi is installed). As Django's
// check_password does, a stored hash of another algorithm, or of the same
// with other cost parameters, needs a rehash.
type Scheme struct {
	Kind SchemeKind
	// Iterations is the PBKDF2 iteration count (SchemeDjangoPBKDF2);
	// 0 means DjangoPBKDF2Iterations.
	Iterations int
}

// SchemeKind names a Scheme's format.
type SchemeKind int

const (
	SchemeArgon2       SchemeKind = iota // $argon2id$… (the sidecar's own)
	SchemeDjangoPBKDF2                   // pbkdf2_sha256$…
	SchemeDjangoArgon2                   // argon2$argon2id$…
)

// DjangoPBKDF2Iterations is the iteration count of Django's
// PBKDF2PasswordHasher in the current Django release (6.1: 1,500,000).
const DjangoPBKDF2Iterations = 1_500_000

// ParseScheme reads a password_hasher value: "argon2" (Django's argon2
// format) or "pbkdf2_sha256", with iterations for the latter (0: Django's).
func ParseScheme(name string, iterations int) (Scheme, error) {
	if iterations < 0 || iterations > MaxPBKDF2Iterations {
		return Scheme{}, fmt.Errorf("pbkdf2_iterations: want 1 to %d", MaxPBKDF2Iterations)
	}
	switch name {
	case "pbkdf2_sha256":
		if iterations == 0 {
			iterations = DjangoPBKDF2Iterations
		}
		return Scheme{Kind: SchemeDjangoPBKDF2, Iterations: iterations}, nil
	case "argon2":
		if iterations != 0 {
			return Scheme{}, fmt.Errorf("pbkdf2_iterations: only with password_hasher pbkdf2_sha256")
		}
		return Scheme{Kind: SchemeDjangoArgon2}, nil
	}
	return Scheme{}, fmt.Errorf("password_hasher: %q is not pbkdf2_sha256 or argon2", name)
}

// String is the password_hasher name ("" for the sidecar's own format).
func (s Scheme) String() string {
	switch s.Kind {
	case SchemeDjangoPBKDF2:
		return "pbkdf2_sha256"
	case SchemeDjangoArgon2:
		return "argon2"
	}
	return ""
}

func (s Scheme) iterations() int {
	if s.Iterations > 0 {
		return s.Iterations
	}
	return DjangoPBKDF2Iterations
}

// djangoSaltChars are the characters of Django's get_random_string salts.
const djangoSaltChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// djangoSalt is a salt as Django makes them: 22 characters of
// djangoSaltChars (about 131 bits).
func djangoSalt() string {
	b := randomBytes(22)
	for i := range b {
		b[i] = djangoSaltChars[int(b[i])%len(djangoSaltChars)] // 256 % 62 bias is negligible for a salt
	}
	return string(b)
}

// pbkdf2SHA256 is Django's PBKDF2PasswordHasher.encode.
func pbkdf2SHA256(password, salt string, iterations int) string {
	key, err := pbkdf2.Key(sha256.New, password, []byte(salt), iterations, sha256.Size)
	if err != nil {
		panic("passwords: pbkdf2: " + err.Error()) // only for FIPS-refused parameters
	}
	return "pbkdf2_sha256$" + strconv.Itoa(iterations) + "$" + salt + "$" + base64.StdEncoding.EncodeToString(key)
}

// HashAs is Hash in scheme s's format.
func (h *Hasher) HashAs(ctx context.Context, password string, s Scheme) (string, error) {
	switch s.Kind {
	case SchemeDjangoPBKDF2:
		var out string
		salt := djangoSalt()
		if _, err := h.run(ctx, 1, func() { out = pbkdf2SHA256(password, salt, s.iterations()) }); err != nil {
			return "", err
		}
		return out, nil
	case SchemeDjangoArgon2:
		phc, err := h.Hash(ctx, password)
		if err != nil {
			return "", err
		}
		return "argon2" + phc, nil
	}
	return h.Hash(ctx, password)
}

// VerifyAs is Verify with scheme s deciding which hashes are current: a
// hash in another format or with other cost parameters than s writes
// needs a rehash. An unknown user's check (VerifyDummyAs) costs what a
// check of s's own kind costs.
func (h *Hasher) VerifyAs(ctx context.Context, password, encoded string, s Scheme) (ok bool, needsRehash bool, err error) {
	if s.Kind == SchemeArgon2 {
		return h.Verify(ctx, password, encoded)
	}
	ok, _, err = h.Verify(ctx, password, encoded)
	if err != nil || !ok {
		return ok, false, err
	}
	return true, !h.currentAs(encoded, s), nil
}

// currentAs reports whether encoded is exactly what s writes now.
func (h *Hasher) currentAs(encoded string, s Scheme) bool {
	switch s.Kind {
	case SchemeDjangoPBKDF2:
		iterations, _, ok := strings.Cut(strings.TrimPrefix(encoded, "pbkdf2_sha256$"), "$")
		return ok && strings.HasPrefix(encoded, "pbkdf2_sha256$") && iterations == strconv.Itoa(s.iterations())
	case SchemeDjangoArgon2:
		if !strings.HasPrefix(encoded, "argon2$argon2id$") {
			return false
		}
		a, err := parseArgon2(strings.TrimPrefix(encoded, "argon2"))
		return err == nil && a.params == h.params
	}
	return false
}

// VerifyDummyAs is VerifyDummy for scheme s: the work of checking a hash
// s writes (padded like every check to the dearest kind seen).
func (h *Hasher) VerifyDummyAs(ctx context.Context, password string, s Scheme) {
	if s.Kind != SchemeDjangoPBKDF2 {
		h.VerifyDummy(ctx, password)
		return
	}
	// A well-formed hash no password matches: a random key.
	dummy := "pbkdf2_sha256$" + strconv.Itoa(s.iterations()) + "$" + djangoSalt() + "$" +
		base64.StdEncoding.EncodeToString(randomBytes(sha256.Size))
	_, _, _ = h.Verify(ctx, password, dummy)
}
