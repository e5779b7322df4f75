// Package passwords hashes and verifies passwords and checks new passwords
// against Django's default validators.
//
// New hashes are argon2id in the PHC string format
// ($argon2id$v=19$m=...,t=...,p=...$salt$key). Verification also accepts the
// formats a Django user table may contain (pbkdf2_sha256, pbkdf2_sha1,
// argon2, bcrypt_sha256, bcrypt) so users can be imported as they are and
// rehashed on their next successful login (see [Hasher.Verify]).
//
// [Validate] reproduces Django's default AUTH_PASSWORD_VALIDATORS, messages
// included, so API clients written against a Django REST Framework backend
// see the same errors.
//
// The package knows nothing about HTTP or Caddy.
package passwords
