// Package accounts holds the rules of account changes, in one place for
// every way in: the HTTP API (register, login, password change, logout
// everywhere), the `caddy session-auth` CLI and the admin API.
//
// A Service wraps a users.Store and a password hasher. It validates what
// it is given as Django does (usernames NFKC-normalised and unique
// regardless of case, Django's username characters, its email validator,
// its password validators), hashes passwords within the hasher's bounded
// concurrency, and keeps the session-epoch rule: setting a password,
// deactivating a user and "end all sessions" move the user's SessionEpoch,
// which every request compares with the one its session recorded, so all
// sessions of that user end at once without scanning a session store.
//
// The package knows nothing about HTTP or Caddy; callers map its errors
// (*FieldErrors, ErrNotFound, ErrBadCredentials, *ConflictError,
// *InvalidError) to their own answers.
package accounts
