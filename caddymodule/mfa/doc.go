// Package mfa keeps and checks users' second factors: TOTP (RFC 6238:
// SHA-1, 6 digits, 30 s steps, one step either side, each code accepted
// once), single-use recovery codes, and WebAuthn passkeys. It knows
// nothing of Caddy or HTTP sessions: the handler calls it for the API's
// 2fa endpoints and the login's second step, the CLI and admin API to
// reset a user's factors.
//
// What it stores per user is one Data value (JSON) kept by a
// users.Factors backend, read and changed in one transaction per change,
// so that a TOTP code or a recovery code is accepted once across every
// instance. TOTP secrets are encrypted (AES-256-GCM, bound to the user id)
// under a key kept in users.Secrets like the identity-token keys; recovery
// codes are kept as SHA-256 digests (they are random, 50 bits each).
package mfa
