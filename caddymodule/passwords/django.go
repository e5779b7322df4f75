package passwords

import (
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Django stores "<algorithm>$<algorithm-specific data>" (see
// django/contrib/auth/hashers.py). We verify the hashers a Django project is
// likely to have used; anything else is ErrUnknownFormat.

// djangoUnusablePrefix marks a password set with make_password(None).
const djangoUnusablePrefix = "!"

// parseDjango parses a Django-encoded hash into its checker.
func parseDjango(encoded string) (parsed, error) {
	algorithm, rest, ok := strings.Cut(encoded, "$")
	if !ok {
		return parsed{}, ErrUnknownFormat
	}
	var check checker
	var err error
	switch algorithm {
	case "pbkdf2_sha256", "pbkdf2_sha1":
		newHash, size := sha256.New, sha256.Size
		if algorithm == "pbkdf2_sha1" {
			newHash, size = sha1.New, sha1.Size
		}
		if check, err = parsePBKDF2(rest, newHash, size); err != nil {
			return parsed{}, err
		}
		iterations, _, _ := strings.Cut(rest, "$")
		return parsed{check: check, kind: algorithm + "$" + iterations}, nil
	case "argon2":
		// argon2$argon2id$v=19$...: Django prefixes argon2-cffi's PHC string.
		a, err := parseArgon2("$" + rest)
		if err != nil {
			return parsed{}, err
		}
		return a.parsed(false), nil
	case "bcrypt_sha256", "bcrypt":
		if check, err = parseBcrypt(rest, algorithm == "bcrypt_sha256"); err != nil {
			return parsed{}, err
		}
		cost, _ := bcrypt.Cost([]byte(rest))
		return parsed{check: check, kind: "bcrypt$" + strconv.Itoa(cost)}, nil
	}
	return parsed{}, fmt.Errorf("%w: %q", ErrUnknownFormat, algorithm)
}

// parsePBKDF2 parses "<iterations>$<salt>$<base64 key>", the part after
// "pbkdf2_sha256$". Django derives a key of the digest's size and uses the
// salt string's bytes as salt.
func parsePBKDF2(rest string, newHash func() hash.Hash, size int) (checker, error) {
	parts := strings.SplitN(rest, "$", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: pbkdf2 hash must have 4 '$'-separated fields", ErrMalformedHash)
	}
	iterations, err := parseDecimal(parts[0], 32)
	if err != nil || iterations < 1 || iterations > MaxPBKDF2Iterations {
		return nil, fmt.Errorf("%w: pbkdf2 iterations %q are outside 1..%d", ErrMalformedHash, parts[0], MaxPBKDF2Iterations)
	}
	salt := parts[1]
	if salt == "" {
		return nil, fmt.Errorf("%w: empty pbkdf2 salt", ErrMalformedHash)
	}
	want, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(want) != size {
		return nil, fmt.Errorf("%w: pbkdf2 key is not %d bytes of base64", ErrMalformedHash, size)
	}
	return func(password string) (bool, error) {
		got, err := pbkdf2.Key(newHash, password, []byte(salt), int(iterations), size)
		if err != nil {
			return false, err
		}
		return subtle.ConstantTimeCompare(got, want) == 1, nil
	}, nil
}

// parseBcrypt parses a modular-crypt bcrypt hash ("$2b$12$..."), the part
// after "bcrypt_sha256$" or "bcrypt$". With preHash, the password is first
// replaced by hex(sha256(password)) as Django's BCryptSHA256PasswordHasher
// does to avoid bcrypt's 72-byte truncation.
func parseBcrypt(rest string, preHash bool) (checker, error) {
	encoded := []byte(rest)
	cost, err := bcrypt.Cost(encoded)
	if err != nil {
		return nil, fmt.Errorf("%w: bcrypt: %v", ErrMalformedHash, err)
	}
	if cost > MaxBcryptCost {
		return nil, fmt.Errorf("%w: bcrypt cost %d exceeds %d", ErrMalformedHash, cost, MaxBcryptCost)
	}
	return func(password string) (bool, error) {
		pw := []byte(password)
		if preHash {
			sum := sha256.Sum256(pw)
			pw = []byte(hex.EncodeToString(sum[:]))
		}
		// bcrypt ignores everything after 72 bytes; Python's bcrypt (as used
		// by Django) truncated silently, newer Go versions may reject instead.
		if len(pw) > 72 {
			pw = pw[:72]
		}
		err := bcrypt.CompareHashAndPassword(encoded, pw)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return false, nil
		}
		return false, err
	}, nil
}
