// Package users stores the proxy's user accounts in a bbolt database.
//
// The request path reads one user per authenticated request (ByID), so records
// use a compact hand-rolled binary encoding that decodes with two allocations.
// Usernames are unique case-insensitively: the uniqueness key is the name
// after NFKC normalisation and Unicode case folding (see UsernameKey), which
// matches how Django treats look-alike names.
//
// The package knows nothing about HTTP or Caddy.
package users
