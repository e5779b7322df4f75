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
// Groups (AddToGroup, RemoveFromGroup) are names, as Django's auth_group
// names them; a change applies on the user's next request, since the gate
// reads the user on every request. They do not end sessions.
//
// The package knows nothing about HTTP or Caddy; callers map its errors
// (*FieldErrors, ErrNotFound, ErrBadCredentials, *ConflictError,
// *InvalidError) to their own answers.
package accounts
