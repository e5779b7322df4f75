// Package idtoken makes the signed identity token that the sidecar adds to
// requests it forwards: a JWT (RFC 7519) signed with EdDSA over Ed25519
// (RFC 8037), whose public keys are published as a JWKS (RFC 7517), so that
// an upstream reachable by other ways than through the sidecar can verify
// who the user is instead of trusting plain headers.
//
// A KeySet is the signing key and the keys retired by rotation, kept with
// the users (users.Secrets, under SecretName) so that every instance and
// the CLI share it, or read from PEM files. Rotate retires the signing key
// and adds a new one; a retired key stays published for RetiredKeep, longer
// than any token it signed can live.
//
// A Signer caches one token per user and hands it out again until
// RefreshBefore its expiry, re-signing early when what the token says of the
// user (username, email, groups, flags), the issuer or the signing key
// changed: the common request costs a map read, not a signature.
//
// The package knows nothing of HTTP or Caddy.
package idtoken
