// Package users defines the proxy's user accounts and the Store interface
// that every users backend implements: the embedded bbolt file
// (package users/bolt, the zero-dependency default) and PostgreSQL
// (package users/postgres, for several instances sharing one database).
// Package users/storetest is the conformance suite that both pass.
//
// Usernames are unique regardless of case and look-alike spelling: the
// uniqueness key is the name after NFKC normalisation and Unicode case
// folding (see UsernameKey), which matches how Django treats such names.
// Backends store and index that key; none compares raw names.
//
// Times are kept to the microsecond, in UTC (see StoredTime), so that a user
// reads back the same from every backend.
//
// The package knows nothing about HTTP or Caddy.
package users
