package passwords

import "errors"

// Errors returned by [Hasher.Verify]. Parse failures wrap one of these with a
// description, so test with errors.Is.
var (
	// ErrUnknownFormat means the encoded hash uses no algorithm this package
	// can verify (including Django hashers we deliberately do not support,
	// such as unsalted MD5).
	ErrUnknownFormat = errors.New("passwords: unknown hash format")

	// ErrMalformedHash means the algorithm was recognised but the encoded
	// hash could not be parsed or its cost parameters are out of bounds.
	ErrMalformedHash = errors.New("passwords: malformed hash")

	// ErrUnusablePassword means the stored value is Django's marker for
	// "no password set" (make_password(None), a "!" prefix). No password
	// matches it.
	ErrUnusablePassword = errors.New("passwords: unusable password")
)
