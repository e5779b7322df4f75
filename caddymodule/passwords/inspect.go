package passwords

import "strings"

// CheckFormat reports whether [Hasher.Verify] can check passwords against
// encoded, without doing the (expensive) check: nil if it can, otherwise the
// error Verify would return for any password (wrapping ErrUnusablePassword,
// ErrUnknownFormat or ErrMalformedHash). It is for tools that import hashes
// and want to warn about accounts that will not be able to log in.
func CheckFormat(encoded string) error {
	switch {
	case strings.HasPrefix(encoded, "$"):
		_, err := parseArgon2(encoded)
		return err
	case strings.HasPrefix(encoded, djangoUnusablePrefix):
		return ErrUnusablePassword
	}
	_, err := parseDjango(encoded)
	return err
}
